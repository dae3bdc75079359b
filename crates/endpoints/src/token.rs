//! `/oauth2/token` (RFC 6749 §3.2): authorization code (with PKCE), refresh token
//! (rotation with retry and reuse detection, see `latchkey_token::refresh`) and client
//! credentials.

use bytes::Bytes;
use http::{Request, StatusCode};
use latchkey_store::{Redemption, RefreshOutcome, SessionKind, Store, StoreError, refresh};
use latchkey_token::jwt::{AccessClaims, Registered};
use latchkey_token::pkce;
use latchkey_token::secret::{CompoundToken, new_compound, random_secret, random_uuid, sha256_hex};
use serde_json::json;
use url::Url;

use crate::App;
use crate::audit::About;
use crate::config::{Client, GrantType};
use crate::error::ApiError;
use crate::request::{Params, is_form};
use crate::response::{Response, json, no_store};
use crate::session::IssuedTokens;
use crate::session::NewTokenSession;

fn token_response(t: &IssuedTokens) -> Response {
    no_store(json(StatusCode::OK, &token_body(t)))
}

/// The token response's JSON (RFC 6749 §5.1), also the admin API's answer to creating
/// a session.
pub(crate) fn token_body(t: &IssuedTokens) -> serde_json::Value {
    let mut body = json!({
        "access_token": t.access_token,
        "token_type": "Bearer",
        "expires_in": t.expires_in,
        "scope": t.scope,
    });
    if let Some(id) = &t.id_token {
        body["id_token"] = json!(id);
    }
    if let Some(rt) = &t.refresh_token {
        body["refresh_token"] = json!(rt);
    }
    body
}

fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str, ApiError> {
    params.get(name).ok_or_else(|| ApiError::InvalidRequest(format!("{name} is required")))
}

impl<S: Store> App<S> {
    pub(crate) async fn token(&self, req: &Request<Bytes>) -> Result<Response, ApiError> {
        self.limit_token_ip(req).await?;
        if !is_form(req.headers()) {
            return Err(ApiError::InvalidRequest("the body must be application/x-www-form-urlencoded".into()));
        }
        let params = Params::parse(req.body())?;
        let grant_type = required(&params, "grant_type")?;
        let grant = match grant_type {
            "authorization_code" => GrantType::AuthorizationCode,
            "refresh_token" => GrantType::RefreshToken,
            "client_credentials" => GrantType::ClientCredentials,
            other => {
                return Err(ApiError::UnsupportedGrantType(format!("grant type {other:?} is not supported")));
            }
        };
        let client = self
            .authenticate_client(req.headers(), &params)?
            .ok_or_else(|| ApiError::InvalidClient { description: "client_id is required".into(), basic: false })?;
        if !client.allows(grant) {
            return Err(ApiError::UnauthorizedClient(format!("client may not use {grant_type}")));
        }
        match grant {
            GrantType::AuthorizationCode => self.code_grant(req, client, &params).await,
            GrantType::RefreshToken => self.refresh_grant(req, client, &params).await,
            GrantType::ClientCredentials => {
                self.limit_client_credentials(&client.id).await?;
                self.client_credentials_grant(req, client, &params).await
            }
        }
    }

    async fn code_grant(&self, req: &Request<Bytes>, client: &Client, params: &Params) -> Result<Response, ApiError> {
        let code = required(params, "code")?;
        let redirect_uri = required(params, "redirect_uri")?;
        let verifier = params.get("code_verifier");
        let now = self.now();
        let invalid = || ApiError::InvalidGrant("invalid authorization code".into());
        if code.len() > 128 {
            return Err(invalid());
        }
        let session_id = random_uuid(self.entropy.as_ref());
        let grant = match self.store.redeem_code(&sha256_hex(code), &session_id, now).await? {
            Redemption::Redeemed(g) => g,
            Redemption::Replayed { session_id } => {
                // RFC 6749 §4.1.2: a replayed code revokes what it issued.
                self.store.revoke_session(&session_id, now).await?;
                tracing::warn!(client_id = %client.id, "authorization code replayed; its session was revoked");
                let detail = Some("an authorization code was used twice; its session is revoked".into());
                self.audit(req, "code.replayed", About { client_id: Some(&client.id), user_id: None, detail }).await;
                return Err(invalid());
            }
            Redemption::Unknown => return Err(invalid()),
        };
        if grant.client_id != client.id || grant.redirect_uri != redirect_uri {
            return Err(invalid());
        }
        match (&grant.code_challenge, verifier) {
            (Some(challenge), Some(v)) if pkce::verify_s256(v, challenge) => {}
            (None, None) => {}
            // A verifier without a challenge is a downgrade attempt (RFC 9700 §4.8.2).
            _ => return Err(ApiError::InvalidGrant("PKCE verification failed".into())),
        }
        let parent = self.store.session(&grant.browser_session_id).await?;
        if !parent.is_some_and(|p| p.is_active(now)) {
            return Err(ApiError::InvalidGrant("the session that authorized this code has ended".into()));
        }
        self.limit_token_user(&grant.user_id).await?;
        let user = self.active_user(&grant.user_id).await?.ok_or_else(invalid)?;
        let wants_refresh =
            grant.scopes.iter().any(|s| s == "offline_access") && client.allows(GrantType::RefreshToken);
        let refresh_token = wants_refresh.then(|| new_compound(self.entropy.as_ref(), &session_id));
        let session = self.token_session(
            req,
            client,
            NewTokenSession {
                id: session_id,
                user_id: &user.id,
                parent_id: Some(grant.browser_session_id.clone()),
                authenticated_at: grant.authenticated_at,
                amr: grant.amr.clone(),
                scopes: grant.scopes.clone(),
                refresh_token: refresh_token.as_deref(),
            },
        );
        match self.store.create_session(&session).await {
            // A replay of this code revoked the session id before it was created.
            Err(StoreError::Conflict(_)) => return Err(invalid()),
            other => other?,
        }
        tracing::info!(client_id = %client.id, user_id = %user.id, "tokens issued for a code");
        let tokens =
            self.issue_tokens(client, &session, &user, &grant.scopes, grant.nonce.clone(), refresh_token).await?;
        let about =
            About { client_id: Some(&client.id), user_id: Some(&user.id), detail: Some("authorization_code".into()) };
        self.audit(req, "token.issued", about).await;
        Ok(token_response(&tokens))
    }

    async fn refresh_grant(
        &self,
        req: &Request<Bytes>,
        client: &Client,
        params: &Params,
    ) -> Result<Response, ApiError> {
        let presented = required(params, "refresh_token")?;
        let invalid = || ApiError::InvalidGrant("invalid refresh token".into());
        let token = CompoundToken::parse(presented).ok_or_else(invalid)?;
        let now = self.now();
        let session = self.store.session(token.id).await?.ok_or_else(invalid)?;
        if session.kind != SessionKind::Token || session.client_id.as_deref() != Some(client.id.as_str()) {
            return Err(invalid());
        }
        self.limit_token_user(&session.user_id).await?;
        let user = self.active_user(&session.user_id).await?.ok_or_else(invalid)?;
        let scopes = match params.get("scope") {
            None => session.scopes.clone(),
            Some(requested) => {
                let requested: Vec<String> =
                    requested.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect();
                if !requested.iter().all(|s| session.scopes.contains(s)) {
                    return Err(ApiError::InvalidScope("a refresh cannot widen the granted scope".into()));
                }
                requested
            }
        };
        let successor = new_compound(self.entropy.as_ref(), token.id);
        let outcome = refresh(
            &self.store,
            token.id,
            &token.hash(),
            &sha256_hex(&successor),
            client.refresh_token_rotation_enabled,
            now,
        )
        .await?;
        let (session, refresh_token) = match outcome {
            RefreshOutcome::Rotated(s) | RefreshOutcome::Retried(s) => (s, Some(successor)),
            RefreshOutcome::Kept(s) => (s, None),
            RefreshOutcome::ReuseDetected => {
                tracing::warn!(client_id = %client.id, user_id = %user.id, "refresh token reuse detected; session revoked");
                let detail = Some("a retired refresh token was presented; the session is revoked".into());
                let about = About { client_id: Some(&client.id), user_id: Some(&user.id), detail };
                self.audit(req, "refresh.reuse_detected", about).await;
                return Err(ApiError::RefreshReuse);
            }
            RefreshOutcome::Invalid => return Err(invalid()),
        };
        let tokens = self.issue_tokens(client, &session, &user, &scopes, None, refresh_token).await?;
        let about =
            About { client_id: Some(&client.id), user_id: Some(&user.id), detail: Some("refresh_token".into()) };
        self.audit(req, "token.issued", about).await;
        Ok(token_response(&tokens))
    }

    async fn client_credentials_grant(
        &self,
        req: &Request<Bytes>,
        client: &Client,
        params: &Params,
    ) -> Result<Response, ApiError> {
        let scope: Vec<&str> = params
            .get("scope")
            .unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty() && *s != "openid" && *s != "offline_access")
            .collect();
        let scope = scope.join(" ");
        if scope.len() > 1024 {
            return Err(ApiError::InvalidScope("scope is too long".into()));
        }
        let audience = match params.get("resource") {
            Some(r) => {
                let url =
                    Url::parse(r).map_err(|_| ApiError::InvalidRequest("resource must be an absolute URI".into()))?;
                if url.fragment().is_some() {
                    return Err(ApiError::InvalidRequest("resource must not contain a fragment".into()));
                }
                r.to_owned()
            }
            None => self.config.issuer.clone(),
        };
        let subject = format!("client_id_{}", client.id);
        let registered = Registered {
            issuer: &self.config.issuer,
            audience: &audience,
            subject: &subject,
            issued_at: self.now(),
            lifetime_seconds: client.access_token_lifetime_seconds,
            jwt_id: Some(sha256_hex(&random_secret(self.entropy.as_ref()))),
            nonce: None,
        };
        let claims = AccessClaims { client_id: client.id.clone(), scope: scope.clone(), ..Default::default() };
        let access_token = self.keys().await?.sign_access_token(&registered, claims).map_err(|e| {
            tracing::error!(error = %e, "token signing failed");
            ApiError::Unavailable("token signing failed".into())
        })?;
        let tokens = IssuedTokens {
            access_token,
            expires_in: client.access_token_lifetime_seconds,
            id_token: None,
            refresh_token: None,
            scope,
        };
        let about = About { client_id: Some(&client.id), user_id: None, detail: Some("client_credentials".into()) };
        self.audit(req, "token.issued", about).await;
        Ok(token_response(&tokens))
    }
}
