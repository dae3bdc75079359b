//! Short-lived JWTs that authenticate an operator at the admin API, signed by a key
//! the operator holds and verified with its configured public JWK (the secrets
//! document's `admin.jwt_keys`). Unlike an admin key, such a token is never a standing
//! credential: it names its operator (`sub`, recorded in the audit stream), its
//! audience (this deployment's admin API) and lives minutes.
//!
//! Checks, all required: the header's `kid` names a configured key and its `alg` is
//! that key's (the key fixes the algorithm); the signature; `aud` is the expected
//! audience; `exp`, `iat` and `sub` are present; the token is valid now within the
//! tolerance and was issued at most `max_lifetime` before `exp`. jwt-simple checks
//! them (its pure-Rust verifiers, on every target), with the caller's clock.

use std::collections::HashSet;

use jwt_simple::prelude::*;
use serde_json::Value;

use crate::UnixSeconds;
use crate::jwt::TokenError;
use crate::keys::KeyError;

enum PublicKind {
    // Boxed: an RSA key is several times the size of the others.
    Rs256(Box<RS256PublicKey>),
    Es256(ES256PublicKey),
    EdDsa(Ed25519PublicKey),
}

struct VerifyingKey {
    kid: String,
    key: PublicKind,
}

/// The public keys operators' tokens may be signed with.
#[derive(Default)]
pub struct AdminJwtKeys {
    keys: Vec<VerifyingKey>,
}

impl std::fmt::Debug for AdminJwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.keys.iter().map(|k| &k.kid)).finish()
    }
}

fn invalid(index: usize, reason: impl Into<String>) -> KeyError {
    KeyError::Invalid { index, reason: reason.into() }
}

/// The largest token accepted (a header, a few claims, an RSA-4096 signature).
const MAX_LENGTH: usize = 4096;

impl AdminJwtKeys {
    /// Loads public JWKs (RSA, EC P-256, Ed25519), each with a `kid`. A private member
    /// (`d`) is refused: the private key stays with the operator.
    ///
    /// # Errors
    /// [`KeyError`] naming the position of the first bad key.
    pub fn from_public_jwks(jwks: &[Value]) -> Result<Self, KeyError> {
        use base64::Engine;
        let mut keys: Vec<VerifyingKey> = Vec::with_capacity(jwks.len());
        for (index, jwk) in jwks.iter().enumerate() {
            let obj = jwk.as_object().ok_or_else(|| invalid(index, "a key must be a JSON object (a public JWK)"))?;
            if obj.contains_key("d") {
                return Err(invalid(index, "a private key: give the public JWK only"));
            }
            let kid = obj.get("kid").and_then(Value::as_str).filter(|k| !k.is_empty());
            let kid = kid.ok_or_else(|| invalid(index, "missing kid"))?.to_owned();
            if keys.iter().any(|k| k.kid == kid) {
                return Err(KeyError::DuplicateKid { index, kid });
            }
            let member = |name: &str| -> Result<Vec<u8>, KeyError> {
                let text =
                    obj.get(name).and_then(Value::as_str).ok_or_else(|| invalid(index, format!("missing {name}")))?;
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(text.trim_end_matches('='))
                    .map_err(|_| invalid(index, format!("{name} is not base64url")))
            };
            let bad = |e: jwt_simple::Error| invalid(index, e.to_string());
            let key = match (obj.get("kty").and_then(Value::as_str), obj.get("crv").and_then(Value::as_str)) {
                (Some("RSA"), _) => {
                    let n = member("n")?;
                    if n.len() * 8 < 2048 {
                        return Err(invalid(index, "RSA keys must be at least 2048 bits"));
                    }
                    PublicKind::Rs256(Box::new(RS256PublicKey::from_components(&n, &member("e")?).map_err(bad)?))
                }
                (Some("EC"), Some("P-256")) => {
                    let mut point = vec![4u8];
                    point.extend(member("x")?);
                    point.extend(member("y")?);
                    PublicKind::Es256(ES256PublicKey::from_bytes(&point).map_err(bad)?)
                }
                (Some("OKP"), Some("Ed25519")) => {
                    PublicKind::EdDsa(Ed25519PublicKey::from_bytes(&member("x")?).map_err(bad)?)
                }
                _ => return Err(invalid(index, "unsupported key: expected RSA, EC P-256 or OKP Ed25519")),
            };
            keys.push(VerifyingKey { kid, key });
        }
        Ok(AdminJwtKeys { keys })
    }

    /// Whether no key is configured (admin JWTs are then refused).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Verifies an operator's token (see the module docs) and returns its `sub`.
    ///
    /// # Errors
    /// [`TokenError`] saying which check failed.
    pub fn verify(
        &self,
        token: &str,
        audience: &str,
        now: UnixSeconds,
        tolerance_seconds: u64,
        max_lifetime_seconds: u64,
    ) -> Result<String, TokenError> {
        if token.len() > MAX_LENGTH {
            return Err(TokenError::Malformed);
        }
        let meta = Token::decode_metadata(token).map_err(|_| TokenError::Malformed)?;
        let kid = meta.key_id().ok_or(TokenError::UnknownKey)?;
        let key = self.keys.iter().find(|k| k.kid == kid).ok_or(TokenError::UnknownKey)?;
        let options = VerificationOptions {
            required_key_id: Some(kid.to_owned()),
            allowed_audiences: Some(HashSet::from([audience.to_owned()])),
            time_tolerance: Some(Duration::from_secs(tolerance_seconds)),
            artificial_time: Some(Duration::from_secs(now)),
            max_token_length: Some(MAX_LENGTH),
            ..Default::default()
        };
        let reject = |e: jwt_simple::Error| TokenError::Rejected(e.to_string());
        // Each key type verifies only its own algorithm: the header cannot choose.
        let claims: JWTClaims<NoCustomClaims> = match &key.key {
            PublicKind::Rs256(k) => k.verify_token(token, Some(options)).map_err(reject)?,
            PublicKind::Es256(k) => k.verify_token(token, Some(options)).map_err(reject)?,
            PublicKind::EdDsa(k) => k.verify_token(token, Some(options)).map_err(reject)?,
        };
        let exp = claims.expires_at.ok_or(TokenError::MissingClaim("exp"))?.as_secs();
        let iat = claims.issued_at.ok_or(TokenError::MissingClaim("iat"))?.as_secs();
        if exp.saturating_sub(iat) > max_lifetime_seconds {
            return Err(TokenError::Rejected(format!("lives longer than {max_lifetime_seconds} s")));
        }
        claims.subject.filter(|s| !s.is_empty()).ok_or(TokenError::MissingClaim("sub"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUD: &str = "https://id.example/_api/admin/";
    const NOW: u64 = 1_800_000_000;

    fn signer() -> (ES256KeyPair, Value) {
        let pair = ES256KeyPair::generate().with_key_id("ops-1");
        // The private JWK without its private member is the public JWK.
        let mut jwk: Value = serde_json::from_str(&pair.to_jwk()).unwrap();
        jwk.as_object_mut().unwrap().remove("d");
        (pair, jwk)
    }

    fn token(pair: &ES256KeyPair, aud: &str, iat: u64, lifetime: u64, sub: Option<&str>) -> String {
        let mut claims = Claims::create(Duration::from_secs(lifetime)).with_audience(aud);
        claims.issued_at = Some(Duration::from_secs(iat));
        claims.expires_at = Some(Duration::from_secs(iat + lifetime));
        claims.invalid_before = None;
        if let Some(s) = sub {
            claims = claims.with_subject(s);
        }
        pair.sign(claims).unwrap()
    }

    #[test]
    fn an_operators_token_verifies_and_names_them() {
        let (pair, jwk) = signer();
        let keys = AdminJwtKeys::from_public_jwks(&[jwk]).unwrap();
        let t = token(&pair, AUD, NOW - 10, 300, Some("ci-deploy"));
        assert_eq!(keys.verify(&t, AUD, NOW, 5, 600).unwrap(), "ci-deploy");
    }

    #[test]
    fn wrong_audience_expiry_lifetime_subject_or_key_are_refused() {
        let (pair, jwk) = signer();
        let keys = AdminJwtKeys::from_public_jwks(&[jwk]).unwrap();
        let cases = [
            token(&pair, "https://other.example/_api/admin/", NOW, 300, Some("x")),
            token(&pair, AUD, NOW - 400, 300, Some("x")),
            token(&pair, AUD, NOW, 3600, Some("x")),
            token(&pair, AUD, NOW, 300, None),
            token(&ES256KeyPair::generate().with_key_id("ops-1"), AUD, NOW, 300, Some("x")),
            token(&ES256KeyPair::generate().with_key_id("other"), AUD, NOW, 300, Some("x")),
        ];
        for (i, t) in cases.iter().enumerate() {
            assert!(keys.verify(t, AUD, NOW, 5, 600).is_err(), "case {i} must be refused");
        }
        assert!(keys.verify("not.a.jwt", AUD, NOW, 5, 600).is_err());
    }

    #[test]
    fn private_keys_and_bad_jwks_are_refused_at_load() {
        let private: Value = serde_json::from_str(&ES256KeyPair::generate().with_key_id("p").to_jwk()).unwrap();
        assert!(AdminJwtKeys::from_public_jwks(&[private]).unwrap_err().to_string().contains("private"));
        let (_, jwk) = signer();
        let mut no_kid = jwk.clone();
        no_kid.as_object_mut().unwrap().remove("kid");
        assert!(AdminJwtKeys::from_public_jwks(&[no_kid]).is_err());
        assert!(AdminJwtKeys::from_public_jwks(&[jwk.clone(), jwk]).is_err(), "duplicate kid");
    }
}
