//! Opaque secrets: generation, hashing at rest, constant-time comparison, and the
//! `{id}.{secret}` shape shared by refresh tokens and session cookies.

use crate::Entropy;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Length of every generated secret: 32 alphanumeric characters, about 190 bits.
pub const SECRET_LEN: usize = 32;

/// A random alphanumeric string of `len` characters, without modulo bias.
pub fn random_alphanumeric(entropy: &dyn Entropy, len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        entropy.fill(&mut buf);
        for &b in &buf {
            // 248 = 4 * 62: rejecting bytes above it keeps every character equally likely.
            if b < 248 && out.len() < len {
                out.push(ALPHANUMERIC[usize::from(b % 62)] as char);
            }
        }
    }
    out
}

/// A fresh secret of [`SECRET_LEN`] characters.
pub fn random_secret(entropy: &dyn Entropy) -> String {
    random_alphanumeric(entropy, SECRET_LEN)
}

/// A random identifier shaped like a UUID v4 (the form Authgear uses for user and
/// session ids), drawn from `entropy`.
pub fn random_uuid(entropy: &dyn Entropy) -> String {
    let mut b = [0u8; 16];
    entropy.fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// SHA-256 of `value` as lower-case hex: the at-rest form of every opaque secret.
pub fn sha256_hex(value: &str) -> String {
    hex(&Sha256::digest(value.as_bytes()))
}

/// Compares two strings in time independent of where they differ.
///
/// Security: use this, never `==`, for anything derived from a secret.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A credential of the form `{id}.{secret}`: refresh tokens and session cookies.
///
/// The id names the record to load (one read); only the hash of the whole credential
/// is stored, so a leaked database cannot be replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompoundToken<'a> {
    /// The record id (a session id).
    pub id: &'a str,
    /// The whole presented credential, for hashing.
    pub whole: &'a str,
}

impl<'a> CompoundToken<'a> {
    /// Parses `{id}.{secret}`. Anything else (wrong charset, wrong lengths, extra dots,
    /// over-long input) is `None`, so a malformed value never reaches the store.
    pub fn parse(value: &'a str) -> Option<Self> {
        if value.len() > 128 {
            return None;
        }
        let (id, secret) = value.split_once('.')?;
        let id_ok = (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let secret_ok = secret.len() == SECRET_LEN && secret.bytes().all(|b| b.is_ascii_alphanumeric());
        (id_ok && secret_ok).then_some(CompoundToken { id, whole: value })
    }

    /// The at-rest hash of this credential.
    pub fn hash(&self) -> String {
        sha256_hex(self.whole)
    }
}

/// Builds a fresh `{id}.{secret}` credential for record `id`.
pub fn new_compound(entropy: &dyn Entropy, id: &str) -> String {
    format!("{id}.{}", random_secret(entropy))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(std::cell::Cell<u8>);
    impl Entropy for Counter {
        fn fill(&self, buf: &mut [u8]) {
            for b in buf {
                let v = self.0.get();
                *b = v;
                self.0.set(v.wrapping_add(37));
            }
        }
    }

    #[test]
    fn secrets_are_alphanumeric_and_sized() {
        let s = random_secret(&Counter(0.into()));
        assert_eq!(s.len(), SECRET_LEN);
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    #[test]
    fn uuid_shape() {
        let u = random_uuid(&Counter(5.into()));
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }

    #[test]
    fn compound_parse_rejects_malformed() {
        let good = format!("abc-123.{}", "a".repeat(32));
        assert_eq!(CompoundToken::parse(&good).unwrap().id, "abc-123");
        for bad in [
            "",
            ".",
            "abc",
            "abc.short",
            &format!("a.b.{}", "a".repeat(32)),
            &format!("a/b.{}", "a".repeat(32)),
            &format!(".{}", "a".repeat(32)),
        ] {
            assert!(CompoundToken::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn hashing_and_comparison() {
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
    }
}
