//! The admin API's account operations, JSON under `/_api/admin/`: off unless an admin
//! key is configured ([`crate::App::with_admin_key_hash`]), and then only for requests
//! that present that key as a bearer token (compared by SHA-256, in constant time).
//! It is how operators manage accounts on targets with no local store to open (the
//! Workers, whose state lives in Durable Objects).
//!
//! * `POST /_api/admin/users` `{"username", "password", "is_verified"?, "roles"?}` → 201 `{"id", "username"}`
//! * `GET /_api/admin/users?username=NAME` → 200 the user (never its password hash)
//! * `POST /_api/admin/users/{id}/disable` `{"reason"?}` → 200; every session is revoked
//! * `POST /_api/admin/users/{id}/enable` → 200

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use latchkey_store::{Store, StoreError, User};
use latchkey_token::secret;
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::request::{Authorization, authorization};
use crate::response::{Response, json, no_store};
use crate::{App, request};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    username: String,
    password: String,
    #[serde(default)]
    is_verified: bool,
    #[serde(default)]
    roles: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Disable {
    #[serde(default)]
    reason: Option<String>,
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

impl<S: Store> App<S> {
    pub(crate) async fn admin(&self, path: &str, req: &Request<Bytes>) -> Result<Response, ApiError> {
        let Some(expected) = &self.admin_key_hash else {
            return Err(ApiError::NotFound);
        };
        match authorization(req.headers()) {
            Authorization::Bearer(key) if secret::constant_time_eq(&secret::sha256_hex(key), expected) => {}
            Authorization::None => return Err(ApiError::MissingToken),
            _ => return Err(ApiError::InvalidToken("not an admin key".into())),
        }
        let rest = path.strip_prefix("/_api/admin/users").ok_or(ApiError::NotFound)?;
        let method = req.method();
        match (rest.split('/').collect::<Vec<_>>().as_slice(), method) {
            ([""], &Method::POST) => {
                let new: NewUser = json_body(req)?;
                let user = User::with_password(
                    &*self.entropy,
                    self.now(),
                    &new.username,
                    &new.password,
                    new.is_verified,
                    new.roles,
                )
                .map_err(ApiError::InvalidRequest)?;
                match self.store.create_user(&user).await {
                    Ok(()) => {}
                    Err(StoreError::Conflict(_)) => {
                        return Err(ApiError::Conflict(format!("a user named {:?} already exists", user.username)));
                    }
                    Err(e) => return Err(e.into()),
                }
                tracing::info!(target: "latchkey::admin", user_id = %user.id, "user created");
                Ok(no_store(json(StatusCode::CREATED, &json!({ "id": user.id, "username": user.username }))))
            }
            ([""], &Method::GET) => {
                let params = request::Params::parse(req.uri().query().unwrap_or("").as_bytes())?;
                let username =
                    params.get("username").ok_or_else(|| ApiError::InvalidRequest("username is required".into()))?;
                let user = self.store.user_by_username(username).await?.ok_or(ApiError::NoSuchResource("user"))?;
                Ok(no_store(json(StatusCode::OK, &user_json(&user))))
            }
            (["", id, action @ ("disable" | "enable")], &Method::POST) => {
                let disable = *action == "disable";
                // The body is optional: disabling without a reason sends none.
                let Disable { reason } =
                    if disable && !req.body().is_empty() { json_body(req)? } else { Disable::default() };
                if !self.store.set_user_disabled(id, disable, reason.as_deref(), self.now()).await? {
                    return Err(ApiError::NoSuchResource("user"));
                }
                tracing::info!(target: "latchkey::admin", user_id = %id, disabled = disable, "user updated");
                let user = self.store.user_by_id(id).await?.ok_or(ApiError::NoSuchResource("user"))?;
                Ok(no_store(json(StatusCode::OK, &user_json(&user))))
            }
            ([""], _) => Err(ApiError::MethodNotAllowed("GET, POST")),
            (["", _, "disable" | "enable"], _) => Err(ApiError::MethodNotAllowed("POST")),
            _ => Err(ApiError::NotFound),
        }
    }
}
