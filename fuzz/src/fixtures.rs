//! Fixed inputs shared by the targets: three private JWKs (one per algorithm), the
//! issuer, a fixed clock reading, and the tokens signed with them.
//!
//! The keys are constants, generated once with jwt-simple's `to_jwk()` (fuzzing keys,
//! never used anywhere else), so every run, every seed and every regression input sees
//! the same key material: a seed token signed here verifies in every later run.

use std::collections::HashMap;
use std::sync::OnceLock;

use latchkey_token::UnixSeconds;
use latchkey_token::jwt::{AccessClaims, Expectations, IdClaims, Registered, UserClaims};
use latchkey_token::keys::KeySet;

/// RS256 private JWK, kid `fuzz-rs256`.
pub const RS256_JWK: &str = r#"{"kty":"RSA","n":"-s0uqXMPT8MxGomSi-UkIntxSf8p-Jsnm0N7Di1Lf_2g3UbMXb_vgzNQl5MdOALKPolV1MTu8uRQDZJ5V48ouVQrrmOQc94qSAkM1uF9LkMbza18yX4xXeKYjM9H5YoxzPH88cQV-Ry8bWUmzPF0Ex7ODBf91xIp6cLNrW9dVh4pCcH6AFYXw6urJ9w4tQEz7HG3ytNLyew7Mxgln-ek3fnizOL40tMIddTxUXOxMOe8lVf54bLLlXrowT2HdH6uqC4tnYKjiQbCYBHS7VN8XTPVCVELOMr1CPhcA1XanT9thKYLoHAdksl0liRgGYuXTO8nhjGrZ8Ykhb3X8Cq7Fw","e":"AQAB","d":"93fh5P1NTGzTVNYOLc-JmiSnolYOeenOaNtq3pA_ASmnwu8K1C6BDLpjeUyF9jB6kr48XNd811oEy3-OD6GIk2XEPCyt6kZ6_d1AN_8C39UD6CyZBtBnsbXWxIn67Tkw7oKQDZZoAAgkvOSkJnDREdTBhxldNQwNI0U-YTWTqVXhJ5rKO8v8pb7ThUQmP2vcO4VaK09AwjzVSmpFbybm8AMetyNUZwWBASVD8tcwCS8oI3hN8EDAE_8GRbGObyU3uI4UK_H5JOAsO33Bwd4OethPwFtwxAv3IkySHyYwnBGXbBX3Yug27VlZNWxHUE0QtNP6hS1m7ItJdhV8cWnc0Q","p":"_I3uwL4Dd2m4AOrrUX4yzSFW6cDXh02OkET1jt2OJtpLDZ2D8ze6kju2VOZgCWDL1mE5ZcHuK35U-SF9G7IWJVFTGRECEsTr-eiAez32cStc83u_LJIxnsQoQlrHSFdwXjAjnAnofG3htJaZYfJUSpYq9n2a8KBSCNeptOQlZtU","q":"_jkgnGq3r1kvlp4rqWMe5K-PnVHAPiBDEP_C7dDINCvRKyU-j8A4udlHO18qCP3-pXd9FeQ3jlgXim8laNXErZxZc0htEWp21CutcfD4MBhXb9h5O82vcDKqujqGUnrAyVTyiRRJZ9ieN4sJkZOlaewi4XsT5AeyOMOMJmBv6Ds","dp":"90B5Kueb-y9b_kH_SZQ0ZhEqxsSN_R_X37Qzd7--aJkz-0tnoBjCJmIhOnMkOGo0hVg_2jiHVLtks1au5gtulPBOW28ESZ3SrKKMDpv2Bot-f715x0gFHjtKctPu4AsCrqOQaTZmDlOBMcxys6qMDU2BGDqWEtfSGGgS9E6bs1U","dq":"DR17XjZvNX-fYeDVFc8ER_36pb4S8eGONDFNqCEuQurDxrsMKDRdeNEJyLlXHNGlsnmgnWGBsDlBNaYYQvlMRTycrMLexZg9eyKptwgcdba7xAxh7MDmvR4QCr18MoMcsQZN4N6IDvBw8SKeIsGANh-1iPZlh00SV7VW5J_zBgM","qi":"f88PQRIqpJyovkRhr5Tm7vlmySr64FDiEQ2h4trzajKR5eI-MDbOJHhphHrl8ZXNY3VmC6adRLuxpqo2upQb2rkCqXup6OPXbMVWfZHXBtJ3ZESZCFHQogp2uYBWY_nOHdDc0E-qAGSPv4HxpvTVIs3_u81U2AoHu4rq5ECewmY","alg":"RS256","use":"sig","kid":"fuzz-rs256"}"#;

/// ES256 private JWK, kid `fuzz-es256`.
pub const ES256_JWK: &str = r#"{"kty":"EC","crv":"P-256","x":"hmrE6VyNvjOoShuZo8HlRE8HI-kQc3hBUV6xxhFbqAk","y":"p7ggln_9QMAsCZ-L0aESwg9N-7mq8NY1EQd21uzeLlo","d":"m1DTno6kTt6daOAmBG3L2FPSwQulU0r2A82WKI4qogA","alg":"ES256","use":"sig","kid":"fuzz-es256"}"#;

/// Ed25519 private JWK, kid `fuzz-ed25519`.
pub const ED25519_JWK: &str = r#"{"kty":"OKP","crv":"Ed25519","x":"v5igNVMotXDfTxtBe8oZSdr6d36RqrZURFIlAcqQHRQ","d":"fPf7ZWuVkjt2T738awY8vbHVjkBgRdXqx_NNJoAi40c","alg":"EdDSA","use":"sig","kid":"fuzz-ed25519"}"#;

/// The issuer of every fixture token, and the endpoint target's `http.public_origin`.
pub const ISSUER: &str = "https://id.example.com";
/// The client the fixture ID tokens are issued to.
pub const CLIENT_ID: &str = "demo";
/// "Now" for every target (2023-11-14T22:13:20Z).
pub const NOW: UnixSeconds = 1_700_000_000;
/// Clock skew tolerated when verifying access tokens (the config default).
pub const TOLERANCE: u64 = 60;
/// Tolerance for ID tokens, as `end_session` uses for `id_token_hint` (the default
/// browser-session lifetime: expired hints are accepted).
pub const ID_HINT_TOLERANCE: u64 = 31_449_600;

fn jwk(text: &str) -> serde_json::Value {
    serde_json::from_str(text).expect("fixture JWK is JSON")
}

/// A key set of the given private JWKs; the first signs.
pub fn key_set(jwks: &[&str]) -> KeySet {
    let values: Vec<serde_json::Value> = jwks.iter().map(|t| jwk(t)).collect();
    KeySet::from_private_jwks(&values).expect("fixture keys load")
}

/// The verifying set of the JWT targets: all three keys.
pub fn verifying_keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| key_set(&[RS256_JWK, ES256_JWK, ED25519_JWK]))
}

/// Expectations for an access token at [`NOW`] (what the resolver uses).
pub fn access_expectations() -> Expectations<'static> {
    Expectations { issuer: ISSUER, audience: Some(ISSUER), now: NOW, tolerance_seconds: TOLERANCE }
}

/// Expectations for an ID token issued to [`CLIENT_ID`].
pub fn id_expectations() -> Expectations<'static> {
    Expectations { issuer: ISSUER, audience: Some(CLIENT_ID), now: NOW, tolerance_seconds: TOLERANCE }
}

/// Expectations for an `id_token_hint`: audience left to the caller, expired accepted.
pub fn id_hint_expectations() -> Expectations<'static> {
    Expectations { issuer: ISSUER, audience: None, now: NOW, tolerance_seconds: ID_HINT_TOLERANCE }
}

/// Expectations that accept any token of ours whose signature and header are right:
/// used to record what a signed token carries.
fn lenient(issuer: &'static str) -> Expectations<'static> {
    Expectations { issuer, audience: None, now: 0, tolerance_seconds: u64::MAX }
}

/// Which verifier a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `typ: at+jwt`
    Access,
    /// `typ: JWT`
    Id,
}

/// A token signed with a fixture key.
#[derive(Debug)]
pub struct SignedToken {
    /// File-name friendly description (`rs256-access-alice`).
    pub name: String,
    /// Access or ID token.
    pub kind: Kind,
    /// The compact JWS.
    pub token: String,
    /// `Debug` of the `Verified` value its verification yields: what any token with the
    /// same signing input must verify to.
    pub verified: String,
}

impl SignedToken {
    /// `header.payload`, the signed part.
    pub fn signing_input(&self) -> &str {
        signing_input(&self.token).expect("a signed token has three segments")
    }
}

/// `header.payload` of a compact JWS with exactly three segments.
pub fn signing_input(token: &str) -> Option<&str> {
    let (input, _signature) = token.rsplit_once('.')?;
    (input.matches('.').count() == 1).then_some(input)
}

fn user(roles: &[&str]) -> UserClaims {
    UserClaims {
        is_anonymous: false,
        is_verified: true,
        can_reauthenticate: true,
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    }
}

fn access_claims(sid: &str, roles: &[&str]) -> AccessClaims {
    AccessClaims {
        client_id: CLIENT_ID.into(),
        scope: "openid offline_access".into(),
        auth_time: Some(NOW - 100),
        amr: vec!["pwd".into()],
        sid: Some(sid.into()),
        user: Some(user(roles)),
    }
}

fn registered<'a>(audience: &'a str, subject: &'a str, issued_at: UnixSeconds) -> Registered<'a> {
    Registered {
        issuer: ISSUER,
        audience,
        subject,
        issued_at,
        lifetime_seconds: 1800,
        jwt_id: Some(format!("jti-{subject}-{issued_at}")),
        nonce: None,
    }
}

/// Every fixture token: per algorithm, an access token for alice, one for bob (an
/// admin), an ID token for alice, and an access token that expired long ago. Signed
/// deterministically (Ed25519 and RSA PKCS#1 v1.5 signatures are; ES256 signatures
/// vary, but the signing input does not).
pub fn signed_tokens() -> &'static [SignedToken] {
    static TOKENS: OnceLock<Vec<SignedToken>> = OnceLock::new();
    TOKENS.get_or_init(|| {
        let mut out = Vec::new();
        for (alg, jwk) in [("rs256", RS256_JWK), ("es256", ES256_JWK), ("ed25519", ED25519_JWK)] {
            let set = key_set(&[jwk]);
            let mut push = |name: &str, kind: Kind, token: String| {
                let keys = verifying_keys();
                let verified = match kind {
                    Kind::Access => {
                        format!("{:?}", keys.verify_access_token(&token, &lenient(ISSUER)).expect("fixture verifies"))
                    }
                    Kind::Id => {
                        format!("{:?}", keys.verify_id_token(&token, &lenient(ISSUER)).expect("fixture verifies"))
                    }
                };
                out.push(SignedToken { name: format!("{alg}-{name}"), kind, token, verified });
            };
            let t = set.sign_access_token(&registered(ISSUER, "user-alice", NOW - 10), access_claims("sid-alice", &[]));
            push("access-alice", Kind::Access, t.expect("signs"));
            let t =
                set.sign_access_token(&registered(ISSUER, "user-bob", NOW - 10), access_claims("sid-bob", &["admin"]));
            push("access-bob-admin", Kind::Access, t.expect("signs"));
            let id = IdClaims {
                auth_time: NOW - 100,
                sid: "sid-alice".into(),
                amr: vec!["pwd".into()],
                user: user(&[]),
                preferred_username: Some("alice".into()),
            };
            let r = Registered {
                nonce: Some("nonce-1".into()),
                lifetime_seconds: 300,
                ..registered(CLIENT_ID, "user-alice", NOW - 10)
            };
            push("id-alice", Kind::Id, set.sign_id_token(&r, id).expect("signs"));
            let t =
                set.sign_access_token(&registered(ISSUER, "user-alice", NOW - 100_000), access_claims("sid-old", &[]));
            push("access-expired", Kind::Access, t.expect("signs"));
        }
        out
    })
}

/// Fixture tokens by signing input.
pub fn by_signing_input() -> &'static HashMap<String, usize> {
    static MAP: OnceLock<HashMap<String, usize>> = OnceLock::new();
    MAP.get_or_init(|| signed_tokens().iter().enumerate().map(|(i, t)| (t.signing_input().to_owned(), i)).collect())
}

/// Checks what verifying `token` as `kind` against the fixture keys returned.
///
/// Invariant: a token that verifies has the signing input of a fixture token (nobody
/// else holds the keys, so anything else is a forgery) and carries exactly that
/// token's claims. A failed verification is always fine.
pub fn check_verified<C: std::fmt::Debug>(
    token: &str,
    kind: Kind,
    expect: &Expectations<'_>,
    result: &Result<latchkey_token::jwt::Verified<C>, latchkey_token::jwt::TokenError>,
) {
    let Ok(v) = result else { return };
    let input = signing_input(token).unwrap_or_else(|| panic!("a token without three segments verified: {token:?}"));
    let Some(&i) = by_signing_input().get(input) else {
        panic!("forgery: a token whose signing input was never signed verified as {kind:?}: {token:?} -> {v:?}");
    };
    let signed = &signed_tokens()[i];
    assert_eq!(signed.kind, kind, "a {:?} token verified as {kind:?}: {token:?}", signed.kind);
    assert_eq!(
        format!("{v:?}"),
        signed.verified,
        "token {token:?} verified with other claims than {} carries",
        signed.name
    );
    assert!(verifying_keys().by_kid(&v.kid).is_some(), "verified by an unknown kid {:?}", v.kid);
    assert!(expect.now <= v.expires_at.saturating_add(expect.tolerance_seconds), "expired token accepted: {v:?}");
    if let Some(aud) = expect.audience {
        assert!(v.audiences.iter().any(|a| a == aud), "wrong audience accepted: {v:?}");
    }
}

/// Secret of the confidential client `backend` (stored as Authgear's oct key).
pub const BACKEND_SECRET: &str = "backend-client-secret-0123456789";
/// Secret of the m2m client `service` (stored only as its SHA-256).
pub const SERVICE_SECRET: &str = "service-client-secret-0123456789";

/// The secrets document: Ed25519 signs (cheap, so token issuance does not dominate the
/// endpoint target); RS256 and ES256 are published and verify.
pub fn secrets_yaml() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        format!(
            r#"secrets:
  - key: oauth
    data:
      keys:
        - {ED25519_JWK}
        - {RS256_JWK}
        - {ES256_JWK}
  - key: oauth.client_secrets
    data:
      items:
        - client_id: backend
          keys:
            - {{ kty: oct, k: YmFja2VuZC1jbGllbnQtc2VjcmV0LTAxMjM0NTY3ODk }}
        - client_id: service
          secret_hashes:
            - "sha256:0a619a74659623bed7033203a97177688ecf950276547ad55a6d0b50b5375b50"
"#
        )
    })
}

/// The config document of the endpoint target (and the `config` target's fixed
/// secrets' counterpart): a demo SPA, a confidential server-side app, a native app
/// with a custom-scheme redirect and an m2m client.
pub const CONFIG_YAML: &str = r##"http:
  public_origin: "https://id.example.com"
  allowed_origins: ["https://admin.example.com"]
  cookie_prefix: ""
  cookie_domain: example.com
  # The fuzzer picks client addresses with X-Forwarded-For; without one, each input
  # has its own peer address (see the endpoint target).
  trust_proxy: true
# The clock never moves, so a bucket never refills. Buckets keyed by address are
# small, so an input can exhaust them (429) while the next input, from another
# address, starts afresh; buckets keyed by user or client, and the lockout, would
# stay exhausted for the rest of the run, so they are counted but never reached.
rate_limits:
  token_per_ip: { limit: 3, window_seconds: 60 }
  token_per_user: { limit: 4000000000, window_seconds: 60 }
  client_credentials_per_client: { limit: 4000000000, window_seconds: 60 }
  login_failures_per_ip: { limit: 2, window_seconds: 60 }
  login_failures_per_user_ip: { limit: 1, window_seconds: 60 }
lockout:
  enabled: true
  max_attempts: 4000000000
  history_duration_seconds: 900
  minimum_duration_seconds: 60
  maximum_duration_seconds: 3600
  backoff_factor: 2
session:
  lifetime_seconds: 31449600
  idle_timeout_enabled: true
  idle_timeout_seconds: 2592000
jwt:
  time_tolerance_seconds: 60
resolver:
  strict: false
ui:
  product_name: "Latchkey <fuzz> & \"co\""
  logo_url: https://id.example.com/logo.png
  primary_color: "#1f6feb"
oauth:
  clients:
    - client_id: demo
      name: Demo app
      x_application_type: spa
      redirect_uris:
        - http://127.0.0.1:4000/callback
        - http://localhost:4000/callback
      post_logout_redirect_uris:
        - http://127.0.0.1:4000/
      grant_types: [authorization_code, refresh_token]
      access_token_lifetime_seconds: 1800
    - client_id: backend
      client_name: Backend app
      x_application_type: confidential
      redirect_uris:
        - https://app.example.com/auth/callback?from=latchkey
      post_logout_redirect_uris:
        - https://app.example.com/signed-out?bye=1
      refresh_token_rotation_enabled: false
    - client_id: mobile
      x_application_type: native
      redirect_uris:
        - "com.example.app:/oauth2redirect"
      post_logout_redirect_uris:
        - "com.example.app:/signed-out"
    - client_id: service
      x_application_type: m2m
      access_token_lifetime_seconds: 600
"##;

/// [`secrets_yaml`], parsed.
pub fn secrets() -> &'static latchkey_endpoints::Secrets {
    static SECRETS: OnceLock<latchkey_endpoints::Secrets> = OnceLock::new();
    SECRETS.get_or_init(|| latchkey_endpoints::parse_secrets(secrets_yaml()).expect("fixture secrets parse"))
}
