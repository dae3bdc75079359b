//! The resolver and refresh hot paths end to end in-process: `App::handle` on
//! `GET /_resolver/resolve` with a session cookie, a repeated bearer token, a bearer
//! token seen for the first time, and no credential; one refresh-token rotation on the
//! in-memory store; and the cookie parse plus session lookup every cookie request does.
//!
//! These are the requests a reverse proxy sends on every page load, so they bound what
//! one worker can answer. The in-memory store takes storage cost out of the picture
//! (the README's wrk figures include SQLite and the network); what is left is routing,
//! parsing, hashing, signature verification (or the verified-token cache) and header
//! building. The App is built as `latchkey serve` builds it, from YAML config and
//! secrets with the demo SPA client and an RS256 key (the default), but with a fixed
//! clock and a counter for entropy, so every run sees the same time.

use std::cell::Cell;
use std::collections::HashSet;
use std::hint::black_box;
use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::header::{AUTHORIZATION, COOKIE, HeaderValue};
use http::{HeaderMap, Method, Request};
use jwt_simple::prelude::RS256KeyPair;
use latchkey_endpoints::{App, Config, parse_config, parse_secrets};
use latchkey_store::{MemoryStore, RefreshOutcome, Session, SessionKind, Store, User, refresh};
use latchkey_token::expiry::Lifetime;
use latchkey_token::jwt::{AccessClaims, Registered, UserClaims};
use latchkey_token::keys::KeySet;
use latchkey_token::refresh::RefreshState;
use latchkey_token::secret::{CompoundToken, sha256_hex};
use latchkey_token::{Entropy, FixedClock, UnixSeconds};
use pollster::block_on;

/// The fixed "now" of every benchmark. Sessions were last used at it, so the resolver's
/// throttled last-use write never fires and every resolve is read-only.
const NOW: UnixSeconds = 1_764_547_200;
const USER_ID: &str = "a7d0c3e9-12f4-4b6a-8e5d-9c2b1f0a6e47";
const BROWSER_SESSION_ID: &str = "5b2e8c71-0d9a-4f36-b1e4-7a6c3d9f0e28";
const TOKEN_SESSION_ID: &str = "3f1c9a52-7b8e-4d2a-9c61-0e5b7a4d8f13";
const REFRESH_SESSION_ID: &str = "c4e7a190-6b2d-4e8f-a35c-1d9b0f7e2a64";
const COOKIE_SECRET: &str = "q8ZrT2mXw4LkP9sVb7NcY3dHf6GjU1aE";
/// Distinct tokens for `resolve/bearer-first-seen`: more than twice the verified-token
/// cache's capacity (10,000), so a token is never still cached when it comes round again.
const FIRST_SEEN_TOKENS: usize = 20_000;

const CONFIG: &str = r#"
http:
  public_origin: "http://127.0.0.1:3000"
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
      refresh_token_lifetime_seconds: 31449600
      refresh_token_idle_timeout_enabled: true
      refresh_token_idle_timeout_seconds: 2592000
      refresh_token_rotation_enabled: true
"#;

/// Deterministic "randomness": a counter through a multiplicative hash. Good enough
/// for a benchmark (nothing here is a real secret); never for a server.
struct CounterEntropy(Cell<u64>);

impl Entropy for CounterEntropy {
    fn fill(&self, buf: &mut [u8]) {
        for b in buf {
            let n = self.0.get();
            self.0.set(n.wrapping_add(1));
            *b = (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8;
        }
    }
}

/// The secrets document as `latchkey init` writes it, with a fresh RS256 key.
fn secrets_yaml() -> String {
    let pair = RS256KeyPair::generate(2048).expect("RSA key generation");
    let kid = pair.jwk_thumbprint();
    let jwk = pair.with_key_id(&kid).to_jwk();
    format!("secrets:\n  - key: oauth\n    data:\n      keys:\n        - {jwk}\n")
}

/// Config and keys, loaded once for every benchmark of the run (RSA key generation
/// takes seconds).
static LOADED: LazyLock<(Arc<Config>, Arc<KeySet>)> = LazyLock::new(|| {
    let secrets = parse_secrets(&secrets_yaml()).expect("secrets parse");
    let config = parse_config(CONFIG, &secrets).expect("config parses");
    (Arc::new(config), Arc::new(secrets.keys))
});

fn user() -> User {
    User {
        id: USER_ID.into(),
        username: "alice".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        disabled: false,
        disabled_reason: None,
        is_verified: true,
        roles: vec!["admin".into(), "editor".into()],
        created_at: NOW - 86_400,
    }
}

fn browser_session(config: &Config, cookie_value: &str) -> Session {
    Session {
        id: BROWSER_SESSION_ID.into(),
        kind: SessionKind::Browser,
        user_id: USER_ID.into(),
        client_id: None,
        parent_id: None,
        created_at: NOW - 3600,
        authenticated_at: NOW - 3600,
        amr: vec!["pwd".into()],
        scopes: vec![],
        lifetime: config.browser_lifetime(),
        last_used_at: NOW,
        revoked_at: None,
        secret_hash: Some(sha256_hex(cookie_value)),
        refresh: None,
        version: 0,
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0".into()),
        ip: Some("203.0.113.7".into()),
    }
}

/// A token session of the demo client, as `/oauth2/token` creates it.
fn token_session(config: &Config, id: &str, refresh_hash: &str) -> Session {
    let client = config.client("demo").expect("demo client");
    Session {
        id: id.into(),
        kind: SessionKind::Token,
        client_id: Some("demo".into()),
        parent_id: Some(BROWSER_SESSION_ID.into()),
        scopes: vec!["openid".into(), "offline_access".into()],
        lifetime: Lifetime {
            lifetime_seconds: client.refresh_token_lifetime_seconds,
            idle_timeout_seconds: client.refresh_token_idle_timeout_seconds,
        },
        secret_hash: None,
        refresh: Some(RefreshState::new(refresh_hash.into())),
        ..browser_session(config, "")
    }
}

/// An access token of the token session, signed as `issue_tokens` signs it; `n` makes
/// the `jti`, so every `n` gives a distinct token.
fn access_token(keys: &KeySet, config: &Config, n: usize) -> String {
    let client = config.client("demo").expect("demo client");
    let registered = Registered {
        issuer: &config.issuer,
        audience: &config.issuer,
        subject: USER_ID,
        issued_at: NOW,
        lifetime_seconds: client.access_token_lifetime_seconds,
        jwt_id: Some(sha256_hex(&format!("jti-{n}"))),
        nonce: None,
    };
    let claims = AccessClaims {
        client_id: "demo".into(),
        scope: "openid offline_access".into(),
        auth_time: Some(NOW - 3600),
        amr: vec!["pwd".into()],
        sid: Some(TOKEN_SESSION_ID.into()),
        user: Some(UserClaims {
            is_anonymous: false,
            is_verified: true,
            can_reauthenticate: true,
            roles: vec!["admin".into(), "editor".into()],
        }),
    };
    keys.sign_access_token(&registered, claims).expect("sign")
}

/// Signs `count` distinct tokens on every core (RS256 signing is slow in pure Rust).
fn access_tokens(keys: &KeySet, config: &Config, count: usize) -> Vec<String> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = count.div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    (t * chunk..((t + 1) * chunk).min(count)).map(|n| access_token(keys, config, n)).collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("signing thread")).collect()
    })
}

fn resolve_request(header: Option<(http::HeaderName, HeaderValue)>) -> Request<Bytes> {
    let mut req = Request::builder().method(Method::GET).uri("/_resolver/resolve");
    if let Some((name, value)) = header {
        req = req.header(name, value);
    }
    req.body(Bytes::new()).expect("request")
}

fn session_valid(app: &App<MemoryStore>, header: Option<(http::HeaderName, HeaderValue)>) -> Option<String> {
    let resp = block_on(app.handle(resolve_request(header)));
    assert_eq!(resp.status(), http::StatusCode::OK);
    resp.headers().get("x-authgear-session-valid").map(|v| v.to_str().expect("ASCII header").to_owned())
}

/// A Cookie header as a browser sends it to an app under the parent domain: the
/// session cookie among analytics and preference cookies.
fn cookie_header(cookie_value: &str) -> HeaderValue {
    let csrf = "Zx4bN7qLm2Wc9RtY5vKp8HdJ3sGf6AeU";
    HeaderValue::from_str(&format!(
        "_ga=GA1.1.1481234567.1764540000; theme=dark; csrf={csrf}; session={cookie_value}; \
         _ga_XYZ123=GS1.1.1764540000.3.1.1764547100.0.0.0; lang=en-GB"
    ))
    .expect("cookie header")
}

fn resolver(c: &mut Criterion) {
    let (config, keys) = LOADED.clone();
    let store = MemoryStore::new();
    let cookie_value = format!("{BROWSER_SESSION_ID}.{COOKIE_SECRET}");
    block_on(async {
        store.create_user(&user()).await.expect("user");
        store.create_session(&browser_session(&config, &cookie_value)).await.expect("browser session");
        let refresh_hash = sha256_hex(&format!("{TOKEN_SESSION_ID}.{COOKIE_SECRET}"));
        store.create_session(&token_session(&config, TOKEN_SESSION_ID, &refresh_hash)).await.expect("token session");
    });
    let app = App::new(
        config.clone(),
        keys.clone(),
        store.clone(),
        Box::new(FixedClock(NOW)),
        Box::new(CounterEntropy(Cell::new(0))),
    );

    let cookie = cookie_header(&cookie_value);
    let bearer = |token: &str| HeaderValue::from_str(&format!("Bearer {token}")).expect("bearer header");
    let repeated = bearer(&access_token(&keys, &config, usize::MAX));
    let first_seen: Vec<HeaderValue> =
        access_tokens(&keys, &config, FIRST_SEEN_TOKENS).iter().map(|t| bearer(t)).collect();
    assert_eq!(first_seen.iter().collect::<HashSet<_>>().len(), FIRST_SEEN_TOKENS, "tokens are distinct");

    // Every credential must resolve as expected before anything is timed (the fresh
    // token probed here is none of the timed ones, which stay unseen).
    assert_eq!(session_valid(&app, Some((COOKIE, cookie.clone()))).as_deref(), Some("true"), "cookie");
    assert_eq!(session_valid(&app, Some((AUTHORIZATION, repeated.clone()))).as_deref(), Some("true"), "bearer");
    let probe = bearer(&access_token(&keys, &config, usize::MAX - 1));
    assert_eq!(session_valid(&app, Some((AUTHORIZATION, probe))).as_deref(), Some("true"), "fresh bearer");
    assert_eq!(session_valid(&app, None), None, "anonymous");

    let mut g = c.benchmark_group("resolve");
    g.bench_function("cookie", |b| {
        b.iter_batched(
            || resolve_request(Some((COOKIE, cookie.clone()))),
            |req| block_on(app.handle(req)),
            BatchSize::SmallInput,
        );
    });
    g.bench_function("bearer-repeated", |b| {
        b.iter_batched(
            || resolve_request(Some((AUTHORIZATION, repeated.clone()))),
            |req| block_on(app.handle(req)),
            BatchSize::SmallInput,
        );
    });
    let next = Cell::new(0usize);
    g.bench_function("bearer-first-seen", |b| {
        b.iter_batched(
            || {
                let i = next.get();
                next.set((i + 1) % FIRST_SEEN_TOKENS);
                resolve_request(Some((AUTHORIZATION, first_seen[i].clone())))
            },
            |req| block_on(app.handle(req)),
            BatchSize::SmallInput,
        );
    });
    g.bench_function("anonymous", |b| {
        b.iter_batched(|| resolve_request(None), |req| block_on(app.handle(req)), BatchSize::SmallInput);
    });
    g.finish();
    // Nothing timed may have changed what the credentials resolve to.
    assert_eq!(session_valid(&app, Some((COOKIE, cookie.clone()))).as_deref(), Some("true"), "cookie after");

    let mut headers = HeaderMap::new();
    headers.insert(COOKIE, cookie);
    let mut g = c.benchmark_group("cookie");
    g.bench_function("parse+lookup", |b| {
        b.iter(|| {
            let value = latchkey_endpoints::request::cookie(black_box(&headers), "session").expect("cookie");
            let token = CompoundToken::parse(value).expect("well-formed cookie");
            block_on(store.session(token.id)).expect("store").expect("session")
        });
    });
    g.finish();
}

fn rotation(c: &mut Criterion) {
    let config = &LOADED.0;
    let store = MemoryStore::new();
    // The hashes are SHA-256 hex, as stored; the successor is a counter in the same
    // shape, so the timed loop does not also hash a fresh secret.
    let hash = |n: u64| format!("{n:064x}");
    block_on(store.create_session(&token_session(config, REFRESH_SESSION_ID, &hash(0)))).expect("session");
    let current = Cell::new(0u64);

    let mut g = c.benchmark_group("refresh");
    g.bench_function("rotate-memory", |b| {
        b.iter(|| {
            let n = current.get();
            let outcome = block_on(refresh(&store, REFRESH_SESSION_ID, black_box(&hash(n)), &hash(n + 1), true, NOW))
                .expect("store");
            // Every call presents the current token, so every call is a normal rotation.
            assert!(matches!(outcome, RefreshOutcome::Rotated(_)), "not a rotation: {outcome:?}");
            current.set(n + 1);
            outcome
        });
    });
    g.finish();
    let session = block_on(store.session(REFRESH_SESSION_ID)).expect("store").expect("session");
    assert!(session.revoked_at.is_none(), "rotation never looked like reuse");
}

criterion_group!(benches, resolver, rotation);
criterion_main!(benches);
