//! The admin API as the operator commands reach it: over HTTPS against a deployment
//! (`--endpoint`, `--admin-key`), or in-process on a local data directory. Both send
//! the same `/_api/admin/` requests to the same handler (`latchkey_endpoints::admin`),
//! so every command behaves the same on every target; only the transport differs.
//!
//! In-process, the CLI is trusted by having the data directory open (it can read the
//! database anyway), so it authenticates with a key made for this process alone.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use latchkey_endpoints::App;
use latchkey_native::{OsEntropy, SystemClock};
use latchkey_store_sqlite::SqliteStore;
use latchkey_token::Entropy;
use latchkey_token::secret::sha256_hex;
use serde_json::Value;

use crate::datadir::DataDir;

/// How long one remote request may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Where admin requests go.
pub enum AdminClient {
    /// The local data directory's store, through the admin handler in this process.
    Local { app: Box<App<SqliteStore>>, key: String },
    /// A deployment's admin API.
    Remote { base: String, key: String, http: Box<HttpsClient> },
}

/// A failed admin request: the API's status and error, or why there was no answer.
#[derive(Debug)]
pub struct AdminError {
    pub status: Option<StatusCode>,
    pub message: String,
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(s) => write!(f, "{} ({})", self.message, s.as_u16()),
            None => f.write_str(&self.message),
        }
    }
}

impl From<AdminError> for String {
    fn from(e: AdminError) -> String {
        e.to_string()
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl AdminClient {
    /// The data directory's store, in-process.
    pub fn local(dir: &DataDir) -> Result<Self, String> {
        let loaded = dir.load()?;
        let store = dir.open_store()?;
        let mut raw = [0u8; 32];
        OsEntropy.fill(&mut raw);
        let key: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let app = App::new(loaded.config, loaded.keys, store, Box::new(SystemClock), Box::new(OsEntropy))
            .with_admin_key_hashes([sha256_hex(&key)])
            .with_seed_private_jwks(loaded.private_jwks);
        Ok(AdminClient::Local { app: Box::new(app), key })
    }

    /// A deployment at `endpoint` (its public origin). The admin key is a bearer
    /// credential: it is sent over HTTPS only, or plain HTTP to a loopback address.
    pub fn remote(endpoint: &str, key: &str) -> Result<Self, String> {
        let uri: Uri = endpoint.parse().map_err(|e| format!("--endpoint {endpoint:?}: {e}"))?;
        let host = uri.host().ok_or_else(|| format!("--endpoint {endpoint:?} has no host"))?;
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") if is_loopback(host) => {}
            Some("http") => {
                return Err(format!("refusing to send the admin key over plain HTTP to {host}: use https://"));
            }
            _ => return Err(format!("--endpoint {endpoint:?} must be an https:// URL")),
        }
        if key.trim().is_empty() {
            return Err("the admin key is empty (--admin-key or LATCHKEY_ADMIN_KEY)".into());
        }
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        for cert in found.certs {
            // A certificate the store cannot parse is skipped, as every TLS client does.
            let _ = roots.add(cert);
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS set-up failed: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector =
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().build();
        let http = Box::new(Client::builder(TokioExecutor::new()).build(connector));
        Ok(AdminClient::Remote { base: endpoint.trim_end_matches('/').to_owned(), key: key.trim().to_owned(), http })
    }

    /// Sends one admin request (`path` under `/_api/admin/`, with its query) and
    /// returns the JSON answer of a 2xx response.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, AdminError> {
        let no_answer = |message: String| AdminError { status: None, message };
        let body = match body {
            Some(v) => Bytes::from(serde_json::to_vec(v).map_err(|e| no_answer(e.to_string()))?),
            None => Bytes::new(),
        };
        let (key, uri) = match self {
            AdminClient::Local { key, .. } => (key, format!("/_api/admin/{path}")),
            AdminClient::Remote { base, key, .. } => (key, format!("{base}/_api/admin/{path}")),
        };
        let mut req = Request::builder()
            .method(method)
            .uri(&uri)
            .header("authorization", format!("Bearer {key}"))
            .header("user-agent", concat!("latchkey-cli/", env!("CARGO_PKG_VERSION")));
        if !body.is_empty() {
            req = req.header("content-type", "application/json");
        }
        let (status, bytes) = match self {
            AdminClient::Local { app, .. } => {
                let req = req.body(body).map_err(|e| no_answer(e.to_string()))?;
                let resp = app.handle(req).await;
                (resp.status(), resp.into_body())
            }
            AdminClient::Remote { http, .. } => {
                let req = req.body(Full::new(body)).map_err(|e| no_answer(e.to_string()))?;
                let exchange = async {
                    let resp = http.request(req).await.map_err(|e| no_answer(format!("{uri}: {e}")))?;
                    let status = resp.status();
                    let bytes = resp.into_body().collect().await.map_err(|e| no_answer(e.to_string()))?.to_bytes();
                    Ok::<_, AdminError>((status, bytes))
                };
                tokio::time::timeout(REQUEST_TIMEOUT, exchange)
                    .await
                    .map_err(|_| no_answer(format!("{uri}: no answer within {} s", REQUEST_TIMEOUT.as_secs())))??
            }
        };
        let json: Option<Value> = serde_json::from_slice(&bytes).ok();
        if status.is_success() {
            return json.ok_or_else(|| no_answer(format!("{uri}: the answer is not JSON")));
        }
        let described = json.as_ref().and_then(|j| {
            let error = j.get("error")?.as_str()?;
            Some(match j.get("error_description").and_then(Value::as_str) {
                Some(d) => format!("{error}: {d}"),
                None => error.to_owned(),
            })
        });
        let message = match (described, status) {
            // The router's 404 for a path it does not serve: the admin API is off.
            (Some(d), StatusCode::NOT_FOUND) if d == "not_found: no such endpoint" => {
                "the admin API is off at this endpoint (no admin key is configured), or it is not Latchkey".into()
            }
            (Some(d), _) => d,
            (None, s) => format!("{uri} answered {s}"),
        };
        Err(AdminError { status: Some(status), message })
    }
}
