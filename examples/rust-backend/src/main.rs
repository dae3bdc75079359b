//! `latchkey-example-backend --issuer URL [--listen ADDR] [--jwks-refetch-cooldown SECS]
//! [--jwks-max-age SECS]`: discovers the issuer, loads its keys, and serves the example
//! API (see the library's documentation and README.md). Prints
//! `latchkey example backend listening on http://ADDR` when ready; SIGTERM or Ctrl-C
//! stops it after in-flight requests finish.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use latchkey_example_backend::issuer::Issuer;
use latchkey_example_backend::keys::{CachePolicy, KeyCache};
use latchkey_example_backend::token::Verifier;
use latchkey_example_backend::{AppState, router};
use tracing_subscriber::filter::LevelFilter;

const USAGE: &str = "usage: latchkey-example-backend --issuer URL [--listen ADDR] \
[--jwks-refetch-cooldown SECONDS] [--jwks-max-age SECONDS]

  --issuer URL                     Latchkey's http.public_origin, e.g. http://127.0.0.1:3000
  --listen ADDR                    default 127.0.0.1:5000 (port 0: any free port)
  --jwks-refetch-cooldown SECONDS  minimum time between two JWKS requests (default 30)
  --jwks-max-age SECONDS           refetch keys older than this (default 300)

Logs go to stderr; RUST_LOG=debug|info|warn|error sets the level (default info).";

struct Args {
    issuer: String,
    listen: SocketAddr,
    policy: CachePolicy,
}

fn parse_args() -> Result<Args, String> {
    let mut issuer = None;
    let mut listen: SocketAddr = ([127, 0, 0, 1], 5000).into();
    let mut policy = CachePolicy::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let seconds = |v: &str| v.parse::<u64>().map(Duration::from_secs).map_err(|e| format!("{flag} {v:?}: {e}"));
        match flag.as_str() {
            "--issuer" => issuer = Some(value),
            "--listen" => listen = value.parse().map_err(|e| format!("--listen {value:?}: {e}"))?,
            "--jwks-refetch-cooldown" => policy.refetch_cooldown = seconds(&value)?,
            "--jwks-max-age" => policy.max_age = seconds(&value)?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    let issuer = issuer.ok_or("--issuer is required")?;
    Ok(Args { issuer, listen, policy })
}

#[tokio::main]
async fn main() -> ExitCode {
    let level = std::env::var("RUST_LOG").ok().and_then(|v| v.parse().ok()).unwrap_or(LevelFilter::INFO);
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let issuer = match Issuer::discover(&args.issuer).await {
        Ok(issuer) => issuer,
        Err(e) => {
            eprintln!("cannot use the issuer: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(issuer = %issuer.issuer, jwks_uri = %issuer.jwks_uri, "discovered the issuer");
    let keys = KeyCache::new(issuer.jwks(), args.policy);
    // Not fatal: the first request retries (after the cooldown).
    let _ = keys.load().await;
    let verifier = Verifier::new(keys, issuer.issuer.clone());
    let state = Arc::new(AppState { issuer, verifier });

    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().map_or_else(|_| args.listen.to_string(), |a| a.to_string());
    println!("latchkey example backend listening on http://{addr}");
    if let Err(e) = axum::serve(listener, router(state)).with_graceful_shutdown(shutdown()).await {
        eprintln!("server error: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

async fn shutdown() {
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
