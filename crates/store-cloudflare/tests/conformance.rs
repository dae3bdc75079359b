//! The conformance suite over the Durable Objects' own logic ([`object::apply`]) and
//! the real client, with an in-process transport in place of the Workers runtime: each
//! object's commands are applied under one lock, as the runtime serialises them. (The
//! same suite runs against real Durable Objects in workerd: tests/e2e/60-workers-store.)

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use latchkey_store::StoreError;
use latchkey_store_cloudflare::object::{self, Record, apply};
use latchkey_store_cloudflare::protocol::{Command, Reply};
use latchkey_store_cloudflare::{ObjectStore, Objects};

#[derive(Clone, Default)]
struct InProcess {
    records: Arc<Mutex<HashMap<String, Record>>>,
    /// The per-entry objects' storage: the directory's names, the audit objects' events.
    directories: Arc<Mutex<HashMap<String, BTreeMap<String, String>>>>,
}

impl InProcess {
    /// What the Durable Object class does with a directory command, over a sorted map
    /// in place of its storage.
    fn directory(&self, name: &str, command: Command) -> Reply {
        let mut directories = self.directories.lock().unwrap();
        let names = directories.entry(name.to_owned()).or_default();
        match command {
            Command::ListName { username, user_id } => {
                names.insert(username, user_id);
                Reply::Ok
            }
            Command::UnlistName { username } => {
                names.remove(&username);
                Reply::Ok
            }
            Command::ListNames { prefix, after, limit } => Reply::Names {
                names: names
                    .range(prefix.clone()..)
                    .take_while(|(n, _)| n.starts_with(&prefix))
                    .filter(|(n, _)| after.as_ref().is_none_or(|a| *n > a))
                    .take(limit)
                    .map(|(n, id)| (n.clone(), id.clone()))
                    .collect(),
            },
            Command::AppendAudit { event } => {
                names.insert(
                    format!("{}{}", object::AUDIT_KEY_PREFIX, event.cursor),
                    serde_json::to_string(&event).unwrap(),
                );
                Reply::Ok
            }
            Command::ListAudit { after, limit } => Reply::AuditEvents {
                events: names
                    .range(format!("{}{after}", object::AUDIT_KEY_PREFIX)..)
                    .filter(|(k, _)| k.starts_with(object::AUDIT_KEY_PREFIX) && k[2..] > *after)
                    .take(limit)
                    .map(|(_, v)| serde_json::from_str(v).unwrap())
                    .collect(),
            },
            other => panic!("not an entries command: {other:?}"),
        }
    }
}

impl Objects for InProcess {
    async fn call(&self, name: &str, command: &Command) -> Result<Reply, StoreError> {
        // A network call yields to the executor: so do we, so that the single-threaded
        // suite's races interleave as they do against real objects.
        latchkey_store::conformance::yield_now().await;
        // Through JSON both ways, as over the wire.
        let command: Command = serde_json::from_str(&serde_json::to_string(command).unwrap()).unwrap();
        if object::is_entries_command(&command) {
            let reply = self.directory(name, command);
            return Ok(serde_json::from_str(&serde_json::to_string(&reply).unwrap()).unwrap());
        }
        let mut objects = self.records.lock().unwrap();
        let record = objects.entry(name.to_owned()).or_default();
        let (reply, effect) = apply(record, command);
        if effect.write && record.is_empty() {
            objects.remove(name);
        }
        Ok(serde_json::from_str(&serde_json::to_string(&reply).unwrap()).unwrap())
    }
}

#[test]
fn passes_the_conformance_suite() {
    let objects = InProcess::default();
    latchkey_store::conformance::run_all(|| ObjectStore::new(objects.clone(), ""));
}

#[test]
fn passes_the_single_threaded_conformance_suite() {
    pollster::block_on(latchkey_store::conformance::run_all_async(&ObjectStore::new(InProcess::default(), "run-1/")));
}
