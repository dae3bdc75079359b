//! Discovery (OpenID Connect Discovery 1.0 and RFC 8414, one document at both paths)
//! and the JWKS.

use http::StatusCode;
use latchkey_store::Store;
use latchkey_token::keys::KeySet;
use serde_json::json;

use crate::App;
use crate::response::{Response, json, set_header};

/// Scopes the authorization endpoint grants; others are dropped from requests.
pub const SUPPORTED_SCOPES: &[&str] =
    &["openid", "offline_access", "profile", "https://authgear.com/scopes/full-access"];

pub fn discovery<S: Store>(app: &App<S>, keys: &KeySet) -> Response {
    let iss = &app.config.issuer;
    // Every algorithm a published key has: during a rotation to another algorithm,
    // ID tokens of both are in circulation.
    let mut algs: Vec<&str> = Vec::new();
    for key in keys.keys() {
        let name = key.alg().name();
        if !algs.contains(&name) {
            algs.push(name);
        }
    }
    let doc = json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/oauth2/authorize"),
        "token_endpoint": format!("{iss}/oauth2/token"),
        "userinfo_endpoint": format!("{iss}/oauth2/userinfo"),
        "revocation_endpoint": format!("{iss}/oauth2/revoke"),
        "end_session_endpoint": format!("{iss}/oauth2/end_session"),
        "jwks_uri": format!("{iss}/oauth2/jwks"),
        "response_types_supported": ["code", "none"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
        "scopes_supported": SUPPORTED_SCOPES,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,
        "claims_supported": ["iss", "aud", "iat", "exp", "sub", "auth_time", "amr", "sid", "nonce", "preferred_username"],
        "authorization_response_iss_parameter_supported": true,
        "prompt_values_supported": ["none", "login"],
    });
    let mut resp = json(StatusCode::OK, &doc);
    set_header(&mut resp, "cache-control", "public, max-age=300");
    resp
}

pub fn jwks(keys: &KeySet) -> Response {
    let mut resp = json(StatusCode::OK, &keys.jwks());
    // Short enough that a key published ahead of rotation is seen well before it signs.
    set_header(&mut resp, "cache-control", "public, max-age=300");
    resp
}
