//! The conformance suite over the Durable Objects' own logic ([`object::apply`]) and
//! the real client, with an in-process transport in place of the Workers runtime: each
//! object's commands are applied under one lock, as the runtime serialises them. (The
//! same suite runs against real Durable Objects in workerd: tests/e2e/60-workers-store.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use latchkey_store::StoreError;
use latchkey_store_cloudflare::object::{Record, apply};
use latchkey_store_cloudflare::protocol::{Command, Reply};
use latchkey_store_cloudflare::{ObjectStore, Objects};

#[derive(Clone, Default)]
struct InProcess(Arc<Mutex<HashMap<String, Record>>>);

impl Objects for InProcess {
    async fn call(&self, name: &str, command: &Command) -> Result<Reply, StoreError> {
        // A network call yields to the executor: so do we, so that the single-threaded
        // suite's races interleave as they do against real objects.
        latchkey_store::conformance::yield_now().await;
        // Through JSON both ways, as over the wire.
        let command: Command = serde_json::from_str(&serde_json::to_string(command).unwrap()).unwrap();
        let mut objects = self.0.lock().unwrap();
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
