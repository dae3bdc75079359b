//! Signing keys and the published JWKS.
//!
//! A [`KeySet`] is loaded from private JWKs (the secrets file, Authgear's `oauth` secret
//! layout). The first key signs; every key, signing or not, verifies and is published,
//! so a key can be published before it signs and kept after it stops. Each key accepts
//! exactly one algorithm, fixed by its type: the `alg` header of a token is checked
//! against the key, never used to choose how to verify.
//!
//! JWK import and export and RFC 7638 thumbprints come from jwt-simple 0.15, which
//! added them (DESIGN.md predates that and says to build them ourselves); the JWKS
//! document itself is assembled here, with only public members, `kid`, `alg` and `use`.

use jwt_simple::prelude::*;
use serde_json::{Map, Value};
use thiserror::Error;

/// The JWS algorithms Latchkey signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256: the default, for compatibility.
    Rs256,
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
}

impl Algorithm {
    /// The JOSE name (`RS256`, `ES256`, `EdDSA`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Es256 => "ES256",
            Algorithm::EdDsa => "EdDSA",
        }
    }

    /// Parses a JOSE name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "RS256" => Some(Algorithm::Rs256),
            "ES256" => Some(Algorithm::Es256),
            "EdDSA" => Some(Algorithm::EdDsa),
            _ => None,
        }
    }
}

/// Why a key could not be loaded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum KeyError {
    /// The key set is empty; there is nothing to sign with.
    #[error("no signing key: at least one key is required")]
    Empty,
    /// A key is not a JSON object or lacks a usable `kty`.
    #[error("key {index}: {reason}")]
    Invalid {
        /// Position of the key in the set.
        index: usize,
        /// What is wrong, for the operator.
        reason: String,
    },
    /// A new key could not be made.
    #[error("key generation failed: {0}")]
    Generation(String),
    /// Two keys share a `kid`.
    #[error("key {index}: duplicate kid {kid:?}")]
    DuplicateKid {
        /// Position of the second key.
        index: usize,
        /// The repeated kid.
        kid: String,
    },
}

// RSA keys are boxed: they are far larger than the EC and Ed25519 ones.
pub(crate) enum Private {
    Rs256(Box<RS256KeyPair>),
    Es256(ES256KeyPair),
    EdDsa(Ed25519KeyPair),
}

// Only wasm32 (and the tests) verify with jwt-simple; native targets verify with ring
// from `RawPublic`.
#[cfg(any(target_arch = "wasm32", test))]
pub(crate) enum Public {
    Rs256(Box<RS256PublicKey>),
    Es256(ES256PublicKey),
    EdDsa(Ed25519PublicKey),
}

/// Public key material as raw bytes, for the native (ring) verifier.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) enum RawPublic {
    /// RSA modulus and exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// Uncompressed SEC1 point (`04 || x || y`).
    P256(Vec<u8>),
    /// 32-byte Ed25519 public key.
    Ed25519(Vec<u8>),
}

/// One key of the set.
pub struct Key {
    kid: String,
    alg: Algorithm,
    pub(crate) private: Private,
    #[cfg(any(target_arch = "wasm32", test))]
    pub(crate) public: Public,
    #[cfg(not(target_arch = "wasm32"))]
    raw: RawPublic,
    #[cfg(not(target_arch = "wasm32"))]
    ring_signer: crate::sign::RingSigner,
    public_jwk: Value,
}

impl std::fmt::Debug for Key {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

impl Key {
    /// The key id published in the JWKS and in every token header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The one algorithm this key signs and verifies with.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The public JWK (`kty`, key material, `kid`, `alg`, `use: sig`).
    pub fn public_jwk(&self) -> &Value {
        &self.public_jwk
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn raw_public(&self) -> &RawPublic {
        &self.raw
    }

    /// ring's key pair, which signs natively.
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn ring_signer(&self) -> &crate::sign::RingSigner {
        &self.ring_signer
    }

    /// jwt-simple's verification of `token` with this key, with the given options.
    #[cfg(any(target_arch = "wasm32", test))]
    pub(crate) fn verify_signature_only(&self, token: &str, options: VerificationOptions) -> bool {
        let claims: Result<JWTClaims<Value>, jwt_simple::Error> = match &self.public {
            Public::Rs256(k) => k.verify_token(token, Some(options)),
            Public::Es256(k) => k.verify_token(token, Some(options)),
            Public::EdDsa(k) => k.verify_token(token, Some(options)),
        };
        claims.is_ok()
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn raw_public(index: usize, jwk: &Map<String, Value>, alg: Algorithm) -> Result<RawPublic, KeyError> {
    use base64::Engine;
    let member = |name: &str| -> Result<Vec<u8>, KeyError> {
        let text = jwk.get(name).and_then(Value::as_str).ok_or_else(|| invalid(index, format!("missing {name}")))?;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| invalid(index, format!("{name} is not base64url")))
    };
    Ok(match alg {
        Algorithm::Rs256 => RawPublic::Rsa { n: member("n")?, e: member("e")? },
        Algorithm::Es256 => {
            let mut point = vec![4u8];
            point.extend(member("x")?);
            point.extend(member("y")?);
            RawPublic::P256(point)
        }
        Algorithm::EdDsa => RawPublic::Ed25519(member("x")?),
    })
}

/// Members kept when importing a private JWK. Everything else (Authgear's
/// `created_at`, for instance) is dropped, because the strict importer rejects it.
const JWK_MEMBERS: &[&str] = &["kty", "crv", "kid", "n", "e", "d", "p", "q", "dp", "dq", "qi", "x", "y"];

fn invalid(index: usize, reason: impl Into<String>) -> KeyError {
    KeyError::Invalid { index, reason: reason.into() }
}

fn load(index: usize, jwk: &Value) -> Result<Key, KeyError> {
    let obj = jwk.as_object().ok_or_else(|| invalid(index, "a key must be a JSON object (a private JWK)"))?;
    let kty = obj.get("kty").and_then(Value::as_str).ok_or_else(|| invalid(index, "missing kty"))?;
    let crv = obj.get("crv").and_then(Value::as_str);
    let alg = match (kty, crv) {
        ("RSA", _) => Algorithm::Rs256,
        ("EC", Some("P-256")) => Algorithm::Es256,
        ("OKP", Some("Ed25519")) => Algorithm::EdDsa,
        _ => {
            return Err(invalid(index, format!("unsupported key type {kty} (use RSA, EC P-256 or OKP Ed25519)")));
        }
    };
    if let Some(declared) = obj.get("alg")
        && declared.as_str() != Some(alg.name())
    {
        return Err(invalid(index, format!("alg must be {} for a {kty} key", alg.name())));
    }
    let stripped: Map<String, Value> =
        obj.iter().filter(|(k, _)| JWK_MEMBERS.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
    #[cfg(not(target_arch = "wasm32"))]
    let ring_signer = crate::sign::RingSigner::from_jwk(alg, &stripped)
        .map_err(|e| invalid(index, format!("not a usable private {} key: {e}", alg.name())))?;
    let text = Value::Object(stripped).to_string();
    let bad = |e: jwt_simple::Error| invalid(index, format!("not a valid private {} key: {e}", alg.name()));
    let (private, thumbprint, public_text) = match alg {
        Algorithm::Rs256 => {
            let pair = RS256KeyPair::from_jwk(&text).map_err(bad)?;
            let (t, p) = (pair.jwk_thumbprint(), pair.public_key().to_jwk());
            (Private::Rs256(Box::new(pair)), t, p)
        }
        Algorithm::Es256 => {
            let pair = ES256KeyPair::from_jwk(&text).map_err(bad)?;
            let (t, p) = (pair.jwk_thumbprint(), pair.public_key().to_jwk());
            (Private::Es256(pair), t, p)
        }
        Algorithm::EdDsa => {
            let pair = Ed25519KeyPair::from_jwk(&text).map_err(bad)?;
            let (t, p) = (pair.jwk_thumbprint(), pair.public_key().to_jwk());
            (Private::EdDsa(pair), t, p)
        }
    };
    #[cfg(any(target_arch = "wasm32", test))]
    let public = match &private {
        Private::Rs256(p) => Public::Rs256(Box::new(p.public_key())),
        Private::Es256(p) => Public::Es256(p.public_key()),
        Private::EdDsa(p) => Public::EdDsa(p.public_key()),
    };
    let kid = match obj.get("kid") {
        None => thumbprint,
        Some(Value::String(k)) if !k.is_empty() && k.len() <= 128 => k.clone(),
        Some(_) => {
            return Err(invalid(index, "kid must be a non-empty string of at most 128 characters"));
        }
    };
    let private = match private {
        Private::Rs256(p) => Private::Rs256(Box::new(p.with_key_id(&kid))),
        Private::Es256(p) => Private::Es256(p.with_key_id(&kid)),
        Private::EdDsa(p) => Private::EdDsa(p.with_key_id(&kid)),
    };
    let mut public_jwk: Map<String, Value> =
        serde_json::from_str(&public_text).map_err(|e| invalid(index, e.to_string()))?;
    public_jwk.retain(|k, _| matches!(k.as_str(), "kty" | "crv" | "n" | "e" | "x" | "y"));
    public_jwk.insert("kid".into(), Value::String(kid.clone()));
    public_jwk.insert("alg".into(), Value::String(alg.name().into()));
    public_jwk.insert("use".into(), Value::String("sig".into()));
    #[cfg(not(target_arch = "wasm32"))]
    let raw = raw_public(index, &public_jwk, alg)?;
    Ok(Key {
        kid,
        alg,
        private,
        #[cfg(any(target_arch = "wasm32", test))]
        public,
        #[cfg(not(target_arch = "wasm32"))]
        raw,
        #[cfg(not(target_arch = "wasm32"))]
        ring_signer,
        public_jwk: Value::Object(public_jwk),
    })
}

/// A new private JWK for `algorithm` whose `kid` is its RFC 7638 thumbprint.
///
/// The one place randomness does not come through [`crate::Entropy`]: jwt-simple's
/// generators take no random source of ours, so they draw from the OS (getrandom;
/// `crypto.getRandomValues` on Workers). A key is made rarely, by an operator.
///
/// # Errors
/// [`KeyError::Generation`] if the generator fails.
pub fn generate_private_jwk(algorithm: Algorithm) -> Result<Value, KeyError> {
    let fail = |e: jwt_simple::Error| KeyError::Generation(e.to_string());
    let text = match algorithm {
        Algorithm::Rs256 => {
            let k = RS256KeyPair::generate(2048).map_err(fail)?;
            let kid = k.jwk_thumbprint();
            k.with_key_id(&kid).to_jwk()
        }
        Algorithm::Es256 => {
            let k = ES256KeyPair::generate();
            let kid = k.jwk_thumbprint();
            k.with_key_id(&kid).to_jwk()
        }
        Algorithm::EdDsa => {
            let k = Ed25519KeyPair::generate();
            let kid = k.jwk_thumbprint();
            k.with_key_id(&kid).to_jwk()
        }
    };
    serde_json::from_str(&text).map_err(|e| KeyError::Generation(e.to_string()))
}

/// The signing key and every key that verifies.
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<Key>,
}

impl KeySet {
    /// Loads private JWKs. The first signs; all verify and are published.
    ///
    /// # Errors
    /// [`KeyError`] naming the position of the first bad key.
    pub fn from_private_jwks(jwks: &[Value]) -> Result<Self, KeyError> {
        if jwks.is_empty() {
            return Err(KeyError::Empty);
        }
        let mut keys: Vec<Key> = Vec::with_capacity(jwks.len());
        for (index, jwk) in jwks.iter().enumerate() {
            let key = load(index, jwk)?;
            if keys.iter().any(|k| k.kid == key.kid) {
                return Err(KeyError::DuplicateKid { index, kid: key.kid });
            }
            keys.push(key);
        }
        Ok(KeySet { keys })
    }

    /// The key that signs new tokens.
    pub fn signing_key(&self) -> &Key {
        &self.keys[0]
    }

    /// The key with `kid`, if it is in the set.
    pub fn by_kid(&self, kid: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// Every key.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// The JWKS document (`{"keys": [...]}`) with every public key.
    pub fn jwks(&self) -> Value {
        serde_json::json!({ "keys": self.keys.iter().map(|k| k.public_jwk.clone()).collect::<Vec<_>>() })
    }
}
