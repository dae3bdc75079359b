//! CORS for browser apps: origins in `http.allowed_origins` plus the origins of every
//! registered redirect URI, credentials included. Only API endpoints are decorated;
//! the login page and the resolver never are (a cross-origin read of either is never
//! legitimate).

use bytes::Bytes;
use http::{Request, StatusCode};

use crate::config::Config;
use crate::request::header_text;
use crate::response::{Response, empty, set_header};

fn allowed<'a>(config: &Config, origin: Option<&'a str>) -> Option<&'a str> {
    origin.filter(|o| config.cors_origins.contains(*o))
}

/// Adds CORS headers when `origin` is allowed. `Vary: Origin` always, so a shared
/// cache never serves one origin's answer to another.
pub fn decorate(config: &Config, origin: Option<&str>, resp: &mut Response) {
    resp.headers_mut().append(http::header::VARY, http::HeaderValue::from_static("Origin"));
    if let Some(o) = allowed(config, origin) {
        set_header(resp, "access-control-allow-origin", o);
        set_header(resp, "access-control-allow-credentials", "true");
        set_header(resp, "access-control-expose-headers", "WWW-Authenticate, Retry-After");
    }
}

/// Answers a preflight request, without authentication (RFC 9110 / Fetch: preflights
/// carry no credentials). Headers are added by [`decorate`].
pub fn preflight(config: &Config, req: &Request<Bytes>) -> Response {
    let mut resp = empty(StatusCode::NO_CONTENT);
    let origin = header_text(req.headers(), "origin");
    let is_preflight = req.headers().contains_key("access-control-request-method");
    if is_preflight && allowed(config, origin).is_some() {
        set_header(&mut resp, "access-control-allow-methods", "GET, POST, OPTIONS");
        set_header(
            &mut resp,
            "access-control-allow-headers",
            "Authorization, Content-Type, DPoP, X-Authgear-SDK-Version",
        );
        set_header(&mut resp, "access-control-max-age", "600");
    }
    set_header(&mut resp, "allow", "GET, POST, OPTIONS");
    resp
}
