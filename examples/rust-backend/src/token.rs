//! Local verification of Latchkey access tokens (RFC 9068 JWTs).
//!
//! What is checked, in order: the token is a compact JWS with a `kid`; the issuer
//! publishes that `kid` ([`KeyCache`]); the signature, with the algorithm of the key
//! (RS256, ES256 or EdDSA; the token's `alg` must match it); `typ` is `at+jwt`, so an ID
//! token is not an access token; `iss` is the issuer; `aud` contains the issuer; `exp`
//! is present and not more than 60 s in the past (clock skew), as are `nbf`/`iat` in
//! the future; `sub` is present.
//!
//! What is NOT checked: whether the session behind the token is still alive. A token
//! passes here until its `exp` even after logout or revocation. Ask the resolver for
//! that ([`crate::issuer::Issuer::resolve`]).

use std::collections::HashSet;
use std::time::Duration;

use jwt_simple::prelude::{
    ECDSAP256PublicKeyLike, EdDSAPublicKeyLike, JWTClaims, RSAPublicKeyLike, Token, VerificationOptions,
};
use serde::{Deserialize, Serialize};

use crate::keys::{JwksSource, KeyCache, KeyError, VerifyingKey};

/// Latchkey's (and Authgear's) roles claim.
pub const ROLES_CLAIM: &str = "https://authgear.com/claims/user/roles";

/// Clock skew allowed for `exp`, `nbf` and `iat`; Latchkey's default
/// `jwt.time_tolerance_seconds`.
pub const TIME_TOLERANCE: Duration = Duration::from_secs(60);

/// A verified access token: what handlers get in the request extensions.
#[derive(Clone, Debug, Serialize)]
pub struct AccessToken {
    /// The user id (`client_id_<id>` for client-credentials tokens).
    pub sub: String,
    /// The session id; absent on client-credentials tokens.
    pub sid: Option<String>,
    pub client_id: Option<String>,
    /// The granted scopes.
    pub scope: Vec<String>,
    pub roles: Vec<String>,
    /// Unix seconds.
    pub expires_at: u64,
}

/// Latchkey's claims beyond the registered ones.
#[derive(Serialize, Deserialize, Default)]
pub(crate) struct LatchkeyClaims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) scope: Option<String>,
    #[serde(rename = "https://authgear.com/claims/user/roles", default)]
    pub(crate) roles: Vec<String>,
}

/// Why a token was refused.
#[derive(Debug)]
pub enum TokenError {
    /// Answer 401 `invalid_token`. The reason is for logs, not for the client.
    Invalid(String),
    /// The `kid` is unknown and the issuer's JWKS could not be fetched: answer 503.
    KeysUnavailable,
}

fn invalid(reason: impl std::fmt::Display) -> TokenError {
    TokenError::Invalid(reason.to_string())
}

/// Verifies access tokens of one issuer.
pub struct Verifier<S> {
    keys: KeyCache<S>,
    issuer: String,
}

impl<S: JwksSource> Verifier<S> {
    /// `issuer` is compared with `iss` and looked for in `aud` exactly as given.
    pub fn new(keys: KeyCache<S>, issuer: impl Into<String>) -> Self {
        Verifier { keys, issuer: issuer.into() }
    }

    pub fn keys(&self) -> &KeyCache<S> {
        &self.keys
    }

    /// Check a bearer token locally. Security: a success means "the issuer signed this
    /// for us and it has not expired", not "the session is alive".
    pub async fn verify(&self, token: &str) -> Result<AccessToken, TokenError> {
        let metadata = Token::decode_metadata(token).map_err(|e| invalid(format!("malformed: {e}")))?;
        let kid = metadata.key_id().ok_or_else(|| invalid("no kid"))?;
        let key = match self.keys.key(kid).await {
            Ok(key) => key,
            Err(KeyError::UnknownKid) => return Err(invalid("unknown kid")),
            Err(KeyError::Unavailable) => return Err(TokenError::KeysUnavailable),
        };
        let issuer = HashSet::from([self.issuer.clone()]);
        let options = VerificationOptions {
            required_signature_type: Some("at+jwt".to_string()),
            required_key_id: Some(kid.to_string()),
            allowed_issuers: Some(issuer.clone()),
            allowed_audiences: Some(issuer),
            time_tolerance: Some(jwt_simple::prelude::Duration::from_secs(TIME_TOLERANCE.as_secs())),
            ..VerificationOptions::default()
        };
        // Each verify_token also rejects a token whose `alg` is not the key's.
        let claims: JWTClaims<LatchkeyClaims> = match &*key {
            VerifyingKey::Rs256(k) => k.verify_token(token, Some(options)),
            VerifyingKey::Es256(k) => k.verify_token(token, Some(options)),
            VerifyingKey::EdDsa(k) => k.verify_token(token, Some(options)),
        }
        .map_err(invalid)?;
        // jwt-simple accepts a token without `exp`; an access token must expire.
        let expires_at = claims.expires_at.ok_or_else(|| invalid("no exp"))?.as_secs();
        let sub = claims.subject.ok_or_else(|| invalid("no sub"))?;
        let custom = claims.custom;
        Ok(AccessToken {
            sub,
            sid: custom.sid,
            client_id: custom.client_id,
            scope: custom.scope.as_deref().unwrap_or_default().split_ascii_whitespace().map(str::to_string).collect(),
            roles: custom.roles,
            expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use jwt_simple::prelude::{
        Claims, ECDSAP256KeyPairLike, ES256KeyPair, Ed25519KeyPair, EdDSAKeyPairLike, HS256Key, HeaderOptions, MACLike,
        RS256KeyPair, RSAKeyPairLike, UnixTimeStamp,
    };

    use super::*;
    use crate::keys::CachePolicy;
    use crate::keys::tests::{FakeJwks, jwks};

    const ISSUER: &str = "http://127.0.0.1:3000";

    fn at_jwt() -> HeaderOptions {
        HeaderOptions { signature_type: Some("at+jwt".to_string()), ..HeaderOptions::default() }
    }

    fn claims(lifetime_secs: u64) -> JWTClaims<LatchkeyClaims> {
        Claims::with_custom_claims(
            LatchkeyClaims {
                sid: Some("session-1".to_string()),
                client_id: Some("demo".to_string()),
                scope: Some("openid offline_access".to_string()),
                roles: vec!["admin".to_string(), "staff".to_string()],
            },
            jwt_simple::prelude::Duration::from_secs(lifetime_secs),
        )
        .with_issuer(ISSUER)
        .with_audiences(HashSet::from([ISSUER.to_string()]))
        .with_subject("user-1")
    }

    struct Keys {
        es: ES256KeyPair,
        ed: Ed25519KeyPair,
        verifier: Verifier<Arc<FakeJwks>>,
    }

    async fn keys() -> Keys {
        let es = ES256KeyPair::generate().with_key_id("es");
        let ed = Ed25519KeyPair::generate().with_key_id("ed");
        let fake = FakeJwks::new(&jwks(&[es.public_key().to_jwk(), ed.public_key().to_jwk()]));
        let cache = KeyCache::new(fake, CachePolicy::default());
        cache.load().await.unwrap();
        Keys { es, ed, verifier: Verifier::new(cache, ISSUER) }
    }

    fn is_invalid(r: Result<AccessToken, TokenError>) -> bool {
        matches!(r, Err(TokenError::Invalid(_)))
    }

    #[tokio::test]
    async fn a_good_token_yields_its_claims() {
        let k = keys().await;
        for token in [
            k.es.sign_with_options(claims(300), &at_jwt()).unwrap(),
            k.ed.sign_with_options(claims(300), &at_jwt()).unwrap(),
        ] {
            let at = k.verifier.verify(&token).await.unwrap();
            assert_eq!(at.sub, "user-1");
            assert_eq!(at.sid.as_deref(), Some("session-1"));
            assert_eq!(at.client_id.as_deref(), Some("demo"));
            assert_eq!(at.scope, ["openid", "offline_access"]);
            assert_eq!(at.roles, ["admin", "staff"]);
        }
    }

    #[tokio::test]
    async fn rs256_keys_work_too() {
        let rs = RS256KeyPair::generate(2048).unwrap().with_key_id("rs");
        let fake = FakeJwks::new(&jwks(&[rs.public_key().to_jwk()]));
        let verifier = Verifier::new(KeyCache::new(fake, CachePolicy::default()), ISSUER);
        let token = rs.sign_with_options(claims(300), &at_jwt()).unwrap();
        assert_eq!(verifier.verify(&token).await.unwrap().sub, "user-1");
    }

    #[tokio::test]
    async fn typ_must_be_at_jwt() {
        let k = keys().await;
        // An ID token (typ JWT) is not an access token.
        assert!(is_invalid(k.verifier.verify(&k.es.sign(claims(300)).unwrap()).await));
        let other = HeaderOptions { signature_type: Some("dpop+jwt".into()), ..Default::default() };
        assert!(is_invalid(k.verifier.verify(&k.es.sign_with_options(claims(300), &other).unwrap()).await));
    }

    #[tokio::test]
    async fn iss_and_aud_must_be_the_issuer() {
        let k = keys().await;
        let sign = |c| k.es.sign_with_options(c, &at_jwt()).unwrap();
        let mut c = claims(300);
        c.issuer = Some("http://127.0.0.1:3001".into());
        assert!(is_invalid(k.verifier.verify(&sign(c)).await));
        let mut c = claims(300);
        c.issuer = None;
        assert!(is_invalid(k.verifier.verify(&sign(c)).await));
        let c = claims(300).with_audience("demo");
        assert!(is_invalid(k.verifier.verify(&sign(c)).await));
        let mut c = claims(300);
        c.audiences = None;
        assert!(is_invalid(k.verifier.verify(&sign(c)).await));
    }

    #[tokio::test]
    async fn exp_is_required_and_allows_60_seconds_of_skew() {
        let k = keys().await;
        let sign = |c| k.es.sign_with_options(c, &at_jwt()).unwrap();
        let now = jwt_simple::prelude::Clock::now_since_epoch().as_secs();
        let mut c = claims(300);
        c.issued_at = Some(UnixTimeStamp::from_secs(now - 400));
        c.expires_at = Some(UnixTimeStamp::from_secs(now - 30));
        assert!(k.verifier.verify(&sign(c)).await.is_ok(), "30 s late is within the tolerance");
        let mut c = claims(300);
        c.issued_at = Some(UnixTimeStamp::from_secs(now - 400));
        c.expires_at = Some(UnixTimeStamp::from_secs(now - 90));
        assert!(is_invalid(k.verifier.verify(&sign(c)).await), "90 s late is expired");
        let mut c = claims(300);
        c.expires_at = None;
        assert!(is_invalid(k.verifier.verify(&sign(c)).await), "no exp");
        let mut c = claims(300);
        c.invalid_before = Some(UnixTimeStamp::from_secs(now + 600));
        assert!(is_invalid(k.verifier.verify(&sign(c)).await), "nbf in the future");
    }

    #[tokio::test]
    async fn the_key_decides_the_algorithm() {
        let k = keys().await;
        // Signed with a valid ES256 key, but naming the EdDSA key's kid.
        let es_as_ed = ES256KeyPair::from_bytes(&k.es.to_bytes()).unwrap().with_key_id("ed");
        assert!(is_invalid(k.verifier.verify(&es_as_ed.sign_with_options(claims(300), &at_jwt()).unwrap()).await));
        // HS256 with the public key as the secret (the classic confusion).
        let hs = HS256Key::from_bytes(k.es.public_key().to_jwk().as_bytes()).with_key_id("es");
        assert!(is_invalid(k.verifier.verify(&hs.authenticate(claims(300)).unwrap()).await));
        // Another key claiming a published kid.
        let forged = ES256KeyPair::generate().with_key_id("es");
        assert!(is_invalid(k.verifier.verify(&forged.sign_with_options(claims(300), &at_jwt()).unwrap()).await));
    }

    #[tokio::test]
    async fn garbage_and_tampering_are_invalid() {
        let k = keys().await;
        let good = k.es.sign_with_options(claims(300), &at_jwt()).unwrap();
        let (head, sig) = good.rsplit_once('.').unwrap();
        let flipped = if sig.starts_with('A') { "B" } else { "A" };
        let tampered_sig = format!("{head}.{flipped}{}", &sig[1..]);
        let mut parts: Vec<&str> = good.split('.').collect();
        let other = k.es.sign_with_options(claims(300).with_subject("user-2"), &at_jwt()).unwrap();
        let other_payload = other.split('.').nth(1).unwrap().to_string();
        parts[1] = &other_payload;
        let swapped_payload = parts.join(".");
        let no_kid =
            ES256KeyPair::from_bytes(&k.es.to_bytes()).unwrap().sign_with_options(claims(300), &at_jwt()).unwrap();
        for token in ["", "garbage", "a.b.c", "a.b", &tampered_sig, &swapped_payload, &no_kid, &format!("{good}.x")] {
            assert!(is_invalid(k.verifier.verify(token).await), "{token:?}");
        }
        assert!(k.verifier.verify(&good).await.is_ok());
    }

    #[tokio::test]
    async fn an_unknown_kid_is_invalid() {
        let k = keys().await;
        let stranger = ES256KeyPair::generate().with_key_id("stranger");
        assert!(is_invalid(k.verifier.verify(&stranger.sign_with_options(claims(300), &at_jwt()).unwrap()).await));
    }
}
