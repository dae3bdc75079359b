//! The runtime-neutral HTTP layer of Latchkey: one handler per endpoint,
//! `http::Request<Bytes>` in, `http::Response<Bytes>` out.
//!
//! [`App::handle`] routes a request, parses it strictly ([`request`]), asks
//! `latchkey-token` for every decision and a [`Store`] for state, and maps every error
//! to HTTP in one place ([`error`]). It never touches a socket, the clock or the OS
//! random source: runtime adapters (the local server, Lambda, Workers) turn their
//! platform's request into an `http::Request`, pass a [`Clock`] and an [`Entropy`]
//! in, and send the response back. Nothing here is `Send`-bound, so the same code runs
//! on Workers' single-threaded executor. It must never log a token, cookie, code or
//! password.

pub mod admin;
pub mod audit;
mod authorize;
pub mod config;
mod cors;
mod discovery;
mod end_session;
pub mod error;
pub mod html;
pub mod keyring;
mod limits;
pub mod request;
mod resolve;
pub mod response;
mod revoke;
mod session;
mod token;
mod userinfo;
mod verified_cache;

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use latchkey_store::Store;
use latchkey_token::keys::KeySet;
use latchkey_token::{Clock, Entropy, UnixSeconds};

pub use config::{Config, ConfigError, Secrets, parse_config, parse_secrets};
pub use request::MAX_BODY_BYTES;
pub use response::Response;

use error::{ApiError, PageError};

/// The peer address of a request, set by the runtime adapter as a request extension.
/// Recorded on new sessions; never trusted for anything else.
#[derive(Debug, Clone)]
pub struct ClientAddr(pub String);

/// Everything an endpoint needs: configuration, keys, the store and the runtime's
/// clock and randomness.
pub struct App<S> {
    config: Arc<Config>,
    keys: keyring::KeySource,
    store: S,
    clock: Box<dyn Clock>,
    entropy: Box<dyn Entropy>,
    verified: verified_cache::VerifiedCache,
    /// SHA-256 (hex) of each admin API key.
    admin_key_hashes: Vec<String>,
    /// The public keys of operators' admin JWTs. With neither, the admin API is off.
    admin_jwt_keys: Arc<latchkey_token::admin_jwt::AdminJwtKeys>,
    /// Checks bearer tokens' signatures where the runtime has a faster check than the
    /// token crate's own (WebCrypto on Workers); `None`: the token crate's.
    signature_checker: Option<Box<dyn latchkey_token::jwt::SignatureChecker>>,
    /// Request ids are this instance's random prefix and a counter: unique without a
    /// random draw per request (ids need to be distinct, not secret).
    request_id_prefix: u64,
    requests: std::cell::Cell<u64>,
    /// Numbers audit events, so two of one request have distinct cursors.
    audit_counter: std::cell::Cell<u64>,
}

/// The header that carries the request id, in and out (see [`App::handle`]).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// How a route answers errors.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Api,
    Page,
}

impl<S: Store> App<S> {
    /// Builds the application.
    pub fn new(
        config: Arc<Config>,
        keys: Arc<KeySet>,
        store: S,
        clock: Box<dyn Clock>,
        entropy: Box<dyn Entropy>,
    ) -> Self {
        let mut prefix = [0u8; 8];
        entropy.fill(&mut prefix);
        let keys = keyring::KeySource::new(keys, Vec::new(), config.keys.cache_seconds);
        App {
            request_id_prefix: u64::from_be_bytes(prefix),
            requests: std::cell::Cell::new(0),
            audit_counter: std::cell::Cell::new(0),
            config,
            keys,
            store,
            clock,
            entropy,
            verified: Default::default(),
            admin_key_hashes: Vec::new(),
            admin_jwt_keys: Default::default(),
            signature_checker: None,
        }
    }

    /// Has bearer tokens' signatures checked by `checker` (header and claim checks stay
    /// in the token crate).
    pub fn with_signature_checker(mut self, checker: Box<dyn latchkey_token::jwt::SignatureChecker>) -> Self {
        self.signature_checker = Some(checker);
        self
    }

    /// Turns the admin API (`/_api/admin/`, see [`admin`](crate::admin)) on for requests
    /// that present a key whose SHA-256 (hex) is one of `hashes`; none leaves it off.
    pub fn with_admin_key_hashes(mut self, hashes: impl IntoIterator<Item = String>) -> Self {
        self.admin_key_hashes.extend(hashes.into_iter().map(|h| h.to_ascii_lowercase()));
        self
    }

    /// Also accepts operators' short-lived JWTs signed by the private halves of these
    /// keys (the secrets' `admin.jwt_keys`; see `latchkey_token::admin_jwt`).
    pub fn with_admin_jwt_keys(mut self, keys: Arc<latchkey_token::admin_jwt::AdminJwtKeys>) -> Self {
        self.admin_jwt_keys = keys;
        self
    }

    /// Gives the secrets document's keys as private JWKs, which seed the key ring in
    /// the store at the first rotation (without them, rotation is refused).
    pub fn with_seed_private_jwks(mut self, jwks: Vec<serde_json::Value>) -> Self {
        self.keys = self.keys.with_seed_jwks(jwks);
        self
    }

    /// The key set now: the stored key ring's, or the secrets document's before the
    /// first rotation (see [`keyring`]).
    pub(crate) async fn keys(&self) -> Result<Arc<KeySet>, latchkey_store::StoreError> {
        self.keys.current(&self.store, self.now()).await
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    pub(crate) fn now(&self) -> UnixSeconds {
        self.clock.now()
    }

    /// Answers one request. Never panics on any input; every failure is a response.
    pub async fn handle(&self, mut req: Request<Bytes>) -> Response {
        let request_id = self.request_id(req.headers());
        req.extensions_mut().insert(audit::RequestId(request_id.clone()));
        let span = tracing::info_span!("request", request_id = %request_id);
        let mut resp = tracing::Instrument::instrument(self.handle_in_span(req), span).await;
        response::set_header(&mut resp, REQUEST_ID_HEADER, &request_id);
        resp
    }

    /// The request's id: the caller's `X-Request-Id` when it is a plain token (1 to 128
    /// letters, digits, `-`, `_`, `.`, `:`), so a proxy's id (nginx's `$request_id`,
    /// Traefik's, a load balancer's) follows the request into our logs; otherwise a new
    /// one. Anything else is replaced rather than logged, so no header can forge a log
    /// line.
    fn request_id(&self, headers: &http::HeaderMap) -> String {
        let given = request::header_text(headers, REQUEST_ID_HEADER).filter(|id| {
            (1..=128).contains(&id.len())
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        });
        match given {
            Some(id) => id.to_owned(),
            None => {
                let n = self.requests.get().wrapping_add(1);
                self.requests.set(n);
                format!("{:016x}-{n:x}", self.request_id_prefix)
            }
        }
    }

    async fn handle_in_span(&self, req: Request<Bytes>) -> Response {
        let path = req.uri().path().to_owned();
        let (kind, cors) = match path.as_str() {
            "/oauth2/authorize" | "/oauth2/end_session" => (Kind::Page, false),
            "/_resolver/resolve" | "/healthz" => (Kind::Api, false),
            // Operators' tools, not browsers: no CORS.
            p if p.starts_with("/_api/admin/") => (Kind::Api, false),
            _ => (Kind::Api, true),
        };
        let origin = request::header_text(req.headers(), "origin").map(str::to_owned);
        let mut resp = if req.body().len() > MAX_BODY_BYTES {
            match kind {
                Kind::Api => ApiError::PayloadTooLarge.response(),
                Kind::Page => PageError::PayloadTooLarge.response(&self.config.ui),
            }
        } else if cors && req.method() == Method::OPTIONS && known_api_path(&path) {
            cors::preflight(&self.config, &req)
        } else {
            self.route(&path, req).await
        };
        if cors {
            cors::decorate(&self.config, origin.as_deref(), &mut resp);
        }
        response::set_header(&mut resp, "x-content-type-options", "nosniff");
        resp
    }

    async fn route(&self, path: &str, req: Request<Bytes>) -> Response {
        let method = req.method().clone();
        let api_method = |allow: &'static str, ok: bool| (!ok).then(|| ApiError::MethodNotAllowed(allow).response());
        match path {
            "/.well-known/openid-configuration" | "/.well-known/oauth-authorization-server" => {
                match api_method("GET, HEAD, OPTIONS", is_get(&method)) {
                    Some(r) => r,
                    None => self
                        .keys()
                        .await
                        .map_or_else(|e| ApiError::from(e).response(), |k| discovery::discovery(self, &k)),
                }
            }
            "/oauth2/jwks" => match api_method("GET, HEAD, OPTIONS", is_get(&method)) {
                Some(r) => r,
                None => self.keys().await.map_or_else(|e| ApiError::from(e).response(), |k| discovery::jwks(&k)),
            },
            "/oauth2/token" => match api_method("POST, OPTIONS", method == Method::POST) {
                Some(r) => r,
                None => self.token(&req).await.unwrap_or_else(|e| e.response()),
            },
            "/oauth2/revoke" => match api_method("POST, OPTIONS", method == Method::POST) {
                Some(r) => r,
                None => self.revoke(&req).await.unwrap_or_else(|e| e.response()),
            },
            "/oauth2/userinfo" => {
                match api_method("GET, POST, OPTIONS", method == Method::GET || method == Method::POST) {
                    Some(r) => r,
                    None => self.userinfo(&req).await.unwrap_or_else(|e| e.response()),
                }
            }
            "/_resolver/resolve" => match api_method("GET, HEAD", is_get(&method)) {
                Some(r) => r,
                None => self.resolve(&req).await.unwrap_or_else(|e| e.response()),
            },
            "/oauth2/authorize" => {
                if method != Method::GET && method != Method::POST {
                    return PageError::MethodNotAllowed("GET, POST").response(&self.config.ui);
                }
                self.authorize(&req).await.unwrap_or_else(|e| e.response(&self.config.ui))
            }
            "/oauth2/end_session" => {
                if method != Method::GET && method != Method::POST {
                    return PageError::MethodNotAllowed("GET, POST").response(&self.config.ui);
                }
                self.end_session(&req).await.unwrap_or_else(|e| e.response(&self.config.ui))
            }
            "/healthz" => match api_method("GET, HEAD", is_get(&method)) {
                Some(r) => r,
                None => match self.store.session("healthz-probe").await {
                    Ok(_) => response::json(StatusCode::OK, &serde_json::json!({ "status": "ok" })),
                    Err(e) => ApiError::from(e).response(),
                },
            },
            "/openapi.yaml" => match api_method("GET, HEAD", is_get(&method)) {
                Some(r) => r,
                None => {
                    let mut resp = response::empty(StatusCode::OK);
                    *resp.body_mut() = Bytes::from_static(OPENAPI.as_bytes());
                    response::set_header(&mut resp, "content-type", "application/yaml");
                    resp
                }
            },
            p if p.starts_with("/_api/admin/") => self.admin(p, &req).await.unwrap_or_else(|e| e.response()),
            _ => ApiError::NotFound.response(),
        }
    }
}

/// The OpenAPI 3.1 description of every endpoint, served at `/openapi.yaml`.
pub const OPENAPI: &str = include_str!("../openapi.yaml");

fn is_get(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

fn known_api_path(path: &str) -> bool {
    matches!(
        path,
        "/.well-known/openid-configuration"
            | "/.well-known/oauth-authorization-server"
            | "/oauth2/jwks"
            | "/oauth2/token"
            | "/oauth2/revoke"
            | "/oauth2/userinfo"
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_openapi_document_describes_every_route() {
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(super::OPENAPI).unwrap();
        assert_eq!(doc["openapi"].as_str(), Some("3.1.0"));
        let paths = doc["paths"].as_mapping().unwrap();
        for p in [
            "/.well-known/openid-configuration",
            "/.well-known/oauth-authorization-server",
            "/oauth2/jwks",
            "/oauth2/authorize",
            "/oauth2/token",
            "/oauth2/revoke",
            "/oauth2/userinfo",
            "/oauth2/end_session",
            "/_resolver/resolve",
            "/healthz",
            "/openapi.yaml",
            "/_api/admin/users",
            "/_api/admin/users/import",
            "/_api/admin/users/{id}",
            "/_api/admin/users/{id}/sessions",
            "/_api/admin/sessions/{id}/revoke",
            "/_api/admin/audit",
            "/_api/admin/keys",
            "/_api/admin/keys/rotate",
        ] {
            assert!(paths.contains_key(p), "{p} is missing from openapi.yaml");
        }
    }
}
