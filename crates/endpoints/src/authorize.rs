//! `/oauth2/authorize`: the authorization endpoint and the login form behind it.
//!
//! Errors about the client or the redirect URI are shown as a page and never
//! redirected (the redirect target is what could not be trusted); every other error
//! is redirected to the registered URI with `error`, `state` and `iss` (RFC 6749
//! §4.1.2.1, RFC 9207). The login form posts back to this endpoint with the original
//! parameters, so no server-side state exists before the user authenticates.

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use latchkey_store::{AuthCode, Session, Store, User};
use latchkey_token::{password, pkce, secret};
use url::Url;

use crate::App;
use crate::audit::About;
use crate::config::{Client, GrantType};
use crate::discovery::SUPPORTED_SCOPES;
use crate::error::PageError;
use crate::html;
use crate::request::Params;
use crate::response::{Response, add_cookie, html, redirect};
use crate::session::CookieSession;

/// Lifetime of an authorization code (Authgear: 5 minutes).
pub const CODE_LIFETIME_SECONDS: u64 = 300;

/// The parameters carried through the login form.
const CARRIED: &[&str] = &[
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
    "login_hint",
    "id_token_hint",
    "x_suppress_idp_session_cookie",
];

const MAX_PARAM_LEN: usize = 2048;
const BAD_CREDENTIALS: &str = "Incorrect username or password.";
const WRONG_ACCOUNT: &str = "Sign in with the account this application asked for.";

#[derive(Clone, Copy, PartialEq, Eq)]
enum ResponseType {
    Code,
    None,
}

/// A validated authorization request.
struct AuthRequest<'a> {
    client: &'a Client,
    redirect_uri: String,
    response_type: ResponseType,
    scopes: Vec<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    prompt_login: bool,
    prompt_none: bool,
    max_age: Option<u64>,
    login_hint: Option<String>,
    /// The user an `id_token_hint` names: whoever signs in must be this user.
    hint_subject: Option<String>,
    /// `x_suppress_idp_session_cookie=true` (Authgear's SDK without SSO): sign in
    /// without leaving a session cookie in the browser.
    suppress_cookie: bool,
    carried: Vec<(String, String)>,
}

/// An error to send back to the client's redirect URI.
struct RedirectError {
    code: &'static str,
    description: &'static str,
}

fn redirect_error(code: &'static str, description: &'static str) -> RedirectError {
    RedirectError { code, description }
}

impl<S: Store> App<S> {
    pub(crate) async fn authorize(&self, req: &Request<Bytes>) -> Result<Response, PageError> {
        let params = crate::request::page_params(req)?;
        let client_id =
            params.get("client_id").ok_or_else(|| PageError::BadRequest("The request has no client_id.".into()))?;
        let client = self
            .config
            .client(client_id)
            .ok_or_else(|| PageError::BadRequest("The application is not registered.".into()))?;
        let redirect_uri = params
            .get("redirect_uri")
            .ok_or_else(|| PageError::BadRequest("The request has no redirect_uri.".into()))?;
        if !client.redirect_uris.iter().any(|u| u == redirect_uri) {
            return Err(PageError::BadRequest("The redirect_uri is not registered for this application.".into()));
        }
        let state = params.get("state").map(str::to_owned);
        // Read before validation, which checks an id_token_hint's signature with them.
        let keys = self.keys().await?;
        let auth = match self.validate(client, redirect_uri, &params, &keys) {
            Ok(a) => a,
            Err(e) => return Ok(self.error_redirect(redirect_uri, state.as_deref(), &e)),
        };
        let is_login = req.method() == Method::POST && params.get("username").is_some();
        if is_login {
            return self.login(req, &auth, &params).await;
        }
        let now = self.now();
        let reusable = match self.cookie_session(req.headers()).await? {
            CookieSession::Valid(session, user) => {
                // max_age=0 means "authenticate now" (OpenID Connect Core §3.1.2.1).
                let too_old = auth.max_age.is_some_and(|m| m == 0 || now.saturating_sub(session.authenticated_at) > m);
                let other_user = auth.hint_subject.as_ref().is_some_and(|sub| *sub != user.id);
                (!auth.prompt_login && !too_old && !other_user).then_some((session, user))
            }
            _ => None,
        };
        match reusable {
            Some((session, user)) => {
                self.record_use(&session, now).await?;
                self.complete(&auth, &session, &user, None).await
            }
            None if auth.prompt_none => Ok(self.error_redirect(
                &auth.redirect_uri,
                auth.state.as_deref(),
                &redirect_error("login_required", "the user must sign in"),
            )),
            None => {
                let hinted = match (&auth.login_hint, &auth.hint_subject) {
                    (Some(h), _) => h.clone(),
                    (None, Some(sub)) => self.store.user_by_id(sub).await?.map(|u| u.username).unwrap_or_default(),
                    (None, None) => String::new(),
                };
                Ok(self.login_form(req, &auth, &hinted, None, StatusCode::OK))
            }
        }
    }

    fn validate<'c>(
        &self,
        client: &'c Client,
        redirect_uri: &str,
        params: &Params,
        keys: &latchkey_token::keys::KeySet,
    ) -> Result<AuthRequest<'c>, RedirectError> {
        if params.pairs().iter().any(|(_, v)| v.len() > MAX_PARAM_LEN) {
            return Err(redirect_error("invalid_request", "a parameter is too long"));
        }
        let response_type = match params.get("response_type") {
            Some("code") => ResponseType::Code,
            Some("none") => ResponseType::None,
            Some(_) => {
                return Err(redirect_error("unsupported_response_type", "response_type must be code or none"));
            }
            None => {
                return Err(redirect_error("invalid_request", "response_type is required"));
            }
        };
        if !client.allows(GrantType::AuthorizationCode) {
            return Err(redirect_error("unauthorized_client", "this client may not use the authorization endpoint"));
        }
        let requested: Vec<&str> =
            params.get("scope").unwrap_or_default().split(' ').filter(|s| !s.is_empty()).collect();
        if !requested.contains(&"openid") {
            return Err(redirect_error("invalid_scope", "scope must include openid"));
        }
        let mut scopes: Vec<String> = Vec::new();
        for s in requested {
            let grantable =
                SUPPORTED_SCOPES.contains(&s) && (s != "offline_access" || client.allows(GrantType::RefreshToken));
            if grantable && !scopes.iter().any(|x| x == s) {
                scopes.push(s.to_owned());
            }
        }
        let method = params.get("code_challenge_method");
        let challenge = params.get("code_challenge");
        // RFC 7636 §4.3: a challenge without a method is `plain`, which is refused.
        if (challenge.is_some() || method.is_some()) && method != Some("S256") {
            return Err(redirect_error("invalid_request", "code_challenge_method must be S256"));
        }
        if let Some(c) = challenge
            && !pkce::is_well_formed(c)
        {
            return Err(redirect_error("invalid_request", "code_challenge is malformed"));
        }
        if response_type == ResponseType::Code && challenge.is_none() && !client.is_confidential() {
            return Err(redirect_error("invalid_request", "PKCE with S256 is required for public clients"));
        }
        let prompts: Vec<&str> =
            params.get("prompt").unwrap_or_default().split(' ').filter(|s| !s.is_empty()).collect();
        let prompt_none = prompts.contains(&"none");
        let prompt_login = prompts.contains(&"login");
        if prompt_none && prompts.len() > 1 {
            return Err(redirect_error("invalid_request", "prompt=none cannot be combined with other values"));
        }
        let max_age = match params.get("max_age") {
            Some(m) => Some(
                m.parse::<u64>()
                    .map_err(|_| redirect_error("invalid_request", "max_age must be a non-negative integer"))?,
            ),
            None => None,
        };
        let hint_subject = match params.get("id_token_hint") {
            Some(hint) => {
                // A hint may be an expired ID token (re-authentication long after sign-in).
                let expect = latchkey_token::jwt::Expectations {
                    issuer: &self.config.issuer,
                    audience: Some(&client.id),
                    now: self.now(),
                    tolerance_seconds: self.config.session.lifetime_seconds,
                };
                match keys.verify_id_token(hint, &expect) {
                    Ok(v) => Some(v.subject),
                    Err(_) => {
                        return Err(redirect_error(
                            "invalid_request",
                            "id_token_hint is not a valid ID token for this client",
                        ));
                    }
                }
            }
            None => None,
        };
        let carried = CARRIED.iter().filter_map(|n| params.get(n).map(|v| ((*n).to_owned(), v.to_owned()))).collect();
        Ok(AuthRequest {
            client,
            redirect_uri: redirect_uri.to_owned(),
            response_type,
            scopes,
            state: params.get("state").map(str::to_owned),
            nonce: params.get("nonce").map(str::to_owned),
            code_challenge: challenge.map(str::to_owned),
            prompt_login,
            prompt_none,
            max_age,
            login_hint: params.get("login_hint").map(str::to_owned),
            hint_subject,
            suppress_cookie: params.get("x_suppress_idp_session_cookie") == Some("true"),
            carried,
        })
    }

    fn redirect_with(&self, redirect_uri: &str, pairs: &[(&str, &str)]) -> Response {
        // The URI is registered, so it parsed when the config was validated.
        let Ok(mut url) = Url::parse(redirect_uri) else {
            return PageError::BadRequest("The redirect_uri is invalid.".into()).response(&self.config.ui);
        };
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in pairs {
                q.append_pair(k, v);
            }
            q.append_pair("iss", &self.config.issuer);
        }
        redirect(url.as_str())
    }

    fn error_redirect(&self, redirect_uri: &str, state: Option<&str>, e: &RedirectError) -> Response {
        let mut pairs = vec![("error", e.code), ("error_description", e.description)];
        if let Some(s) = state {
            pairs.push(("state", s));
        }
        self.redirect_with(redirect_uri, &pairs)
    }

    fn login_form(
        &self,
        req: &Request<Bytes>,
        auth: &AuthRequest<'_>,
        username: &str,
        error: Option<&str>,
        status: StatusCode,
    ) -> Response {
        let (csrf, set_cookie) = self.csrf_token(req.headers());
        let body = html::login_page(&self.config.ui, &auth.client.name, &auth.carried, username, &csrf, error);
        let mut resp = html(status, body);
        if let Some(c) = set_cookie {
            add_cookie(&mut resp, &c);
        }
        resp
    }

    async fn login(
        &self,
        req: &Request<Bytes>,
        auth: &AuthRequest<'_>,
        params: &Params,
    ) -> Result<Response, PageError> {
        if !self.csrf_ok(req.headers(), params) {
            return Err(PageError::BadRequest(
                "The sign-in form expired. Go back, reload the page and try again.".into(),
            ));
        }
        let username = params.get("username").unwrap_or_default();
        let pw = params.get("password").unwrap_or_default();
        if let Some(retry) = self.login_blocked(req, username).await? {
            tracing::warn!(client_id = %auth.client.id, "sign-in refused: too many failures");
            let about = About { client_id: Some(&auth.client.id), ..About::default() };
            self.audit(req, "login.locked_out", about).await;
            return Err(PageError::RateLimited(retry));
        }
        let user = self.check_password(username, pw).await?;
        let Some(user) = user else {
            self.record_login_failure(req, username).await?;
            tracing::info!(client_id = %auth.client.id, "login failed");
            // The user, when the name is one: what was typed for an unknown name is
            // not recorded, since it may be a password typed into the wrong field.
            let known = self.store.user_by_username(username).await?;
            let about = About {
                client_id: Some(&auth.client.id),
                user_id: known.as_ref().map(|u| u.id.as_str()),
                detail: Some(if known.is_some() { "wrong password or disabled" } else { "unknown username" }.into()),
            };
            self.audit(req, "login.failed", about).await;
            return Ok(self.login_form(req, auth, username, Some(BAD_CREDENTIALS), StatusCode::OK));
        };
        self.clear_login_failures(username).await?;
        if auth.hint_subject.as_ref().is_some_and(|sub| *sub != user.id) {
            // Re-authentication must be by the user the client asked for.
            return Ok(self.login_form(req, auth, username, Some(WRONG_ACCOUNT), StatusCode::OK));
        }
        let (session, cookie_value) = self.create_browser_session(&user, req).await?;
        tracing::info!(client_id = %auth.client.id, user_id = %user.id, "login succeeded");
        let about = About { client_id: Some(&auth.client.id), user_id: Some(&user.id), detail: None };
        self.audit(req, "login.succeeded", about).await;
        let max_age = self.config.session.lifetime_seconds;
        let set_cookie = (!auth.suppress_cookie).then(|| self.session_cookie(&cookie_value, max_age));
        self.complete(auth, &session, &user, set_cookie).await
    }

    /// The user with this password, if it is right and the user may sign in. Unknown
    /// users are checked against a dummy hash so all failures take the same time.
    async fn check_password(&self, username: &str, pw: &str) -> Result<Option<User>, PageError> {
        if username.is_empty() || username.len() > 256 || pw.is_empty() || pw.len() > 1024 {
            return Ok(None);
        }
        let user = self.store.user_by_username(username).await?;
        let hash = user.as_ref().map_or(password::DUMMY_HASH, |u| u.password_hash.as_str());
        let ok = password::verify(pw, hash);
        let user = user.filter(|u| ok && !u.disabled);
        if let Some(u) = &user
            && password::needs_upgrade(&u.password_hash)
        {
            self.upgrade_password_hash(u, pw).await;
        }
        Ok(user)
    }

    /// Replaces an imported (or outdated) hash by argon2id of the password that just
    /// matched it. Compare-and-swap on the old hash, so a password set meanwhile
    /// stands. A failure only means the next login tries again: it is logged, and the
    /// login goes on.
    async fn upgrade_password_hash(&self, user: &User, pw: &str) {
        let Some(next) = password::hash(self.entropy.as_ref(), pw) else {
            return;
        };
        match self.store.replace_password_hash(&user.id, &user.password_hash, &next).await {
            Ok(true) => tracing::info!(user_id = %user.id, "password hash upgraded to argon2id"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(user_id = %user.id, error = %e, "password hash upgrade failed; retried at the next login")
            }
        }
    }

    /// Finishes a successful authorization: a code (or nothing, for `response_type=none`)
    /// redirected to the client, setting the session cookie when the user just signed in.
    async fn complete(
        &self,
        auth: &AuthRequest<'_>,
        session: &Session,
        user: &User,
        set_cookie: Option<String>,
    ) -> Result<Response, PageError> {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if auth.response_type == ResponseType::Code {
            let now = self.now();
            let code = secret::random_secret(self.entropy.as_ref());
            self.store
                .put_code(&AuthCode {
                    hash: secret::sha256_hex(&code),
                    client_id: auth.client.id.clone(),
                    redirect_uri: auth.redirect_uri.clone(),
                    user_id: user.id.clone(),
                    browser_session_id: session.id.clone(),
                    scopes: auth.scopes.clone(),
                    nonce: auth.nonce.clone(),
                    code_challenge: auth.code_challenge.clone(),
                    authenticated_at: session.authenticated_at,
                    amr: session.amr.clone(),
                    created_at: now,
                    expires_at: now + CODE_LIFETIME_SECONDS,
                })
                .await?;
            pairs.push(("code", code));
        }
        if let Some(s) = &auth.state {
            pairs.push(("state", s.clone()));
        }
        let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut resp = self.redirect_with(&auth.redirect_uri, &borrowed);
        if let Some(c) = set_cookie {
            add_cookie(&mut resp, &c);
        }
        Ok(resp)
    }
}
