//! JWT access tokens (RFC 9068 profile, `typ: at+jwt`) and OpenID Connect ID tokens.
//!
//! Access-token claims are Authgear's (`client_id`, `scope`, `auth_time`, `amr`, `jti`
//! and the `https://authgear.com/claims/user/*` claims) plus `sid`, the session the
//! token belongs to, so the resolver can check revocation with one read.
//!
//! Verification is strict: a `kid` from the set is required, the header `alg` must be
//! that key's algorithm, the `typ` must match, `iss` and `aud` must be ours, `exp` must
//! be present, and time is checked against the caller's clock with an explicit
//! tolerance (jwt-simple's own default of 15 minutes is never used).

use std::collections::HashSet;

use jwt_simple::prelude::*;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::UnixSeconds;
use crate::keys::KeySet;

/// The longest token accepted for verification; longer input is rejected unparsed.
pub const MAX_TOKEN_LENGTH: usize = 8 * 1024;

/// `typ` of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// `typ` of ID tokens.
pub const ID_TOKEN_TYPE: &str = "JWT";

/// Identity claims about a user, as Authgear names them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserClaims {
    /// `https://authgear.com/claims/user/is_anonymous`
    #[serde(rename = "https://authgear.com/claims/user/is_anonymous")]
    pub is_anonymous: bool,
    /// `https://authgear.com/claims/user/is_verified`
    #[serde(rename = "https://authgear.com/claims/user/is_verified")]
    pub is_verified: bool,
    /// `https://authgear.com/claims/user/can_reauthenticate`
    #[serde(rename = "https://authgear.com/claims/user/can_reauthenticate")]
    pub can_reauthenticate: bool,
    /// `https://authgear.com/claims/user/roles`
    #[serde(rename = "https://authgear.com/claims/user/roles", default)]
    pub roles: Vec<String>,
}

/// The non-registered claims of an access token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The client the token was issued to.
    pub client_id: String,
    /// Space-separated granted scopes.
    #[serde(default)]
    pub scope: String,
    /// When the user authenticated (absent for client credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<UnixSeconds>,
    /// Authentication methods; omitted when empty, as Authgear does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// The session this token belongs to (absent for client credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// User claims (absent for client credentials).
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserClaims>,
}

/// The non-registered claims of an ID token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdClaims {
    /// When the user authenticated.
    pub auth_time: UnixSeconds,
    /// The session the token was issued from.
    pub sid: String,
    /// Authentication methods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// User claims.
    #[serde(flatten)]
    pub user: UserClaims,
    /// `preferred_username`, when the `profile` scope was granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
}

/// A verified token's registered and custom claims.
#[derive(Debug, Clone)]
pub struct Verified<C> {
    /// `sub`
    pub subject: String,
    /// `exp`
    pub expires_at: UnixSeconds,
    /// `iat`
    pub issued_at: Option<UnixSeconds>,
    /// `jti`
    pub jwt_id: Option<String>,
    /// `aud`, as a list.
    pub audiences: Vec<String>,
    /// `nonce`
    pub nonce: Option<String>,
    /// The custom claims.
    pub claims: C,
    /// `kid` of the key that verified it.
    pub kid: String,
}

/// Why a token was not accepted. The variants exist for logs and tests; callers
/// answer every one of them the same way (invalid), so they do not leak which check failed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TokenError {
    /// Not a compact JWS, too long, or its header could not be read.
    #[error("malformed token")]
    Malformed,
    /// No `kid`, or a `kid` that is not in the key set.
    #[error("unknown key")]
    UnknownKey,
    /// The header `typ` is not the expected one.
    #[error("wrong token type")]
    WrongType,
    /// Signature, algorithm, issuer, audience or time check failed.
    #[error("verification failed: {0}")]
    Rejected(String),
    /// A required claim is missing.
    #[error("missing claim {0}")]
    MissingClaim(&'static str),
    /// Signing failed (only if the key itself is unusable).
    #[error("signing failed: {0}")]
    Signing(String),
}

/// What is checked when verifying.
#[derive(Debug, Clone)]
pub struct Expectations<'a> {
    /// Required `iss`.
    pub issuer: &'a str,
    /// Required member of `aud`; `None` leaves the audience to the caller, who must
    /// check [`Verified::audiences`] (used for `id_token_hint`, whose client is unknown
    /// until it is read).
    pub audience: Option<&'a str>,
    /// The current time.
    pub now: UnixSeconds,
    /// Allowed clock skew for `exp`, `nbf` and `iat`, in seconds.
    pub tolerance_seconds: u64,
}

/// The registered claims of a token to sign.
#[derive(Debug, Clone)]
pub struct Registered<'a> {
    /// `iss`
    pub issuer: &'a str,
    /// `aud` (serialised as an array, as Authgear does)
    pub audience: &'a str,
    /// `sub`
    pub subject: &'a str,
    /// `iat`
    pub issued_at: UnixSeconds,
    /// Lifetime in seconds; `exp = iat + lifetime`.
    pub lifetime_seconds: u64,
    /// `jti`
    pub jwt_id: Option<String>,
    /// `nonce` (ID tokens only)
    pub nonce: Option<String>,
}

pub(crate) fn to_claims<C>(r: &Registered<'_>, custom: C) -> JWTClaims<C> {
    let mut claims = JWTClaims {
        issued_at: Some(Duration::from_secs(r.issued_at)),
        expires_at: Some(Duration::from_secs(r.issued_at.saturating_add(r.lifetime_seconds))),
        invalid_before: None,
        issuer: Some(r.issuer.to_owned()),
        subject: Some(r.subject.to_owned()),
        audiences: Some(Audiences::AsSet(HashSet::from([r.audience.to_owned()]))),
        jwt_id: r.jwt_id.clone(),
        nonce: None,
        custom,
    };
    claims.nonce = r.nonce.clone();
    claims
}

/// What an outside signature checker is asked: is `signature` a valid signature of
/// `signing_input` by `key`, in the key's one algorithm?
#[derive(Debug)]
pub struct SignatureQuestion<'a> {
    /// The key the token's `kid` named; its algorithm is fixed ([`crate::keys::Key::alg`]).
    pub key: &'a crate::keys::Key,
    /// `header.payload`, as signed.
    pub signing_input: &'a [u8],
    /// The decoded signature (for ES256, `r || s`, 64 bytes).
    pub signature: &'a [u8],
}

/// A signature check done outside this crate, where the runtime has a faster one
/// (WebCrypto on Workers, 7 to 15 × faster than the wasm code; BENCHMARKS.md).
///
/// Security: the checker is trusted with the signature only. Header checks run before
/// it and claim checks after it, here, whatever it answers.
pub trait SignatureChecker {
    /// `Some(valid)`, or `None` when the checker cannot answer (a key it cannot
    /// import, say); the built-in backend then decides.
    fn check<'a>(
        &'a self,
        question: SignatureQuestion<'a>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<bool>> + 'a>>;
}

impl KeySet {
    /// [`KeySet::verify_access_token`] with the signature checked by `checker`.
    ///
    /// # Errors
    /// A [`TokenError`] for any failed check.
    pub async fn verify_access_token_with(
        &self,
        token: &str,
        expect: &Expectations<'_>,
        checker: &dyn SignatureChecker,
    ) -> Result<Verified<AccessClaims>, TokenError> {
        let parsed = crate::verify::parse(self, token, ACCESS_TOKEN_TYPE)?;
        let question = SignatureQuestion {
            key: parsed.key,
            signing_input: parsed.signing_input.as_bytes(),
            signature: &parsed.signature,
        };
        let valid = match checker.check(question).await {
            Some(valid) => valid,
            None => crate::verify::signature_of(&parsed, token),
        };
        if !valid {
            return Err(TokenError::Rejected("invalid signature".into()));
        }
        crate::verify::claims(parsed, expect)
    }

    /// Signs an access token with the signing key.
    ///
    /// # Errors
    /// [`TokenError::Signing`] if the key cannot sign.
    pub fn sign_access_token(&self, registered: &Registered<'_>, claims: AccessClaims) -> Result<String, TokenError> {
        crate::sign::sign(self.signing_key(), to_claims(registered, claims), ACCESS_TOKEN_TYPE)
    }

    /// Signs an ID token with the signing key.
    ///
    /// # Errors
    /// [`TokenError::Signing`] if the key cannot sign.
    pub fn sign_id_token(&self, registered: &Registered<'_>, claims: IdClaims) -> Result<String, TokenError> {
        crate::sign::sign(self.signing_key(), to_claims(registered, claims), ID_TOKEN_TYPE)
    }

    /// Verifies an access token: signature by a key of this set, `typ: at+jwt`,
    /// `iss`, `aud` and time within the tolerance.
    ///
    /// Security: this says nothing about revocation. Callers that must honour
    /// revocation (the resolver, userinfo) also check the session named by `sid`.
    ///
    /// # Errors
    /// A [`TokenError`] for any failed check.
    pub fn verify_access_token(
        &self,
        token: &str,
        expect: &Expectations<'_>,
    ) -> Result<Verified<AccessClaims>, TokenError> {
        crate::verify::verify(self, token, ACCESS_TOKEN_TYPE, expect)
    }

    /// Verifies an ID token, for `id_token_hint`: signature, `typ`, `iss` and `aud`
    /// (the client). The caller sets `expect.tolerance_seconds` to how long after
    /// expiry a hint is still accepted (OpenID RP-initiated logout allows expired hints).
    ///
    /// # Errors
    /// A [`TokenError`] for any failed check.
    pub fn verify_id_token(&self, token: &str, expect: &Expectations<'_>) -> Result<Verified<IdClaims>, TokenError> {
        crate::verify::verify(self, token, ID_TOKEN_TYPE, expect)
    }
}

#[cfg(test)]
mod tests;
