//! Talking to Latchkey over HTTP: discovery, the JWKS, and the resolver.
//!
//! Plain `http://` only, to keep the example's dependencies small: the README shows the
//! few lines that add TLS (hyper-rustls) for an `https://` issuer.

use std::time::Duration;

use axum::http::header::{AUTHORIZATION, HeaderValue};
use axum::http::{HeaderMap, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::Deserialize;

use crate::keys::JwksSource;

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// Discovery and JWKS documents larger than this are refused.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// The resolver is on the request path of every sensitive call: fail fast.
const RESOLVER_TIMEOUT: Duration = Duration::from_secs(3);

/// One Latchkey issuer, as discovered at start-up.
#[derive(Clone)]
pub struct Issuer {
    client: HttpClient,
    /// The `issuer` of the discovery document: the expected `iss` and `aud`.
    pub issuer: String,
    pub jwks_uri: Uri,
    pub resolve_uri: Uri,
}

/// What the resolver said about a bearer token.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolution {
    /// `X-Authgear-Session-Valid: true`: the session is alive right now.
    Valid { user_id: String, roles: Vec<String> },
    /// Anything else that is a well-formed answer: `false`, no header, or (strict mode) 401.
    NotValid,
}

impl Issuer {
    /// Fetch `{issuer}/.well-known/openid-configuration` and check that its `issuer` is
    /// exactly the one we were given (OpenID Connect Discovery 1.0, section 4.3).
    pub async fn discover(issuer: &str) -> Result<Issuer, String> {
        let issuer = issuer.trim_end_matches('/').to_string();
        let discovery: Uri = format!("{issuer}/.well-known/openid-configuration")
            .parse()
            .map_err(|e| format!("--issuer {issuer:?} is not a URL: {e}"))?;
        check_http(&discovery)?;
        let client = Client::builder(TokioExecutor::new())
            // Shorter than the issuer's own idle timeout (Latchkey closes idle connections
            // after 10 s), so we never send a request on a connection it is closing.
            .pool_idle_timeout(Duration::from_secs(5))
            .pool_timer(TokioTimer::new())
            .build_http();
        #[derive(Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let (status, _, body) = get(&client, &discovery, HeaderMap::new(), DISCOVERY_TIMEOUT)
            .await
            .map_err(|e| format!("discovery at {discovery}: {e}"))?;
        if status != StatusCode::OK {
            return Err(format!("discovery at {discovery}: status {status}"));
        }
        let doc: Discovery = serde_json::from_slice(&body)
            .map_err(|e| format!("discovery at {discovery}: not a discovery document: {e}"))?;
        if doc.issuer != issuer {
            return Err(format!(
                "discovery at {discovery} names the issuer {:?}, not {issuer:?}: use exactly \
                 Latchkey's http.public_origin as --issuer",
                doc.issuer
            ));
        }
        let jwks_uri: Uri = doc.jwks_uri.parse().map_err(|e| format!("jwks_uri {:?}: {e}", doc.jwks_uri))?;
        check_http(&jwks_uri)?;
        let resolve_uri = format!("{issuer}/_resolver/resolve").parse().map_err(|e| format!("{e}"))?;
        Ok(Issuer { client, issuer, jwks_uri, resolve_uri })
    }

    /// The issuer's JWKS as a [`JwksSource`] for the key cache.
    pub fn jwks(&self) -> HttpJwks {
        HttpJwks { client: self.client.clone(), uri: self.jwks_uri.clone() }
    }

    /// Ask the resolver whether the session behind `authorization` (the request's own
    /// `Authorization: Bearer ...` header, passed on unchanged) is alive now.
    ///
    /// `Err` means no trustworthy answer (unreachable, timeout, 5xx, anything
    /// unexpected): the caller must refuse the request, never allow it.
    pub async fn resolve(&self, authorization: &HeaderValue) -> Result<Resolution, String> {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, authorization.clone());
        let (status, headers, _) = get(&self.client, &self.resolve_uri, headers, RESOLVER_TIMEOUT).await?;
        match status {
            StatusCode::OK => {}
            // strict mode (`resolver.strict: true`) refuses instead of answering "false"
            StatusCode::UNAUTHORIZED => return Ok(Resolution::NotValid),
            other => return Err(format!("resolver answered {other}")),
        }
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if header("x-authgear-session-valid") != Some("true") {
            return Ok(Resolution::NotValid);
        }
        let user_id = header("x-authgear-user-id")
            .filter(|id| !id.is_empty())
            .ok_or("resolver said valid without a user id")?
            .to_string();
        let roles = header("x-authgear-user-roles")
            .map(|r| r.split(',').filter(|r| !r.is_empty()).map(str::to_string).collect())
            .unwrap_or_default();
        Ok(Resolution::Valid { user_id, roles })
    }
}

/// The JWKS endpoint, fetched over HTTP.
pub struct HttpJwks {
    client: HttpClient,
    uri: Uri,
}

impl JwksSource for HttpJwks {
    async fn fetch(&self) -> Result<Vec<u8>, String> {
        // The key cache applies its own timeout around this one.
        let (status, _, body) = get(&self.client, &self.uri, HeaderMap::new(), DISCOVERY_TIMEOUT).await?;
        if status != StatusCode::OK {
            return Err(format!("{} answered {status}", self.uri));
        }
        Ok(body.to_vec())
    }
}

fn check_http(uri: &Uri) -> Result<(), String> {
    match uri.scheme_str() {
        Some("http") if uri.host().is_some() => Ok(()),
        Some("https") => {
            Err(format!("{uri}: this example speaks plain http to the issuer; add TLS as its README shows"))
        }
        _ => Err(format!("{uri}: not an absolute http URL")),
    }
}

/// GET with a timeout over the whole exchange and a bounded body.
async fn get(
    client: &HttpClient,
    uri: &Uri,
    headers: HeaderMap,
    timeout: Duration,
) -> Result<(StatusCode, HeaderMap, Bytes), String> {
    let mut request = Request::get(uri.clone()).body(Empty::new()).map_err(|e| e.to_string())?;
    *request.headers_mut() = headers;
    let exchange = async {
        let response = client.request(request).await.map_err(|e| format!("{uri}: {e}"))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_DOCUMENT_BYTES)
            .collect()
            .await
            .map_err(|e| format!("{uri}: reading the body: {e}"))?
            .to_bytes();
        Ok((parts.status, parts.headers, body))
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| format!("{uri}: no answer within {timeout:?}"))?
}
