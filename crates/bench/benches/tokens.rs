//! Signing and verifying access tokens, through Latchkey's public API and against the
//! raw signature operations of ring, in the same run and with the same keys and tokens.
//!
//! Signature verification is the resolver's main cost (DESIGN.md: "crypto is the
//! resolver's cost"), so the number that matters is `verify/<alg>/latchkey` divided by
//! `verify/<alg>/ring-raw`: how much `KeySet::verify_access_token` adds over the bare
//! signature check (header and claims parsing, base64, the policy checks, or a slower
//! backend). `verify/<alg>/jwt-simple` is jwt-simple's own `verify_token` with the same
//! key and the same policy, for comparison; HS256 (ring `hmac` and jwt-simple) is the
//! floor of the reference table. The `secret/*` and `pkce/*` groups are the hashing on
//! every cookie, refresh and code exchange.
//!
//! Keys are generated fresh by jwt-simple (as `latchkey init` does) and loaded with
//! `KeySet::from_private_jwks`; ring's raw keys are imported from the same key material,
//! so every number of one algorithm is about one key. Time is fixed, so a run never
//! depends on the wall clock.

use std::collections::HashSet;
use std::hint::black_box;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use jwt_simple::prelude::{
    Audiences, ECDSAP256PublicKeyLike, ES256KeyPair, Ed25519KeyPair, EdDSAPublicKeyLike, HS256Key, HeaderOptions,
    JWTClaims, MACLike, RS256KeyPair, RSAPublicKeyLike, VerificationOptions,
};
use latchkey_token::jwt::{AccessClaims, Expectations, Registered, UserClaims};
use latchkey_token::keys::{Algorithm, KeySet};
use latchkey_token::secret::{CompoundToken, sha256_hex};
use latchkey_token::{UnixSeconds, pkce};
use ring::rand::SystemRandom;
use ring::signature::{self, KeyPair as _};
use serde_json::Value;

/// The fixed "now" of every benchmark; tokens are issued at it and valid for 30 minutes.
const NOW: UnixSeconds = 1_764_547_200;
const ISSUER: &str = "https://identity.example.com";
const SESSION_ID: &str = "3f1c9a52-7b8e-4d2a-9c61-0e5b7a4d8f13";
const USER_ID: &str = "a7d0c3e9-12f4-4b6a-8e5d-9c2b1f0a6e47";

/// Claims as `/oauth2/token` issues them for the demo SPA (see endpoints' `issue_tokens`).
fn claims() -> AccessClaims {
    AccessClaims {
        client_id: "demo".into(),
        scope: "openid offline_access".into(),
        auth_time: Some(NOW - 120),
        amr: vec!["pwd".into()],
        sid: Some(SESSION_ID.into()),
        user: Some(UserClaims {
            is_anonymous: false,
            is_verified: true,
            can_reauthenticate: true,
            roles: vec!["admin".into()],
        }),
    }
}

fn registered() -> Registered<'static> {
    Registered {
        issuer: ISSUER,
        audience: ISSUER,
        subject: USER_ID,
        issued_at: NOW,
        lifetime_seconds: 1800,
        jwt_id: Some(sha256_hex("jti-seed")),
        nonce: None,
    }
}

fn expectations() -> Expectations<'static> {
    Expectations { issuer: ISSUER, audience: Some(ISSUER), now: NOW, tolerance_seconds: 60 }
}

/// The options `KeySet::verify_access_token` gives jwt-simple, so the jwt-simple
/// comparison checks the same policy.
fn jwt_simple_options(kid: Option<&str>, typ: Option<&str>) -> VerificationOptions {
    VerificationOptions {
        accept_future: false,
        required_key_id: kid.map(str::to_owned),
        required_signature_type: typ.map(str::to_owned),
        allowed_issuers: Some(HashSet::from([ISSUER.to_owned()])),
        allowed_audiences: Some(HashSet::from([ISSUER.to_owned()])),
        time_tolerance: Some(jwt_simple::prelude::Duration::from_secs(60)),
        max_token_length: Some(latchkey_token::jwt::MAX_TOKEN_LENGTH),
        artificial_time: Some(jwt_simple::prelude::Duration::from_secs(NOW)),
        ..Default::default()
    }
}

/// The same claims as jwt-simple's own type, for the HS256 reference.
fn jwt_simple_claims() -> JWTClaims<AccessClaims> {
    let r = registered();
    JWTClaims {
        issued_at: Some(jwt_simple::prelude::Duration::from_secs(r.issued_at)),
        expires_at: Some(jwt_simple::prelude::Duration::from_secs(r.issued_at + r.lifetime_seconds)),
        invalid_before: None,
        issuer: Some(r.issuer.to_owned()),
        subject: Some(r.subject.to_owned()),
        audiences: Some(Audiences::AsSet(HashSet::from([r.audience.to_owned()]))),
        jwt_id: r.jwt_id,
        nonce: None,
        custom: claims(),
    }
}

fn b64(jwk: &Value, member: &str) -> Vec<u8> {
    let text = jwk[member].as_str().unwrap_or_else(|| panic!("public JWK has no {member}"));
    URL_SAFE_NO_PAD.decode(text).expect("base64url JWK member")
}

/// The signing input (`header.payload`) and the decoded signature of a compact JWS.
fn split(token: &str) -> (Vec<u8>, Vec<u8>) {
    let (input, sig) = token.rsplit_once('.').expect("compact JWS");
    (input.as_bytes().to_vec(), URL_SAFE_NO_PAD.decode(sig).expect("base64url signature"))
}

/// How ring checks a signature of one algorithm, with the public key taken from the
/// key set's published JWK.
enum RingVerifier {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Unparsed(signature::UnparsedPublicKey<Vec<u8>>),
}

impl RingVerifier {
    fn from_jwk(alg: Algorithm, jwk: &Value) -> Self {
        match alg {
            Algorithm::Rs256 => RingVerifier::Rsa { n: b64(jwk, "n"), e: b64(jwk, "e") },
            Algorithm::Es256 => {
                let mut point = vec![0x04];
                point.extend(b64(jwk, "x"));
                point.extend(b64(jwk, "y"));
                RingVerifier::Unparsed(signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point))
            }
            Algorithm::EdDsa => {
                RingVerifier::Unparsed(signature::UnparsedPublicKey::new(&signature::ED25519, b64(jwk, "x")))
            }
        }
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), ring::error::Unspecified> {
        match self {
            RingVerifier::Rsa { n, e } => {
                signature::RsaPublicKeyComponents { n, e }.verify(&signature::RSA_PKCS1_2048_8192_SHA256, msg, sig)
            }
            RingVerifier::Unparsed(k) => k.verify(msg, sig),
        }
    }
}

/// ring's signing key for the same key material.
enum RingSigner {
    Rsa(signature::RsaKeyPair),
    Ecdsa(signature::EcdsaKeyPair),
    Ed25519(signature::Ed25519KeyPair),
}

impl RingSigner {
    fn sign(&self, rng: &SystemRandom, msg: &[u8]) -> Vec<u8> {
        match self {
            RingSigner::Rsa(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, rng, msg, &mut sig).expect("ring RSA sign");
                sig
            }
            RingSigner::Ecdsa(k) => k.sign(rng, msg).expect("ring ECDSA sign").as_ref().to_vec(),
            RingSigner::Ed25519(k) => k.sign(msg).as_ref().to_vec(),
        }
    }
}

/// One algorithm's fixture: the key set, a signed token, jwt-simple's own public key
/// and ring's keys, all the same key.
struct Fixture {
    alg: Algorithm,
    keys: KeySet,
    token: String,
    jwt_simple: JwtSimplePublic,
    ring_verifier: RingVerifier,
    ring_signer: RingSigner,
}

enum JwtSimplePublic {
    Rs256(Box<jwt_simple::prelude::RS256PublicKey>),
    Es256(jwt_simple::prelude::ES256PublicKey),
    EdDsa(jwt_simple::prelude::Ed25519PublicKey),
}

impl JwtSimplePublic {
    fn verify(&self, token: &str, options: VerificationOptions) -> Result<JWTClaims<AccessClaims>, jwt_simple::Error> {
        match self {
            JwtSimplePublic::Rs256(k) => k.verify_token(token, Some(options)),
            JwtSimplePublic::Es256(k) => k.verify_token(token, Some(options)),
            JwtSimplePublic::EdDsa(k) => k.verify_token(token, Some(options)),
        }
    }
}

fn fixture(alg: Algorithm) -> Fixture {
    let rng = SystemRandom::new();
    let (jwk, jwt_simple, ring_signer) = match alg {
        Algorithm::Rs256 => {
            let pair = RS256KeyPair::generate(2048).expect("RSA key generation");
            let kid = pair.jwk_thumbprint();
            let pair = pair.with_key_id(&kid);
            // superboring exports PKCS#8; accept PKCS#1 too, in case that changes.
            let der = pair.to_der().expect("RSA DER export");
            let ring = signature::RsaKeyPair::from_pkcs8(&der)
                .or_else(|_| signature::RsaKeyPair::from_der(&der))
                .expect("ring imports the RSA key");
            (pair.to_jwk(), JwtSimplePublic::Rs256(Box::new(pair.public_key())), RingSigner::Rsa(ring))
        }
        Algorithm::Es256 => {
            let pair = ES256KeyPair::generate();
            let kid = pair.jwk_thumbprint();
            let pair = pair.with_key_id(&kid);
            let der = pair.to_der().expect("P-256 PKCS#8 export");
            let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
            let ring = signature::EcdsaKeyPair::from_pkcs8(alg, &der, &rng)
                .or_else(|_| {
                    // PKCS#8 without the public point: import scalar and point directly.
                    let point = pair.public_key().public_key().to_bytes_uncompressed();
                    signature::EcdsaKeyPair::from_private_key_and_public_key(alg, &pair.to_bytes(), &point, &rng)
                })
                .expect("ring imports the P-256 key");
            (pair.to_jwk(), JwtSimplePublic::Es256(pair.public_key()), RingSigner::Ecdsa(ring))
        }
        Algorithm::EdDsa => {
            let pair = Ed25519KeyPair::generate();
            let kid = pair.jwk_thumbprint();
            let pair = pair.with_key_id(&kid);
            // ed25519-compact exports PKCS#8 v1 (seed only); ring's strict importer wants v2.
            let ring = signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pair.to_der())
                .expect("ring imports the Ed25519 key");
            (pair.to_jwk(), JwtSimplePublic::EdDsa(pair.public_key()), RingSigner::Ed25519(ring))
        }
    };
    let jwk: Value = serde_json::from_str(&jwk).expect("jwt-simple JWK is JSON");
    let keys = KeySet::from_private_jwks(&[jwk]).expect("KeySet loads the JWK");
    assert_eq!(keys.signing_key().alg(), alg);
    let token = keys.sign_access_token(&registered(), claims()).expect("sign");
    let ring_verifier = RingVerifier::from_jwk(alg, keys.signing_key().public_jwk());

    // Every path must accept the token before anything is timed.
    let verified = keys.verify_access_token(&token, &expectations()).expect("latchkey verifies its token");
    assert_eq!(verified.claims.sid.as_deref(), Some(SESSION_ID));
    let kid = keys.signing_key().kid().to_owned();
    jwt_simple.verify(&token, jwt_simple_options(Some(&kid), Some("at+jwt"))).expect("jwt-simple verifies");
    let (input, sig) = split(&token);
    ring_verifier.verify(&input, &sig).expect("ring verifies the JWT signature");
    let ring_sig = ring_signer.sign(&rng, &input);
    ring_verifier.verify(&input, &ring_sig).expect("ring's signing key is the key set's key");
    if let RingSigner::Ed25519(k) = &ring_signer {
        assert_eq!(k.public_key().as_ref(), b64(keys.signing_key().public_jwk(), "x").as_slice());
    }

    Fixture { alg, keys, token, jwt_simple, ring_verifier, ring_signer }
}

fn asymmetric(c: &mut Criterion) {
    let rng = SystemRandom::new();
    for alg in [Algorithm::Rs256, Algorithm::Es256, Algorithm::EdDsa] {
        let f = fixture(alg);
        let name = f.alg.name();
        let (input, sig) = split(&f.token);
        let registered = registered();
        let expect = expectations();
        let kid = f.keys.signing_key().kid().to_owned();

        let mut sign = c.benchmark_group(format!("sign/{name}"));
        sign.bench_function("latchkey", |b| {
            b.iter_batched(
                claims,
                |claims| f.keys.sign_access_token(black_box(&registered), claims).expect("sign"),
                BatchSize::SmallInput,
            );
        });
        sign.bench_function("ring-raw", |b| b.iter(|| f.ring_signer.sign(&rng, black_box(&input))));
        sign.finish();

        let mut verify = c.benchmark_group(format!("verify/{name}"));
        verify.bench_function("latchkey", |b| {
            b.iter(|| f.keys.verify_access_token(black_box(&f.token), black_box(&expect)).expect("verify"));
        });
        verify.bench_function("ring-raw", |b| {
            b.iter(|| f.ring_verifier.verify(black_box(&input), black_box(&sig)).expect("verify"));
        });
        verify.bench_function("jwt-simple", |b| {
            b.iter_batched(
                || jwt_simple_options(Some(&kid), Some("at+jwt")),
                |options| f.jwt_simple.verify(black_box(&f.token), options).expect("verify"),
                BatchSize::SmallInput,
            );
        });
        verify.finish();
    }
}

fn hs256(c: &mut Criterion) {
    let secret: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(73).wrapping_add(11)).collect();
    let jwt_key = HS256Key::from_bytes(&secret).with_key_id("hs");
    let opts = HeaderOptions { signature_type: Some("at+jwt".into()), ..Default::default() };
    let token = jwt_key.authenticate_with_options(jwt_simple_claims(), &opts).expect("HS256 sign");
    let (input, tag) = split(&token);
    let ring_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
    ring::hmac::verify(&ring_key, &input, &tag).expect("ring verifies jwt-simple's HS256 tag");
    jwt_key
        .verify_token::<AccessClaims>(&token, Some(jwt_simple_options(Some("hs"), Some("at+jwt"))))
        .expect("jwt-simple verifies its HS256 token");

    let mut sign = c.benchmark_group("sign/HS256");
    sign.bench_function("jwt-simple", |b| {
        b.iter_batched(
            jwt_simple_claims,
            |claims| jwt_key.authenticate_with_options(claims, black_box(&opts)).expect("sign"),
            BatchSize::SmallInput,
        );
    });
    sign.bench_function("ring-raw", |b| b.iter(|| ring::hmac::sign(&ring_key, black_box(&input))));
    sign.finish();

    let mut verify = c.benchmark_group("verify/HS256");
    verify.bench_function("jwt-simple", |b| {
        b.iter_batched(
            || jwt_simple_options(Some("hs"), Some("at+jwt")),
            |options| jwt_key.verify_token::<AccessClaims>(black_box(&token), Some(options)).expect("verify"),
            BatchSize::SmallInput,
        );
    });
    verify.bench_function("ring-raw", |b| {
        b.iter(|| ring::hmac::verify(&ring_key, black_box(&input), black_box(&tag)).expect("verify"));
    });
    verify.finish();
}

fn secrets(c: &mut Criterion) {
    // A generated secret is 32 alphanumeric characters (`secret::SECRET_LEN`).
    let secret = "q8ZrT2mXw4LkP9sVb7NcY3dHf6GjU1aE";
    let refresh_token = format!("{SESSION_ID}.{secret}");
    assert!(CompoundToken::parse(&refresh_token).is_some());
    // RFC 7636 appendix B.
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    assert!(pkce::verify_s256(verifier, challenge));

    let mut g = c.benchmark_group("secret");
    g.bench_function("sha256_hex", |b| b.iter(|| sha256_hex(black_box(secret))));
    g.bench_function("compound_parse", |b| {
        b.iter(|| CompoundToken::parse(black_box(&refresh_token)).expect("parse"));
    });
    g.finish();

    let mut g = c.benchmark_group("pkce");
    g.bench_function("verify_s256", |b| b.iter(|| pkce::verify_s256(black_box(verifier), black_box(challenge))));
    g.finish();
}

criterion_group!(benches, asymmetric, hs256, secrets);
criterion_main!(benches);
