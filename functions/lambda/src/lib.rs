//! Latchkey on AWS Lambda: the shared wiring of the per-endpoint functions in `src/bin/`.
//!
//! Each function is one binary that calls [`serve`] with the public paths it answers
//! (the same split as `infra/aws/routes.json`, which the SAM template and the local
//! emulator's router follow). API Gateway only routes those paths to it; a request for
//! any other path gets the core's 404, so a routing mistake cannot reach an endpoint
//! through the wrong function.
//!
//! At cold start, once per instance, [`serve`] loads:
//!
//! * the configuration document (`latchkey.yaml`) from `LATCHKEY_CONFIG` (its text) or
//!   `LATCHKEY_CONFIG_FILE` (a bundled file); `LATCHKEY_PUBLIC_ORIGIN` and a non-empty
//!   `LATCHKEY_COOKIE_DOMAIN` override `http.public_origin` and `http.cookie_domain`,
//!   so the SAM parameters decide them;
//! * the secrets document (`latchkey.secrets.yaml`: signing keys, client secrets) from
//!   AWS Secrets Manager, `LATCHKEY_SECRETS_ARN`, never from the environment;
//! * the DynamoDB table name, `LATCHKEY_TABLE`.
//!
//! A function that cannot load them exits with the reason in its log, and Lambda
//! reports the init failure; it never serves with a partial configuration.
//!
//! Requests run on a current-thread runtime inside a `LocalSet`: the core's futures
//! are not `Send` (they also run on Workers), so each invocation is spawned as a local
//! task and the runtime awaits its `Send` join handle. Logs are JSON lines on stderr
//! (CloudWatch), at the level `LATCHKEY_LOG` names (default `info`), and never contain a
//! token, cookie, code or password.

use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use lambda_http::{Body, Request, RequestExt, Response, service_fn};
use latchkey_endpoints::{App, ClientAddr, Config, parse_config, parse_secrets};
use latchkey_native::{OsEntropy, SystemClock};
use latchkey_store_dynamodb::DynamoStore;
use latchkey_token::keys::KeySet;

/// Which public paths each function answers: the same table as `infra/aws/routes.json`
/// (a test keeps them equal).
pub const ROUTES: &[(&str, &[&str])] = &[
    (
        "latchkey-discovery",
        &[
            "/.well-known/openid-configuration",
            "/.well-known/oauth-authorization-server",
            "/oauth2/jwks",
            "/openapi.yaml",
            "/healthz",
            "$default",
        ],
    ),
    ("latchkey-token", &["/oauth2/token"]),
    ("latchkey-revoke", &["/oauth2/revoke"]),
    ("latchkey-userinfo", &["/oauth2/userinfo"]),
    ("latchkey-authorize", &["/oauth2/authorize", "/oauth2/end_session"]),
    ("latchkey-resolve", &["/_resolver/resolve"]),
    ("latchkey-admin", &["/_api/admin/{proxy+}"]),
];

/// The function whose admin API is on: only it loads the admin key hashes, so no
/// other function's role or code path can act as an operator.
const ADMIN_FUNCTION: &str = "latchkey-admin";

/// Whether the route `route` (a path, or API Gateway's greedy `prefix/{proxy+}`)
/// covers `path`.
pub fn route_matches(route: &str, path: &str) -> bool {
    match route.strip_suffix("{proxy+}") {
        // `{proxy+}` needs at least one character after the prefix.
        Some(prefix) => path.len() > prefix.len() && path.starts_with(prefix),
        None => route == path,
    }
}

/// Everything a function loads at cold start.
pub struct Loaded {
    /// The parsed configuration.
    pub config: Arc<Config>,
    /// Signing and verification keys.
    pub keys: Arc<KeySet>,
    /// The DynamoDB store.
    pub store: DynamoStore,
    /// SHA-256 (hex) of each admin API key (the secret's `admin.key_hashes`).
    pub admin_key_hashes: Vec<String>,
    /// The secret's private JWKs, which seed the key ring at the first rotation.
    pub private_jwks: Vec<serde_json::Value>,
    /// Public JWKs of operators' admin JWTs (the secret's `admin.jwt_keys`).
    pub admin_jwt_keys: Arc<latchkey_token::admin_jwt::AdminJwtKeys>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The configuration document, with the deployment's overrides applied.
///
/// # Errors
/// A message naming the variable or file at fault.
pub fn config_text() -> Result<String, String> {
    let text = match (env("LATCHKEY_CONFIG"), env("LATCHKEY_CONFIG_FILE")) {
        (Some(text), _) => text,
        (None, Some(path)) => {
            std::fs::read_to_string(&path).map_err(|e| format!("LATCHKEY_CONFIG_FILE {path}: {e}"))?
        }
        (None, None) => return Err("set LATCHKEY_CONFIG (the latchkey.yaml text) or LATCHKEY_CONFIG_FILE".into()),
    };
    latchkey_endpoints::config::with_http_overrides(
        &text,
        env("LATCHKEY_PUBLIC_ORIGIN").as_deref(),
        env("LATCHKEY_COOKIE_DOMAIN").as_deref(),
    )
}

/// Loads configuration, secrets and the store (see the crate docs).
///
/// # Errors
/// A message naming what could not be loaded.
pub async fn load() -> Result<Loaded, String> {
    let sdk = latchkey_store_dynamodb::lambda_sdk_config()?;
    let secret_id = env("LATCHKEY_SECRETS_ARN").ok_or("set LATCHKEY_SECRETS_ARN (the Secrets Manager secret)")?;
    let secrets_client = aws_sdk_secretsmanager::Client::new(&sdk);
    let secret = secrets_client.get_secret_value().secret_id(&secret_id).send().await.map_err(|e| {
        format!("cannot read the secret {secret_id}: {}", aws_sdk_secretsmanager::error::DisplayErrorContext(e))
    })?;
    let secrets_text = secret.secret_string().ok_or_else(|| format!("the secret {secret_id} has no SecretString"))?;
    let secrets = parse_secrets(secrets_text).map_err(|e| format!("invalid secret {secret_id}: {e}"))?;
    let config = parse_config(&config_text()?, &secrets).map_err(|e| format!("invalid configuration: {e}"))?;
    let table = env("LATCHKEY_TABLE").ok_or("set LATCHKEY_TABLE (the DynamoDB table)")?;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &table);
    Ok(Loaded {
        config: Arc::new(config),
        keys: Arc::new(secrets.keys),
        store,
        admin_key_hashes: secrets.admin_key_hashes,
        private_jwks: secrets.private_jwks,
        admin_jwt_keys: secrets.admin_jwt_keys,
    })
}

/// Turns a Lambda HTTP request into the core's request.
fn to_core(req: Request) -> http::Request<Bytes> {
    let addr = match req.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) => ctx.http.source_ip.clone(),
        _ => None,
    };
    let (parts, body) = req.into_parts();
    let body = match body {
        Body::Empty => Bytes::new(),
        Body::Text(t) => Bytes::from(t),
        Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    let mut core = http::Request::from_parts(parts, body);
    if let Some(ip) = addr {
        core.extensions_mut().insert(ClientAddr(ip));
    }
    core
}

/// Turns the core's response into a Lambda HTTP response (text bodies stay text, so
/// the logs and the emulator show them; anything else is sent as binary).
fn from_core(resp: http::Response<Bytes>) -> Response<Body> {
    let (parts, body) = resp.into_parts();
    let body = if body.is_empty() {
        Body::Empty
    } else {
        match String::from_utf8(body.to_vec()) {
            Ok(text) => Body::Text(text),
            Err(e) => Body::Binary(e.into_bytes()),
        }
    };
    Response::from_parts(parts, body)
}

/// JSON log lines at the level `LATCHKEY_LOG` names (`error`, `warn`, `info`, `debug`,
/// `trace`; default and anything else: `info`). A level rather than the local server's
/// directive syntax: `EnvFilter` would link a regex engine into every function.
fn init_logging() {
    let level = std::env::var("LATCHKEY_LOG")
        .ok()
        .and_then(|v| v.trim().parse::<tracing_subscriber::filter::LevelFilter>().ok())
        .unwrap_or(tracing_subscriber::filter::LevelFilter::INFO);
    tracing_subscriber::fmt()
        .json()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_current_span(false)
        .without_time()
        .init();
}

/// Runs one function: loads everything once, then answers invocations for `paths`.
///
/// # Errors
/// The cold-start or runtime failure, which Lambda logs and reports.
pub fn serve(function: &'static str) -> Result<(), lambda_http::Error> {
    init_logging();
    let paths = ROUTES
        .iter()
        .find(|(name, _)| *name == function)
        .map(|(_, paths)| *paths)
        .ok_or_else(|| format!("{function} is not in ROUTES"))?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let loaded = load().await.map_err(|e| {
            tracing::error!(function, error = %e, "cold start failed");
            e
        })?;
        let admin = function == ADMIN_FUNCTION;
        let admin_key_hashes = if admin { loaded.admin_key_hashes } else { Vec::new() };
        let seed_jwks = if admin { loaded.private_jwks } else { Vec::new() };
        let admin_jwt_keys = if admin { loaded.admin_jwt_keys } else { Default::default() };
        let app = Rc::new(
            App::new(loaded.config, loaded.keys, loaded.store, Box::new(SystemClock), Box::new(OsEntropy))
                .with_admin_key_hashes(admin_key_hashes)
                .with_seed_private_jwks(seed_jwks)
                .with_admin_jwt_keys(admin_jwt_keys),
        );
        // The local server's start-up line, with the Lambda equivalent of its address.
        let runtime_api = std::env::var("AWS_LAMBDA_RUNTIME_API").unwrap_or_default();
        tracing::info!(function, runtime_api = %runtime_api, "latchkey listening on the Lambda Runtime API");
        lambda_http::run(service_fn(move |req: Request| {
            let app = app.clone();
            let task = tokio::task::spawn_local(async move {
                #[expect(clippy::disallowed_methods, reason = "request latency is measured in the runtime adapter")]
                let started = std::time::Instant::now();
                let mut core = to_core(req);
                let method = core.method().clone();
                // The path only: queries carry codes and tokens, which must never reach a log.
                let logged_path = core.uri().path().to_owned();
                let path = core.uri().path();
                let routed = |routes: &[&str]| routes.iter().any(|r| route_matches(r, path));
                if !routed(paths) && ROUTES.iter().any(|(_, other)| routed(other)) {
                    // Another function's route (a routing mistake): answer as for an
                    // unknown path. Paths no function serves (the API's $default
                    // route) reach the core, which answers 404 itself.
                    *core.uri_mut() = http::Uri::from_static("/_not_routed_here");
                }
                let resp = app.handle(core).await;
                // One structured line per request, as the local server's access log, for
                // CloudWatch Logs Insights and metric filters.
                tracing::info!(
                    target: "latchkey::access",
                    function,
                    request_id = resp
                        .headers()
                        .get(latchkey_endpoints::REQUEST_ID_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default(),
                    method = %method,
                    path = %logged_path,
                    endpoint = latchkey_endpoints::response::endpoint_label(&logged_path),
                    status = resp.status().as_u16(),
                    outcome = latchkey_endpoints::response::outcome(&resp).unwrap_or_default(),
                    micros = started.elapsed().as_micros() as u64,
                    "request"
                );
                from_core(resp)
            });
            async move { task.await.map_err(|e| lambda_http::Error::from(format!("request task failed: {e}"))) }
        }))
        .await
    })
}

#[cfg(test)]
mod tests {
    use super::{ROUTES, route_matches};

    #[test]
    fn a_greedy_route_covers_its_prefix_only() {
        assert!(route_matches("/_api/admin/{proxy+}", "/_api/admin/users"));
        assert!(route_matches("/_api/admin/{proxy+}", "/_api/admin/users/u1/sessions"));
        assert!(!route_matches("/_api/admin/{proxy+}", "/_api/admin/"));
        assert!(!route_matches("/_api/admin/{proxy+}", "/_api/administrator"));
        assert!(route_matches("/oauth2/token", "/oauth2/token"));
        assert!(!route_matches("/oauth2/token", "/oauth2/token/x"));
    }

    #[test]
    fn routes_equal_the_table_the_template_and_the_emulator_router_use() {
        let json: serde_json::Value = serde_json::from_str(include_str!("../../../infra/aws/routes.json")).unwrap();
        let functions = json["functions"].as_object().unwrap();
        assert_eq!(functions.len(), ROUTES.len());
        for (name, paths) in ROUTES {
            let listed: Vec<&str> =
                functions[*name]["paths"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
            assert_eq!(&listed, paths, "{name}");
            assert!(
                std::path::Path::new(&format!("{}/src/bin/{name}.rs", env!("CARGO_MANIFEST_DIR"))).exists(),
                "{name} has a binary"
            );
        }
    }
}
