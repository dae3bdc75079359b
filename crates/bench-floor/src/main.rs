//! `latchkey-bench-floor`: the reference servers of the HTTP benchmarks (`scripts/bench`).
//!
//! A benchmark number for Latchkey's resolver means little on its own on a shared
//! 2-core machine; what it means is how far it is from the cheapest server that could
//! give the same answer, measured in the same run. This binary is that cheapest server,
//! in three modes:
//!
//! - `--mode floor`: a bare hyper 1 HTTP/1.1 server that answers every request 200 with
//!   an empty body and the five identity headers the resolver sends for a valid session
//!   (`x-authgear-session-valid: true`, `-user-id`, `-user-anonymous`, `-user-verified`,
//!   `-session-amr`). No store, no crypto, no routing: the cost of HTTP alone.
//! - `--mode jwt-simple`: the floor plus one RS256 verification of the request's
//!   `Authorization: Bearer` token per request with jwt-simple (the workspace's
//!   `pure-rust` backend), including its claim parsing and time checks. The user id
//!   header carries the token's `sub`.
//! - `--mode ring`: the same with ring (`RSA_PKCS1_2048_8192_SHA256` over the JWT
//!   signing input), then the claims parsed with serde_json and `exp` checked.
//!
//! A missing or bad token in the crypto modes answers 200 with only
//! `x-authgear-session-valid: false`, as the resolver does, so the benchmark's
//! pre-flight check can tell a verified request from a rejected one.
//!
//! The server has the same shape as `latchkey serve` (`crates/cli/src/server.rs`): one
//! thread per available core (so `taskset` to one core gives one worker), each running
//! a current-thread tokio runtime, all accepting on one shared std listener, with the
//! same hyper connection settings. So the difference between the two is what Latchkey
//! does per request, not how it serves. The public key is read from `--jwks FILE`: a
//! JWK, or a JWKS document (`{"keys": [...]}`, as `/oauth2/jwks` serves it), whose first
//! RSA key is used.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use jwt_simple::prelude::{NoCustomClaims, RS256PublicKey, RSAPublicKeyLike, VerificationOptions};

/// The same header read timeout as Latchkey's server.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Clock skew tolerated for `exp`, as Latchkey's default `jwt.time_tolerance_seconds`.
const TIME_TOLERANCE_SECS: u64 = 60;
/// The user id answered in floor mode (the crypto modes answer the token's `sub`).
const FLOOR_USER_ID: &str = "00000000-0000-4000-8000-000000000000";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// No verification: HTTP only.
    Floor,
    /// RS256 verification with jwt-simple (pure-rust backend).
    JwtSimple,
    /// RS256 verification with ring.
    Ring,
}

/// Reference servers for Latchkey's HTTP benchmarks (see the crate docs).
#[derive(Parser, Debug)]
#[command(name = "latchkey-bench-floor", version)]
struct Args {
    /// Address to listen on (loopback only in the benchmarks).
    #[arg(long, default_value = "127.0.0.1:3990")]
    listen: SocketAddr,
    /// What to do per request.
    #[arg(long, value_enum, default_value_t = Mode::Floor)]
    mode: Mode,
    /// Public key for the crypto modes: a JWK or a JWKS document (first RSA key).
    #[arg(long)]
    jwks: Option<PathBuf>,
}

/// What a verified token contributes to the answer.
struct Identity {
    sub: String,
}

enum Verifier {
    None,
    JwtSimple { key: Box<RS256PublicKey>, options: Box<VerificationOptions> },
    Ring { key: ring::signature::RsaPublicKeyComponents<Vec<u8>> },
}

impl Verifier {
    fn load(mode: Mode, jwks: Option<&PathBuf>) -> Result<Self, String> {
        if mode == Mode::Floor {
            return Ok(Verifier::None);
        }
        let path = jwks.ok_or("--jwks FILE is required with --mode jwt-simple and --mode ring")?;
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let jwk = first_rsa_jwk(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        match mode {
            Mode::Floor => Ok(Verifier::None),
            Mode::JwtSimple => {
                let key = RS256PublicKey::from_jwk(&jwk.to_string()).map_err(|e| format!("bad RSA JWK: {e}"))?;
                let options = VerificationOptions {
                    time_tolerance: Some(jwt_simple::prelude::Duration::from_secs(TIME_TOLERANCE_SECS)),
                    ..VerificationOptions::default()
                };
                Ok(Verifier::JwtSimple { key: Box::new(key), options: Box::new(options) })
            }
            Mode::Ring => {
                let part = |name: &str| -> Result<Vec<u8>, String> {
                    let s = jwk.get(name).and_then(|v| v.as_str()).ok_or(format!("JWK has no \"{name}\""))?;
                    URL_SAFE_NO_PAD.decode(s).map_err(|e| format!("JWK \"{name}\" is not base64url: {e}"))
                };
                let key = ring::signature::RsaPublicKeyComponents { n: part("n")?, e: part("e")? };
                Ok(Verifier::Ring { key })
            }
        }
    }

    /// `None` when the token is absent, malformed, badly signed or expired.
    fn verify(&self, token: Option<&str>) -> Option<Identity> {
        match self {
            Verifier::None => Some(Identity { sub: FLOOR_USER_ID.to_owned() }),
            Verifier::JwtSimple { key, options } => {
                let claims = key.verify_token::<NoCustomClaims>(token?, Some((**options).clone())).ok()?;
                Some(Identity { sub: claims.subject.unwrap_or_default() })
            }
            Verifier::Ring { key } => verify_with_ring(key, token?),
        }
    }
}

/// The first RSA key of a JWKS document, or the document itself if it is a JWK.
fn first_rsa_jwk(text: &str) -> Result<serde_json::Value, String> {
    let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let is_rsa = |k: &serde_json::Value| k.get("kty").and_then(|v| v.as_str()) == Some("RSA");
    match doc.get("keys").and_then(|k| k.as_array()) {
        Some(keys) => keys.iter().find(|k| is_rsa(k)).cloned().ok_or_else(|| "no RSA key in the JWKS".to_owned()),
        None if is_rsa(&doc) => Ok(doc),
        None => Err("neither an RSA JWK nor a JWKS".to_owned()),
    }
}

fn verify_with_ring(key: &ring::signature::RsaPublicKeyComponents<Vec<u8>>, token: &str) -> Option<Identity> {
    let (signing_input, signature) = token.rsplit_once('.')?;
    let (header, payload) = signing_input.split_once('.')?;
    let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    if header.get("alg").and_then(|v| v.as_str()) != Some("RS256") {
        return None;
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    key.verify(&ring::signature::RSA_PKCS1_2048_8192_SHA256, signing_input.as_bytes(), &signature).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    let exp = claims.get("exp")?.as_u64()?;
    if exp.saturating_add(TIME_TOLERANCE_SECS) < unix_now() {
        return None;
    }
    Some(Identity { sub: claims.get("sub")?.as_str()?.to_owned() })
}

#[expect(clippy::disallowed_methods, reason = "a benchmark server outside the core: it checks exp against the clock")]
fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn bearer(req: &hyper::Request<Incoming>) -> Option<&str> {
    let value = req.headers().get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn answer(verifier: &Verifier, req: &hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
    let mut resp = hyper::Response::new(Full::new(Bytes::new()));
    let headers = resp.headers_mut();
    let static_value = http::HeaderValue::from_static;
    match verifier.verify(bearer(req)) {
        Some(identity) => {
            headers.insert("x-authgear-session-valid", static_value("true"));
            let user_id = http::HeaderValue::from_str(&identity.sub).unwrap_or_else(|_| static_value(""));
            headers.insert("x-authgear-user-id", user_id);
            headers.insert("x-authgear-user-anonymous", static_value("false"));
            headers.insert("x-authgear-user-verified", static_value("false"));
            headers.insert("x-authgear-session-amr", static_value("pwd"));
        }
        None => {
            headers.insert("x-authgear-session-valid", static_value("false"));
        }
    }
    resp
}

async fn worker_loop(listener: StdListener, verifier: Arc<Verifier>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                eprintln!("latchkey-bench-floor: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let verifier = verifier.clone();
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(READ_TIMEOUT)
            .max_buf_size(64 * 1024)
            .serve_connection(
                TokioIo::new(stream),
                service_fn(move |req| {
                    let resp = answer(&verifier, &req);
                    async move { Ok::<_, std::convert::Infallible>(resp) }
                }),
            );
        tokio::task::spawn_local(async move {
            let _ = conn.await;
        });
    }
}

fn run(args: Args) -> Result<(), String> {
    let verifier = Arc::new(Verifier::load(args.mode, args.jwks.as_ref())?);
    let listener = StdListener::bind(args.listen).map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 16);
    let mut handles = Vec::with_capacity(workers);
    for i in 0..workers {
        let listener = listener.try_clone().map_err(|e| e.to_string())?;
        let verifier = verifier.clone();
        let handle = std::thread::Builder::new()
            .name(format!("floor-worker-{i}"))
            .spawn(move || -> Result<(), String> {
                let rt =
                    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
                let local = tokio::task::LocalSet::new();
                local.block_on(&rt, worker_loop(listener, verifier)).map_err(|e| e.to_string())
            })
            .map_err(|e| e.to_string())?;
        handles.push(handle);
    }
    drop(listener);
    println!("latchkey-bench-floor listening on http://{addr} (mode {:?}, {workers} workers)", args.mode);
    // The workers never return on their own; the benchmark script ends the process.
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("a worker thread panicked".into()),
        }
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("latchkey-bench-floor: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
