//! `compound_token`: `CompoundToken::parse` (refresh tokens and session cookies,
//! `{id}.{secret}`) on arbitrary UTF-8.
//!
//! Invariants: nothing panics; a parsed token's `id` is exactly the input before the
//! first '.', `whole` is the input, the documented shape holds (id 1-64 of
//! `[A-Za-z0-9-]`, secret 32 alphanumerics, at most 128 bytes), re-parsing `whole`
//! gives the same token, and its hash is 64 lower-case hex digits.

use latchkey_token::secret::{CompoundToken, SECRET_LEN};

/// The fuzz target.
pub fn run(data: &[u8]) {
    let Ok(input) = std::str::from_utf8(data) else { return };
    let Some(token) = CompoundToken::parse(input) else { return };
    let (before, secret) = input.split_once('.').expect("a parsed token contains a '.'");
    assert!(before.starts_with(token.id), "id {:?} is not a prefix of {before:?}", token.id);
    assert_eq!(token.id, before, "id is not the whole part before the first '.'");
    assert_eq!(token.whole, input, "whole is not the input");
    assert!(input.len() <= 128, "over-long input parsed");
    assert!((1..=64).contains(&token.id.len()), "id length {}", token.id.len());
    assert!(token.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'), "id charset: {:?}", token.id);
    assert_eq!(secret.len(), SECRET_LEN, "secret length");
    assert!(secret.bytes().all(|b| b.is_ascii_alphanumeric()), "secret charset: {secret:?}");
    assert_eq!(CompoundToken::parse(token.whole), Some(token.clone()), "re-parsing whole differs");
    let hash = token.hash();
    assert!(hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')), "hash {hash:?}");
}
