//! `endpoint`: whole requests through `App::handle`, the way a runtime adapter calls it.
//!
//! One `App<MemoryStore>` per process (per fuzzing thread), built from
//! [`CONFIG_YAML`] and [`secrets_yaml`], with one user created through the `Store` API
//! (argon2id hash from `latchkey_token::password::hash`), a [`FixedClock`] at
//! [`NOW`] and a deterministic counter [`Entropy`]. `MemoryStore` futures are
//! immediately ready, so each request runs to completion under `pollster::block_on`.
//!
//! # Input format
//!
//! An input is up to four HTTP-like requests separated by a line `=====`:
//!
//! ```text
//! POST 1
//! content-type: application/x-www-form-urlencoded
//! authorization: Basic+ backend:@SECRET@
//!
//! grant_type=authorization_code&code=@BCODE@&redirect_uri=https%3A%2F%2Fapp.example.com%2F...
//! ```
//!
//! The first line is a method (GET, POST, HEAD, OPTIONS, PUT; any other word picks one
//! of them) and a request target. A target that starts with a digit 0-8 names one of
//! the real [`PATHS`] (the rest of the target, e.g. `?strict=true`, is appended);
//! anything else is used as the path and query, with bytes a URI cannot hold
//! percent-encoded. Header lines follow (`name: value`; invalid names and values are
//! skipped, as a server would never pass them on); `Basic+ id:secret` is sent as
//! `Basic base64(id:secret)`. A blank line ends the headers; the rest is the body,
//! except for the newline that ends the request (before `=====` or the end of input).
//!
//! Placeholders `@NAME@` in the target, header values and body are replaced before
//! sending, so seeds can carry credentials that stay valid from run to run:
//!
//! | placeholder | value |
//! |---|---|
//! | `@COOKIE@` | a live browser session cookie of the user (`session=@COOKIE@`) |
//! | `@AT@` | a valid access token of a live token session (client `demo`) |
//! | `@RT@` | that session's refresh token |
//! | `@IDT@` | a valid ID token of that session (audience `demo`) |
//! | `@BRT@` | a refresh token of a live `backend` token session (rotation off) |
//! | `@CODE@` | an unredeemed code for `demo` (PKCE challenge of `@VERIFIER@`) |
//! | `@BCODE@` | an unredeemed code for `backend` (no PKCE) |
//! | `@VERIFIER@`, `@CHALLENGE@` | a PKCE verifier and its S256 challenge |
//! | `@CSRF@` | a well-formed CSRF token (send it as cookie and form field) |
//! | `@SECRET@`, `@SSECRET@` | the secrets of `backend` and `service` |
//! | `@BASIC@`, `@SBASIC@` | `Basic` credentials of `backend` and `service` |
//! | `@USER@`, `@PASSWORD@` | the user's name and password |
//! | `@R:code@`, `@R:session@`, `@R:csrf@`, `@R:access_token@`, `@R:refresh_token@`, `@R:id_token@` | from an earlier response of the same input (Location `code`, Set-Cookie, token JSON) |
//!
//! The fixture sessions are created through the `Store` API; when an input revokes one
//! (logout, revocation, reuse detection), a fresh generation is created for the next
//! input, so every input sees the same starting credentials. Codes are minted per
//! input that uses them. Each input has its own peer address (`ClientAddr`), so the
//! per-address rate limits of the fuzz config (small enough for one input to reach
//! 429) start afresh; `X-Forwarded-For` is honoured (`trust_proxy`). Limits keyed by
//! user or client, and the lockout, are set out of reach: the clock never moves, so
//! once reached they would stay reached for the rest of the run.
//!
//! # Invariants
//!
//! For every response: the status is never >= 500 (a store failure is the only 5xx the
//! service may answer, 503, and `MemoryStore` never fails); `x-content-type-options:
//! nosniff` is set; a 3xx has a `Location`; a `Location`, resolved against the issuer,
//! is never an absolute URL whose origin is not that of a registered redirect or
//! post-logout URI (no open redirect), and moreover is a registered URI with only query
//! parameters added (exact matching). Also the documented browser and token headers: an
//! HTML page has `X-Frame-Options: DENY`, a `frame-ancestors 'none'` CSP and `no-store`;
//! a body carrying a token has `Cache-Control: no-store`; `Access-Control-Allow-Origin`
//! only ever names a configured origin; a session cookie is `HttpOnly`, `Secure`,
//! `SameSite=Lax`; a valid resolver answer names the one user.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{LOCATION, SET_COOKIE};
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use latchkey_endpoints::config::Config;
use latchkey_endpoints::{App, ClientAddr, Response, parse_config, parse_secrets};
use latchkey_store::{AuthCode, MemoryStore, Session, SessionKind, Store, User};
use latchkey_token::expiry::Lifetime;
use latchkey_token::jwt::{AccessClaims, IdClaims, Registered, UserClaims};
use latchkey_token::keys::KeySet;
use latchkey_token::refresh::RefreshState;
use latchkey_token::secret::sha256_hex;
use latchkey_token::{Entropy, FixedClock, password, pkce};
use url::Url;

use crate::fixtures::{BACKEND_SECRET, CONFIG_YAML, NOW, SERVICE_SECRET, secrets_yaml};

/// The real paths, selectable by a target's first digit.
pub const PATHS: [&str; 9] = [
    "/oauth2/authorize",
    "/oauth2/token",
    "/oauth2/revoke",
    "/oauth2/userinfo",
    "/oauth2/end_session",
    "/_resolver/resolve",
    "/.well-known/openid-configuration",
    "/oauth2/jwks",
    "/healthz",
];

const METHODS: [Method; 5] = [Method::GET, Method::POST, Method::HEAD, Method::OPTIONS, Method::PUT];

/// Requests per input at most.
const MAX_REQUESTS: usize = 4;

/// The user's name and password.
pub const USERNAME: &str = "alice";
/// See [`USERNAME`].
pub const PASSWORD: &str = "correct horse battery";
/// The user's id.
pub const USER_ID: &str = "6f1c1e2a-5b7d-4c3e-9a8b-0d1e2f3a4b5c";
/// PKCE verifier of the `@CODE@` codes (RFC 7636 appendix B).
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
/// A well-formed CSRF token.
pub const CSRF: &str = "Csrf0000000000000000000000000000";

/// A deterministic "random" source: splitmix64 over a counter. Fine for fuzzing, and
/// it keeps every run of an input the same from a fresh process.
pub struct CounterEntropy(Cell<u64>);

impl Entropy for CounterEntropy {
    fn fill(&self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let n = self.0.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
            self.0.set(n);
            let mut z = n;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    }
}

/// Credentials of one fixture generation.
struct Fixture {
    browser_id: String,
    token_id: String,
    backend_token_id: String,
    values: HashMap<&'static str, String>,
}

struct Harness {
    app: App<MemoryStore>,
    keys: Arc<KeySet>,
    config: Arc<Config>,
    user: User,
    generation: Cell<u64>,
    codes: Cell<u64>,
    /// Inputs run so far.
    inputs: Cell<u64>,
    fixture: RefCell<Fixture>,
    /// Registered redirect and post-logout URIs.
    targets: Vec<Url>,
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    pollster::block_on(f)
}

fn digits(prefix: char, n: u64) -> String {
    // 32 alphanumerics, the shape of every generated secret.
    format!("{prefix}{n:031}")
}

impl Harness {
    fn new() -> Self {
        let secrets = parse_secrets(secrets_yaml()).expect("fixture secrets parse");
        let config = Arc::new(parse_config(CONFIG_YAML, &secrets).expect("fixture config parses"));
        let keys = Arc::new(secrets.keys);
        let entropy = CounterEntropy(Cell::new(0));
        let user = User {
            id: USER_ID.into(),
            username: USERNAME.into(),
            password_hash: password::hash(&entropy, PASSWORD).expect("hashes"),
            disabled: false,
            disabled_reason: None,
            is_verified: true,
            roles: vec!["admin".into(), "staff".into()],
            created_at: NOW - 86_400,
        };
        let store = MemoryStore::new();
        block_on(store.create_user(&user)).expect("user created");
        let app = App::new(config.clone(), keys.clone(), store, Box::new(FixedClock(NOW)), Box::new(entropy));
        let targets = config
            .clients
            .iter()
            .flat_map(|c| c.redirect_uris.iter().chain(&c.post_logout_redirect_uris))
            .map(|u| Url::parse(u).expect("registered URIs parse"))
            .collect();
        let placeholder = Fixture {
            browser_id: String::new(),
            token_id: String::new(),
            backend_token_id: String::new(),
            values: HashMap::new(),
        };
        let h = Harness {
            app,
            keys,
            config,
            user,
            generation: Cell::new(0),
            codes: Cell::new(0),
            inputs: Cell::new(0),
            fixture: RefCell::new(placeholder),
            targets,
        };
        h.mint();
        h
    }

    fn store(&self) -> &MemoryStore {
        self.app.store()
    }

    fn user_claims(&self) -> UserClaims {
        UserClaims {
            is_anonymous: false,
            is_verified: self.user.is_verified,
            can_reauthenticate: true,
            roles: self.user.roles.clone(),
        }
    }

    fn token_session(&self, id: &str, client: &str, parent: &str, refresh_token: &str, scopes: &[&str]) -> Session {
        let c = self.config.client(client).expect("fixture client");
        Session {
            id: id.into(),
            kind: SessionKind::Token,
            user_id: self.user.id.clone(),
            client_id: Some(client.into()),
            parent_id: Some(parent.into()),
            created_at: NOW - 100,
            authenticated_at: NOW - 100,
            amr: vec!["pwd".into()],
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            lifetime: Lifetime {
                lifetime_seconds: c.refresh_token_lifetime_seconds,
                idle_timeout_seconds: c.refresh_token_idle_timeout_seconds,
            },
            last_used_at: NOW - 100,
            revoked_at: None,
            secret_hash: None,
            refresh: Some(RefreshState::new(sha256_hex(refresh_token))),
            version: 0,
            user_agent: Some("fuzz".into()),
            ip: None,
        }
    }

    /// Creates the fixture sessions and tokens of the current generation.
    fn mint(&self) {
        let g = self.generation.get();
        let browser_id = format!("fx-browser-{g}");
        let token_id = format!("fx-token-{g}");
        let backend_token_id = format!("fx-btoken-{g}");
        let cookie = format!("{browser_id}.{}", digits('B', g));
        let rt = format!("{token_id}.{}", digits('R', g));
        let brt = format!("{backend_token_id}.{}", digits('T', g));
        let store = self.store();
        let browser = Session {
            id: browser_id.clone(),
            kind: SessionKind::Browser,
            user_id: self.user.id.clone(),
            client_id: None,
            parent_id: None,
            created_at: NOW - 100,
            authenticated_at: NOW - 100,
            amr: vec!["pwd".into()],
            scopes: vec![],
            lifetime: self.config.browser_lifetime(),
            last_used_at: NOW - 100,
            revoked_at: None,
            secret_hash: Some(sha256_hex(&cookie)),
            refresh: None,
            version: 0,
            user_agent: Some("fuzz".into()),
            ip: None,
        };
        let scopes = ["openid", "offline_access", "profile"];
        block_on(store.create_session(&browser)).expect("fixture browser session");
        block_on(store.create_session(&self.token_session(&token_id, "demo", &browser_id, &rt, &scopes)))
            .expect("fixture token session");
        block_on(store.create_session(&self.token_session(
            &backend_token_id,
            "backend",
            &browser_id,
            &brt,
            &["openid", "offline_access"],
        )))
        .expect("fixture backend token session");
        let issuer = self.config.issuer.as_str();
        let registered = Registered {
            issuer,
            audience: issuer,
            subject: &self.user.id,
            issued_at: NOW - 10,
            lifetime_seconds: 1800,
            jwt_id: Some(format!("fx-at-{g}")),
            nonce: None,
        };
        let at = self
            .keys
            .sign_access_token(
                &registered,
                AccessClaims {
                    client_id: "demo".into(),
                    scope: scopes.join(" "),
                    auth_time: Some(NOW - 100),
                    amr: vec!["pwd".into()],
                    sid: Some(token_id.clone()),
                    user: Some(self.user_claims()),
                },
            )
            .expect("signs");
        let idt = self
            .keys
            .sign_id_token(
                &Registered {
                    audience: "demo",
                    lifetime_seconds: 300,
                    jwt_id: None,
                    nonce: Some("fx-nonce".into()),
                    ..registered
                },
                IdClaims {
                    auth_time: NOW - 100,
                    sid: token_id.clone(),
                    amr: vec!["pwd".into()],
                    user: self.user_claims(),
                    preferred_username: Some(self.user.username.clone()),
                },
            )
            .expect("signs");
        let basic = |id: &str, secret: &str| STANDARD.encode(format!("{id}:{secret}"));
        let values: HashMap<&'static str, String> = [
            ("COOKIE", cookie),
            ("AT", at),
            ("RT", rt),
            ("IDT", idt),
            ("BRT", brt),
            ("VERIFIER", VERIFIER.to_owned()),
            ("CHALLENGE", pkce::s256_challenge(VERIFIER)),
            ("CSRF", CSRF.to_owned()),
            ("SECRET", BACKEND_SECRET.to_owned()),
            ("SSECRET", SERVICE_SECRET.to_owned()),
            ("BASIC", format!("Basic {}", basic("backend", BACKEND_SECRET))),
            ("SBASIC", format!("Basic {}", basic("service", SERVICE_SECRET))),
            ("USER", USERNAME.to_owned()),
            ("PASSWORD", PASSWORD.to_owned()),
        ]
        .into_iter()
        .collect();
        *self.fixture.borrow_mut() = Fixture { browser_id, token_id, backend_token_id, values };
    }

    /// Starts a new fixture generation if the last input ended one of its sessions.
    fn refresh_fixture(&self) {
        let alive = {
            let f = self.fixture.borrow();
            [&f.browser_id, &f.token_id, &f.backend_token_id]
                .iter()
                .all(|id| matches!(block_on(self.store().session(id)), Ok(Some(s)) if s.is_active(NOW)))
        };
        if !alive {
            self.generation.set(self.generation.get() + 1);
            self.mint();
        }
    }

    /// A fresh unredeemed code: for `demo` with PKCE, or for `backend` without.
    fn mint_code(&self, backend: bool) -> String {
        let n = self.codes.get();
        self.codes.set(n + 1);
        let code = digits(if backend { 'K' } else { 'C' }, n);
        let f = self.fixture.borrow();
        let (client, redirect_uri, challenge) = if backend {
            ("backend", "https://app.example.com/auth/callback?from=latchkey", None)
        } else {
            ("demo", "http://127.0.0.1:4000/callback", Some(pkce::s256_challenge(VERIFIER)))
        };
        let auth = AuthCode {
            hash: sha256_hex(&code),
            client_id: client.into(),
            redirect_uri: redirect_uri.into(),
            user_id: self.user.id.clone(),
            browser_session_id: f.browser_id.clone(),
            scopes: vec!["openid".into(), "offline_access".into(), "profile".into()],
            nonce: Some("fx-nonce".into()),
            code_challenge: challenge,
            authenticated_at: NOW - 100,
            amr: vec!["pwd".into()],
            created_at: NOW - 5,
            expires_at: NOW + 295,
        };
        block_on(self.store().put_code(&auth)).expect("fixture code");
        code
    }
}

thread_local! {
    static HARNESS: Harness = Harness::new();
}

/// Values placeholders resolve to during one input.
struct Bindings<'h> {
    harness: &'h Harness,
    /// The peer address of this input's requests: a new one per input, so that
    /// per-address rate limits start afresh (the clock never moves).
    peer: String,
    codes: HashMap<&'static str, String>,
    responses: HashMap<String, String>,
}

impl Bindings<'_> {
    fn lookup(&mut self, name: &str) -> Option<String> {
        if let Some(key) = name.strip_prefix("R:") {
            return self.responses.get(key).cloned();
        }
        if let Some(v) = self.harness.fixture.borrow().values.get(name) {
            return Some(v.clone());
        }
        let (key, backend) = match name {
            "CODE" => ("CODE", false),
            "BCODE" => ("BCODE", true),
            _ => return None,
        };
        if let Some(c) = self.codes.get(key) {
            return Some(c.clone());
        }
        let c = self.harness.mint_code(backend);
        self.codes.insert(key, c.clone());
        Some(c)
    }

    /// Replaces every known `@NAME@`; unknown ones stay as they are.
    fn substitute(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len());
        let mut rest = input;
        while let Some(start) = rest.iter().position(|&b| b == b'@') {
            out.extend_from_slice(&rest[..start]);
            let after = &rest[start + 1..];
            let end = after.iter().take(24).position(|&b| b == b'@');
            let value = end.and_then(|e| std::str::from_utf8(&after[..e]).ok().and_then(|n| self.lookup(n)));
            match (end, value) {
                (Some(e), Some(v)) => {
                    out.extend_from_slice(v.as_bytes());
                    rest = &after[e + 1..];
                }
                _ => {
                    out.push(b'@');
                    rest = after;
                }
            }
        }
        out.extend_from_slice(rest);
        out
    }

    /// Remembers what later requests of the input may refer to as `@R:name@`.
    fn record(&mut self, resp: &Response) {
        if let Some(loc) = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok())
            && let Ok(url) = Url::parse(loc)
            && let Some((_, code)) = url.query_pairs().find(|(k, _)| k == "code")
        {
            self.responses.insert("code".into(), code.into_owned());
        }
        for v in resp.headers().get_all(SET_COOKIE) {
            let Ok(text) = v.to_str() else { continue };
            if let Some((name, rest)) = text.split_once('=') {
                let value = rest.split(';').next().unwrap_or_default();
                if (name == "session" || name == "csrf") && !value.is_empty() {
                    self.responses.insert(name.into(), value.into());
                }
            }
        }
        if let Ok(serde_json::Value::Object(body)) = serde_json::from_slice::<serde_json::Value>(resp.body()) {
            for key in ["access_token", "refresh_token", "id_token"] {
                if let Some(serde_json::Value::String(v)) = body.get(key) {
                    self.responses.insert(key.into(), v.clone());
                }
            }
        }
    }
}

fn is_uri_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!$&'()*+,-./:;=?@_~%[]".contains(&b)
}

fn uri(target: &[u8]) -> Option<Uri> {
    let (path, rest) = match target.split_first() {
        Some((&d @ b'0'..=b'8', rest)) => (PATHS[usize::from(d - b'0')].as_bytes(), rest),
        _ => (&b""[..], target),
    };
    let mut text = String::from(if path.is_empty() && !rest.starts_with(b"/") { "/" } else { "" });
    for &b in path.iter().chain(rest) {
        if is_uri_byte(b) {
            text.push(char::from(b));
        } else {
            text.push_str(&format!("%{b:02X}"));
        }
    }
    Uri::builder().path_and_query(text).build().ok()
}

fn method(word: &[u8]) -> Method {
    match METHODS.iter().find(|m| m.as_str().as_bytes() == word) {
        Some(m) => m.clone(),
        None => METHODS[word.iter().map(|&b| usize::from(b)).sum::<usize>() % METHODS.len()].clone(),
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b'\r', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\r'] = s {
        s = rest;
    }
    s
}

fn split_once<'a>(s: &'a [u8], sep: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let i = s.windows(sep.len()).position(|w| w == sep)?;
    Some((&s[..i], &s[i + sep.len()..]))
}

fn build_request(chunk: &[u8], bindings: &mut Bindings<'_>) -> Option<Request<Bytes>> {
    let (head, body) = split_once(chunk, b"\n\n").unwrap_or((chunk, b""));
    let mut lines = head.split(|&b| b == b'\n');
    let first = lines.next().unwrap_or_default();
    let (word, target) = split_once(first, b" ").unwrap_or((first, b""));
    let target = bindings.substitute(trim(target));
    let mut req = Request::new(Bytes::from(bindings.substitute(body)));
    *req.method_mut() = method(trim(word));
    *req.uri_mut() = uri(&target)?;
    for line in lines.take(16) {
        let Some((name, value)) = split_once(line, b":") else { continue };
        let Ok(name) = HeaderName::from_bytes(trim(name)) else { continue };
        let mut value = bindings.substitute(trim(value));
        if let Some(creds) = value.strip_prefix(b"Basic+ ") {
            value = format!("Basic {}", STANDARD.encode(creds)).into_bytes();
        }
        if let Ok(v) = HeaderValue::from_bytes(&value) {
            req.headers_mut().append(name, v);
        }
    }
    req.extensions_mut().insert(ClientAddr(bindings.peer.clone()));
    Some(req)
}

fn header<'r>(resp: &'r Response, name: &str) -> Option<&'r str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

impl Harness {
    fn check_location(&self, location: &str, ctx: &str) {
        let base = Url::parse(&self.config.issuer).expect("issuer parses");
        let url = base.join(location).unwrap_or_else(|e| panic!("{ctx}: unparseable Location {location:?}: {e}"));
        if url.origin() == base.origin() {
            // Our own origin: not an open redirect.
            return;
        }
        if matches!(url.scheme(), "http" | "https") {
            let origin = url.origin().ascii_serialization();
            assert!(
                self.targets.iter().any(|t| t.origin().ascii_serialization() == origin),
                "{ctx}: open redirect: Location {location:?} has origin {origin}, which no registered URI has"
            );
        }
        let registered = self.targets.iter().any(|t| {
            t.scheme() == url.scheme()
                && t.host() == url.host()
                && t.port_or_known_default() == url.port_or_known_default()
                && t.path() == url.path()
                && url.username().is_empty()
                && url.password().is_none()
                && url.fragment().is_none()
                && url.query_pairs().take(t.query_pairs().count()).eq(t.query_pairs())
        });
        assert!(registered, "{ctx}: Location {location:?} is not a registered URI plus query parameters");
    }

    fn check(&self, req_desc: &str, resp: &Response) {
        let status = resp.status();
        let ctx = format!("{req_desc} -> {status}");
        assert!(status.as_u16() < 500, "{ctx}: server error (MemoryStore never fails, so no 5xx is allowed)");
        assert_eq!(
            header(resp, "x-content-type-options"),
            Some("nosniff"),
            "{ctx}: no x-content-type-options: nosniff"
        );
        let location = resp.headers().get(LOCATION);
        if status.is_redirection() {
            assert!(location.is_some(), "{ctx}: redirect without Location");
        }
        if let Some(loc) = location {
            let loc = loc.to_str().unwrap_or_else(|_| panic!("{ctx}: Location is not visible ASCII: {loc:?}"));
            self.check_location(loc, &ctx);
        }
        if header(resp, "content-type").is_some_and(|t| t.starts_with("text/html")) {
            assert_eq!(header(resp, "x-frame-options"), Some("DENY"), "{ctx}: HTML page without X-Frame-Options");
            assert!(
                header(resp, "content-security-policy").is_some_and(|c| c.contains("frame-ancestors 'none'")),
                "{ctx}: HTML page without frame-ancestors 'none'"
            );
            assert_eq!(header(resp, "cache-control"), Some("no-store"), "{ctx}: HTML page is cacheable");
        }
        let carries_token = match serde_json::from_slice::<serde_json::Value>(resp.body()) {
            Ok(serde_json::Value::Object(body)) => {
                ["access_token", "refresh_token", "id_token"].iter().any(|k| body.contains_key(*k))
            }
            _ => false,
        };
        if carries_token {
            assert_eq!(header(resp, "cache-control"), Some("no-store"), "{ctx}: token response is cacheable");
        }
        for v in resp.headers().get_all("access-control-allow-origin") {
            let o = v.to_str().unwrap_or_default();
            assert!(self.config.cors_origins.contains(o), "{ctx}: CORS allows unconfigured origin {o:?}");
        }
        for c in resp.headers().get_all(SET_COOKIE) {
            let c = c.to_str().unwrap_or_else(|_| panic!("{ctx}: Set-Cookie is not visible ASCII"));
            if c.starts_with(&format!("{}=", self.config.session_cookie_name())) {
                for attr in ["HttpOnly", "Secure", "SameSite=Lax"] {
                    assert!(c.split("; ").any(|a| a == attr), "{ctx}: session cookie without {attr}: {c:?}");
                }
            }
        }
        if header(resp, "x-authgear-session-valid") == Some("true") {
            assert_eq!(header(resp, "x-authgear-user-id"), Some(self.user.id.as_str()), "{ctx}: resolved to whom?");
        }
    }
}

/// Whether `LATCHKEY_FUZZ_TRACE` is set: then every request and response is printed
/// (for writing seeds and reading regressions).
fn trace() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("LATCHKEY_FUZZ_TRACE").is_some())
}

/// The fuzz target.
pub fn run(data: &[u8]) {
    HARNESS.with(|h| {
        let n = h.inputs.get();
        h.inputs.set(n.wrapping_add(1));
        let peer = format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255);
        let mut bindings = Bindings { harness: h, peer, codes: HashMap::new(), responses: HashMap::new() };
        for (i, chunk) in data
            .split_inclusive(|&b| b == b'\n')
            .collect::<Vec<_>>()
            .split(|l| *l == b"=====\n")
            .take(MAX_REQUESTS)
            .enumerate()
        {
            let mut chunk: Vec<u8> = chunk.concat();
            // The newline before `=====` (or at the end of the file) ends the request; it
            // is not part of the body.
            if chunk.last() == Some(&b'\n') {
                chunk.pop();
            }
            let Some(req) = build_request(&chunk, &mut bindings) else { continue };
            let desc = format!("request {i}: {} {}", req.method(), req.uri());
            let resp = block_on(h.app.handle(req));
            if trace() {
                eprintln!("{desc} -> {} {:?}", resp.status(), resp.headers());
                eprintln!("    {}", String::from_utf8_lossy(&resp.body()[..resp.body().len().min(300)]));
            }
            h.check(&desc, &resp);
            bindings.record(&resp);
        }
        h.refresh_fixture();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(location: &str) -> bool {
        HARNESS
            .with(|h| std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h.check_location(location, "t"))))
            .is_ok()
    }

    #[test]
    fn the_redirect_check_is_not_vacuous() {
        for ok in [
            "http://127.0.0.1:4000/callback?code=x&iss=y",
            "https://app.example.com/auth/callback?from=latchkey&code=x",
            "com.example.app:/oauth2redirect?error=e",
            "http://127.0.0.1:4000/",
            "/oauth2/authorize?x=1",
        ] {
            assert!(allowed(ok), "{ok}");
        }
        for bad in [
            "https://evil.example/",
            "//evil.example/callback",
            "http://127.0.0.1:4000/other",
            "http://127.0.0.1:4001/callback",
            "https://app.example.com/auth/callback?code=x",
            "http://user@127.0.0.1:4000/callback",
            "http://127.0.0.1:4000/callback#frag",
            "com.example.app:/elsewhere",
            "javascript:alert(1)",
        ] {
            assert!(!allowed(bad), "{bad}");
        }
    }

    #[test]
    fn placeholders_resolve() {
        HARNESS.with(|h| {
            let mut b =
                Bindings { harness: h, peer: "10.0.0.1".into(), codes: HashMap::new(), responses: HashMap::new() };
            let out = String::from_utf8(b.substitute(b"a=@CODE@&b=@CODE@&c=@NOPE@&d=@@&e=@USER@")).unwrap();
            let code = b.codes["CODE"].clone();
            assert_eq!(out, format!("a={code}&b={code}&c=@NOPE@&d=@@&e=alice"));
        });
    }
}
