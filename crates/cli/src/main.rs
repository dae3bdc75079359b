//! The `latchkey` binary: `serve` runs the whole service as one local server over an
//! embedded SQLite store; `init` and `users` manage a data directory. Flags have
//! `LATCHKEY_*` environment equivalents.

mod datadir;
mod server;
mod users;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use latchkey_token::keys::Algorithm;

use datadir::DataDir;

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
    /// Manage users.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Add a user; the password is read from the first line of stdin.
    Add {
        #[arg(long, env = "LATCHKEY_DATA_DIR", default_value = "./latchkey-data")]
        data_dir: PathBuf,
        #[arg(long)]
        username: String,
        /// Mark the user as verified (`X-Authgear-User-Verified: true`).
        #[arg(long)]
        verified: bool,
        /// A role key (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// Disable a user and revoke all of their sessions.
    Disable {
        #[arg(long, env = "LATCHKEY_DATA_DIR", default_value = "./latchkey-data")]
        data_dir: PathBuf,
        #[arg(long)]
        username: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Enable a disabled user.
    Enable {
        #[arg(long, env = "LATCHKEY_DATA_DIR", default_value = "./latchkey-data")]
        data_dir: PathBuf,
        #[arg(long)]
        username: String,
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

fn serve(data_dir: PathBuf, listen: SocketAddr, log_format: LogFormat) -> Result<(), String> {
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
    let (config, keys) = dir.load()?;
    let store = dir.open_store()?;
    let signals = server::Signals::install()?;
    let listener = TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("latchkey listening on http://{addr}");
    println!("  issuer     {}", config.issuer);
    println!("  discovery  {}/.well-known/openid-configuration", config.issuer);
    println!("  resolver   {}/_resolver/resolve", config.issuer);
    let _ = std::io::stdout().flush();
    server::run(listener, config, keys, store, signals)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { data_dir, listen, log_format } => serve(data_dir, listen, log_format),
        Command::Init { data_dir, public_origin, algorithm } => {
            DataDir::new(&data_dir).init(&public_origin, algorithm.into()).map(|files| print_created(&files))
        }
        Command::Users { command } => match command {
            UsersCommand::Add { data_dir, username, verified, roles } => {
                users::add(&DataDir::new(&data_dir), &username, verified, &roles)
            }
            UsersCommand::Disable { data_dir, username, reason } => {
                users::set_disabled(&DataDir::new(&data_dir), &username, true, reason.as_deref())
            }
            UsersCommand::Enable { data_dir, username } => {
                users::set_disabled(&DataDir::new(&data_dir), &username, false, None)
            }
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("latchkey: {e}");
            ExitCode::FAILURE
        }
    }
}
