//! The two axum middlewares: local token verification, and the resolver check.
//!
//! ```text
//! require_access_token   Authorization: Bearer <JWT> checked locally (JWKS, no request
//!                        to the issuer while the kid is known); puts an AccessToken into
//!                        the request extensions. 401 / 503.
//! require_live_session   after require_access_token: asks the resolver whether the
//!                        session is still alive; puts a LiveSession into the
//!                        extensions. 401 when revoked, 503 when the resolver cannot
//!                        be asked.
//! ```

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use crate::AppState;
use crate::issuer::Resolution;
use crate::token::{AccessToken, TokenError};

/// What the resolver confirmed for this request (only on routes behind
/// [`require_live_session`]).
#[derive(Clone, Debug, Serialize)]
pub struct LiveSession {
    pub user_id: String,
    pub roles: Vec<String>,
}

/// Verify `Authorization: Bearer` locally; on success the handler finds an
/// [`AccessToken`] in the request extensions.
pub async fn require_access_token(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    let token = match bearer_token(request.headers()) {
        Bearer::Missing => return missing_token(),
        Bearer::Malformed => return invalid_token("malformed Authorization header"),
        Bearer::Token(token) => token,
    };
    match state.verifier.verify(token).await {
        Ok(access_token) => {
            request.extensions_mut().insert(access_token);
            next.run(request).await
        }
        Err(TokenError::Invalid(reason)) => invalid_token(&reason),
        Err(TokenError::KeysUnavailable) => unavailable("the issuer's keys cannot be fetched"),
    }
}

/// Ask the resolver about the request's own bearer token; refuse unless it answers
/// `X-Authgear-Session-Valid: true` for the same user. Must run after
/// [`require_access_token`] (garbage never reaches the issuer, and the user id is
/// cross-checked).
pub async fn require_live_session(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    let (Some(access_token), Some(authorization)) =
        (request.extensions().get::<AccessToken>(), request.headers().get(AUTHORIZATION))
    else {
        // A wiring mistake, not the client's: refuse, loudly.
        tracing::error!("require_live_session runs without require_access_token before it");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    match state.issuer.resolve(authorization).await {
        Ok(Resolution::Valid { user_id, roles }) if user_id == access_token.sub => {
            request.extensions_mut().insert(LiveSession { user_id, roles });
            next.run(request).await
        }
        Ok(Resolution::Valid { user_id, .. }) => {
            tracing::warn!(token_sub = %access_token.sub, resolver_user = %user_id, "resolver and token disagree on the user");
            invalid_token("resolver and token disagree on the user")
        }
        Ok(Resolution::NotValid) => invalid_token("the resolver says the session is not valid"),
        Err(e) => {
            // Never fall back to "allow": the point of this route is revocation.
            tracing::warn!(error = %e, "resolver unavailable");
            unavailable("the session cannot be checked right now")
        }
    }
}

enum Bearer<'a> {
    Missing,
    Malformed,
    Token(&'a str),
}

fn bearer_token(headers: &HeaderMap) -> Bearer<'_> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return if headers.contains_key(AUTHORIZATION) { Bearer::Malformed } else { Bearer::Missing };
    };
    let Ok(value) = value.to_str() else { return Bearer::Malformed };
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    // RFC 6750 3.1: another scheme (Basic, ...) counts as no credential at all.
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Bearer::Missing;
    }
    // RFC 6750 2.1: the scheme is case-insensitive; the token is one b64token.
    if token.is_empty() || token.contains(' ') {
        return Bearer::Malformed;
    }
    Bearer::Token(token)
}

/// RFC 6750 3.1: a request without credentials gets no error code.
fn missing_token() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
        Json(json!({"error": "unauthorized", "error_description": "a Bearer access token is required"})),
    )
        .into_response()
}

/// The reason goes to the log only: clients learn nothing about why.
fn invalid_token(reason: &str) -> Response {
    tracing::debug!(reason, "refused a bearer token");
    (
        StatusCode::UNAUTHORIZED,
        [(WWW_AUTHENTICATE, HeaderValue::from_static(r#"Bearer error="invalid_token""#))],
        Json(json!({"error": "invalid_token"})),
    )
        .into_response()
}

fn unavailable(description: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(RETRY_AFTER, HeaderValue::from_static("5"))],
        Json(json!({"error": "temporarily_unavailable", "error_description": description})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(values: &[&str]) -> Option<String> {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        match bearer_token(&headers) {
            Bearer::Token(t) => Some(t.to_string()),
            Bearer::Missing => Some("<missing>".to_string()),
            Bearer::Malformed => None,
        }
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(parse(&[]).as_deref(), Some("<missing>"));
        assert_eq!(parse(&["Bearer abc.def.ghi"]).as_deref(), Some("abc.def.ghi"));
        assert_eq!(parse(&["bearer abc"]).as_deref(), Some("abc"));
        assert_eq!(parse(&["Basic Zm9vOmJhcg=="]).as_deref(), Some("<missing>"), "another scheme");
        assert_eq!(parse(&["Negotiate"]).as_deref(), Some("<missing>"), "another scheme");
        assert_eq!(parse(&["Bearer"]), None);
        assert_eq!(parse(&["Bearer "]), None);
        assert_eq!(parse(&["Bearer a b"]), None);
        assert_eq!(parse(&["Bearer a", "Bearer b"]), None, "two Authorization headers");
    }
}
