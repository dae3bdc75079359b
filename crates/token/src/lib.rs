//! The shared token crate: every decision Latchkey makes about a credential, as pure
//! functions. It signs and verifies JWT access and ID tokens, publishes the JWKS,
//! generates and hashes opaque secrets (refresh tokens, session cookies, codes),
//! decides what a presented refresh token means (rotate, retry, reuse), computes
//! session expiry, verifies PKCE and hashes passwords.
//!
//! It must never do I/O, read the clock or the OS random source, or require `Send`:
//! it compiles unchanged for native targets and for `wasm32-unknown-unknown`, where
//! `SystemTime::now()` and `getrandom` panic on Workers. Time arrives as a [`Clock`]
//! reading and randomness through an [`Entropy`] source that each runtime provides.
//! One exception, native only: ring, which signs there, draws its RSA blinding values
//! and ECDSA nonces from the OS itself, because its random-source trait is sealed (see
//! the `sign` module); on wasm32 nothing here touches a random source.

pub mod admin_jwt;
pub mod expiry;
pub mod jwt;
pub mod keys;
pub mod password;
pub mod pkce;
pub mod refresh;
pub mod secret;
mod sign;
mod verify;

/// Seconds since the Unix epoch. Every timestamp in Latchkey is one of these.
pub type UnixSeconds = u64;

/// The current time, provided by the runtime (`SystemTime` natively, `Date.now()` on
/// Workers, a fixed value in tests).
pub trait Clock {
    /// The current time in whole seconds since the Unix epoch.
    fn now(&self) -> UnixSeconds;
}

/// A cryptographically secure random source, provided by the runtime (the OS natively,
/// `crypto.getRandomValues` on Workers).
pub trait Entropy {
    /// Fill `buf` with random bytes.
    ///
    /// Security: implementations must be a CSPRNG; every secret Latchkey issues is
    /// drawn from here.
    fn fill(&self, buf: &mut [u8]);
}

/// A clock that always answers the same time; for tests and for replaying decisions.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub UnixSeconds);

impl Clock for FixedClock {
    fn now(&self) -> UnixSeconds {
        self.0
    }
}
