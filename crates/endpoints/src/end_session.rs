//! `/oauth2/end_session` (OpenID Connect RP-Initiated Logout 1.0).
//!
//! A logout with a valid `id_token_hint` happens at once; without one it needs a
//! confirmation POST carrying the CSRF token, so a cross-site link cannot sign anyone
//! out. The redirect goes only to a `post_logout_redirect_uri` registered for the
//! client, never anywhere else (no open redirect). Logging out revokes the browser
//! session and every token session created from it.

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use latchkey_store::Store;
use latchkey_token::jwt::Expectations;
use url::Url;

use crate::App;
use crate::config::Client;
use crate::error::PageError;
use crate::html;
use crate::response::{Response, add_cookie, html, redirect};
use crate::session::CookieSession;

const CARRIED: &[&str] = &["id_token_hint", "post_logout_redirect_uri", "state", "client_id"];

impl<S: Store> App<S> {
    pub(crate) async fn end_session(&self, req: &Request<Bytes>) -> Result<Response, PageError> {
        let params = crate::request::page_params(req)?;
        let now = self.now();
        let hint = match params.get("id_token_hint") {
            Some(h) => {
                let expect = Expectations {
                    issuer: &self.config.issuer,
                    audience: None,
                    now,
                    // Logout hints may be expired ID tokens (RP-Initiated Logout §2).
                    tolerance_seconds: self.config.session.lifetime_seconds,
                };
                self.keys().await?.verify_id_token(h, &expect).ok()
            }
            None => None,
        };
        let client: Option<&Client> = match (params.get("client_id"), &hint) {
            (Some(id), hint) => {
                let c = self
                    .config
                    .client(id)
                    .ok_or_else(|| PageError::BadRequest("The application is not registered.".into()))?;
                if hint.as_ref().is_some_and(|h| !h.audiences.iter().any(|a| a == id)) {
                    return Err(PageError::BadRequest("The id_token_hint was not issued to this application.".into()));
                }
                Some(c)
            }
            (None, Some(h)) => h.audiences.iter().find_map(|a| self.config.client(a)),
            // No client named: accept a URI registered by any client (Authgear's SDK
            // in cookie mode sends only the URI). Still never an unregistered target.
            (None, None) => params.get("post_logout_redirect_uri").and_then(|uri| {
                self.config.clients.iter().find(|c| c.post_logout_redirect_uris.iter().any(|u| u == uri))
            }),
        };
        let target = match params.get("post_logout_redirect_uri") {
            Some(uri) => {
                let c = client.ok_or_else(|| {
                    PageError::BadRequest("The post_logout_redirect_uri is not registered for any application.".into())
                })?;
                if !c.post_logout_redirect_uris.iter().any(|u| u == uri) {
                    return Err(PageError::BadRequest(
                        "The post_logout_redirect_uri is not registered for this application.".into(),
                    ));
                }
                Some(uri)
            }
            None => None,
        };
        let cookie = self.cookie_session(req.headers()).await?;
        let confirmed = req.method() == Method::POST && params.get("confirm") == Some("yes");
        if confirmed && !self.csrf_ok(req.headers(), &params) {
            return Err(PageError::BadRequest("The sign-out form expired. Go back and try again.".into()));
        }
        if let (CookieSession::Valid(..), None, false) = (&cookie, &hint, confirmed) {
            let carried: Vec<(String, String)> =
                CARRIED.iter().filter_map(|n| params.get(n).map(|v| ((*n).to_owned(), v.to_owned()))).collect();
            let (csrf, set_cookie) = self.csrf_token(req.headers());
            let mut resp = html(StatusCode::OK, html::logout_confirm_page(&self.config.ui, &carried, &csrf));
            if let Some(c) = set_cookie {
                add_cookie(&mut resp, &c);
            }
            return Ok(resp);
        }
        if let Some(h) = &hint
            && let Some(session) = self.store.session(&h.claims.sid).await?
        {
            let root = session.parent_id.clone().unwrap_or(session.id.clone());
            self.store.revoke_session(&root, now).await?;
            self.store.revoke_session(&session.id, now).await?;
        }
        if let CookieSession::Valid(session, _) = &cookie {
            self.store.revoke_session(&session.id, now).await?;
            tracing::info!(user_id = %session.user_id, "signed out");
            let about = crate::audit::About {
                client_id: client.map(|c| c.id.as_str()),
                user_id: Some(&session.user_id),
                detail: None,
            };
            self.audit(req, "logout", about).await;
        }
        let mut resp = match target {
            Some(uri) => {
                let Ok(mut url) = Url::parse(uri) else {
                    return Err(PageError::BadRequest("The post_logout_redirect_uri is invalid.".into()));
                };
                if let Some(state) = params.get("state") {
                    url.query_pairs_mut().append_pair("state", state);
                }
                redirect(url.as_str())
            }
            None => {
                html(StatusCode::OK, html::message_page(&self.config.ui, "Signed out", "You have been signed out."))
            }
        };
        if !matches!(cookie, CookieSession::Absent) {
            add_cookie(&mut resp, &self.clear_session_cookie());
        }
        Ok(resp)
    }
}
