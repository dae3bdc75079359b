//! `jwt_verify`: arbitrary bytes as a token string, verified as an access token and as
//! an ID token (with the audience checked, and as an `id_token_hint`) against the three
//! fixture keys.
//!
//! Invariants: nothing panics; a token that verifies is a fixture token's signing input
//! and carries exactly its claims, and satisfies the expectations it was checked against
//! (see [`crate::fixtures::check_verified`]); verification is deterministic.

use crate::fixtures::{
    Kind, access_expectations, check_verified, id_expectations, id_hint_expectations, verifying_keys,
};

/// Verifies `token` every way the service does and checks the invariants.
pub fn check(token: &str) {
    let keys = verifying_keys();
    let expect = access_expectations();
    let access = keys.verify_access_token(token, &expect);
    check_verified(token, Kind::Access, &expect, &access);
    let again = keys.verify_access_token(token, &expect);
    assert_eq!(format!("{access:?}"), format!("{again:?}"), "verification is not deterministic");
    for expect in [id_expectations(), id_hint_expectations()] {
        let id = keys.verify_id_token(token, &expect);
        check_verified(token, Kind::Id, &expect, &id);
    }
}

/// The fuzz target.
pub fn run(data: &[u8]) {
    match std::str::from_utf8(data) {
        Ok(token) => check(token),
        // Tokens arrive as header text or form values, which are UTF-8 by then; keep
        // the input useful anyway.
        Err(_) => check(&String::from_utf8_lossy(data)),
    }
}
