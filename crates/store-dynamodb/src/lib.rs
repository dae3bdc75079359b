//! The DynamoDB backend for the Latchkey storage port, used by the Lambda functions:
//! [`DynamoStore`] keeps users, sessions, authorization codes and abuse counters in one
//! table, and every operation that must be atomic is one conditional write.
//!
//! # Single-table design
//!
//! The table has a string partition key `pk` and a string sort key `sk`, one global
//! secondary index `by_user` (`gsi1pk`, `gsi1sk`, all attributes projected) and a TTL
//! attribute `ttl_epoch` (Unix seconds). [`create_table`] creates exactly this (the SAM
//! template in `infra/aws` declares the same). Item types:
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | user | `U#<id>` | `#` | `body` (JSON), `disabled`, `disabled_reason` |
//! | username | `N#<username>` | `#` | `user_id` (makes usernames unique), `gsi1pk` = `USERS`, `gsi1sk` = `<username>` |
//! | session | `S#<id>` | `#` | `body` (JSON), `version`, `last_used_at`, `revoked_at`, `gsi1pk` = `U#<user>`, `gsi1sk` = `S#<id>`, `ttl_epoch` |
//! | child link | `S#<parent>` | `C#<child>` | `ttl_epoch` |
//! | code | `C#<sha256>` | `#` | `body` (JSON), `expires_at`, `redeemed_by`, `ttl_epoch` |
//! | counter | `K#<key>` | `#` | `hits`, `first_at`, `last_at`, `expires_at`, `ttl_epoch` |
//! | key ring | `KEYRING` | `#` | `document` (JSON), `version` |
//! | audit event | `A#<day>` (Unix days) | `<cursor>` | `document` (JSON), `ttl_epoch` (90 days on) |
//!
//! `version`, `last_used_at`, `revoked_at`, `disabled` and `disabled_reason` live beside
//! the JSON body because conditional writes compare and update them on their own; on
//! read they override the body's copies.
//!
//! # Atomicity
//!
//! * **Rotation** ([`Store::swap_session`]) is one `UpdateItem` conditioned on
//!   `version = :expected AND attribute_not_exists(revoked_at)`. The port also wants a
//!   last-use stamp that never moves backwards and DynamoDB has no `max()`, so the
//!   first attempt also requires `last_used_at <= :next`; when only that part fails,
//!   a second conditional write swaps without touching the stamp. Both are
//!   compare-and-swaps on the version: a lost race is `false`, which the shared
//!   [`latchkey_store::refresh`] procedure turns into its defined outcomes.
//! * **Code redemption** is one `UpdateItem` setting `redeemed_by` conditioned on the
//!   code existing, not being redeemed and not being expired, with
//!   `ReturnValuesOnConditionCheckFailure = ALL_OLD`, so the loser learns the winner's
//!   session in the same round trip.
//! * **Revocation** upserts the session item (a tombstone if it does not exist yet),
//!   then revokes every child found by a strongly consistent query of the parent's
//!   partition (`sk` beginning with `C#`). A child is created together with its link
//!   in one transaction, so every child committed before the query is revoked: the
//!   same guarantee as the SQLite backend's single `UPDATE`.
//! * **Users' sessions** are found through the `by_user` index, which is eventually
//!   consistent (typically well under a second). Disabling a user is nonetheless
//!   immediate: the user item is written first, with a strongly consistent write, and
//!   every endpoint checks the user on every use.
//!
//! * **Listing users** queries the `by_user` index's `USERS` partition, where every
//!   username item sorts by name (so a prefix search is `begins_with` on the sort key),
//!   then reads the user items with strongly consistent reads. The index is eventually
//!   consistent: a user created or deleted a moment ago can be missing from, or still
//!   in, a listing, never in a lookup by id or name. The same holds for a user's
//!   session list, read from the index's `U#<user>` partition.
//!
//! # Expiry
//!
//! DynamoDB deletes expired items late (up to days), so nothing relies on deletion:
//! codes and counters compare their own `expires_at` in the condition or after the
//! read, and a session's `ttl_epoch` is its absolute expiry, past which callers find it
//! inactive anyway. Every read is strongly consistent.
//!
//! # Errors
//!
//! Throttling, timeouts and every other service or transport failure are
//! [`StoreError::Unavailable`] (503 with `Retry-After` at the HTTP layer), carrying the
//! error code and never a key or value. The SDK retries transient errors itself (the
//! standard retry mode) within an operation timeout.
//!
//! # Runtime
//!
//! The SDK needs a Tokio runtime. Inside one (Lambda) calls run inline. Callers that
//! poll futures elsewhere (the conformance suite's threads) give the store a runtime
//! handle with [`DynamoStore::with_runtime`], and each request is spawned onto it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification, TransactWriteItem,
};
use latchkey_store::{AuditEvent, AuthCode, Counter, Redemption, Session, Store, StoreError, User};
use latchkey_token::UnixSeconds;

/// The global secondary index over a user's sessions.
pub const USER_INDEX: &str = "by_user";
/// The TTL attribute.
pub const TTL_ATTRIBUTE: &str = "ttl_epoch";
/// How long DynamoDB keeps an audit event (its TTL): 90 days.
pub const AUDIT_RETENTION_SECONDS: u64 = 90 * 86_400;
/// The key of the one key-ring item.
const KEY_RING_PK: &str = "KEYRING";
/// The `by_user` index partition that holds every username item, sorted by name.
const DIRECTORY_PARTITION: &str = "USERS";
/// How long a tombstone (a revocation of a not yet created session) is kept.
const TOMBSTONE_SECONDS: u64 = 86_400;
/// How long a redeemed or expired code is kept, to recognise replays.
const CODE_RETENTION_SECONDS: u64 = 86_400;
/// Attempts at a counter bump before giving up (each loses only to a concurrent restart).
const COUNTER_ATTEMPTS: usize = 8;

type Item = HashMap<String, AttributeValue>;

/// The DynamoDB store. Clones share the client (and its connection pool).
#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: Arc<str>,
    runtime: Option<tokio::runtime::Handle>,
    writes: Arc<WriteIds>,
}

/// Write ids: unique per call across processes with overwhelming probability (a
/// random 64-bit instance id and a counter). Not secret, only distinct.
struct WriteIds {
    instance: u64,
    next: AtomicU64,
}

/// Builds an SDK client with aws-config's full provider chain (profiles, SSO, STS,
/// `AWS_ENDPOINT_URL_DYNAMODB`): for the operator CLI, run with an operator's own
/// credentials.
pub async fn client_from_env() -> Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http_client())
        .timeout_config(timeouts())
        .load()
        .await;
    Client::new(&config)
}

fn timeouts() -> aws_types::sdk_config::TimeoutConfig {
    aws_types::sdk_config::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(5))
        .build()
}

/// The SDK configuration of a Lambda function, read from the variables Lambda sets:
/// `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` (the
/// execution role's credentials, valid for the life of the instance), and
/// `AWS_ENDPOINT_URL` for a local endpoint (moto). It skips aws-config's provider
/// chains, which would link an STS client into every function; rustls over ring is the
/// only TLS stack; timeouts are explicit and the standard retry mode retries transient
/// errors. Shared by the DynamoDB and Secrets Manager clients of a function.
///
/// # Errors
/// A message naming the variable that is missing.
pub fn lambda_sdk_config() -> Result<aws_types::SdkConfig, String> {
    use aws_credential_types::Credentials;
    use aws_credential_types::provider::SharedCredentialsProvider;
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let need = |name: &str| var(name).ok_or_else(|| format!("{name} is not set"));
    let credentials = Credentials::new(
        need("AWS_ACCESS_KEY_ID")?,
        need("AWS_SECRET_ACCESS_KEY")?,
        var("AWS_SESSION_TOKEN"),
        None,
        "lambda-environment",
    );
    let mut builder = aws_types::SdkConfig::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_types::region::Region::new(need("AWS_REGION")?))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .http_client(http_client())
        .timeout_config(timeouts())
        .retry_config(aws_types::sdk_config::RetryConfig::standard());
    if let Some(url) = var("AWS_ENDPOINT_URL") {
        builder = builder.endpoint_url(url);
    }
    Ok(builder.build())
}

/// The HTTP client every AWS client of Latchkey uses: hyper with rustls over ring (the
/// slim SDK features bring no default client).
pub fn http_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https()
}

impl DynamoStore {
    /// A store over `table` (which must exist; see [`create_table`]).
    pub fn new(client: Client, table: &str) -> Self {
        // std's RandomState keys come from the OS random source, once per process.
        let instance = std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), table);
        let writes = Arc::new(WriteIds { instance, next: AtomicU64::new(0) });
        DynamoStore { client, table: Arc::from(table), runtime: None, writes }
    }

    /// Runs every request on `runtime`, for callers that are not inside a Tokio runtime.
    #[must_use]
    pub fn with_runtime(mut self, runtime: tokio::runtime::Handle) -> Self {
        self.runtime = Some(runtime);
        self
    }

    fn next_write_id(&self) -> String {
        format!("{:016x}-{}", self.writes.instance, self.writes.next.fetch_add(1, Ordering::Relaxed))
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    async fn run<F>(&self, request: F) -> Result<F::Output, StoreError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.runtime {
            None => Ok(request.await),
            Some(rt) => {
                rt.spawn(request).await.map_err(|_| StoreError::Unavailable("dynamodb request task failed".into()))
            }
        }
    }

    /// A transaction item that inserts `item` unless its key exists.
    fn insert(&self, item: Item) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(self.table())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// An `UpdateItem` of the record item under `pk` (sort key `#`).
    fn update(&self, pk: String) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client.update_item().table_name(self.table()).key("pk", s(pk)).key("sk", s("#"))
    }

    /// Runs `query` over every page and returns attribute `attr` of each item, with
    /// `prefix` stripped (items without it are skipped).
    async fn query_all(
        &self,
        query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
        attr: &str,
        prefix: &str,
    ) -> Result<Vec<String>, StoreError> {
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let req = query.clone().set_exclusive_start_key(start.take());
            let out = self.run(req.send()).await?.map_err(|e| unavailable("Query", &e))?;
            found.extend(out.items().iter().filter_map(|i| get_s(i, attr)?.strip_prefix(prefix)).map(str::to_owned));
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(found),
            }
        }
    }

    async fn get(&self, pk: String) -> Result<Option<Item>, StoreError> {
        let req =
            self.client.get_item().table_name(self.table()).key("pk", s(pk)).key("sk", s("#")).consistent_read(true);
        let out = self.run(req.send()).await?.map_err(|e| unavailable("GetItem", &e))?;
        Ok(out.item)
    }

    /// Bumps the version of an existing session (and revokes it); returns the old
    /// item, or `None` if it does not exist.
    async fn revoke_existing(&self, id: &str, now: UnixSeconds) -> Result<Option<Item>, StoreError> {
        let req = self
            .update(session_pk(id))
            .update_expression("SET revoked_at = if_not_exists(revoked_at, :now) ADD version :one")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllOld);
        match self.run(req.send()).await? {
            Ok(out) => Ok(Some(out.attributes.unwrap_or_default())),
            Err(e) if is_condition_failure(&e) => Ok(None),
            Err(e) => Err(unavailable("UpdateItem", &e)),
        }
    }
}

// ---------------------------------------------------------------------------
// keys and attribute helpers

fn user_pk(id: &str) -> String {
    format!("U#{id}")
}
fn username_pk(username: &str) -> String {
    format!("N#{username}")
}
fn session_pk(id: &str) -> String {
    format!("S#{id}")
}
fn child_sk(id: &str) -> String {
    format!("C#{id}")
}
fn code_pk(hash: &str) -> String {
    format!("C#{hash}")
}
fn counter_pk(key: &str) -> String {
    format!("K#{key}")
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn get_n(item: &Item, name: &str) -> Result<Option<u64>, StoreError> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::N(v)) => {
            v.parse().map(Some).map_err(|_| StoreError::Corrupt(format!("attribute {name} is not an unsigned integer")))
        }
        Some(_) => Err(StoreError::Corrupt(format!("attribute {name} is not a number"))),
    }
}

fn need_n(item: &Item, name: &str) -> Result<u64, StoreError> {
    get_n(item, name)?.ok_or_else(|| StoreError::Corrupt(format!("attribute {name} is missing")))
}

fn body<T: serde::de::DeserializeOwned>(item: &Item, what: &str) -> Result<T, StoreError> {
    let text = get_s(item, "body").ok_or_else(|| StoreError::Corrupt(format!("{what} has no body")))?;
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what} body: {:?}", e.classify())))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|_| StoreError::Corrupt("record cannot be encoded".into()))
}

fn unavailable<E: ProvideErrorMetadata, R>(operation: &str, e: &SdkError<E, R>) -> StoreError {
    // The code names the failure (ProvisionedThroughputExceededException, a timeout);
    // messages can quote request values, so only the code is kept.
    let code = match e {
        SdkError::ServiceError(se) => se.err().code().unwrap_or("unknown service error").to_owned(),
        SdkError::TimeoutError(_) => "timeout".to_owned(),
        SdkError::DispatchFailure(d) if d.is_timeout() => "connect timeout".to_owned(),
        SdkError::DispatchFailure(d) if d.is_io() => "connection failed (i/o)".to_owned(),
        SdkError::DispatchFailure(_) => "dispatch failure (endpoint unreachable)".to_owned(),
        SdkError::ResponseError(_) => "unreadable response".to_owned(),
        SdkError::ConstructionFailure(_) => "request construction failed".to_owned(),
        _ => "sdk error".to_owned(),
    };
    StoreError::Unavailable(format!("dynamodb {operation}: {code}"))
}

fn is_condition_failure<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.as_service_error().and_then(|se| se.code()) == Some("ConditionalCheckFailedException")
}

fn is_transaction_condition_failure(
    e: &SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, impl std::fmt::Debug>,
) -> bool {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
            c.cancellation_reasons().iter().any(|r| r.code() == Some("ConditionalCheckFailed"))
        }
        _ => false,
    }
}

// The SDK retries an attempt whose answer was lost (a timeout, a reset connection), and
// the retry of a conditional write that did apply fails its own condition. Inserts are
// therefore transactions, whose client request token (generated by the SDK, the same
// for every retry) makes DynamoDB answer a retry with the first attempt's success.
// Rotation and redemption are single updates that also store a write id unique to the
// call (`write_id`) and ask for the item as it was (ALL_OLD) when their condition
// fails, so they recognise their own earlier write.

fn condition_failure_item(
    e: &SdkError<aws_sdk_dynamodb::operation::update_item::UpdateItemError, impl std::fmt::Debug>,
) -> Option<Item> {
    use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
    match e.as_service_error() {
        Some(UpdateItemError::ConditionalCheckFailedException(c)) => c.item().cloned(),
        _ => None,
    }
}

fn already_applied(old: &Item, write_id: &str) -> bool {
    get_s(old, "write_id") == Some(write_id)
}

fn build_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("dynamodb request could not be built: {e}"))
}

// ---------------------------------------------------------------------------
// records <-> items

fn user_from(item: &Item) -> Result<User, StoreError> {
    let mut user: User = body(item, "user")?;
    user.disabled = item.get("disabled").and_then(|v| v.as_bool().ok()).copied().unwrap_or(user.disabled);
    user.disabled_reason = get_s(item, "disabled_reason").map(str::to_owned);
    Ok(user)
}

fn session_item(session: &Session) -> Result<Item, StoreError> {
    let mut item = Item::new();
    item.insert("pk".into(), s(session_pk(&session.id)));
    item.insert("sk".into(), s("#"));
    item.insert("body".into(), s(to_json(session)?));
    item.insert("version".into(), n(session.version));
    item.insert("last_used_at".into(), n(session.last_used_at));
    if let Some(at) = session.revoked_at {
        item.insert("revoked_at".into(), n(at));
    }
    if !session.user_id.is_empty() {
        item.insert("gsi1pk".into(), s(user_pk(&session.user_id)));
        item.insert("gsi1sk".into(), s(session_pk(&session.id)));
    }
    item.insert(TTL_ATTRIBUTE.into(), n(session_ttl(session)));
    Ok(item)
}

/// A session's absolute expiry: past it the session is inactive whatever its last use.
fn session_ttl(session: &Session) -> u64 {
    session.created_at.saturating_add(session.lifetime.lifetime_seconds)
}

fn session_from(item: &Item) -> Result<Session, StoreError> {
    let mut session: Session = body(item, "session")?;
    session.version = need_n(item, "version")?;
    session.last_used_at = need_n(item, "last_used_at")?;
    session.revoked_at = get_n(item, "revoked_at")?;
    Ok(session)
}

fn counter_from(item: &Item) -> Result<(Counter, u64), StoreError> {
    let hits = need_n(item, "hits")?;
    let counter = Counter {
        count: u32::try_from(hits).unwrap_or(u32::MAX),
        first_at: need_n(item, "first_at")?,
        last_at: need_n(item, "last_at")?,
    };
    Ok((counter, need_n(item, "expires_at")?))
}

impl Store for DynamoStore {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let mut user_item = Item::new();
        user_item.insert("pk".into(), s(user_pk(&user.id)));
        user_item.insert("sk".into(), s("#"));
        user_item.insert("body".into(), s(to_json(user)?));
        user_item.insert("disabled".into(), AttributeValue::Bool(user.disabled));
        if let Some(reason) = &user.disabled_reason {
            user_item.insert("disabled_reason".into(), s(reason.clone()));
        }
        let mut name_item = Item::new();
        name_item.insert("pk".into(), s(username_pk(&user.username)));
        name_item.insert("sk".into(), s("#"));
        name_item.insert("user_id".into(), s(user.id.clone()));
        name_item.insert("gsi1pk".into(), s(DIRECTORY_PARTITION));
        name_item.insert("gsi1sk".into(), s(user.username.clone()));
        let req = self
            .client
            .transact_write_items()
            .transact_items(self.insert(user_item)?)
            .transact_items(self.insert(name_item)?);
        match self.run(req.send()).await? {
            Ok(_) => Ok(()),
            Err(e) if is_transaction_condition_failure(&e) => {
                Err(StoreError::Conflict(format!("user {}", user.username)))
            }
            Err(e) => Err(unavailable("TransactWriteItems", &e)),
        }
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        self.get(user_pk(id)).await?.as_ref().map(user_from).transpose()
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let Some(name) = self.get(username_pk(username)).await? else {
            return Ok(None);
        };
        let id = get_s(&name, "user_id").ok_or_else(|| StoreError::Corrupt("username item has no user_id".into()))?;
        let user = self.user_by_id(id).await?;
        // Guard against a username item left pointing at another user's record.
        Ok(user.filter(|u| u.username == username))
    }

    async fn set_user_disabled(
        &self,
        id: &str,
        disabled: bool,
        reason: Option<&str>,
        now: UnixSeconds,
    ) -> Result<bool, StoreError> {
        let mut req = self
            .update(user_pk(id))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":d", AttributeValue::Bool(disabled));
        req = match (disabled, reason) {
            (true, Some(r)) => {
                req.update_expression("SET disabled = :d, disabled_reason = :r").expression_attribute_values(":r", s(r))
            }
            _ => req.update_expression("SET disabled = :d REMOVE disabled_reason"),
        };
        match self.run(req.send()).await? {
            Ok(_) => {}
            Err(e) if is_condition_failure(&e) => return Ok(false),
            Err(e) => return Err(unavailable("UpdateItem", &e)),
        }
        if disabled {
            self.revoke_user_sessions(id, now).await?;
        }
        Ok(true)
    }

    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let mut item = Item::new();
        item.insert("pk".into(), s(format!("A#{}", event.at / 86_400)));
        item.insert("sk".into(), s(event.cursor.clone()));
        item.insert("document".into(), s(to_json(event)?));
        item.insert(TTL_ATTRIBUTE.into(), n(event.at.saturating_add(AUDIT_RETENTION_SECONDS)));
        let req = self.client.put_item().table_name(self.table()).set_item(Some(item));
        self.run(req.send()).await?.map_err(|e| unavailable("PutItem", &e))?;
        Ok(())
    }

    /// One query per day partition, from the day of `after` to the day of `now`.
    async fn audit_events(&self, after: &str, limit: usize, now: UnixSeconds) -> Result<Vec<AuditEvent>, StoreError> {
        let from: u64 = after.get(..10).unwrap_or(after).parse().unwrap_or(0);
        // Older than the retention, nothing is left to find.
        let first_day = (from / 86_400).max(now.saturating_sub(AUDIT_RETENTION_SECONDS) / 86_400);
        let mut events = Vec::new();
        for day in first_day..=now / 86_400 {
            let mut start: Option<Item> = None;
            while events.len() < limit {
                let req = self
                    .client
                    .query()
                    .table_name(self.table())
                    .consistent_read(true)
                    .key_condition_expression("pk = :p AND sk > :after")
                    .expression_attribute_values(":p", s(format!("A#{day}")))
                    .expression_attribute_values(":after", s(after))
                    .limit(i32::try_from(limit - events.len()).unwrap_or(i32::MAX))
                    .set_exclusive_start_key(start.take());
                let out = self.run(req.send()).await?.map_err(|e| unavailable("Query", &e))?;
                for item in out.items() {
                    let document = get_s(item, "document")
                        .ok_or_else(|| StoreError::Corrupt("audit item has no document".into()))?;
                    events.push(
                        serde_json::from_str(document).map_err(|e| StoreError::Corrupt(format!("audit event: {e}")))?,
                    );
                }
                match out.last_evaluated_key {
                    Some(key) if !key.is_empty() => start = Some(key),
                    _ => break,
                }
            }
            if events.len() >= limit {
                break;
            }
        }
        Ok(events)
    }

    async fn key_ring(&self) -> Result<Option<(String, u64)>, StoreError> {
        let Some(item) = self.get(KEY_RING_PK.to_owned()).await? else {
            return Ok(None);
        };
        let document =
            get_s(&item, "document").ok_or_else(|| StoreError::Corrupt("key ring item has no document".into()))?;
        Ok(Some((document.to_owned(), need_n(&item, "version")?)))
    }

    async fn swap_key_ring(&self, document: &str, expected_version: u64) -> Result<bool, StoreError> {
        let req = self
            .update(KEY_RING_PK.to_owned())
            .update_expression("SET document = :d, version = :next")
            .expression_attribute_values(":d", s(document))
            .expression_attribute_values(":next", n(expected_version + 1));
        let req = if expected_version == 0 {
            req.condition_expression("attribute_not_exists(pk)")
        } else {
            req.condition_expression("version = :expected")
                .expression_attribute_values(":expected", n(expected_version))
        };
        match self.run(req.send()).await? {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(unavailable("UpdateItem", &e)),
        }
    }

    /// A compare-and-swap on the whole JSON body (the hash lives inside it): read it,
    /// check the hash, write the new body only if the stored body is still the one read.
    async fn replace_password_hash(&self, id: &str, current: &str, next: &str) -> Result<bool, StoreError> {
        let Some(item) = self.get(user_pk(id)).await? else {
            return Ok(false);
        };
        let read_body = get_s(&item, "body").ok_or_else(|| StoreError::Corrupt("user item has no body".into()))?;
        let mut user: User = body(&item, "user")?;
        if user.password_hash != current {
            return Ok(false);
        }
        next.clone_into(&mut user.password_hash);
        let req = self
            .update(user_pk(id))
            .update_expression("SET body = :next")
            .condition_expression("body = :read")
            .expression_attribute_values(":next", s(to_json(&user)?))
            .expression_attribute_values(":read", s(read_body));
        match self.run(req.send()).await? {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(unavailable("UpdateItem", &e)),
        }
    }

    async fn list_users(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<User>, StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(self.table())
            .index_name(USER_INDEX)
            .expression_attribute_values(":d", s(DIRECTORY_PARTITION))
            .projection_expression("user_id, gsi1sk");
        // `begins_with` refuses an empty operand: no prefix is the whole partition.
        query = if prefix.is_empty() {
            query.key_condition_expression("gsi1pk = :d")
        } else {
            query
                .key_condition_expression("gsi1pk = :d AND begins_with(gsi1sk, :p)")
                .expression_attribute_values(":p", s(prefix))
        };
        let mut start = after.map(|name| {
            Item::from([
                ("pk".to_owned(), s(username_pk(name))),
                ("sk".to_owned(), s("#")),
                ("gsi1pk".to_owned(), s(DIRECTORY_PARTITION)),
                ("gsi1sk".to_owned(), s(name)),
            ])
        });
        let mut ids = Vec::new();
        while ids.len() < limit {
            let page = query
                .clone()
                .limit(i32::try_from(limit - ids.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take());
            let out = self.run(page.send()).await?.map_err(|e| unavailable("Query", &e))?;
            ids.extend(out.items().iter().filter_map(|i| get_s(i, "user_id")).map(str::to_owned));
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        // The page's user items at once, not one round trip after another.
        let found = futures_util::future::join_all(ids.iter().take(limit).map(|id| self.user_by_id(id))).await;
        let mut users = Vec::with_capacity(found.len());
        for user in found {
            // A name whose user is gone (a deletion part-way) is no user.
            if let Some(user) = user? {
                users.push(user);
            }
        }
        Ok(users)
    }

    async fn delete_user(&self, id: &str, now: UnixSeconds) -> Result<bool, StoreError> {
        let Some(user) = self.user_by_id(id).await? else {
            return Ok(false);
        };
        // Sessions first: if this fails part-way, the user is still there to delete again.
        self.revoke_user_sessions(id, now).await?;
        let user_item = aws_sdk_dynamodb::types::Delete::builder()
            .table_name(self.table())
            .key("pk", s(user_pk(id)))
            .key("sk", s("#"))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(build_error)?;
        // The name goes only if it still names this user.
        let name_item = aws_sdk_dynamodb::types::Delete::builder()
            .table_name(self.table())
            .key("pk", s(username_pk(&user.username)))
            .key("sk", s("#"))
            .condition_expression("attribute_not_exists(pk) OR user_id = :id")
            .expression_attribute_values(":id", s(id))
            .build()
            .map_err(build_error)?;
        let req = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().delete(user_item).build())
            .transact_items(TransactWriteItem::builder().delete(name_item).build());
        match self.run(req.send()).await? {
            Ok(_) => Ok(true),
            // Deleted meanwhile by another call.
            Err(e) if is_transaction_condition_failure(&e) => Ok(false),
            Err(e) => Err(unavailable("TransactWriteItems", &e)),
        }
    }

    async fn user_sessions(&self, user_id: &str, now: UnixSeconds) -> Result<Vec<Session>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(self.table())
            .index_name(USER_INDEX)
            .key_condition_expression("gsi1pk = :u")
            .expression_attribute_values(":u", s(user_pk(user_id)));
        let mut sessions = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let req = query.clone().set_exclusive_start_key(start.take());
            let out = self.run(req.send()).await?.map_err(|e| unavailable("Query", &e))?;
            for item in out.items() {
                let session = session_from(item)?;
                if session.is_active(now) {
                    sessions.push(session);
                }
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        sessions.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(sessions)
    }

    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        let item = session_item(session)?;
        let conflict = || StoreError::Conflict(format!("session {}", session.id));
        let Some(parent) = &session.parent_id else {
            let req = self.client.transact_write_items().transact_items(self.insert(item)?);
            return match self.run(req.send()).await? {
                Ok(_) => Ok(()),
                Err(e) if is_transaction_condition_failure(&e) => Err(conflict()),
                Err(e) => Err(unavailable("TransactWriteItems", &e)),
            };
        };
        // The child and its link in the parent's partition commit together, so a
        // revocation of the parent either sees the link or happened before the child.
        let mut link = Item::new();
        link.insert("pk".into(), s(session_pk(parent)));
        link.insert("sk".into(), s(child_sk(&session.id)));
        link.insert(TTL_ATTRIBUTE.into(), n(session_ttl(session)));
        let link = Put::builder().table_name(self.table()).set_item(Some(link)).build().map_err(build_error)?;
        let req = self
            .client
            .transact_write_items()
            .transact_items(self.insert(item)?)
            .transact_items(TransactWriteItem::builder().put(link).build());
        match self.run(req.send()).await? {
            Ok(_) => Ok(()),
            Err(e) if is_transaction_condition_failure(&e) => Err(conflict()),
            Err(e) => Err(unavailable("TransactWriteItems", &e)),
        }
    }

    async fn session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        self.get(session_pk(id)).await?.as_ref().map(session_from).transpose()
    }

    async fn swap_session(&self, next: &Session, expected_version: u64) -> Result<bool, StoreError> {
        let body = to_json(next)?;
        let write_id = self.next_write_id();
        let swap = |with_stamp: bool| {
            let mut req = self
                .update(session_pk(&next.id))
                .expression_attribute_values(":expected", n(expected_version))
                .expression_attribute_values(":next", n(expected_version + 1))
                .expression_attribute_values(":body", s(body.clone()))
                .expression_attribute_values(":w", s(write_id.clone()))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
            req = if with_stamp {
                req.update_expression("SET body = :body, version = :next, last_used_at = :lu, write_id = :w")
                    .condition_expression(
                        "version = :expected AND attribute_not_exists(revoked_at) AND last_used_at <= :lu",
                    )
                    .expression_attribute_values(":lu", n(next.last_used_at))
            } else {
                req.update_expression("SET body = :body, version = :next, write_id = :w")
                    .condition_expression("version = :expected AND attribute_not_exists(revoked_at)")
            };
            req.send()
        };
        match self.run(swap(true)).await? {
            Ok(_) => return Ok(true),
            Err(e) if is_condition_failure(&e) => {
                let Some(old) = condition_failure_item(&e) else { return Ok(false) };
                if already_applied(&old, &write_id) {
                    return Ok(true);
                }
                let lost = need_n(&old, "version")? != expected_version || old.contains_key("revoked_at");
                if lost {
                    return Ok(false);
                }
                // Only the stamp was newer: swap and keep the stored stamp.
            }
            Err(e) => return Err(unavailable("UpdateItem", &e)),
        }
        match self.run(swap(false)).await? {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => {
                Ok(condition_failure_item(&e).is_some_and(|old| already_applied(&old, &write_id)))
            }
            Err(e) => Err(unavailable("UpdateItem", &e)),
        }
    }

    async fn touch_session(&self, id: &str, at: UnixSeconds) -> Result<(), StoreError> {
        // Only `last_used_at` is written (the resolve function's IAM policy allows
        // nothing else), and only forwards.
        let req = self
            .update(session_pk(id))
            .update_expression("SET last_used_at = :at")
            .condition_expression("attribute_exists(pk) AND last_used_at < :at")
            .expression_attribute_values(":at", n(at));
        match self.run(req.send()).await? {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(unavailable("UpdateItem", &e)),
        }
    }

    async fn revoke_session(&self, id: &str, now: UnixSeconds) -> Result<(), StoreError> {
        // One upsert: an existing session is revoked and its version bumped; an unknown
        // id becomes a tombstone, so a session created later under it is refused.
        let tombstone = Session::tombstone(id, now);
        let req = self
            .update(session_pk(id))
            .update_expression(
                "SET revoked_at = if_not_exists(revoked_at, :now), body = if_not_exists(body, :tomb), \
                 last_used_at = if_not_exists(last_used_at, :now), ttl_epoch = if_not_exists(ttl_epoch, :ttl) \
                 ADD version :one",
            )
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":tomb", s(to_json(&tombstone)?))
            .expression_attribute_values(":ttl", n(now.saturating_add(TOMBSTONE_SECONDS)))
            .expression_attribute_values(":one", n(1));
        self.run(req.send()).await?.map_err(|e| unavailable("UpdateItem", &e))?;
        // Then every child linked in its partition (strongly consistent, paginated).
        let links = self
            .client
            .query()
            .table_name(self.table())
            .key_condition_expression("pk = :pk AND begins_with(sk, :child)")
            .expression_attribute_values(":pk", s(session_pk(id)))
            .expression_attribute_values(":child", s("C#"))
            .consistent_read(true);
        for child in self.query_all(links, "sk", "C#").await? {
            self.revoke_existing(&child, now).await?;
        }
        Ok(())
    }

    async fn revoke_user_sessions(&self, user_id: &str, now: UnixSeconds) -> Result<u64, StoreError> {
        let sessions = self
            .client
            .query()
            .table_name(self.table())
            .index_name(USER_INDEX)
            .key_condition_expression("gsi1pk = :u")
            .expression_attribute_values(":u", s(user_pk(user_id)))
            .projection_expression("pk");
        let mut revoked = 0;
        for id in self.query_all(sessions, "pk", "S#").await? {
            if let Some(old) = self.revoke_existing(&id, now).await?
                && !old.contains_key("revoked_at")
            {
                revoked += 1;
            }
        }
        Ok(revoked)
    }

    async fn put_code(&self, code: &AuthCode) -> Result<(), StoreError> {
        let mut item = Item::new();
        item.insert("pk".into(), s(code_pk(&code.hash)));
        item.insert("sk".into(), s("#"));
        item.insert("body".into(), s(to_json(code)?));
        item.insert("expires_at".into(), n(code.expires_at));
        item.insert(TTL_ATTRIBUTE.into(), n(code.expires_at.saturating_add(CODE_RETENTION_SECONDS)));
        let req = self.client.transact_write_items().transact_items(self.insert(item)?);
        match self.run(req.send()).await? {
            Ok(_) => Ok(()),
            Err(e) if is_transaction_condition_failure(&e) => Err(StoreError::Conflict("code".into())),
            Err(e) => Err(unavailable("TransactWriteItems", &e)),
        }
    }

    async fn redeem_code(&self, hash: &str, session_id: &str, now: UnixSeconds) -> Result<Redemption, StoreError> {
        let write_id = self.next_write_id();
        let req = self
            .update(code_pk(hash))
            .update_expression("SET redeemed_by = :sid, write_id = :w")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(redeemed_by) AND expires_at > :now")
            .expression_attribute_values(":sid", s(session_id))
            .expression_attribute_values(":w", s(write_id.clone()))
            .expression_attribute_values(":now", n(now))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        match self.run(req.send()).await? {
            Ok(out) => Ok(Redemption::Redeemed(body(&out.attributes.unwrap_or_default(), "code")?)),
            Err(e) if is_condition_failure(&e) => {
                let Some(old) = condition_failure_item(&e) else { return Ok(Redemption::Unknown) };
                Ok(match get_s(&old, "redeemed_by") {
                    // Our own redemption, applied by an attempt whose answer was lost.
                    Some(_) if already_applied(&old, &write_id) => Redemption::Redeemed(body(&old, "code")?),
                    Some(first) => Redemption::Replayed { session_id: first.to_owned() },
                    None => Redemption::Unknown,
                })
            }
            Err(e) => Err(unavailable("UpdateItem", &e)),
        }
    }

    async fn bump_counter(&self, key: &str, now: UnixSeconds, ttl: u64) -> Result<Counter, StoreError> {
        let expires = now.saturating_add(ttl);
        for _ in 0..COUNTER_ATTEMPTS {
            // A live counter counts on...
            let req = self
                .update(counter_pk(key))
                .update_expression("SET last_at = :now, expires_at = :exp, ttl_epoch = :exp ADD hits :one")
                .condition_expression("attribute_exists(pk) AND expires_at > :now")
                .expression_attribute_values(":now", n(now))
                .expression_attribute_values(":exp", n(expires))
                .expression_attribute_values(":one", n(1))
                .return_values(ReturnValue::AllNew);
            match self.run(req.send()).await? {
                Ok(out) => return Ok(counter_from(&out.attributes.unwrap_or_default())?.0),
                Err(e) if is_condition_failure(&e) => {}
                Err(e) => return Err(unavailable("UpdateItem", &e)),
            }
            // ...an absent or expired one restarts, unless another request restarted it first.
            let req = self
                .client
                .put_item()
                .table_name(self.table())
                .item("pk", s(counter_pk(key)))
                .item("sk", s("#"))
                .item("hits", n(1))
                .item("first_at", n(now))
                .item("last_at", n(now))
                .item("expires_at", n(expires))
                .item(TTL_ATTRIBUTE, n(expires))
                .condition_expression("attribute_not_exists(pk) OR expires_at <= :now")
                .expression_attribute_values(":now", n(now));
            match self.run(req.send()).await? {
                Ok(_) => return Ok(Counter { count: 1, first_at: now, last_at: now }),
                Err(e) if is_condition_failure(&e) => {}
                Err(e) => return Err(unavailable("PutItem", &e)),
            }
        }
        Err(StoreError::Unavailable("dynamodb counter: too much contention".into()))
    }

    async fn counter(&self, key: &str, now: UnixSeconds) -> Result<Option<Counter>, StoreError> {
        let Some(item) = self.get(counter_pk(key)).await? else { return Ok(None) };
        let (counter, expires) = counter_from(&item)?;
        Ok((expires > now).then_some(counter))
    }

    async fn reset_counter(&self, key: &str) -> Result<(), StoreError> {
        let req = self.client.delete_item().table_name(self.table()).key("pk", s(counter_pk(key))).key("sk", s("#"));
        self.run(req.send()).await?.map_err(|e| unavailable("DeleteItem", &e))?;
        Ok(())
    }
}

/// Creates the table with the layout in the crate docs (on-demand billing, the
/// `by_user` index, TTL on `ttl_epoch`) and waits until it is active. An existing
/// table of that name is left alone.
///
/// # Errors
/// [`StoreError::Unavailable`] if DynamoDB refuses or the table does not become active
/// within 60 seconds.
pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(build_error)
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder().attribute_name(name).key_type(kind).build().map_err(build_error)
    };
    let index = GlobalSecondaryIndex::builder()
        .index_name(USER_INDEX)
        .key_schema(key("gsi1pk", KeyType::Hash)?)
        .key_schema(key("gsi1sk", KeyType::Range)?)
        .projection(Projection::builder().projection_type(ProjectionType::All).build())
        .build()
        .map_err(build_error)?;
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk")?)
        .attribute_definitions(attr("sk")?)
        .attribute_definitions(attr("gsi1pk")?)
        .attribute_definitions(attr("gsi1sk")?)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .global_secondary_indexes(index)
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e) if e.as_service_error().and_then(|se| se.code()) == Some("ResourceInUseException") => return Ok(()),
        Err(e) => return Err(unavailable("CreateTable", &e)),
    }
    // Poll ourselves: the SDK waiter's minimum delay is 20 s.
    let mut active = false;
    for _ in 0..600 {
        let out =
            client.describe_table().table_name(table).send().await.map_err(|e| unavailable("DescribeTable", &e))?;
        if out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            active = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !active {
        return Err(StoreError::Unavailable(format!("table {table} did not become active")));
    }
    let spec =
        TimeToLiveSpecification::builder().attribute_name(TTL_ATTRIBUTE).enabled(true).build().map_err(build_error)?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(spec)
        .send()
        .await
        .map_err(|e| unavailable("UpdateTimeToLive", &e))?;
    Ok(())
}
