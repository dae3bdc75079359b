//! Latchkey's store on Cloudflare Workers: every record lives in a Durable Object of
//! its own, so every change to it is serialised by the platform, strongly consistent,
//! and durable before the answer leaves the object.
//!
//! One Durable Object class, [`LatchkeyObject`] (binding `LATCHKEY_OBJECTS`), holds one
//! record per instance, named by kind and key:
//!
//! | object | holds | serialises |
//! |---|---|---|
//! | `session:<id>` | the session, and the ids of its child sessions | refresh rotation (decided and written inside the object, one request per refresh), revocation, last use |
//! | `user:<id>` | the user record and the index of the user's sessions | disable/enable; the index lets disabling revoke every session |
//! | `username:<name>` | which user id holds the name | unique usernames |
//! | `code:<hash>` | an authorization code and who redeemed it | single use |
//! | `counter:<key>` | an abuse counter | rate limits and lockouts, global across isolates |
//! | `keyring:main` | the signing-key ring | rotations (a compare-and-swap on its version) |
//! | `directory:users` | one storage entry per username (not one record) | the admin API's user listing |
//!
//! An object applies a [`protocol::Command`] to its record with [`object::apply`], a
//! pure function, and writes the result back before it answers. The Workers runtime
//! delivers no other request to the object while its storage operations run (input
//! gates) and sends no answer before its writes are durable (output gates), so each
//! command is atomic and acknowledged only once stored. A refresh is one command: the
//! session's object applies `latchkey_store::decide` to its own record
//! ([`Store::present_refresh`](latchkey_store::Store::present_refresh)), so n concurrent
//! refreshes of one token are n requests served in turn, not a compare-and-swap race in
//! which every loser reads and tries again. The [`ObjectStore`] client turns
//! each port method into commands; methods that touch several records (creating a
//! child session, revoking a parent, disabling a user) order their commands so that a
//! concurrent revocation always wins, as the crate docs of each method say.
//!
//! Expiry: an object with an expiring record schedules an alarm that deletes its
//! storage (a session a day after its absolute lifetime, a tombstone or a code a day
//! after use, a counter when it lapses). Reads never rely on the deletion: they compare
//! the record's own times with the `now` they are given.
//!
//! No read goes through KV: every read that must see a revocation at once goes to the
//! object that owns the record. The configuration and keys are bound to the Worker
//! (a variable and a secret), so there is no read-mostly data left for KV to hold.
//!
//! [`object`], [`protocol`] and [`ObjectStore`] are portable and tested natively (the
//! whole conformance suite runs over an in-process transport); the Durable Object
//! class and the namespace transport exist on wasm32 only.

pub mod client;
pub mod object;
pub mod protocol;

#[cfg(target_arch = "wasm32")]
mod durable;

pub use client::{ObjectStore, Objects};
#[cfg(target_arch = "wasm32")]
pub use durable::{LatchkeyObject, Namespace};
