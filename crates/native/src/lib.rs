//! The native runtimes' clock and randomness, passed into the core by the local server
//! and the Lambda functions. These are the only places in either that read the system
//! clock or the OS random source. [`accounts`] holds the account commands both
//! operator CLIs share.

pub mod accounts;

use latchkey_token::{Clock, Entropy, UnixSeconds};

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    #[expect(clippy::disallowed_methods, reason = "the runtime adapter is where the clock is read")]
    fn now(&self) -> UnixSeconds {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
    }
}

/// The operating system's CSPRNG.
pub struct OsEntropy;

impl Entropy for OsEntropy {
    #[expect(clippy::disallowed_methods, reason = "the runtime adapter is where OS randomness is read")]
    fn fill(&self, buf: &mut [u8]) {
        // The OS random source failing is unrecoverable: issuing a predictable secret
        // would be worse than stopping.
        if let Err(e) = getrandom::fill(buf) {
            eprintln!("latchkey: the OS random source failed: {e}");
            std::process::abort();
        }
    }
}
