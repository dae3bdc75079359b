//! The DynamoDB backend against a real DynamoDB API: moto's server, started here.
//!
//! moto comes from the project's Python venv (`scripts/test` installs it). If it is
//! missing the tests fail and say how to get it; they never skip.
#![allow(clippy::disallowed_methods, reason = "test harness: waits on wall-clock deadlines for a child process")]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::AttributeValue;
use latchkey_store::conformance::{code, token_session};
use latchkey_store::{Redemption, Store, StoreError};
use latchkey_store_dynamodb::{DynamoStore, create_table};

struct Moto {
    endpoint: String,
    /// Held for its stdin pipe: moto exits when this process ends and the pipe closes
    /// (a static is never dropped, so nothing here could kill it).
    _child: Child,
}

/// The command that starts moto: the venv's Python running `infra/aws/local/moto_server.py`
/// (moto behind a lock, see there), or `LATCHKEY_MOTO_SERVER` if set.
fn moto_command(port: u16) -> Command {
    if let Ok(bin) = std::env::var("LATCHKEY_MOTO_SERVER") {
        let mut cmd = Command::new(bin);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        return cmd;
    }
    let venv = std::env::var("LATCHKEY_VENV")
        .unwrap_or_else(|_| format!("{}/.cache/latchkey-venv", std::env::var("HOME").unwrap_or_default()));
    let python = format!("{venv}/bin/python");
    assert!(
        std::path::Path::new(&format!("{venv}/bin/moto_server")).exists(),
        "moto is not installed in {venv}: run scripts/test once (it installs moto into the venv), \
         or set LATCHKEY_VENV / LATCHKEY_MOTO_SERVER"
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/aws/local/moto_server.py");
    let mut cmd = Command::new(python);
    cmd.args([script, "-H", "127.0.0.1", "-p", &port.to_string(), "--exit-with-stdin"]);
    // moto stops when this process's end closes the pipe (see `Moto`).
    cmd.stdin(Stdio::piped());
    cmd
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| {
        let port = free_port();
        let child = moto_command(port).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start moto_server");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not listen on port {port} within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Moto { endpoint: format!("http://127.0.0.1:{port}"), _child: child }
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap())
}

fn client_for(endpoint: &str) -> Client {
    client_with(endpoint, 10, Duration::from_secs(5), Duration::from_secs(60))
}

fn client_with(endpoint: &str, attempts: u32, connect: Duration, operation: Duration) -> Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .http_client(latchkey_store_dynamodb::http_client())
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        // moto is one Python process: under the 200-way races its accept queue backs up
        // for seconds, so the suite's client waits longer and retries more than the
        // functions' client does (`sdk_config_from_env`).
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::standard().with_max_attempts(attempts))
        .timeout_config(
            aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
                .connect_timeout(connect)
                .operation_timeout(operation)
                .build(),
        )
        .build();
    Client::from_conf(config)
}

/// A store over a fresh table of its own.
fn fresh_store(name: &str) -> (Client, DynamoStore) {
    let client = client_for(&moto().endpoint);
    let table = format!("latchkey-{name}");
    runtime().block_on(create_table(&client, &table)).expect("create table");
    (client.clone(), DynamoStore::new(client, &table).with_runtime(runtime().handle().clone()))
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    pollster::block_on(f)
}

#[test]
fn passes_the_conformance_suite() {
    let (_, store) = fresh_store("conformance");
    latchkey_store::conformance::run_all(|| store.clone());
}

#[test]
fn creating_the_table_twice_is_harmless_and_sets_ttl() {
    let (client, store) = fresh_store("twice");
    runtime().block_on(create_table(&client, store.table())).expect("second create");
    let ttl =
        runtime().block_on(client.describe_time_to_live().table_name(store.table()).send()).expect("describe ttl");
    let desc = ttl.time_to_live_description().expect("ttl description");
    assert_eq!(desc.attribute_name(), Some("ttl_epoch"));
}

fn get_raw(client: &Client, table: &str, pk: &str) -> Option<std::collections::HashMap<String, AttributeValue>> {
    runtime()
        .block_on(
            client
                .get_item()
                .table_name(table)
                .key("pk", AttributeValue::S(pk.into()))
                .key("sk", AttributeValue::S("#".into()))
                .consistent_read(true)
                .send(),
        )
        .unwrap()
        .item
}

#[test]
fn every_expiring_item_has_a_ttl_and_sessions_are_indexed_by_user() {
    let (client, store) = fresh_store("layout");
    let session = token_session("s-layout", "u-layout", None, "h0");
    block_on(store.create_session(&session)).unwrap();
    let item = get_raw(&client, store.table(), "S#s-layout").expect("session item");
    assert_eq!(
        item["ttl_epoch"].as_n().unwrap(),
        &(session.created_at + session.lifetime.lifetime_seconds).to_string()
    );
    assert_eq!(item["gsi1pk"].as_s().unwrap(), "U#u-layout");
    assert_eq!(item["version"].as_n().unwrap(), "0");
    assert_eq!(block_on(store.session("s-layout")).unwrap().as_ref(), Some(&session), "round trip");

    let code = code("layout-hash", 1_700_000_300);
    block_on(store.put_code(&code)).unwrap();
    let item = get_raw(&client, store.table(), "C#layout-hash").expect("code item");
    assert!(item.contains_key("ttl_epoch"));
    block_on(store.bump_counter("k", 1_700_000_000, 60)).unwrap();
    let item = get_raw(&client, store.table(), "K#k").expect("counter item");
    assert_eq!(item["ttl_epoch"].as_n().unwrap(), "1700000060");

    block_on(store.revoke_session("never-created", 1_700_000_000)).unwrap();
    let item = get_raw(&client, store.table(), "S#never-created").expect("tombstone item");
    assert_eq!(item["ttl_epoch"].as_n().unwrap(), "1700086400", "tombstones expire after a day");
}

#[test]
fn an_expired_code_is_unknown_although_dynamodb_has_not_deleted_it() {
    let (client, store) = fresh_store("expired-code");
    block_on(store.put_code(&code("old", 1_700_000_060))).unwrap();
    assert_eq!(block_on(store.redeem_code("old", "s1", 1_700_000_061)).unwrap(), Redemption::Unknown);
    assert!(
        get_raw(&client, store.table(), "C#old").is_some(),
        "the item is still there (moto, like DynamoDB, deletes late)"
    );
    assert!(block_on(store.counter("gone", 1)).unwrap().is_none());
}

#[test]
fn an_unreachable_endpoint_is_unavailable_not_an_answer() {
    // A closed port: connection refused, after the SDK's own retries.
    let port = free_port();
    let client = client_with(&format!("http://127.0.0.1:{port}"), 3, Duration::from_secs(1), Duration::from_secs(5));
    let store = DynamoStore::new(client, "latchkey-nowhere").with_runtime(runtime().handle().clone());
    let started = Instant::now();
    match block_on(store.session("s1")) {
        Err(StoreError::Unavailable(msg)) => {
            assert!(msg.contains("dynamodb GetItem"), "{msg}");
            assert!(!msg.contains("s1"), "the error names no key: {msg}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    match block_on(store.redeem_code("h", "s1", 1)) {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(15), "failed within the timeouts: {:?}", started.elapsed());
}

#[test]
fn a_missing_table_is_unavailable() {
    let client = client_for(&moto().endpoint);
    let store = DynamoStore::new(client, "latchkey-no-such-table").with_runtime(runtime().handle().clone());
    match block_on(store.user_by_username("alice")) {
        Err(StoreError::Unavailable(msg)) => assert!(msg.contains("ResourceNotFoundException"), "{msg}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}
