//! Credentials shared by several endpoints: the session cookie, bearer access tokens,
//! client authentication, and token issuance.

use bytes::Bytes;
use http::{HeaderMap, Request};
use latchkey_store::{Session, SessionKind, Store, StoreError, User};
use latchkey_token::UnixSeconds;
use latchkey_token::jwt::{AccessClaims, Expectations, IdClaims, Registered, UserClaims, Verified};
use latchkey_token::secret::{CompoundToken, constant_time_eq, new_compound, random_secret, random_uuid, sha256_hex};

use crate::App;
use crate::config::Client;
use crate::error::ApiError;
use crate::request::{Authorization, Params, authorization, cookie, header_text};
use crate::verified_cache::VerifiedCache;
use latchkey_token::expiry::Lifetime;
use latchkey_token::refresh::RefreshState;

/// What a new token session is made of, beyond its client and the request.
pub(crate) struct NewTokenSession<'a> {
    pub id: String,
    pub user_id: &'a str,
    /// The browser session it comes from (revoking that revokes this).
    pub parent_id: Option<String>,
    pub authenticated_at: UnixSeconds,
    pub amr: Vec<String>,
    pub scopes: Vec<String>,
    pub refresh_token: Option<&'a str>,
}

/// What a request's session cookie resolves to.
// Short-lived return values; boxing would cost more than it saves.
#[allow(clippy::large_enum_variant, reason = "short-lived return value; the size difference depends on the target")]
pub enum CookieSession {
    /// No cookie.
    Absent,
    /// A cookie that names no live session of an enabled user.
    Invalid,
    /// A live browser session.
    Valid(Session, User),
}

/// What a bearer access token resolves to.
#[allow(clippy::large_enum_variant, reason = "short-lived return value; the size difference depends on the target")]
pub enum BearerSession {
    /// Not a valid token, or its session or user is gone.
    Invalid,
    /// A valid token whose session is live.
    Valid(Box<Verified<AccessClaims>>, Session, User),
}

/// Tokens returned by the token endpoint.
pub struct IssuedTokens {
    pub access_token: String,
    pub expires_in: u64,
    pub id_token: Option<String>,
    pub refresh_token: Option<String>,
    pub scope: String,
}

fn user_claims(user: &User) -> UserClaims {
    UserClaims {
        is_anonymous: false,
        is_verified: user.is_verified,
        can_reauthenticate: true,
        roles: user.roles.clone(),
    }
}

fn truncated(s: Option<&str>, max: usize) -> Option<String> {
    s.map(|v| v.chars().take(max).collect())
}

impl<S: Store> App<S> {
    /// Loads a user who may act: exists and is not disabled.
    pub(crate) async fn active_user(&self, id: &str) -> Result<Option<User>, StoreError> {
        Ok(self.store.user_by_id(id).await?.filter(|u| !u.disabled))
    }

    /// Records a use of `session`, throttled (see `Lifetime::should_record_use`).
    pub(crate) async fn record_use(&self, session: &Session, now: UnixSeconds) -> Result<(), StoreError> {
        if session.lifetime.should_record_use(session.last_used_at, now) {
            self.store.touch_session(&session.id, now).await?;
        }
        Ok(())
    }

    /// Resolves the session cookie.
    pub(crate) async fn cookie_session(&self, headers: &HeaderMap) -> Result<CookieSession, StoreError> {
        let name = self.config.session_cookie_name();
        let Some(value) = cookie(headers, &name) else {
            return Ok(CookieSession::Absent);
        };
        let Some(token) = CompoundToken::parse(value) else {
            return Ok(CookieSession::Invalid);
        };
        let Some((session, user)) = self.store.session_with_user(token.id).await? else {
            return Ok(CookieSession::Invalid);
        };
        let hash_ok = session.secret_hash.as_deref().is_some_and(|h| constant_time_eq(h, &token.hash()));
        if session.kind != SessionKind::Browser || !hash_ok || !session.is_active(self.now()) {
            return Ok(CookieSession::Invalid);
        }
        match user.filter(|u| !u.disabled) {
            Some(user) => Ok(CookieSession::Valid(session, user)),
            None => Ok(CookieSession::Invalid),
        }
    }

    /// Verification expectations for our own access tokens.
    pub(crate) fn access_expectations(&self) -> Expectations<'_> {
        Expectations {
            issuer: &self.config.issuer,
            audience: Some(&self.config.issuer),
            now: self.now(),
            tolerance_seconds: self.config.jwt.time_tolerance_seconds,
        }
    }

    /// Resolves a bearer access token: signature and claims, then its session (`sid`)
    /// and user, so revocation is honoured.
    pub(crate) async fn bearer_session(&self, token: &str) -> Result<BearerSession, StoreError> {
        let expect = self.access_expectations();
        let key = VerifiedCache::key(token);
        let verified = match self.verified.get(&key, expect.now, expect.tolerance_seconds) {
            Some(v) => v,
            None => {
                let keys = self.keys().await?;
                let verified = match &self.signature_checker {
                    Some(checker) => keys.verify_access_token_with(token, &expect, checker.as_ref()).await,
                    None => keys.verify_access_token(token, &expect),
                };
                let Ok(v) = verified else {
                    return Ok(BearerSession::Invalid);
                };
                self.verified.insert(key, v.clone(), expect.now, expect.tolerance_seconds);
                v
            }
        };
        let Some(sid) = verified.claims.sid.as_deref() else {
            return Ok(BearerSession::Invalid);
        };
        let Some((session, user)) = self.store.session_with_user(sid).await? else {
            return Ok(BearerSession::Invalid);
        };
        if session.kind != SessionKind::Token || session.user_id != verified.subject || !session.is_active(self.now()) {
            return Ok(BearerSession::Invalid);
        }
        match user.filter(|u| !u.disabled) {
            Some(user) => Ok(BearerSession::Valid(Box::new(verified), session, user)),
            None => Ok(BearerSession::Invalid),
        }
    }

    /// A `Set-Cookie` value for the session cookie.
    pub(crate) fn session_cookie(&self, value: &str, max_age: u64) -> String {
        let mut c =
            format!("{}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax", self.config.session_cookie_name());
        if self.config.https {
            c.push_str("; Secure");
        }
        if let Some(d) = &self.config.http.cookie_domain {
            c.push_str("; Domain=");
            c.push_str(d.trim_start_matches('.'));
        }
        c
    }

    /// A `Set-Cookie` value that deletes the session cookie.
    pub(crate) fn clear_session_cookie(&self) -> String {
        self.session_cookie("", 0)
    }

    /// The login-form CSRF token for this browser: the existing cookie value when it is
    /// well-formed (so several tabs work), else a fresh one. Returns the token and a
    /// `Set-Cookie` to send when it is new.
    pub(crate) fn csrf_token(&self, headers: &HeaderMap) -> (String, Option<String>) {
        let name = self.config.csrf_cookie_name();
        if let Some(v) =
            cookie(headers, &name).filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            return (v.to_owned(), None);
        }
        let token = random_secret(self.entropy.as_ref());
        let mut c = format!("{name}={token}; Path=/oauth2; HttpOnly; SameSite=Lax");
        if self.config.https {
            c.push_str("; Secure");
        }
        (token, Some(c))
    }

    /// Whether the form's `csrf_token` matches this browser's CSRF cookie.
    pub(crate) fn csrf_ok(&self, headers: &HeaderMap, params: &Params) -> bool {
        let name = self.config.csrf_cookie_name();
        match (cookie(headers, &name), params.get("csrf_token")) {
            (Some(c), Some(f)) => !c.is_empty() && constant_time_eq(c, f),
            _ => false,
        }
    }

    /// Creates a browser session for `user` (always a new id: a login never reuses a
    /// session, which defeats session fixation). Returns it and the cookie value.
    pub(crate) async fn create_browser_session(
        &self,
        user: &User,
        req: &Request<Bytes>,
    ) -> Result<(Session, String), StoreError> {
        let now = self.now();
        let id = random_uuid(self.entropy.as_ref());
        let value = new_compound(self.entropy.as_ref(), &id);
        let session = Session {
            id,
            kind: SessionKind::Browser,
            user_id: user.id.clone(),
            client_id: None,
            parent_id: None,
            created_at: now,
            authenticated_at: now,
            amr: vec!["pwd".into()],
            scopes: vec![],
            lifetime: self.config.browser_lifetime(),
            last_used_at: now,
            revoked_at: None,
            secret_hash: Some(sha256_hex(&value)),
            refresh: None,
            version: 0,
            user_agent: truncated(header_text(req.headers(), "user-agent"), 256),
            ip: req.extensions().get::<crate::ClientAddr>().map(|a| a.0.clone()),
        };
        self.store.create_session(&session).await?;
        Ok((session, value))
    }

    /// Authenticates the client of a token or revocation request (RFC 6749 §2.3.1:
    /// `client_secret_basic` or `client_secret_post`, never both). Returns `None` when
    /// the request names no client at all.
    ///
    /// Security: secrets are compared by SHA-256 in constant time against every
    /// configured secret of the client.
    pub(crate) fn authenticate_client(
        &self,
        headers: &HeaderMap,
        params: &Params,
    ) -> Result<Option<&Client>, ApiError> {
        let (basic_id, basic_secret, basic) = match authorization(headers) {
            Authorization::Basic(id, secret) => (Some(id), Some(secret), true),
            Authorization::Malformed => {
                return Err(ApiError::InvalidClient {
                    description: "malformed Authorization header".into(),
                    basic: true,
                });
            }
            _ => (None, None, false),
        };
        let body_id = params.get("client_id");
        let body_secret = params.get("client_secret");
        if basic && body_secret.is_some() {
            return Err(ApiError::InvalidRequest("use exactly one client authentication method".into()));
        }
        if let (Some(b), Some(p)) = (basic_id.as_deref(), body_id)
            && b != p
        {
            return Err(ApiError::InvalidRequest("client_id does not match the Authorization header".into()));
        }
        let Some(id) = basic_id.as_deref().or(body_id) else {
            if body_secret.is_some() {
                return Err(ApiError::InvalidRequest("client_id is required".into()));
            }
            return Ok(None);
        };
        let secret = basic_secret.as_deref().or(body_secret);
        let fail = |d: &str| ApiError::InvalidClient { description: d.into(), basic };
        let client = self.config.client(id).ok_or_else(|| fail("invalid client ID"))?;
        match (client.is_confidential(), secret) {
            (true, Some(s)) => {
                let presented = sha256_hex(s);
                let matched = client.secret_hashes.iter().fold(false, |acc, h| acc | constant_time_eq(h, &presented));
                if matched { Ok(Some(client)) } else { Err(fail("invalid client credentials")) }
            }
            (true, None) => Err(fail("client authentication is required")),
            (false, Some(_)) => Err(fail("a public client has no secret")),
            (false, None) => Ok(Some(client)),
        }
    }

    /// Issues an access token (and an ID token when `openid` is granted) for a token
    /// session, plus `refresh_token` when given.
    /// A new token session of `client`, recording the request's user agent and address.
    pub(crate) fn token_session(&self, req: &Request<Bytes>, client: &Client, new: NewTokenSession<'_>) -> Session {
        let now = self.now();
        Session {
            id: new.id,
            kind: SessionKind::Token,
            user_id: new.user_id.to_owned(),
            client_id: Some(client.id.clone()),
            parent_id: new.parent_id,
            created_at: now,
            authenticated_at: new.authenticated_at,
            amr: new.amr,
            scopes: new.scopes,
            lifetime: Lifetime {
                lifetime_seconds: client.refresh_token_lifetime_seconds,
                idle_timeout_seconds: client.refresh_token_idle_timeout_seconds,
            },
            last_used_at: now,
            revoked_at: None,
            secret_hash: None,
            refresh: new.refresh_token.map(|t| RefreshState::new(sha256_hex(t))),
            version: 0,
            user_agent: header_text(req.headers(), "user-agent").map(|v| v.chars().take(256).collect()),
            ip: req.extensions().get::<crate::ClientAddr>().map(|a| a.0.clone()),
        }
    }

    pub(crate) async fn issue_tokens(
        &self,
        client: &Client,
        session: &Session,
        user: &User,
        scopes: &[String],
        nonce: Option<String>,
        refresh_token: Option<String>,
    ) -> Result<IssuedTokens, ApiError> {
        let now = self.now();
        let scope = scopes.join(" ");
        let jti = sha256_hex(&random_secret(self.entropy.as_ref()));
        let registered = Registered {
            issuer: &self.config.issuer,
            audience: &self.config.issuer,
            subject: &user.id,
            issued_at: now,
            lifetime_seconds: client.access_token_lifetime_seconds,
            jwt_id: Some(jti),
            nonce: None,
        };
        let claims = AccessClaims {
            client_id: client.id.clone(),
            scope: scope.clone(),
            auth_time: Some(session.authenticated_at),
            amr: session.amr.clone(),
            sid: Some(session.id.clone()),
            user: Some(user_claims(user)),
        };
        let signing = |e: latchkey_token::jwt::TokenError| {
            tracing::error!(error = %e, "token signing failed");
            ApiError::Unavailable("token signing failed".into())
        };
        let keys = self.keys().await?;
        let access_token = keys.sign_access_token(&registered, claims).map_err(signing)?;
        let id_token = if scopes.iter().any(|s| s == "openid") {
            let registered =
                Registered { audience: &client.id, lifetime_seconds: 300, jwt_id: None, nonce, ..registered };
            let claims = IdClaims {
                auth_time: session.authenticated_at,
                sid: session.id.clone(),
                amr: session.amr.clone(),
                user: user_claims(user),
                preferred_username: scopes.iter().any(|s| s == "profile").then(|| user.username.clone()),
            };
            Some(keys.sign_id_token(&registered, claims).map_err(signing)?)
        } else {
            None
        };
        Ok(IssuedTokens {
            access_token,
            expires_in: client.access_token_lifetime_seconds,
            id_token,
            refresh_token,
            scope,
        })
    }
}
