//! A minimal axum backend that accepts Latchkey access tokens, in the two ways Latchkey
//! offers, side by side:
//!
//! * **Local verification** (`GET /api/me`): the JWT is checked against the issuer's
//!   JWKS, cached in process ([`keys`], [`token`]). No request to the issuer per call,
//!   but a revoked session's token keeps passing until its `exp` (Latchkey's
//!   `access_token_lifetime_seconds`, 30 minutes by default).
//! * **Resolver** (`GET /api/sensitive`): the same local check, then
//!   `GET {issuer}/_resolver/resolve` with the request's `Authorization` header, which
//!   reads the session from the store, so a revocation is refused on the very next
//!   request. One round trip per call; if the resolver cannot be reached the answer is
//!   503, never "allowed".
//!
//! `GET /api/public` needs nothing.
//!
//! Security invariants this crate keeps: a token is never accepted without a signature
//! check by a key the issuer publishes, with that key's algorithm; the `kid` of an
//! unauthenticated token can trigger at most one JWKS request per cooldown; an
//! unreachable issuer means 503, never success.
//!
//! The wiring is in [`router`]; `main.rs` only parses flags and serves.

use std::sync::Arc;

use axum::routing::get;
use axum::{Extension, Json, Router, middleware};
use serde_json::{Value, json};

pub mod auth;
pub mod issuer;
pub mod keys;
pub mod token;

use auth::{LiveSession, require_access_token, require_live_session};
use issuer::{HttpJwks, Issuer};
use token::{AccessToken, Verifier};

/// Shared by every request.
pub struct AppState {
    pub issuer: Issuer,
    pub verifier: Verifier<HttpJwks>,
}

/// The application's routes, each with its middlewares.
pub fn router(state: Arc<AppState>) -> Router {
    let access_token = middleware::from_fn_with_state(state.clone(), require_access_token);
    let live_session = middleware::from_fn_with_state(state.clone(), require_live_session);
    Router::new()
        .route("/api/public", get(public))
        .route("/api/me", get(me).route_layer(access_token.clone()))
        // The layer added last runs first: the token is verified locally before the
        // resolver is asked.
        .route("/api/sensitive", get(sensitive).route_layer(live_session).route_layer(access_token))
        .with_state(state)
}

async fn public() -> Json<Value> {
    Json(json!({"message": "anyone may read this"}))
}

/// Locally verified: fast, but still answers for a revoked session until the token
/// expires.
async fn me(Extension(token): Extension<AccessToken>) -> Json<Value> {
    Json(json!({
        "sub": token.sub,
        "sid": token.sid,
        "roles": token.roles,
        "scope": token.scope,
        "expires_at": token.expires_at,
        "checked_by": "jwt",
    }))
}

/// Confirmed by the resolver on this very request.
async fn sensitive(
    Extension(token): Extension<AccessToken>,
    Extension(session): Extension<LiveSession>,
) -> Json<Value> {
    Json(json!({
        "sub": session.user_id,
        "sid": token.sid,
        // the resolver's roles are current; the token's are as of its issue time
        "roles": session.roles,
        "checked_by": "resolver",
    }))
}
