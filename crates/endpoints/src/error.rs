//! The one place where errors become HTTP responses.
//!
//! API endpoints answer RFC 6749 §5.2 JSON (`error`, `error_description`); browser
//! endpoints (`/oauth2/authorize`, `/oauth2/end_session`) answer an HTML page. A store
//! failure is 503 with `Retry-After` on both, never a "valid" answer and never a 500.

use http::StatusCode;
use latchkey_store::StoreError;
use serde_json::json;

use crate::config::UiConfig;
use crate::html;
use crate::request::BadParams;
use crate::response::{Response, html, json, no_store, set_header, set_outcome};

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECONDS: &str = "1";

/// An error of an API (JSON) endpoint, named after its RFC error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// RFC 6749 §5.2 `invalid_request`.
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// RFC 6749 §5.2 `invalid_client` (401). `basic`: the client tried HTTP Basic,
    /// so the answer carries `WWW-Authenticate: Basic`.
    #[error("invalid_client: {description}")]
    InvalidClient {
        /// Why.
        description: String,
        /// Whether Basic authentication was attempted.
        basic: bool,
    },
    /// RFC 6749 §5.2 `invalid_grant`.
    #[error("invalid_grant: {0}")]
    InvalidGrant(String),
    /// RFC 6749 §5.2 `unauthorized_client`.
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(String),
    /// RFC 6749 §5.2 `unsupported_grant_type`.
    #[error("unsupported_grant_type: {0}")]
    UnsupportedGrantType(String),
    /// RFC 6749 §5.2 `invalid_scope`.
    #[error("invalid_scope: {0}")]
    InvalidScope(String),
    /// RFC 6750 §3.1 `invalid_token` (401 with `WWW-Authenticate: Bearer`).
    #[error("invalid_token: {0}")]
    InvalidToken(String),
    /// RFC 6750 §3.1: no credential at all (401, no error code in the challenge).
    #[error("missing bearer token")]
    MissingToken,
    /// Body over the limit (413).
    #[error("request body too large")]
    PayloadTooLarge,
    /// Unknown path (404).
    #[error("not found")]
    NotFound,
    /// A resource of the admin API does not exist (404); the text says which
    /// ("no such user").
    #[error("{0}")]
    NoSuchResource(&'static str),
    /// The resource exists already (409).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Wrong method (405) with the allowed ones.
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    /// The store did not answer (503, `temporarily_unavailable`).
    #[error("temporarily_unavailable: {0}")]
    Unavailable(String),
    /// A rate limit was hit (429, Authgear's `x_rate_limited`), with `Retry-After` seconds.
    #[error("x_rate_limited")]
    RateLimited(u64),
    /// The store failed (503, as [`ApiError::Unavailable`]; counted apart in metrics).
    #[error("store unavailable")]
    StoreUnavailable,
    /// A retired refresh token was presented and its session revoked (400
    /// `invalid_grant`; counted apart in metrics).
    #[error("invalid_grant: refresh token reuse")]
    RefreshReuse,
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::warn!(error = %e, "store failure");
        ApiError::StoreUnavailable
    }
}

impl From<BadParams> for ApiError {
    fn from(e: BadParams) -> Self {
        ApiError::InvalidRequest(e.describe())
    }
}

fn body(code: &str, description: &str) -> serde_json::Value {
    json!({ "error": code, "error_description": description })
}

impl ApiError {
    /// The HTTP response for this error.
    pub fn response(&self) -> Response {
        let (status, code, description) = match self {
            ApiError::InvalidRequest(d) => (StatusCode::BAD_REQUEST, "invalid_request", d.as_str()),
            ApiError::InvalidClient { description, .. } => {
                (StatusCode::UNAUTHORIZED, "invalid_client", description.as_str())
            }
            ApiError::InvalidGrant(d) => (StatusCode::BAD_REQUEST, "invalid_grant", d.as_str()),
            ApiError::UnauthorizedClient(d) => (StatusCode::BAD_REQUEST, "unauthorized_client", d.as_str()),
            ApiError::UnsupportedGrantType(d) => (StatusCode::BAD_REQUEST, "unsupported_grant_type", d.as_str()),
            ApiError::InvalidScope(d) => (StatusCode::BAD_REQUEST, "invalid_scope", d.as_str()),
            ApiError::InvalidToken(d) => (StatusCode::UNAUTHORIZED, "invalid_token", d.as_str()),
            ApiError::MissingToken => (StatusCode::UNAUTHORIZED, "invalid_token", "an access token is required"),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", "request body too large"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found", "no such endpoint"),
            ApiError::NoSuchResource(what) => (StatusCode::NOT_FOUND, "not_found", *what),
            ApiError::Conflict(d) => (StatusCode::CONFLICT, "conflict", d.as_str()),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "invalid_request", "method not allowed"),
            ApiError::Unavailable(d) => (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", d.as_str()),
            ApiError::StoreUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the service is temporarily unavailable, retry later",
            ),
            ApiError::RefreshReuse => {
                (StatusCode::BAD_REQUEST, "invalid_grant", "refresh token reuse detected; the session has been revoked")
            }
            ApiError::RateLimited(_) => {
                (StatusCode::TOO_MANY_REQUESTS, "x_rate_limited", "rate limit exceeded, please try again later.")
            }
        };
        let mut resp = no_store(json(status, &body(code, description)));
        match self {
            ApiError::InvalidClient { basic: true, .. } => {
                set_header(&mut resp, "www-authenticate", "Basic realm=\"latchkey\"")
            }
            ApiError::InvalidToken(d) => set_header(
                &mut resp,
                "www-authenticate",
                &format!(
                    "Bearer realm=\"latchkey\", error=\"invalid_token\", error_description=\"{}\"",
                    d.replace('"', "'")
                ),
            ),
            ApiError::MissingToken => set_header(&mut resp, "www-authenticate", "Bearer realm=\"latchkey\""),
            ApiError::MethodNotAllowed(allow) => set_header(&mut resp, "allow", allow),
            ApiError::Unavailable(_) => {
                set_header(&mut resp, "retry-after", RETRY_AFTER_SECONDS);
                set_outcome(&mut resp, "unavailable");
            }
            ApiError::StoreUnavailable => {
                set_header(&mut resp, "retry-after", RETRY_AFTER_SECONDS);
                set_outcome(&mut resp, "store_error");
            }
            ApiError::RateLimited(retry) => {
                set_header(&mut resp, "retry-after", &retry.to_string());
                set_outcome(&mut resp, "rate_limited");
            }
            ApiError::RefreshReuse => set_outcome(&mut resp, "refresh_reuse_detected"),
            _ => {}
        }
        resp
    }
}

/// An error of a browser endpoint, shown as a page (never a redirect: the redirect
/// target is exactly what could not be trusted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// 400 with a message safe to show.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 405.
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    /// 413.
    #[error("request body too large")]
    PayloadTooLarge,
    /// 503.
    #[error("unavailable")]
    Unavailable,
    /// 503 because the store failed (counted apart in metrics).
    #[error("store unavailable")]
    StoreUnavailable,
    /// 429, with `Retry-After` seconds.
    #[error("too many attempts")]
    RateLimited(u64),
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        tracing::warn!(error = %e, "store failure");
        PageError::StoreUnavailable
    }
}

impl From<BadParams> for PageError {
    fn from(e: BadParams) -> Self {
        PageError::BadRequest(e.describe())
    }
}

impl PageError {
    /// The HTML response for this error.
    pub fn response(&self, ui: &UiConfig) -> Response {
        let (status, title, message) = match self {
            PageError::BadRequest(m) => (StatusCode::BAD_REQUEST, "Invalid request", m.as_str()),
            PageError::MethodNotAllowed(_) => {
                (StatusCode::METHOD_NOT_ALLOWED, "Method not allowed", "This page does not accept that method.")
            }
            PageError::PayloadTooLarge => {
                (StatusCode::PAYLOAD_TOO_LARGE, "Request too large", "The request was too large.")
            }
            PageError::Unavailable | PageError::StoreUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                "The service is temporarily unavailable. Please try again in a moment.",
            ),
            PageError::RateLimited(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts",
                "Too many sign-in attempts. Wait a little and try again.",
            ),
        };
        let mut resp = html(status, html::message_page(ui, title, message));
        match self {
            PageError::MethodNotAllowed(allow) => set_header(&mut resp, "allow", allow),
            PageError::Unavailable => {
                set_header(&mut resp, "retry-after", RETRY_AFTER_SECONDS);
                set_outcome(&mut resp, "unavailable");
            }
            PageError::StoreUnavailable => {
                set_header(&mut resp, "retry-after", RETRY_AFTER_SECONDS);
                set_outcome(&mut resp, "store_error");
            }
            PageError::RateLimited(retry) => {
                set_header(&mut resp, "retry-after", &retry.to_string());
                set_outcome(&mut resp, "rate_limited");
            }
            _ => {}
        }
        resp
    }
}
