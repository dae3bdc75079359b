//! `/_resolver/resolve`: forward auth for reverse proxies and backends, per the
//! resolver contract in DESIGN.md (Authgear-compatible headers).
//!
//! A bearer token, when present, decides alone (no fallback to the cookie: a request
//! carrying a bad token is not silently upgraded by a cookie). Each answer is computed
//! from the store, so a revocation is seen by the very next request. The only write
//! is the last-use stamp, at most once a minute per session.

use bytes::Bytes;
use http::{Request, StatusCode};
use latchkey_store::{Session, Store, User};

use crate::App;
use crate::error::ApiError;
use crate::request::{Authorization, Params, authorization};
use crate::response::{Response, add_cookie, empty, set_header, set_outcome};
use crate::session::{BearerSession, CookieSession};

// Short-lived return values; boxing would cost more than it saves.
#[allow(clippy::large_enum_variant, reason = "short-lived return value; the size difference depends on the target")]
enum Outcome {
    Anonymous,
    Invalid { clear_cookie: bool },
    Valid(Session, User),
}

impl<S: Store> App<S> {
    pub(crate) async fn resolve(&self, req: &Request<Bytes>) -> Result<Response, ApiError> {
        let query = Params::parse(req.uri().query().unwrap_or_default().as_bytes())?;
        let strict = match query.get("strict") {
            Some("true" | "1") => true,
            Some("false" | "0") => false,
            Some(_) => {
                return Err(ApiError::InvalidRequest("strict must be true or false".into()));
            }
            None => self.config.resolver.strict,
        };
        let outcome = match authorization(req.headers()) {
            Authorization::Bearer(token) => match self.bearer_session(token).await? {
                BearerSession::Valid(_, session, user) => Outcome::Valid(session, user),
                BearerSession::Invalid => Outcome::Invalid { clear_cookie: false },
            },
            _ => match self.cookie_session(req.headers()).await? {
                CookieSession::Valid(session, user) => Outcome::Valid(session, user),
                CookieSession::Invalid => Outcome::Invalid { clear_cookie: true },
                CookieSession::Absent => Outcome::Anonymous,
            },
        };
        let mut resp = empty(StatusCode::OK);
        let label = match &outcome {
            Outcome::Valid(..) => "resolve_valid",
            Outcome::Invalid { .. } => "resolve_invalid",
            Outcome::Anonymous => "resolve_anonymous",
        };
        match outcome {
            Outcome::Valid(session, user) => {
                self.record_use(&session, self.now()).await?;
                set_header(&mut resp, "x-authgear-session-valid", "true");
                set_header(&mut resp, "x-authgear-user-id", &user.id);
                set_header(&mut resp, "x-authgear-user-anonymous", "false");
                set_header(&mut resp, "x-authgear-user-verified", if user.is_verified { "true" } else { "false" });
                set_header(&mut resp, "x-authgear-user-can-reauthenticate", "true");
                if !user.roles.is_empty() {
                    set_header(&mut resp, "x-authgear-user-roles", &user.roles.join(","));
                }
                set_header(&mut resp, "x-authgear-session-amr", &session.amr.join(" "));
                set_header(&mut resp, "x-authgear-session-authenticated-at", &session.authenticated_at.to_string());
            }
            Outcome::Invalid { clear_cookie } => {
                if strict {
                    resp = empty(StatusCode::UNAUTHORIZED);
                    set_header(&mut resp, "www-authenticate", "Bearer realm=\"latchkey\", error=\"invalid_token\"");
                }
                set_header(&mut resp, "x-authgear-session-valid", "false");
                if clear_cookie {
                    add_cookie(&mut resp, &self.clear_session_cookie());
                }
            }
            Outcome::Anonymous if strict => {
                resp = empty(StatusCode::UNAUTHORIZED);
                set_header(&mut resp, "www-authenticate", "Bearer realm=\"latchkey\"");
            }
            Outcome::Anonymous => {}
        }
        set_header(&mut resp, "cache-control", "no-store");
        set_outcome(&mut resp, label);
        Ok(resp)
    }
}
