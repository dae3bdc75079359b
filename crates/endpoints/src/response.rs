//! Response builders. Headers every response of a kind must carry are set here, once.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, LOCATION, PRAGMA};
use http::{HeaderName, StatusCode};

/// The response type of every endpoint.
pub type Response = http::Response<Bytes>;

/// What a request came to, beyond its status, for the runtime adapters' metrics and
/// access lines: set on the response (an extension) where it is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome(pub &'static str);

/// Every outcome a response can carry.
pub const OUTCOMES: &[&str] = &[
    "resolve_valid",
    "resolve_invalid",
    "resolve_anonymous",
    "refresh_reuse_detected",
    "rate_limited",
    "store_error",
    "unavailable",
];

/// Marks `resp` with an outcome of [`OUTCOMES`].
pub fn set_outcome(resp: &mut Response, outcome: &'static str) {
    resp.extensions_mut().insert(Outcome(outcome));
}

/// The outcome `resp` carries, if any.
pub fn outcome(resp: &Response) -> Option<&'static str> {
    resp.extensions().get::<Outcome>().map(|o| o.0)
}

/// Every endpoint, as metrics label it (the admin API is one); other paths are `other`.
pub const ENDPOINTS: &[&str] = &[
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
    "/_api/admin/",
    "other",
];

/// The [`ENDPOINTS`] label of `path`.
pub fn endpoint_label(path: &str) -> &'static str {
    if path.starts_with("/_api/admin/") {
        return "/_api/admin/";
    }
    ENDPOINTS.iter().find(|e| **e == path).copied().unwrap_or("other")
}

fn with_body(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response {
    let mut resp = http::Response::new(body.into());
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A JSON response.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    with_body(status, "application/json", value.to_string())
}

/// Marks a response as never to be cached (token responses, RFC 6749 §5.1).
pub fn no_store(mut resp: Response) -> Response {
    resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut().insert(PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

/// An HTML page with the browser-facing security headers: no caching, no framing,
/// no scripts, no referrer leaking the authorization request.
pub fn html(status: StatusCode, body: String) -> Response {
    let mut resp = no_store(with_body(status, "text/html; charset=utf-8", body));
    let h = resp.headers_mut();
    h.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https:; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(HeaderName::from_static("x-frame-options"), HeaderValue::from_static("DENY"));
    h.insert(HeaderName::from_static("referrer-policy"), HeaderValue::from_static("no-referrer"));
    resp
}

/// A 302 redirect. `location` must already be a valid, checked URL.
pub fn redirect(location: &str) -> Response {
    let mut resp = no_store(with_body(StatusCode::FOUND, "text/plain; charset=utf-8", Bytes::new()));
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(LOCATION, v);
    }
    resp.headers_mut().insert(HeaderName::from_static("referrer-policy"), HeaderValue::from_static("no-referrer"));
    resp
}

/// A response with no body.
pub fn empty(status: StatusCode) -> Response {
    let mut resp = http::Response::new(Bytes::new());
    *resp.status_mut() = status;
    resp
}

/// Adds a header, ignoring values that are not valid header text (never the case for
/// the values this crate builds; the check keeps it panic-free).
pub fn set_header(resp: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(HeaderName::from_static(name), v);
    }
}

/// Appends a `Set-Cookie` header.
pub fn add_cookie(resp: &mut Response, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        resp.headers_mut().append(http::header::SET_COOKIE, v);
    }
}
