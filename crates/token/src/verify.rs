//! JWS verification: header checks, the signature, and claim checks, in that order.
//!
//! The signature is checked by the fastest backend of the target: ring (assembly-backed)
//! on native targets, jwt-simple's pure-Rust code on wasm32, where ring does not build.
//! Everything else — header, claims, time — is checked here, once, for both, so the two
//! backends cannot disagree about what a valid token is.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::jwt::{Expectations, MAX_TOKEN_LENGTH, TokenError, Verified};
use crate::keys::{Key, KeySet};

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
    crit: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Payload<C> {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
    exp: Option<u64>,
    nbf: Option<u64>,
    iat: Option<u64>,
    jti: Option<String>,
    nonce: Option<String>,
    #[serde(flatten)]
    custom: C,
}

fn decode(part: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| TokenError::Malformed)
}

/// Checks the signature of `signing_input` with `key`.
#[cfg(not(target_arch = "wasm32"))]
fn signature_ok(key: &Key, signing_input: &str, signature: &[u8], _token: &str) -> bool {
    use crate::keys::RawPublic;
    use ring::signature::{
        ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents, UnparsedPublicKey,
    };
    let msg = signing_input.as_bytes();
    match key.raw_public() {
        RawPublic::Rsa { n, e } => {
            RsaPublicKeyComponents { n, e }.verify(&RSA_PKCS1_2048_8192_SHA256, msg, signature).is_ok()
        }
        RawPublic::P256(point) => {
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).verify(msg, signature).is_ok()
        }
        RawPublic::Ed25519(pk) => UnparsedPublicKey::new(&ED25519, pk).verify(msg, signature).is_ok(),
    }
}

/// Checks the signature with jwt-simple, whose own claim checks are switched off (they
/// run in [`verify`] for every backend).
#[cfg(any(target_arch = "wasm32", test))]
pub(crate) fn signature_ok_jwt_simple(key: &Key, token: &str) -> bool {
    use jwt_simple::prelude::*;
    // "Now" is the epoch, so no `exp` has passed; future `iat` and `nbf` are accepted.
    let lenient = VerificationOptions {
        accept_future: true,
        time_tolerance: Some(Duration::from_secs(0)),
        artificial_time: Some(Duration::from_secs(0)),
        max_token_length: Some(MAX_TOKEN_LENGTH),
        ..Default::default()
    };
    key.verify_signature_only(token, lenient)
}

#[cfg(target_arch = "wasm32")]
fn signature_ok(key: &Key, _signing_input: &str, _signature: &[u8], token: &str) -> bool {
    signature_ok_jwt_simple(key, token)
}

/// A token whose header names a key of the set and agrees with it; its signature is
/// still unchecked, and nothing in its payload has been read yet.
pub(crate) struct Parsed<'a> {
    pub(crate) key: &'a Key,
    pub(crate) kid: &'a str,
    pub(crate) signing_input: &'a str,
    pub(crate) signature: Vec<u8>,
    payload: &'a str,
}

/// The header checks: shape, length, a `kid` of the set, the key's own `alg`, `typ`,
/// no `crit`.
///
/// Security: the `kid` selects the key and the key fixes the algorithm; the header's
/// `alg` must agree and never chooses how to verify.
pub(crate) fn parse<'a>(keys: &'a KeySet, token: &'a str, typ: &str) -> Result<Parsed<'a>, TokenError> {
    if token.len() > MAX_TOKEN_LENGTH {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Malformed);
    };
    let header: Header = serde_json::from_slice(&decode(h)?).map_err(|_| TokenError::Malformed)?;
    let kid = header.kid.as_deref().ok_or(TokenError::UnknownKey)?;
    let key = keys.by_kid(kid).ok_or(TokenError::UnknownKey)?;
    if header.alg != key.alg().name() {
        return Err(TokenError::Rejected(format!("alg {} does not match the key", header.alg)));
    }
    if header.typ.as_deref() != Some(typ) {
        return Err(TokenError::WrongType);
    }
    if header.crit.is_some() {
        return Err(TokenError::Rejected("critical header parameters are not supported".into()));
    }
    let signature = decode(s)?;
    Ok(Parsed { key, kid: key.kid(), signing_input: &token[..h.len() + 1 + p.len()], signature, payload: p })
}

/// The signature check with this target's own backend.
pub(crate) fn signature_of(parsed: &Parsed<'_>, token: &str) -> bool {
    signature_ok(parsed.key, parsed.signing_input, &parsed.signature, token)
}

/// The claim checks, for a token whose signature has been found good: `iss`, `aud`,
/// `exp`, `nbf` and `iat` within the tolerance, and `sub` present.
pub(crate) fn claims<C: DeserializeOwned>(
    parsed: Parsed<'_>,
    expect: &Expectations<'_>,
) -> Result<Verified<C>, TokenError> {
    let payload: Payload<C> =
        serde_json::from_slice(&decode(parsed.payload)?).map_err(|e| TokenError::Rejected(format!("claims: {e}")))?;
    let tolerance = expect.tolerance_seconds;
    if payload.iss.as_deref() != Some(expect.issuer) {
        return Err(TokenError::Rejected("wrong issuer".into()));
    }
    let audiences = match payload.aud {
        Some(Audience::One(a)) => vec![a],
        Some(Audience::Many(a)) => a,
        None => Vec::new(),
    };
    if let Some(required) = expect.audience
        && !audiences.iter().any(|a| a == required)
    {
        return Err(TokenError::Rejected("wrong audience".into()));
    }
    let expires_at = payload.exp.ok_or(TokenError::MissingClaim("exp"))?;
    if expect.now > expires_at.saturating_add(tolerance) {
        return Err(TokenError::Rejected("expired".into()));
    }
    if payload.nbf.is_some_and(|nbf| nbf > expect.now.saturating_add(tolerance)) {
        return Err(TokenError::Rejected("not valid yet".into()));
    }
    if payload.iat.is_some_and(|iat| iat > expect.now.saturating_add(tolerance)) {
        return Err(TokenError::Rejected("issued in the future".into()));
    }
    let subject = payload.sub.ok_or(TokenError::MissingClaim("sub"))?;
    Ok(Verified {
        subject,
        expires_at,
        issued_at: payload.iat,
        jwt_id: payload.jti,
        audiences,
        nonce: payload.nonce,
        claims: payload.custom,
        kid: parsed.kid.to_owned(),
    })
}

/// Verifies `token` against `keys`: the header, then the signature with this target's
/// backend, then the claims. Unknown critical headers, missing `exp`, `sub` or `iss`
/// are rejected.
pub(crate) fn verify<C: DeserializeOwned>(
    keys: &KeySet,
    token: &str,
    typ: &str,
    expect: &Expectations<'_>,
) -> Result<Verified<C>, TokenError> {
    let parsed = parse(keys, token, typ)?;
    if !signature_of(&parsed, token) {
        return Err(TokenError::Rejected("invalid signature".into()));
    }
    claims(parsed, expect)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::{AccessClaims, Registered};
    use jwt_simple::prelude::*;

    fn sets() -> Vec<KeySet> {
        let jwks = [
            RS256KeyPair::generate(2048).unwrap().with_key_id("rs").to_jwk(),
            ES256KeyPair::generate().with_key_id("es").to_jwk(),
            Ed25519KeyPair::generate().with_key_id("ed").to_jwk(),
        ];
        jwks.iter().map(|j| KeySet::from_private_jwks(&[serde_json::from_str(j).unwrap()]).unwrap()).collect()
    }

    fn token(set: &KeySet) -> String {
        let r = Registered {
            issuer: "https://i",
            audience: "https://i",
            subject: "u",
            issued_at: 1000,
            lifetime_seconds: 300,
            jwt_id: None,
            nonce: None,
        };
        set.sign_access_token(&r, AccessClaims::default()).unwrap()
    }

    fn expect() -> Expectations<'static> {
        Expectations { issuer: "https://i", audience: Some("https://i"), now: 1100, tolerance_seconds: 0 }
    }

    fn native(set: &KeySet, t: &str) -> bool {
        let mut parts = t.rsplitn(2, '.');
        let sig = URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap_or_default();
        let input = parts.next().unwrap();
        signature_ok(set.signing_key(), input, &sig, t)
    }

    #[test]
    fn ring_and_jwt_simple_agree() {
        for set in sets() {
            let good = token(&set);
            assert!(native(&set, &good) && signature_ok_jwt_simple(set.signing_key(), &good), "valid");
            let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
            parts[1] = URL_SAFE_NO_PAD.encode(br#"{"iss":"https://i","sub":"admin","exp":99999999999}"#);
            let forged = parts.join(".");
            assert!(!native(&set, &forged) && !signature_ok_jwt_simple(set.signing_key(), &forged), "tampered payload");
            let mut sig = URL_SAFE_NO_PAD.decode(good.rsplit('.').next().unwrap()).unwrap();
            sig[0] ^= 1;
            let bad_sig = format!("{}.{}", good.rsplit_once('.').unwrap().0, URL_SAFE_NO_PAD.encode(&sig));
            assert!(
                !native(&set, &bad_sig) && !signature_ok_jwt_simple(set.signing_key(), &bad_sig),
                "tampered signature"
            );
            assert!(verify::<AccessClaims>(&set, &good, "at+jwt", &expect()).is_ok());
            assert!(verify::<AccessClaims>(&set, &forged, "at+jwt", &expect()).is_err());
            assert!(verify::<AccessClaims>(&set, &bad_sig, "at+jwt", &expect()).is_err());
        }
    }

    fn with_header(set: &KeySet, header: &str) -> String {
        let good = token(set);
        let rest = good.split_once('.').unwrap().1;
        format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header))
    }

    #[test]
    fn hs256_signed_with_the_public_key_is_rejected() {
        let set = &sets()[0];
        let n = set.signing_key().public_jwk()["n"].as_str().unwrap().to_owned();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"at+jwt","kid":"rs"}"#);
        let payload = URL_SAFE_NO_PAD.encode(br#"{"iss":"https://i","aud":["https://i"],"sub":"admin","exp":2000}"#);
        let input = format!("{header}.{payload}");
        let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, n.as_bytes()), input.as_bytes());
        let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
        assert!(matches!(verify::<AccessClaims>(set, &forged, "at+jwt", &expect()), Err(TokenError::Rejected(_))));
    }

    #[test]
    fn critical_and_kidless_headers_are_rejected() {
        let set = &sets()[1];
        let crit = with_header(set, r#"{"alg":"ES256","typ":"at+jwt","kid":"es","crit":["exp"]}"#);
        assert!(verify::<AccessClaims>(set, &crit, "at+jwt", &expect()).is_err());
        let no_kid = with_header(set, r#"{"alg":"ES256","typ":"at+jwt"}"#);
        assert_eq!(verify::<AccessClaims>(set, &no_kid, "at+jwt", &expect()).unwrap_err(), TokenError::UnknownKey);
        let injected = with_header(set, r#"{"alg":"ES256","typ":"at+jwt","kid":"../../etc/passwd' OR 1=1"}"#);
        assert_eq!(verify::<AccessClaims>(set, &injected, "at+jwt", &expect()).unwrap_err(), TokenError::UnknownKey);
        assert_eq!(verify::<AccessClaims>(set, "a.b.c.d", "at+jwt", &expect()).unwrap_err(), TokenError::Malformed);
    }
}
