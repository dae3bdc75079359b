//! The admin API, JSON under `/_api/admin/`: off unless admin keys are configured
//! ([`crate::App::with_admin_key_hashes`], [`crate::App::with_admin_jwt_keys`]), and
//! then only for requests that present, as a bearer token, one of the keys (compared
//! by SHA-256, in constant time, against every configured hash, so a key can be
//! replaced without an outage) or an operator's short-lived JWT signed by a
//! configured key (`latchkey_token::admin_jwt`). It is the one
//! implementation of every operator action: the `latchkey` CLI calls it over HTTP
//! (`--endpoint`) or in-process on a local data directory, so both behave alike.
//!
//! Users:
//! * `POST /_api/admin/users` `{"username", "password" | "password_hash", "is_verified"?, "roles"?}` → 201 the user
//! * `GET /_api/admin/users?username=NAME` → 200 the user (never its password hash)
//! * `GET /_api/admin/users?prefix=P&after=NAME&limit=N` → 200 `{"users": [...], "next_after"}`:
//!   usernames starting with `P`, in byte order, after the cursor; `next_after` is the
//!   cursor of the next page, `null` on the last one
//!   (`&password_hashes=true`: with each user's hash, for an export)
//! * `POST /_api/admin/users/import` `{"users": [user, …]}` (at most 100; each as for
//!   `POST /users`, plus an optional `id`, `created_at`, `disabled`, `disabled_reason`)
//!   → 200 `{"results": [{"index", "username", "status": "created" | "skipped" | "rejected", "id"?, "reason"?}]}`
//! * `GET /_api/admin/users/{id}` → 200 the user
//! * `DELETE /_api/admin/users/{id}` → 200; every session is revoked first
//! * `POST /_api/admin/users/{id}/disable` `{"reason"?}` → 200; every session is revoked
//! * `POST /_api/admin/users/{id}/enable` → 200
//!
//! Sessions:
//! * `GET /_api/admin/users/{id}/sessions` → 200 `{"sessions": [...]}`, the active ones
//! * `POST /_api/admin/users/{id}/sessions` `{"client_id", "scope"?}` → 201 a token
//!   response for a new session (Authgear's `createSession`, for teams with their own login)
//! * `POST /_api/admin/users/{id}/sessions/revoke` → 200 `{"revoked": n}`
//! * `POST /_api/admin/sessions/{id}/revoke` → 200; its child sessions go with it
//!
//! Audit (see [`crate::audit`]):
//! * `GET /_api/admin/audit?after=CURSOR&limit=N` → 200 `{"events": [...], "next_after"}`:
//!   events after the cursor (a time as 10 digits also works; default the last hour),
//!   oldest first; `next_after` continues from the last one
//!
//! Signing keys (see [`crate::keyring`]; every answer is the ring without private keys):
//! * `GET /_api/admin/keys` → 200 `{"keys": [...], "stored", "version", …}`
//! * `POST /_api/admin/keys` `{"alg"?}` → 200, a new next key published
//! * `POST /_api/admin/keys/rotate` → 200 with `actions`: one run of the schedule
//! * `POST /_api/admin/keys/{kid}/promote[?force=true]` → 200: the next key signs
//! * `POST /_api/admin/keys/{kid}/retire` → 200: a next key is dropped
//! * `DELETE /_api/admin/keys/{kid}[?force=true]` → 200: a retired key leaves the JWKS

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use latchkey_store::{Session, Store, StoreError, User};
use latchkey_token::secret::{self, new_compound, random_uuid};

use crate::session::NewTokenSession;
use serde::Deserialize;
use serde_json::json;

use crate::audit::About;
use crate::config::GrantType;
use crate::discovery::SUPPORTED_SCOPES;
use crate::error::ApiError;
use crate::keyring::{self, Action, KeyRing, KeyState, Schedule};
use crate::request::{Authorization, authorization};
use crate::response::{Response, json, no_store};
use crate::{App, request};
use latchkey_token::keys::Algorithm;

/// The longest an operator's admin JWT may live (`exp - iat`): a token, not a key.
pub const ADMIN_JWT_MAX_LIFETIME: u64 = 600;

/// The largest page of users one request may ask for.
pub const MAX_PAGE: usize = 1000;
/// The page size when a request names none.
pub const DEFAULT_PAGE: usize = 100;

/// A user to create: the body of `POST /users`, one entry of an import, and one line
/// of `latchkey users export` (so an export imports as it is).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    username: String,
    #[serde(default)]
    password: Option<String>,
    /// A hash brought from another system (see `latchkey_token::password`).
    #[serde(default)]
    password_hash: Option<String>,
    #[serde(default)]
    is_verified: bool,
    #[serde(default)]
    roles: Vec<String>,
    /// Keep the user's id from the system it comes from, so that `sub` and
    /// `X-Authgear-User-Id` stay the same for the apps; default: a new UUID.
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    created_at: Option<u64>,
    #[serde(default)]
    disabled: bool,
    #[serde(default)]
    disabled_reason: Option<String>,
    /// Written by export; the hash says it already.
    #[serde(default, rename = "password_scheme")]
    _password_scheme: Option<String>,
}

/// The most users one import request may carry (the CLI sends fewer: hashing a
/// plaintext password costs tens of milliseconds, and a request must finish well
/// within a Lambda's timeout).
pub const MAX_IMPORT_BATCH: usize = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Import {
    users: Vec<serde_json::Value>,
}

/// An id brought from another system: printable, header- and key-safe.
fn valid_imported_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'|' | b'@'))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NewKey {
    /// `RS256`, `ES256` or `EdDSA`; default `keys.algorithm`, else the signing key's.
    #[serde(default)]
    alg: Option<String>,
}

/// `limit=N` of a listing: 1 to [`MAX_PAGE`], default [`DEFAULT_PAGE`].
fn page_limit(params: &request::Params) -> Result<usize, ApiError> {
    match params.get("limit") {
        None => Ok(DEFAULT_PAGE),
        Some(n) => n
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| ApiError::InvalidRequest(format!("limit must be 1 to {MAX_PAGE}"))),
    }
}

/// `?force=true` on a key operation that the schedule would refuse.
fn force_param(req: &Request<Bytes>) -> Result<bool, ApiError> {
    let params = request::Params::parse(req.uri().query().unwrap_or("").as_bytes())?;
    match params.get("force") {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::InvalidRequest("force must be true or false".into())),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Disable {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSession {
    client_id: String,
    /// Space-separated, as in OAuth; default `openid offline_access`.
    #[serde(default)]
    scope: Option<String>,
}

fn user_json(user: &User) -> serde_json::Value {
    json!({
        "id": user.id,
        "username": user.username,
        "disabled": user.disabled,
        "disabled_reason": user.disabled_reason,
        "is_verified": user.is_verified,
        "roles": user.roles,
        "created_at": user.created_at,
        // The scheme only, never the hash: an imported one is upgraded at next login.
        "password_scheme": latchkey_token::password::scheme_name(&user.password_hash),
    })
}

fn session_json(session: &Session) -> serde_json::Value {
    json!({
        "id": session.id,
        "kind": session.kind.as_str(),
        "client_id": session.client_id,
        "parent_id": session.parent_id,
        "created_at": session.created_at,
        "last_used_at": session.last_used_at,
        "expires_at": session.expires_at(),
        "authenticated_at": session.authenticated_at,
        "amr": session.amr,
        "scopes": session.scopes,
        "user_agent": session.user_agent,
        "ip": session.ip,
    })
}

fn json_body<'a, T: Deserialize<'a>>(req: &'a Request<Bytes>) -> Result<T, ApiError> {
    let is_json = request::header_text(req.headers(), "content-type")
        .is_some_and(|ct| ct.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")));
    if !is_json {
        return Err(ApiError::InvalidRequest("the body must be application/json".into()));
    }
    serde_json::from_slice(req.body()).map_err(|e| ApiError::InvalidRequest(format!("invalid JSON body: {e}")))
}

fn ok(body: &serde_json::Value) -> Result<Response, ApiError> {
    Ok(no_store(json(StatusCode::OK, body)))
}

impl<S: Store> App<S> {
    pub(crate) async fn admin(&self, path: &str, req: &Request<Bytes>) -> Result<Response, ApiError> {
        if self.admin_key_hashes.is_empty() && self.admin_jwt_keys.is_empty() {
            return Err(ApiError::NotFound);
        }
        match authorization(req.headers()) {
            // A compact JWS: an operator's short-lived token.
            Authorization::Bearer(token) if token.split('.').count() == 3 && !self.admin_jwt_keys.is_empty() => {
                let audience = format!("{}/_api/admin/", self.config.issuer);
                let tolerance = self.config.jwt.time_tolerance_seconds;
                if let Err(e) =
                    self.admin_jwt_keys.verify(token, &audience, self.now(), tolerance, ADMIN_JWT_MAX_LIFETIME)
                {
                    return Err(ApiError::InvalidToken(format!("not a valid admin token: {e}")));
                }
            }
            Authorization::Bearer(key) => {
                let presented = secret::sha256_hex(key);
                // Every hash is compared, so the time taken says nothing about which matched.
                let matched = self
                    .admin_key_hashes
                    .iter()
                    .fold(false, |found, expected| secret::constant_time_eq(&presented, expected) | found);
                if !matched {
                    return Err(ApiError::InvalidToken("not an admin key".into()));
                }
            }
            Authorization::None => return Err(ApiError::MissingToken),
            _ => return Err(ApiError::InvalidToken("not an admin key".into())),
        }
        let rest = path.strip_prefix("/_api/admin/").ok_or(ApiError::NotFound)?;
        // Ids brought from other systems may hold characters a client escapes (`|`).
        let decoded: Vec<String> = rest
            .split('/')
            .map(request::decode_path_segment)
            .collect::<Option<_>>()
            .ok_or_else(|| ApiError::InvalidRequest("a bad percent-escape in the path".into()))?;
        let segments: Vec<&str> = decoded.iter().map(String::as_str).collect();
        let method = req.method();
        match (segments.as_slice(), method) {
            (["users"], &Method::POST) => self.admin_create_user(req).await,
            (["users"], &Method::GET) => self.admin_find_users(req).await,
            (["users", "import"], &Method::POST) => self.admin_import(req).await,
            (["users", id], &Method::GET) => ok(&user_json(&self.admin_user(id).await?)),
            (["users", id], &Method::DELETE) => {
                if !self.store.delete_user(id, self.now()).await? {
                    return Err(ApiError::NoSuchResource("no such user"));
                }
                self.audit(req, "admin.user_deleted", About { user_id: Some(id), ..About::default() }).await;
                ok(&json!({ "id": id, "deleted": true }))
            }
            (["users", id, action @ ("disable" | "enable")], &Method::POST) => {
                let disable = *action == "disable";
                // The body is optional: disabling without a reason sends none.
                let Disable { reason } =
                    if disable && !req.body().is_empty() { json_body(req)? } else { Disable::default() };
                if !self.store.set_user_disabled(id, disable, reason.as_deref(), self.now()).await? {
                    return Err(ApiError::NoSuchResource("no such user"));
                }
                let event = if disable { "admin.user_disabled" } else { "admin.user_enabled" };
                self.audit(req, event, About { user_id: Some(id), client_id: None, detail: reason.clone() }).await;
                ok(&user_json(&self.admin_user(id).await?))
            }
            (["users", id, "sessions"], &Method::GET) => {
                let user = self.admin_user(id).await?;
                let sessions = self.store.user_sessions(&user.id, self.now()).await?;
                ok(&json!({ "sessions": sessions.iter().map(session_json).collect::<Vec<_>>() }))
            }
            (["users", id, "sessions"], &Method::POST) => self.admin_create_session(id, req).await,
            (["users", id, "sessions", "revoke"], &Method::POST) => {
                let user = self.admin_user(id).await?;
                let revoked = self.store.revoke_user_sessions(&user.id, self.now()).await?;
                let detail = Some(format!("{revoked} session(s)"));
                self.audit(req, "admin.sessions_revoked", About { user_id: Some(&user.id), client_id: None, detail })
                    .await;
                ok(&json!({ "revoked": revoked }))
            }
            (["sessions", id, "revoke"], &Method::POST) => {
                // An unknown id is a 404 here, not a tombstone: an operator's typo
                // should say so.
                if self.store.session(id).await?.is_none_or(|s| s.user_id.is_empty()) {
                    return Err(ApiError::NoSuchResource("no such session"));
                }
                self.store.revoke_session(id, self.now()).await?;
                let detail = Some(format!("session {id}"));
                self.audit(req, "admin.session_revoked", About { detail, ..About::default() }).await;
                ok(&json!({ "id": id, "revoked": true }))
            }
            (["audit"], &Method::GET) => {
                let params = request::Params::parse(req.uri().query().unwrap_or("").as_bytes())?;
                let limit = page_limit(&params)?;
                // Default: the last hour.
                let default_after = format!("{:010}", self.now().saturating_sub(3600));
                let after = params.get("after").unwrap_or(&default_after);
                let events = self.store.audit_events(after, limit, self.now()).await?;
                let next_after = events.last().map_or_else(|| after.to_owned(), |e| e.cursor.clone());
                ok(&json!({ "events": events, "next_after": next_after }))
            }
            (["audit"], _) => Err(ApiError::MethodNotAllowed("GET")),
            (["keys"], &Method::GET) => {
                let (ring, version) = self.admin_ring().await?;
                ok(&self.keys_json(&ring, version))
            }
            (["keys"], &Method::POST) => {
                let body: NewKey = if req.body().is_empty() { NewKey::default() } else { json_body(req)? };
                let (mut ring, version) = self.admin_ring().await?;
                let alg = match body.alg.as_deref() {
                    Some(name) => Algorithm::from_name(name)
                        .ok_or_else(|| ApiError::InvalidRequest(format!("unsupported algorithm {name:?}")))?,
                    None => self.rotation_alg(&ring),
                };
                let key = keyring::new_next_key(alg, self.now()).map_err(ApiError::Unavailable)?;
                let kid = key.kid.clone();
                ring.add_next(key).map_err(ApiError::Conflict)?;
                self.save_ring(req, &ring, version, &[Action::Added { kid }]).await
            }
            (["keys", "rotate"], &Method::POST) => {
                let (mut ring, version) = self.admin_ring().await?;
                let (now, alg) = (self.now(), self.rotation_alg(&ring));
                let mut actions =
                    if version == 0 { vec![Action::Seeded { keys: ring.keys.len() }] } else { Vec::new() };
                actions.extend(
                    keyring::rotate(&mut ring, self.schedule(), now, || keyring::new_next_key(alg, now))
                        .map_err(ApiError::Unavailable)?,
                );
                self.save_ring(req, &ring, version, &actions).await
            }
            (["keys", kid, action @ ("promote" | "retire")], &Method::POST) => {
                let force = force_param(req)?;
                let (mut ring, version) = self.admin_ring().await?;
                let done = if *action == "promote" {
                    ring.promote(kid, self.schedule(), self.now(), force)
                } else {
                    ring.retire(kid)
                };
                let action = done.map_err(ApiError::Conflict)?;
                self.save_ring(req, &ring, version, &[action]).await
            }
            (["keys", kid], &Method::DELETE) => {
                let force = force_param(req)?;
                let (mut ring, version) = self.admin_ring().await?;
                let action = ring.remove(kid, self.schedule(), self.now(), force).map_err(ApiError::Conflict)?;
                self.save_ring(req, &ring, version, &[action]).await
            }
            (["keys"], _) => Err(ApiError::MethodNotAllowed("GET, POST")),
            (["keys", "rotate"], _) | (["keys", _, "promote" | "retire"], _) => Err(ApiError::MethodNotAllowed("POST")),
            (["keys", _], _) => Err(ApiError::MethodNotAllowed("DELETE")),
            (["users"], _) | (["users", _, "sessions"], _) => Err(ApiError::MethodNotAllowed("GET, POST")),
            (["users", _], _) => Err(ApiError::MethodNotAllowed("GET, DELETE")),
            (["users", _, "disable" | "enable"], _)
            | (["users", _, "sessions", "revoke"], _)
            | (["sessions", _, "revoke"], _) => Err(ApiError::MethodNotAllowed("POST")),
            _ => Err(ApiError::NotFound),
        }
    }

    /// The rotation schedule the configuration implies (see [`keyring`]).
    fn schedule(&self) -> Schedule {
        let longest = self.config.clients.iter().map(|c| c.access_token_lifetime_seconds).max().unwrap_or(0);
        // ID tokens live 300 s; a retired key must outlive those too.
        let longest = longest.max(300);
        Schedule {
            prepublish_seconds: self.config.keys.prepublish_seconds,
            retire_after_seconds: longest + self.config.jwt.time_tolerance_seconds + self.config.keys.cache_seconds,
        }
    }

    /// The algorithm new keys get: `keys.algorithm`, else the signing key's.
    fn rotation_alg(&self, ring: &KeyRing) -> Algorithm {
        self.config
            .keys
            .algorithm
            .as_deref()
            .and_then(Algorithm::from_name)
            .or(ring.active_alg())
            .unwrap_or(Algorithm::Rs256)
    }

    /// The stored ring and its version, or the one the secrets document's keys make
    /// (version 0) before the first rotation.
    async fn admin_ring(&self) -> Result<(KeyRing, u64), ApiError> {
        match self.store.key_ring().await? {
            Some((document, version)) => {
                let ring = serde_json::from_str(&document)
                    .map_err(|e| ApiError::Unavailable(format!("the stored key ring does not parse: {e}")))?;
                Ok((ring, version))
            }
            None => {
                if self.keys.seed_jwks().is_empty() {
                    return Err(ApiError::Unavailable("this server was not given the secrets' private keys".into()));
                }
                let ring = KeyRing::seeded(self.keys.seed_jwks(), self.now()).map_err(ApiError::Unavailable)?;
                Ok((ring, 0))
            }
        }
    }

    /// Stores `ring` if the stored one is still `version`, and answers with it.
    async fn save_ring(
        &self,
        req: &Request<Bytes>,
        ring: &KeyRing,
        version: u64,
        actions: &[Action],
    ) -> Result<Response, ApiError> {
        // Never store a ring that would not load: every instance would fail with it.
        ring.key_set().map_err(ApiError::Conflict)?;
        if !actions.is_empty() {
            let document = serde_json::to_string(ring).map_err(|e| ApiError::Unavailable(e.to_string()))?;
            if !self.store.swap_key_ring(&document, version).await? {
                return Err(ApiError::Conflict("the key ring changed meanwhile; read it again and retry".into()));
            }
            self.keys.invalidate();
            for a in actions {
                self.audit(req, "admin.keys_changed", About { detail: Some(a.describe()), ..About::default() }).await;
            }
        }
        let version = if actions.is_empty() { version } else { version + 1 };
        let mut body = self.keys_json(ring, version);
        body["actions"] = json!(actions.iter().map(Action::describe).collect::<Vec<_>>());
        ok(&body)
    }

    /// The ring for operators: every key but its private part, with when it may sign
    /// (next) or be removed (retired).
    fn keys_json(&self, ring: &KeyRing, version: u64) -> serde_json::Value {
        let schedule = self.schedule();
        let keys: Vec<serde_json::Value> = ring
            .keys
            .iter()
            .map(|k| {
                json!({
                    "kid": k.kid,
                    "alg": k.alg,
                    "state": k.state.as_str(),
                    "published_at": k.published_at,
                    "activated_at": k.activated_at,
                    "retired_at": k.retired_at,
                    "signs_from": (k.state == KeyState::Next).then(|| k.published_at + schedule.prepublish_seconds),
                    "removable_at": KeyRing::removable_at(k, schedule),
                })
            })
            .collect();
        json!({
            "keys": keys,
            "stored": version > 0,
            "version": version,
            "prepublish_seconds": schedule.prepublish_seconds,
            "retire_after_seconds": schedule.retire_after_seconds,
        })
    }

    async fn admin_user(&self, id: &str) -> Result<User, ApiError> {
        self.store.user_by_id(id).await?.ok_or(ApiError::NoSuchResource("no such user"))
    }

    /// The user `new` describes, after every check; the message is safe to show.
    fn user_from(&self, new: NewUser) -> Result<User, String> {
        let now = self.now();
        let mut user = match (&new.password, &new.password_hash) {
            (Some(password), None) => {
                User::with_password(&*self.entropy, now, &new.username, password, new.is_verified, new.roles)
            }
            (None, Some(hash)) => {
                User::with_imported_hash(&*self.entropy, now, &new.username, hash, new.is_verified, new.roles)
            }
            _ => Err("exactly one of password and password_hash is required".into()),
        }?;
        if let Some(id) = new.id {
            if !valid_imported_id(&id) {
                return Err("id must be 1 to 128 letters, digits or - _ . : | @".into());
            }
            user.id = id;
        }
        if let Some(at) = new.created_at {
            if at > now {
                return Err("created_at is in the future".into());
            }
            user.created_at = at;
        }
        match (new.disabled, new.disabled_reason) {
            (true, reason) => {
                user.disabled = true;
                user.disabled_reason = reason;
            }
            (false, Some(_)) => return Err("disabled_reason needs disabled: true".into()),
            (false, None) => {}
        }
        Ok(user)
    }

    async fn admin_create_user(&self, req: &Request<Bytes>) -> Result<Response, ApiError> {
        let new: NewUser = json_body(req)?;
        let user = self.user_from(new).map_err(ApiError::InvalidRequest)?;
        match self.store.create_user(&user).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(ApiError::Conflict(format!("a user named {:?} already exists", user.username)));
            }
            Err(e) => return Err(e.into()),
        }
        self.audit(req, "admin.user_created", About { user_id: Some(&user.id), ..About::default() }).await;
        Ok(no_store(json(StatusCode::CREATED, &user_json(&user))))
    }

    /// Creates each user of the batch that does not exist yet, each in its own atomic
    /// write: idempotent by username (an existing one is skipped, never changed), and
    /// an entry that fails a check is rejected with the reason while the others go on.
    /// A store failure stops the batch with 503; what was created before it stays and
    /// is skipped when the batch is sent again.
    async fn admin_import(&self, req: &Request<Bytes>) -> Result<Response, ApiError> {
        let Import { users } = json_body(req)?;
        if users.len() > MAX_IMPORT_BATCH {
            return Err(ApiError::InvalidRequest(format!("at most {MAX_IMPORT_BATCH} users per request")));
        }
        let mut results = Vec::with_capacity(users.len());
        let (mut created, mut skipped, mut rejected) = (0u64, 0u64, 0u64);
        for (index, entry) in users.into_iter().enumerate() {
            let username = entry.get("username").and_then(|u| u.as_str()).map(str::to_owned);
            let rejected_with = |reason: String| json!({ "index": index, "username": username, "status": "rejected", "reason": reason });
            let new: NewUser = match serde_json::from_value(entry) {
                Ok(n) => n,
                Err(e) => {
                    rejected += 1;
                    results.push(rejected_with(e.to_string()));
                    continue;
                }
            };
            if let Some(existing) = self.store.user_by_username(&new.username).await? {
                skipped += 1;
                results.push(json!({
                    "index": index, "username": new.username, "status": "skipped", "id": existing.id,
                    "reason": "a user with this username exists",
                }));
                continue;
            }
            let user = match self.user_from(new) {
                Ok(u) => u,
                Err(reason) => {
                    rejected += 1;
                    results.push(rejected_with(reason));
                    continue;
                }
            };
            match self.store.create_user(&user).await {
                Ok(()) => {
                    created += 1;
                    results
                        .push(json!({ "index": index, "username": user.username, "status": "created", "id": user.id }));
                }
                // The name was checked just before: a conflict now is the id (or a
                // concurrent import of the same name).
                Err(StoreError::Conflict(_)) => {
                    rejected += 1;
                    results.push(rejected_with("the id or username is taken".into()));
                }
                Err(e) => return Err(e.into()),
            }
        }
        let detail = Some(format!("created {created}, skipped {skipped}, rejected {rejected}"));
        self.audit(req, "admin.users_imported", About { detail, ..About::default() }).await;
        ok(&json!({ "results": results }))
    }

    async fn admin_find_users(&self, req: &Request<Bytes>) -> Result<Response, ApiError> {
        let params = request::Params::parse(req.uri().query().unwrap_or("").as_bytes())?;
        if let Some(username) = params.get("username") {
            let user = self.store.user_by_username(username).await?.ok_or(ApiError::NoSuchResource("no such user"))?;
            return ok(&user_json(&user));
        }
        let limit = page_limit(&params)?;
        let prefix = params.get("prefix").unwrap_or_default();
        // One more than asked: whether it comes back says if there is a next page.
        let mut users = self.store.list_users(prefix, params.get("after"), limit + 1).await?;
        let more = users.len() > limit;
        users.truncate(limit);
        let next_after = if more { users.last().map(|u| u.username.clone()) } else { None };
        // An export takes the hashes too (to move users to another deployment); a
        // listing never shows them.
        let with_hashes = match params.get("password_hashes") {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(ApiError::InvalidRequest("password_hashes must be true or false".into())),
        };
        let users: Vec<serde_json::Value> = users
            .iter()
            .map(|u| {
                let mut j = user_json(u);
                if with_hashes {
                    j["password_hash"] = json!(u.password_hash);
                }
                j
            })
            .collect();
        if with_hashes {
            let detail = Some(format!("{} user(s)", users.len()));
            self.audit(req, "admin.password_hashes_exported", About { detail, ..About::default() }).await;
        }
        ok(&json!({ "users": users, "next_after": next_after }))
    }

    /// A token session for the user, as if they had logged in to `client_id` (with
    /// `amr` empty: Latchkey did not authenticate them), and its tokens.
    async fn admin_create_session(&self, user_id: &str, req: &Request<Bytes>) -> Result<Response, ApiError> {
        let new: NewSession = json_body(req)?;
        let client = self
            .config
            .client(&new.client_id)
            .ok_or_else(|| ApiError::InvalidRequest(format!("no client {:?}", new.client_id)))?;
        let user = self.admin_user(user_id).await?;
        if user.disabled {
            return Err(ApiError::Conflict("the user is disabled".into()));
        }
        let requested = new.scope.as_deref().unwrap_or("openid offline_access");
        let mut scopes: Vec<String> = Vec::new();
        for s in requested.split(' ').filter(|s| !s.is_empty()) {
            if !SUPPORTED_SCOPES.contains(&s) {
                return Err(ApiError::InvalidScope(format!("unsupported scope {s:?}")));
            }
            if s == "offline_access" && !client.allows(GrantType::RefreshToken) {
                return Err(ApiError::InvalidScope("this client may not use refresh tokens".into()));
            }
            if !scopes.iter().any(|x| x == s) {
                scopes.push(s.to_owned());
            }
        }
        let now = self.now();
        let session_id = random_uuid(self.entropy.as_ref());
        let refresh_token =
            scopes.iter().any(|s| s == "offline_access").then(|| new_compound(self.entropy.as_ref(), &session_id));
        let session = self.token_session(
            req,
            client,
            NewTokenSession {
                id: session_id,
                user_id: &user.id,
                parent_id: None,
                authenticated_at: now,
                amr: Vec::new(),
                scopes: scopes.clone(),
                refresh_token: refresh_token.as_deref(),
            },
        );
        self.store.create_session(&session).await?;
        let tokens = self.issue_tokens(client, &session, &user, &scopes, None, refresh_token).await?;
        let about = About { client_id: Some(&client.id), user_id: Some(&user.id), detail: Some(session.id.clone()) };
        self.audit(req, "admin.session_created", about).await;
        let mut body = crate::token::token_body(&tokens);
        body["session_id"] = json!(session.id);
        Ok(no_store(json(StatusCode::CREATED, &body)))
    }
}
