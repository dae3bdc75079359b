//! `latchkey-aws`: the operator CLI for a Lambda deployment's DynamoDB table, run with
//! the operator's own AWS credentials (the standard environment and profiles;
//! `AWS_ENDPOINT_URL_DYNAMODB` for a local endpoint).

use clap::{Parser, Subcommand};
use latchkey_native::accounts;
use latchkey_store_dynamodb::{DynamoStore, client_from_env, create_table};

#[derive(Parser)]
#[command(name = "latchkey-aws", version, about = "Operate Latchkey's DynamoDB table")]
struct Cli {
    /// The DynamoDB table (the SAM stack's TableName output).
    #[arg(long, env = "LATCHKEY_TABLE", global = true)]
    table: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Table management.
    #[command(subcommand)]
    Table(TableCommand),
    /// User accounts.
    #[command(subcommand)]
    Users(UsersCommand),
}

#[derive(Subcommand)]
enum TableCommand {
    /// Creates the table with Latchkey's layout (keys, `by_user` index, TTL), for
    /// deployments that do not use the SAM template's table. An existing table is kept.
    Create,
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Adds a user; the password is the first line of stdin. Prints the user id.
    Add {
        #[arg(long)]
        username: String,
        /// Mark the user verified (`X-Authgear-User-Verified: true`).
        #[arg(long)]
        verified: bool,
        /// A role key (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// Disables a user and revokes every session of theirs.
    Disable {
        #[arg(long)]
        username: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Enables a disabled user.
    Enable {
        #[arg(long)]
        username: String,
    },
}

async fn run(cli: Cli) -> Result<(), String> {
    let table = cli.table.ok_or("set --table or LATCHKEY_TABLE")?;
    let client = client_from_env().await;
    let store = DynamoStore::new(client.clone(), &table);
    match cli.command {
        Command::Table(TableCommand::Create) => {
            create_table(&client, &table).await.map_err(|e| e.to_string())?;
            eprintln!("table {table} is active");
        }
        Command::Users(UsersCommand::Add { username, verified, roles }) => {
            let password = accounts::read_password()?;
            println!("{}", accounts::add(&store, &username, &password, verified, &roles).await?);
        }
        Command::Users(UsersCommand::Disable { username, reason }) => {
            accounts::set_disabled(&store, &username, true, reason.as_deref()).await?;
        }
        Command::Users(UsersCommand::Enable { username }) => {
            accounts::set_disabled(&store, &username, false, None).await?;
        }
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(run(cli)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("latchkey-aws: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
