//! `/oauth2/revoke` (RFC 7009).
//!
//! What a revocation revokes: a refresh token revokes its token session; an access
//! token (a JWT we signed, not expired) revokes the token session named by its `sid`,
//! which also kills the refresh token issued with it, so the resolver and userinfo stop
//! accepting every access token of that session at once. (Locally verified JWTs live
//! until `exp`: that is what the access-token lifetime is for.) Unknown tokens, and
//! tokens of a client other than the authenticated one, are a no-op answered 200.

use bytes::Bytes;
use http::{Request, StatusCode};
use latchkey_store::{SessionKind, Store};
use latchkey_token::secret::{CompoundToken, constant_time_eq};

use crate::App;
use crate::audit::About;
use crate::error::ApiError;
use crate::request::{Params, is_form};
use crate::response::{Response, empty, no_store};

impl<S: Store> App<S> {
    pub(crate) async fn revoke(&self, req: &Request<Bytes>) -> Result<Response, ApiError> {
        if !is_form(req.headers()) {
            return Err(ApiError::InvalidRequest("the body must be application/x-www-form-urlencoded".into()));
        }
        let params = Params::parse(req.body())?;
        let client = self.authenticate_client(req.headers(), &params)?;
        let token = params.get("token").ok_or_else(|| ApiError::InvalidRequest("token is required".into()))?;
        let now = self.now();
        let belongs = |session_client: Option<&str>| client.is_none_or(|c| session_client == Some(c.id.as_str()));
        if let Some(rt) = CompoundToken::parse(token) {
            if let Some(session) = self.store.session(rt.id).await? {
                let hash = rt.hash();
                let matches = session.refresh.as_ref().is_some_and(|st| {
                    constant_time_eq(&st.current, &hash)
                        | st.previous.as_deref().is_some_and(|p| constant_time_eq(p, &hash))
                });
                if session.kind == SessionKind::Token && matches && belongs(session.client_id.as_deref()) {
                    self.store.revoke_session(&session.id, now).await?;
                    tracing::info!(user_id = %session.user_id, "session revoked by refresh token");
                    let about = About {
                        client_id: session.client_id.as_deref(),
                        user_id: Some(&session.user_id),
                        detail: Some("by its refresh token".into()),
                    };
                    self.audit(req, "session.revoked", about).await;
                }
            }
        } else if let Ok(verified) = self.keys().await?.verify_access_token(token, &self.access_expectations())
            && let Some(sid) = verified.claims.sid.as_deref()
            && belongs(Some(verified.claims.client_id.as_str()))
        {
            self.store.revoke_session(sid, now).await?;
            tracing::info!(user_id = %verified.subject, "session revoked by access token");
            let about = About {
                client_id: Some(&verified.claims.client_id),
                user_id: Some(&verified.subject),
                detail: Some("by an access token".into()),
            };
            self.audit(req, "session.revoked", about).await;
        }
        Ok(no_store(empty(StatusCode::OK)))
    }
}
