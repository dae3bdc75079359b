//! `/oauth2/userinfo` (OpenID Connect Core §5.3): a bearer access token, or the session
//! cookie when there is no `Authorization` header; revocation is honoured like the resolver.

use bytes::Bytes;
use http::{Request, StatusCode};
use latchkey_store::Store;
use serde_json::json;

use crate::App;
use crate::error::ApiError;
use crate::request::{Authorization, Params, authorization, is_form};
use crate::response::{Response, json, no_store};
use crate::session::{BearerSession, CookieSession};

impl<S: Store> App<S> {
    pub(crate) async fn userinfo(&self, req: &Request<Bytes>) -> Result<Response, ApiError> {
        // No parameter is used, but malformed ones are still refused: one parser, one
        // answer for bad input on every endpoint.
        Params::parse(req.uri().query().unwrap_or_default().as_bytes())?;
        if !req.body().is_empty() {
            if !is_form(req.headers()) {
                return Err(ApiError::InvalidRequest("the body must be application/x-www-form-urlencoded".into()));
            }
            Params::parse(req.body())?;
        }
        let (user, profile) = match authorization(req.headers()) {
            Authorization::Bearer(token) => {
                let BearerSession::Valid(verified, session, user) = self.bearer_session(token).await? else {
                    return Err(ApiError::InvalidToken("the access token is invalid, expired or revoked".into()));
                };
                self.record_use(&session, self.now()).await?;
                (user, verified.claims.scope.split(' ').any(|s| s == "profile"))
            }
            // Cookie-based apps (Authgear's SDK in cookie mode) ask with the session cookie;
            // CORS lets only allowed origins read the answer.
            Authorization::None => match self.cookie_session(req.headers()).await? {
                CookieSession::Valid(session, user) => {
                    self.record_use(&session, self.now()).await?;
                    (user, false)
                }
                CookieSession::Invalid => {
                    return Err(ApiError::InvalidToken("the session is invalid or expired".into()));
                }
                CookieSession::Absent => return Err(ApiError::MissingToken),
            },
            _ => {
                return Err(ApiError::InvalidToken("the Authorization header must be a Bearer token".into()));
            }
        };
        let mut body = json!({
            "sub": user.id,
            "https://authgear.com/claims/user/is_anonymous": false,
            "https://authgear.com/claims/user/is_verified": user.is_verified,
            "https://authgear.com/claims/user/can_reauthenticate": true,
            "https://authgear.com/claims/user/roles": user.roles,
        });
        if profile {
            body["preferred_username"] = json!(user.username);
        }
        Ok(no_store(json(StatusCode::OK, &body)))
    }
}
