//! The fetch handler: bindings → [`App`], `worker::Request` ↔ `http::Request<Bytes>`.

use std::cell::OnceCell;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use latchkey_endpoints::{App, ClientAddr, parse_config, parse_secrets};
use latchkey_store_cloudflare::{Namespace, ObjectStore};
use latchkey_token::{Clock, Entropy, UnixSeconds};
use worker::{Context, Env, Headers, Request, Response, event};

type WorkerApp = App<ObjectStore<Namespace>>;

thread_local! {
    /// The isolate's application, built on its first request.
    static APP: OnceCell<Rc<WorkerApp>> = const { OnceCell::new() };
}

/// `Date.now()`.
struct WorkerClock;

impl Clock for WorkerClock {
    fn now(&self) -> UnixSeconds {
        worker::Date::now().as_millis() / 1000
    }
}

/// `crypto.getRandomValues`, through getrandom's JavaScript backend.
struct WorkerEntropy;

impl Entropy for WorkerEntropy {
    #[expect(clippy::disallowed_methods, reason = "the runtime adapter is where randomness is read")]
    fn fill(&self, buf: &mut [u8]) {
        // Issuing a predictable secret would be worse than failing the request.
        if let Err(e) = getrandom::fill(buf) {
            panic!("crypto.getRandomValues failed: {e}");
        }
    }
}

fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name).ok().map(|v| v.to_string()).filter(|v| !v.is_empty())
}

fn secret(env: &Env, name: &str) -> Option<String> {
    env.secret(name).ok().map(|v| v.to_string()).filter(|v| !v.is_empty())
}

fn load(env: &Env) -> Result<WorkerApp, String> {
    let secrets_text = secret(env, "LATCHKEY_SECRETS")
        .ok_or("set the secret LATCHKEY_SECRETS (wrangler secret put LATCHKEY_SECRETS < latchkey.secrets.yaml)")?;
    let secrets = parse_secrets(&secrets_text).map_err(|e| format!("invalid LATCHKEY_SECRETS: {e}"))?;
    let text = var(env, "LATCHKEY_CONFIG").ok_or("set the variable LATCHKEY_CONFIG (the latchkey.yaml text)")?;
    let text = latchkey_endpoints::config::with_http_overrides(
        &text,
        var(env, "LATCHKEY_PUBLIC_ORIGIN").as_deref(),
        var(env, "LATCHKEY_COOKIE_DOMAIN").as_deref(),
    )?;
    let config = parse_config(&text, &secrets).map_err(|e| format!("invalid configuration: {e}"))?;
    let namespace = env.durable_object("LATCHKEY_OBJECTS").map_err(|e| format!("binding LATCHKEY_OBJECTS: {e}"))?;
    let store = ObjectStore::new(Namespace(namespace), "");
    let admin = secret(env, "LATCHKEY_ADMIN_KEY_SHA256");
    if admin.as_ref().is_some_and(|h| h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit())) {
        return Err("LATCHKEY_ADMIN_KEY_SHA256 must be 64 hex digits (the SHA-256 of the admin key)".into());
    }
    // The admin keys of the secrets document (`admin.key_hashes`), and this one.
    let admin_key_hashes = secrets.admin_key_hashes.iter().cloned().chain(admin);
    Ok(App::new(Arc::new(config), Arc::new(secrets.keys), store, Box::new(WorkerClock), Box::new(WorkerEntropy))
        .with_admin_key_hashes(admin_key_hashes)
        .with_seed_private_jwks(secrets.private_jwks.clone())
        .with_admin_jwt_keys(secrets.admin_jwt_keys.clone())
        .with_signature_checker(Box::new(crate::webcrypto::WebCrypto)))
}

fn app(env: &Env) -> Result<Rc<WorkerApp>, String> {
    if let Some(app) = APP.with(|cell| cell.get().cloned()) {
        return Ok(app);
    }
    let app = Rc::new(load(env)?);
    // The local server's start-up line: this isolate now serves.
    tracing::info!(runtime = "workers", "latchkey listening on the Workers runtime");
    APP.with(|cell| {
        let _ = cell.set(app.clone());
    });
    Ok(app)
}

async fn to_core(mut req: Request) -> worker::Result<http::Request<Bytes>> {
    let url = req.url()?;
    let target = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let mut builder = http::Request::builder().method(req.method().as_ref()).uri(target);
    for (name, value) in req.headers().entries() {
        builder = builder.header(name, value);
    }
    let body = req.bytes().await?;
    let mut core = builder.body(Bytes::from(body)).map_err(|e| worker::Error::RustError(e.to_string()))?;
    if let Some(ip) = req.headers().get("cf-connecting-ip")? {
        core.extensions_mut().insert(ClientAddr(ip));
    }
    Ok(core)
}

fn from_core(resp: http::Response<Bytes>) -> worker::Result<Response> {
    let (parts, body) = resp.into_parts();
    let headers = Headers::new();
    for (name, value) in &parts.headers {
        if let Ok(value) = value.to_str() {
            headers.append(name.as_str(), value)?;
        }
    }
    let resp = if body.is_empty() { Response::empty()? } else { Response::from_bytes(body.to_vec())? };
    Ok(resp.with_status(parts.status.as_u16()).with_headers(headers))
}

fn unavailable(reason: &str) -> worker::Result<Response> {
    tracing::error!(error = %reason, "cannot load the configuration");
    let body = serde_json::json!({
        "error": "temporarily_unavailable",
        "error_description": "the service is not configured yet, retry later",
    });
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    headers.set("retry-after", latchkey_endpoints::error::RETRY_AFTER_SECONDS)?;
    headers.set("cache-control", "no-store")?;
    Ok(Response::from_bytes(body.to_string().into_bytes())?.with_status(503).with_headers(headers))
}

/// Console logging, once per isolate: JSON lines at the level `LATCHKEY_LOG` names.
fn init_logging(env: &Env) {
    use std::sync::Once;
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        std::panic::set_hook(Box::new(|info| worker::console_error!("latchkey panicked: {info}")));
        let level = var(env, "LATCHKEY_LOG")
            .and_then(|v| v.trim().parse::<tracing_subscriber::filter::LevelFilter>().ok())
            .unwrap_or(tracing_subscriber::filter::LevelFilter::INFO);
        let _ = tracing_subscriber::fmt()
            .json()
            .with_max_level(level)
            .with_writer(ConsoleWriter::default)
            .with_current_span(false)
            .with_ansi(false)
            .without_time()
            .try_init();
    });
}

/// One log line per write, to `console.log`.
#[derive(Default)]
struct ConsoleWriter(Vec<u8>);

impl std::io::Write for ConsoleWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for ConsoleWriter {
    fn drop(&mut self) {
        let line = String::from_utf8_lossy(&self.0);
        let line = line.trim_end();
        if !line.is_empty() {
            worker::console_log!("{line}");
        }
    }
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    init_logging(&env);
    #[cfg(feature = "conformance")]
    if req.path() == "/__conformance" {
        return conformance(&req, &env).await;
    }
    #[cfg(feature = "conformance")]
    if req.path() == "/__bench/verify" {
        return bench_verify(req, &env).await;
    }
    let started = worker::Date::now().as_millis();
    let app = match app(&env) {
        Ok(app) => app,
        Err(reason) => return unavailable(&reason),
    };
    let core = to_core(req).await?;
    let method = core.method().clone();
    // The path only: queries carry codes and tokens, which must never reach a log.
    let path = core.uri().path().to_owned();
    let resp = app.handle(core).await;
    // Workers' clock advances only across I/O, so this is wall time at millisecond
    // granularity, not CPU time.
    tracing::info!(
        target: "latchkey::access",
        request_id = resp
            .headers()
            .get(latchkey_endpoints::REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default(),
        method = %method,
        path = %path,
        endpoint = latchkey_endpoints::response::endpoint_label(&path),
        status = resp.status().as_u16(),
        outcome = latchkey_endpoints::response::outcome(&resp).unwrap_or_default(),
        millis = worker::Date::now().as_millis().saturating_sub(started),
        "request"
    );
    from_core(resp)
}

/// Runs one part of the store conformance suite against this deployment's Durable
/// Objects, under a name prefix (`?run=ID&part=PART`, see
/// `latchkey_store::conformance::AsyncPart`), and answers 200 once every check of the
/// part passed. A failed check panics, which fails the request with the check's
/// message in the log.
#[cfg(feature = "conformance")]
async fn conformance(req: &Request, env: &Env) -> worker::Result<Response> {
    use latchkey_store::conformance::{AsyncPart, run_async_part};
    let url = req.url()?;
    let param = |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    let (Some(run), Some(part)) = (param("run"), param("part").as_deref().and_then(AsyncPart::parse)) else {
        return Response::error("?run=ID&part=sequential|refresh:N|redeem:N|revoke:K is required", 400);
    };
    let store = ObjectStore::new(Namespace(env.durable_object("LATCHKEY_OBJECTS")?), format!("conformance/{run}/"));
    run_async_part(&store, part).await;
    Response::ok(format!("conformance {part:?}: every check passed"))
}

/// Verifies the access token in the body `?n=N` times with this deployment's keys (the
/// wasm verifier: header, signature, claims), for bench/worker.mjs's comparison with
/// WebCrypto; 400 if any verification fails, so a rejected token never passes for a
/// fast one. Workers' clock does not advance during computation, so the client times
/// the request, and the set-up (parsing the secrets) cancels out between two values
/// of N.
#[cfg(feature = "conformance")]
async fn bench_verify(mut req: Request, env: &Env) -> worker::Result<Response> {
    use latchkey_token::jwt::Expectations;
    let url = req.url()?;
    let param = |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    let (Some(n), Some(issuer)) = (param("n").and_then(|n| n.parse::<u32>().ok()), param("iss")) else {
        return Response::error("?n=COUNT&iss=ISSUER is required", 400);
    };
    let token = req.text().await?;
    let Some(secrets) = secret(env, "LATCHKEY_SECRETS").and_then(|text| parse_secrets(&text).ok()) else {
        return Response::error("LATCHKEY_SECRETS is missing or invalid", 503);
    };
    let expect =
        Expectations { issuer: &issuer, audience: Some(&issuer), now: WorkerClock.now(), tolerance_seconds: 60 };
    for _ in 0..n.min(100_000) {
        if let Err(e) = secrets.keys.verify_access_token(&token, &expect) {
            return Response::error(format!("verification failed: {e}"), 400);
        }
    }
    Response::ok(format!("verified {n} times"))
}
