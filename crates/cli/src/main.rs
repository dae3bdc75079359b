//! The `latchkey` binary: `serve` runs the whole service as one local server over an
//! embedded SQLite store; `init` and `users` manage a data directory. Flags have
//! `LATCHKEY_*` environment equivalents.

mod admin_client;
mod datadir;
mod metrics;
mod ops;
mod server;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use latchkey_token::keys::Algorithm;

use admin_client::AdminClient;
use datadir::DataDir;
use ops::Output;

#[derive(Parser)]
#[command(name = "latchkey", version, about = "Latchkey: sessions, tokens, revocation and a forward-auth resolver")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum Alg {
    #[value(name = "RS256")]
    Rs256,
    #[value(name = "ES256")]
    Es256,
    #[value(name = "EdDSA")]
    EdDsa,
}

impl From<Alg> for Algorithm {
    fn from(a: Alg) -> Self {
        match a {
            Alg::Rs256 => Algorithm::Rs256,
            Alg::Es256 => Algorithm::Es256,
            Alg::EdDsa => Algorithm::EdDsa,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (initialising the data directory first if it is empty).
    Serve {
        /// Data directory.
        #[arg(long, env = "LATCHKEY_DATA_DIR", default_value = "./latchkey-data")]
        data_dir: PathBuf,
        /// Address to listen on.
        #[arg(long, env = "LATCHKEY_LISTEN", default_value = "127.0.0.1:3000")]
        listen: SocketAddr,
        /// Log format.
        #[arg(long, env = "LATCHKEY_LOG_FORMAT", value_enum, default_value = "text")]
        log_format: LogFormat,
        /// Serve Prometheus metrics at /metrics on this address (a listener of its
        /// own, unauthenticated: bind it to loopback or a private network). Off when unset.
        #[arg(long, env = "LATCHKEY_METRICS_LISTEN")]
        metrics_listen: Option<SocketAddr>,
    },
    /// Create a data directory: config with a demo client, a signing key, a database.
    Init {
        /// Data directory.
        #[arg(long, env = "LATCHKEY_DATA_DIR", default_value = "./latchkey-data")]
        data_dir: PathBuf,
        /// The public origin (issuer).
        #[arg(long, env = "LATCHKEY_PUBLIC_ORIGIN", default_value = "http://127.0.0.1:3000")]
        public_origin: String,
        /// Signing algorithm of the generated key.
        #[arg(long, value_enum, default_value = "RS256")]
        algorithm: Alg,
    },
    /// Manage users (on the data directory, or a deployment with --endpoint).
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Manage sessions (on the data directory, or a deployment with --endpoint).
    Sessions {
        #[command(subcommand)]
        command: SessionsCommand,
    },
    /// Signing keys: list them, and rotate them on a schedule (`keys rotate`, from cron)
    /// or step by step.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The audit stream of security events.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Admin API keys.
    AdminKey {
        #[command(subcommand)]
        command: AdminKeyCommand,
    },
}

/// Where an operator command acts: the local data directory (the default), or a
/// deployment's admin API.
#[derive(Args)]
struct Target {
    /// Data directory (ignored with --endpoint).
    #[arg(long, env = "LATCHKEY_DATA_DIR", default_value = "./latchkey-data")]
    data_dir: PathBuf,
    /// A deployment's public origin, e.g. https://auth.example.com: act through its
    /// admin API instead of on a data directory.
    #[arg(long, env = "LATCHKEY_ENDPOINT")]
    endpoint: Option<String>,
    /// The admin API key for --endpoint. Prefer the environment variable: an argument
    /// is visible to other users in the process list.
    #[arg(long, env = "LATCHKEY_ADMIN_KEY", hide_env_values = true)]
    admin_key: Option<String>,
    /// Print the API's JSON (one line per record for listings) instead of a table.
    #[arg(long)]
    json: bool,
}

impl Target {
    fn client(&self) -> Result<AdminClient, String> {
        match &self.endpoint {
            Some(endpoint) => {
                let key = self.admin_key.as_deref().ok_or("--endpoint needs an admin key: set LATCHKEY_ADMIN_KEY")?;
                AdminClient::remote(endpoint, key)
            }
            None => AdminClient::local(&DataDir::new(&self.data_dir)),
        }
    }

    fn output(&self) -> Output {
        if self.json { Output::Json } else { Output::Table }
    }
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Add a user; the password is read from the first line of stdin. Prints the id.
    Add {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        username: String,
        /// Mark the user as verified (`X-Authgear-User-Verified: true`).
        #[arg(long)]
        verified: bool,
        /// A role key (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Stdin holds a password hash from another system (argon2, bcrypt, PBKDF2),
        /// not a password; it is upgraded to argon2id at the user's first login.
        #[arg(long)]
        hash_from_stdin: bool,
    },
    /// Show a user.
    Get {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        username: String,
    },
    /// List users in username order, optionally those whose username starts with --prefix.
    List {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value = "")]
        prefix: String,
        /// Show at most this many (default: all).
        #[arg(long)]
        limit: Option<usize>,
        /// Users fetched per request.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=1000))]
        page_size: u16,
    },
    /// Disable a user and revoke all of their sessions.
    Disable {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        username: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Enable a disabled user.
    Enable {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        username: String,
    },
    /// Import users from a JSON Lines file (`-`: stdin): one object per line with
    /// `username`, `password` or `password_hash` (argon2, bcrypt, PBKDF2), and optionally
    /// `is_verified`, `roles`, `id`, `created_at`, `disabled`, `disabled_reason`.
    /// Existing usernames are skipped; every line is reported.
    Import {
        #[command(flatten)]
        target: Target,
        /// The JSON Lines file.
        file: PathBuf,
    },
    /// Export every user, with password hashes, as JSON Lines (what `users import` reads).
    Export {
        #[command(flatten)]
        target: Target,
    },
    /// Delete a user, revoking all of their sessions first.
    Delete {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        username: String,
    },
}

#[derive(Subcommand)]
enum SessionsCommand {
    /// List a user's active sessions.
    List {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        username: String,
    },
    /// Revoke one session (and the token sessions made from it).
    Revoke {
        #[command(flatten)]
        target: Target,
        /// The session id (from `sessions list`).
        #[arg(long)]
        id: String,
    },
    /// Export every active session of every user as JSON Lines (no secrets).
    Export {
        #[command(flatten)]
        target: Target,
    },
    /// Revoke every session of a user.
    RevokeAll {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        username: String,
    },
    /// Create a session for a user and print its tokens as JSON (for apps with their
    /// own login).
    Create {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        username: String,
        /// The client the tokens are for.
        #[arg(long)]
        client_id: String,
        /// Space-separated scopes (default: openid offline_access).
        #[arg(long)]
        scope: Option<String>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// List the published keys and where each is in its life.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Run the rotation schedule once: publish a next key if there is none, let it
    /// sign once it has been published for keys.prepublish_seconds, and remove retired
    /// keys no valid token can need. Safe to run as often as you like (cron: hourly).
    Rotate {
        #[command(flatten)]
        target: Target,
    },
    /// Publish a new next key now.
    Add {
        #[command(flatten)]
        target: Target,
        /// RS256, ES256 or EdDSA (default: keys.algorithm, else the signing key's).
        #[arg(long)]
        alg: Option<String>,
    },
    /// Make the next key sign (refused before its pre-publication ends, unless --force).
    Promote {
        #[command(flatten)]
        target: Target,
        /// The key's id (a thumbprint, which may start with `-`).
        #[arg(long, allow_hyphen_values = true)]
        kid: String,
        #[arg(long)]
        force: bool,
    },
    /// Drop a next key that has not signed.
    Retire {
        #[command(flatten)]
        target: Target,
        /// The key's id (a thumbprint, which may start with `-`).
        #[arg(long, allow_hyphen_values = true)]
        kid: String,
    },
    /// Remove a retired key from the JWKS (refused while a token it signed may be
    /// valid, unless --force: such tokens would stop verifying).
    Remove {
        #[command(flatten)]
        target: Target,
        /// The key's id (a thumbprint, which may start with `-`).
        #[arg(long, allow_hyphen_values = true)]
        kid: String,
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Print recent security events (sign-ins, tokens issued, refresh-token reuse,
    /// revocations, admin actions), oldest first; --follow keeps printing new ones.
    Tail {
        #[command(flatten)]
        target: Target,
        /// How far back to start, in seconds.
        #[arg(long, default_value_t = 3600)]
        since: u64,
        /// At most this many events (without --follow).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Keep waiting for new events.
        #[arg(long, short = 'f')]
        follow: bool,
    },
}

#[derive(Subcommand)]
enum AdminKeyCommand {
    /// Make an admin API key: its SHA-256 is added to the secrets file and the key is
    /// printed once. Restart the server (or redeploy the secret) to use it.
    Create {
        /// Data directory whose latchkey.secrets.yaml gets the key.
        #[arg(long, env = "LATCHKEY_DATA_DIR", default_value = "./latchkey-data")]
        data_dir: PathBuf,
        /// Another secrets file instead (the one a Lambda or Workers deployment uploads).
        #[arg(long)]
        secrets_file: Option<PathBuf>,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LATCHKEY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn print_created(files: &[PathBuf]) {
    for f in files {
        println!("created {}", f.display());
    }
}

fn serve(
    data_dir: PathBuf,
    listen: SocketAddr,
    log_format: LogFormat,
    metrics_listen: Option<SocketAddr>,
) -> Result<(), String> {
    init_logging(log_format);
    let dir = DataDir::new(&data_dir);
    if !dir.is_initialised() {
        let host = if listen.ip().is_unspecified() { "127.0.0.1".to_owned() } else { listen.ip().to_string() };
        let origin = match listen.ip() {
            std::net::IpAddr::V6(_) if !listen.ip().is_unspecified() => {
                format!("http://[{host}]:{}", listen.port())
            }
            _ => format!("http://{host}:{}", listen.port()),
        };
        let files = dir.init(&origin, Algorithm::Rs256)?;
        println!("initialised {} (public origin {origin})", data_dir.display());
        print_created(&files);
        println!("add a user with: latchkey users add --data-dir {} --username NAME", data_dir.display());
    }
    let loaded = dir.load()?;
    let store = dir.open_store()?;
    let signals = server::Signals::install()?;
    let listener = TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("latchkey listening on http://{addr}");
    println!("  issuer     {}", loaded.config.issuer);
    println!("  discovery  {}/.well-known/openid-configuration", loaded.config.issuer);
    println!("  resolver   {}/_resolver/resolve", loaded.config.issuer);
    let _ = std::io::stdout().flush();
    let metrics = match metrics_listen {
        Some(at) => {
            let metrics = std::sync::Arc::new(metrics::Metrics::default());
            let listener = TcpListener::bind(at).map_err(|e| format!("cannot listen on {at} for metrics: {e}"))?;
            let addr = metrics::serve(listener, metrics.clone())?;
            println!("  metrics    http://{addr}/metrics");
            Some(metrics)
        }
        None => None,
    };
    let _ = std::io::stdout().flush();
    server::run(listener, loaded, store, signals, metrics)
}

fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    Ok(tokio::task::LocalSet::new().block_on(&rt, f))
}

fn users(command: UsersCommand) -> Result<(), String> {
    match command {
        UsersCommand::Add { target, username, verified, roles, hash_from_stdin } => {
            let secret = if hash_from_stdin { read_hash()? } else { latchkey_native::accounts::read_password()? };
            let field = if hash_from_stdin { "password_hash" } else { "password" };
            let admin = target.client()?;
            block_on(ops::users_add(&admin, target.output(), &username, (field, &secret), verified, &roles))?
        }
        UsersCommand::Get { target, username } => {
            block_on(ops::users_get(&target.client()?, target.output(), &username))?
        }
        UsersCommand::List { target, prefix, limit, page_size } => {
            block_on(ops::users_list(&target.client()?, target.output(), &prefix, page_size.into(), limit))?
        }
        UsersCommand::Disable { target, username, reason } => {
            block_on(ops::users_set_disabled(&target.client()?, target.output(), &username, true, reason.as_deref()))?
        }
        UsersCommand::Enable { target, username } => {
            block_on(ops::users_set_disabled(&target.client()?, target.output(), &username, false, None))?
        }
        UsersCommand::Import { target, file } => {
            block_on(ops::users_import(&target.client()?, target.output(), &file))?
        }
        UsersCommand::Export { target } => block_on(ops::users_export(&target.client()?))?,
        UsersCommand::Delete { target, username } => {
            block_on(ops::users_delete(&target.client()?, target.output(), &username))?
        }
    }
}

fn sessions(command: SessionsCommand) -> Result<(), String> {
    match command {
        SessionsCommand::List { target, username } => {
            block_on(ops::sessions_list(&target.client()?, target.output(), &username))?
        }
        SessionsCommand::Revoke { target, id } => {
            block_on(ops::sessions_revoke(&target.client()?, target.output(), &id))?
        }
        SessionsCommand::Export { target } => block_on(ops::sessions_export(&target.client()?))?,
        SessionsCommand::RevokeAll { target, username } => {
            block_on(ops::sessions_revoke_all(&target.client()?, target.output(), &username))?
        }
        SessionsCommand::Create { target, username, client_id, scope } => {
            block_on(ops::sessions_create(&target.client()?, target.output(), &username, &client_id, scope.as_deref()))?
        }
    }
}

fn keys(command: KeysCommand) -> Result<(), String> {
    use http::Method;
    let force = |f: bool| if f { "?force=true" } else { "" };
    let (target, method, path, body) = match command {
        KeysCommand::List { target } => (target, Method::GET, "keys".to_owned(), None),
        KeysCommand::Rotate { target } => (target, Method::POST, "keys/rotate".to_owned(), None),
        KeysCommand::Add { target, alg } => {
            (target, Method::POST, "keys".to_owned(), alg.map(|a| serde_json::json!({ "alg": a })))
        }
        KeysCommand::Promote { target, kid, force: f } => {
            (target, Method::POST, format!("keys/{}/promote{}", ops::encode(&kid), force(f)), None)
        }
        KeysCommand::Retire { target, kid } => {
            (target, Method::POST, format!("keys/{}/retire", ops::encode(&kid)), None)
        }
        KeysCommand::Remove { target, kid, force: f } => {
            (target, Method::DELETE, format!("keys/{}{}", ops::encode(&kid), force(f)), None)
        }
    };
    block_on(ops::keys(&target.client()?, target.output(), method, &path, body.as_ref()))?
}

/// A password hash from the first line of stdin.
fn read_hash() -> Result<String, String> {
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::stdin().lock(), &mut line)
        .map_err(|e| format!("cannot read the password hash from stdin: {e}"))?;
    let hash = line.trim().to_owned();
    if hash.is_empty() {
        return Err("the password hash (first line of stdin) is empty".into());
    }
    Ok(hash)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { data_dir, listen, log_format, metrics_listen } => {
            serve(data_dir, listen, log_format, metrics_listen)
        }
        Command::Init { data_dir, public_origin, algorithm } => {
            DataDir::new(&data_dir).init(&public_origin, algorithm.into()).map(|files| print_created(&files))
        }
        Command::Users { command } => users(command),
        Command::Sessions { command } => sessions(command),
        Command::Keys { command } => keys(command),
        Command::Audit { command: AuditCommand::Tail { target, since, limit, follow } } => {
            target.client().and_then(|admin| block_on(ops::audit_tail(&admin, target.output(), since, limit, follow))?)
        }
        Command::AdminKey { command: AdminKeyCommand::Create { data_dir, secrets_file } } => {
            let file = secrets_file.unwrap_or_else(|| DataDir::new(&data_dir).secrets());
            DataDir::add_admin_key(&file, &latchkey_native::OsEntropy).map(|key| {
                println!("{key}");
                eprintln!(
                    "added its SHA-256 to {}; the key itself is stored nowhere. Restart the server \
                     (or upload the secrets again) to use it.",
                    file.display()
                );
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("latchkey: {e}");
            ExitCode::FAILURE
        }
    }
}
