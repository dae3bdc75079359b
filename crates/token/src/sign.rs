//! JWS signing: the header and claims are serialised here, once, and the signature
//! comes from the fastest backend of the target — ring (assembly-backed) on native
//! targets, jwt-simple's pure-Rust code on wasm32, where ring does not build.
//!
//! ring signs RS256 about 2.7 × faster than jwt-simple's pure-Rust RSA, and ES256 about
//! 5 × (BENCHMARKS.md); a refresh signs twice, so this is most of its CPU. Natively a
//! key must load into ring as well as into jwt-simple (ring is the stricter: RSA keys
//! of 2048 to 4096 bits with every CRT member), so a key that signs in one place signs
//! everywhere.
//!
//! Randomness: ring's random-source trait is sealed, so natively ring draws RSA blinding
//! values and ECDSA nonces from the OS itself (`SystemRandom`) rather than from the
//! caller's [`crate::Entropy`]. That is the same source the native runtime's `Entropy`
//! reads, and signing never depends on the caller's clock.

use jwt_simple::prelude::*;
use serde::Serialize;

use crate::jwt::TokenError;
#[cfg(not(target_arch = "wasm32"))]
use crate::keys::Algorithm;
use crate::keys::{Key, Private};

/// A native signer built from a private JWK when the key is loaded.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) enum RingSigner {
    Rsa(Box<ring::rsa::KeyPair>),
    P256(ring::signature::EcdsaKeyPair),
    Ed25519(ring::signature::Ed25519KeyPair),
}

#[cfg(not(target_arch = "wasm32"))]
impl RingSigner {
    /// Builds ring's key pair from the private JWK's members; the error says why ring
    /// refused them, for the operator.
    pub(crate) fn from_jwk(alg: Algorithm, jwk: &serde_json::Map<String, serde_json::Value>) -> Result<Self, String> {
        use base64::Engine;
        let member = |name: &str| -> Result<Vec<u8>, String> {
            let text = jwk.get(name).and_then(|v| v.as_str()).ok_or_else(|| format!("missing {name}"))?;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(text)
                .map_err(|_| format!("{name} is not base64url"))
        };
        let refused = |e: ring::error::KeyRejected| e.to_string();
        match alg {
            Algorithm::Rs256 => {
                let components = ring::rsa::KeyPairComponents {
                    public_key: ring::rsa::PublicKeyComponents { n: member("n")?, e: member("e")? },
                    d: member("d")?,
                    p: member("p")?,
                    q: member("q")?,
                    dP: member("dp")?,
                    dQ: member("dq")?,
                    qInv: member("qi")?,
                };
                ring::rsa::KeyPair::from_components(&components)
                    .map(|k| RingSigner::Rsa(Box::new(k)))
                    .map_err(|e| format!("{} (RSA keys must be 2048 to 4096 bits)", refused(e)))
            }
            Algorithm::Es256 => {
                let mut point = vec![4u8];
                point.extend(member("x")?);
                point.extend(member("y")?);
                ring::signature::EcdsaKeyPair::from_private_key_and_public_key(
                    &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &member("d")?,
                    &point,
                    &ring::rand::SystemRandom::new(),
                )
                .map(RingSigner::P256)
                .map_err(refused)
            }
            Algorithm::EdDsa => ring::signature::Ed25519KeyPair::from_seed_and_public_key(&member("d")?, &member("x")?)
                .map(RingSigner::Ed25519)
                .map_err(refused),
        }
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, TokenError> {
        let rng = ring::rand::SystemRandom::new();
        let failed = |_| TokenError::Signing("the signing backend refused the key".into());
        Ok(match self {
            RingSigner::Rsa(pair) => {
                let mut signature = vec![0u8; pair.public().modulus_len()];
                pair.sign(&ring::signature::RSA_PKCS1_SHA256, &rng, message, &mut signature).map_err(failed)?;
                signature
            }
            RingSigner::P256(pair) => pair.sign(&rng, message).map_err(failed)?.as_ref().to_vec(),
            RingSigner::Ed25519(pair) => pair.sign(message).as_ref().to_vec(),
        })
    }
}

/// The protected header, members in jwt-simple's order (`alg`, `kid`, `typ`), so a
/// token's signing input is byte for byte the same whichever backend signs it.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    kid: &'a str,
    typ: &'a str,
}

#[cfg(not(target_arch = "wasm32"))]
fn encoded(value: &impl Serialize) -> Result<String, TokenError> {
    use base64::Engine;
    let json = serde_json::to_vec(value).map_err(|e| TokenError::Signing(e.to_string()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json))
}

/// Signs `claims` with `key` as a compact JWS with `typ`.
pub(crate) fn sign<C: Serialize>(key: &Key, claims: JWTClaims<C>, typ: &str) -> Result<String, TokenError> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use base64::Engine;
        let signer = key.ring_signer();
        let header = Header { alg: key.alg().name(), kid: key.kid(), typ };
        let mut token = encoded(&header)?;
        token.push('.');
        token.push_str(&encoded(&claims)?);
        let signature = signer.sign(token.as_bytes())?;
        token.push('.');
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }
    #[cfg(target_arch = "wasm32")]
    sign_jwt_simple(key, claims, typ)
}

/// jwt-simple's signing: every key on wasm32 (and natively the tests' reference).
#[cfg_attr(not(any(target_arch = "wasm32", test)), allow(dead_code))]
pub(crate) fn sign_jwt_simple<C: Serialize>(key: &Key, claims: JWTClaims<C>, typ: &str) -> Result<String, TokenError> {
    let opts = HeaderOptions { signature_type: Some(typ.to_owned()), ..Default::default() };
    let result = match &key.private {
        Private::Rs256(k) => k.sign_with_options(claims, &opts),
        Private::Es256(k) => k.sign_with_options(claims, &opts),
        Private::EdDsa(k) => k.sign_with_options(claims, &opts),
    };
    result.map_err(|e| TokenError::Signing(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::{AccessClaims, Expectations, Registered};
    use crate::keys::KeySet;

    fn registered() -> Registered<'static> {
        Registered {
            issuer: "https://i",
            audience: "https://i",
            subject: "u",
            issued_at: 1000,
            lifetime_seconds: 300,
            jwt_id: Some("j".into()),
            nonce: None,
        }
    }

    fn private_jwks() -> Vec<serde_json::Value> {
        [
            RS256KeyPair::generate(2048).unwrap().with_key_id("rs").to_jwk(),
            ES256KeyPair::generate().with_key_id("es").to_jwk(),
            Ed25519KeyPair::generate().with_key_id("ed").to_jwk(),
        ]
        .iter()
        .map(|j| serde_json::from_str(j).unwrap())
        .collect()
    }

    #[test]
    fn ring_signs_what_jwt_simple_verifies_and_the_reverse() {
        let expect = Expectations { issuer: "https://i", audience: Some("https://i"), now: 1100, tolerance_seconds: 0 };
        for jwk in private_jwks() {
            let set = KeySet::from_private_jwks(&[jwk]).unwrap();
            let key = set.signing_key();
            let by_ring = set.sign_access_token(&registered(), AccessClaims::default()).unwrap();
            assert!(crate::verify::signature_ok_jwt_simple(key, &by_ring), "{:?}: ring's token", key.alg());
            let by_jwt_simple = sign_jwt_simple(
                key,
                crate::jwt::to_claims(&registered(), AccessClaims::default()),
                crate::jwt::ACCESS_TOKEN_TYPE,
            )
            .unwrap();
            let a = set.verify_access_token(&by_ring, &expect).unwrap();
            let b = set.verify_access_token(&by_jwt_simple, &expect).unwrap();
            assert_eq!(
                (a.subject, a.expires_at, a.jwt_id, a.audiences),
                (b.subject, b.expires_at, b.jwt_id, b.audiences)
            );
            // The same signing input, byte for byte, whichever backend signed.
            assert_eq!(by_ring.rsplit_once('.').unwrap().0, by_jwt_simple.rsplit_once('.').unwrap().0);
        }
    }

    #[test]
    fn a_key_ring_cannot_sign_with_is_refused_at_load() {
        // A throwaway 1024-bit test key (jwt-simple will not generate one).
        let weak = serde_json::json!({"kty": "RSA", "kid": "weak", "e": "AQAB",
            "n": "wzOe9FVmKO5GYYh3totqWa6IbG8UpRIKg1A3fKcVWFmDxu0_y_B6qkurJ6OdX6cXG09xEdJ88kjZsrXcktOrMkHFhaF64siFL4ds2-Yt8Z_-_kSzbr-FyYi5rS2cy6_LECUeXsc1921DC-ZjPM-c81Zfrt8FuoJVTkwb0kxIf88",
            "d": "r__RKBf_vpPoHXSAC7T0NNwq4SnegV8c33zqKpgzpK9BI5EyXlz7HKSRM3JQKLhtGxCrsBgK1CFfN8TFlhUHWvleyrU0nl8WVpKYqO8LPMMW_1OVgb7_jvyUEZchwOOT5jTYH41BpzHq0QFyM11ovAOHurcwSQ30qUUDoGLlHOE",
            "p": "-cFJdosBzHXOU-M5_9CcuR-P__WEu1cO1lwj3QP-exRBPHGcNYvIn30ja8TjtTMPXhAb_3ZRmt72KdJDCxT09w",
            "q": "yBUhhgy-Mmk1Z9dkVFY6Nodi7IFOntwnf9hm28yFeS31SCZ41-Vg4RY1gei2zjK1DJibmnaRH_diEK07mCMN6Q",
            "dp": "JGu4X84TnBJN3VPUgGaWhDSDFktiaMNgSYg0PqW3dZFVlg_nPLO-tOtVwAB9SE5C3m-w9Yb2jYQYF68u0a3jrw",
            "dq": "Cx5xgHuQzkheeWjU4ILyNTmM28vLzLQ7VbV28dwJxtQw_1Nz_7t1iMytKI0AK7FRsmOAsjLImdgrkPWvjCLWkQ",
            "qi": "iN6kHQz0LN8uYTL55PUSazjtf7hrsFowfjhmAxYMhXv8hHvU5KkMkohkSVQOFxgisb8rbBs1_5DRdIAWe1RxrQ"});
        let error = KeySet::from_private_jwks(&[weak]).unwrap_err().to_string();
        assert!(error.contains("2048 to 4096 bits"), "{error}");
    }
}
