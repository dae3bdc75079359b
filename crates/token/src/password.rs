//! Password hashing with argon2id (OWASP's minimum: 19 MiB, 2 passes, 1 lane), and the
//! hashes Latchkey accepts from other systems when users are imported:
//!
//! | scheme | form |
//! |---|---|
//! | argon2id, argon2i, argon2d | PHC, `$argon2id$v=19$m=…,t=…,p=…$salt$hash` |
//! | bcrypt | `$2a$`, `$2b$`, `$2y$` + cost + 53 characters |
//! | PBKDF2-SHA256/SHA512 | PHC, `$pbkdf2-sha256$i=…,l=…$salt$hash` (RustCrypto, passlib's PHC mode) |
//! | PBKDF2-SHA256 | Django's `pbkdf2_sha256$iterations$salt$base64-hash` |
//!
//! An imported hash is verified at the user's next login and, when it matches, replaced
//! by an argon2id hash ([`needs_upgrade`]). Work factors are bounded at import
//! ([`check_importable`]): a hash is a cost every login pays, so one with an absurd cost
//! would make the login endpoint a lever for exhausting the server.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

use crate::Entropy;

/// The largest argon2 memory cost accepted from an import, in KiB (256 MiB).
pub const MAX_ARGON2_KIB: u32 = 256 * 1024;
/// The largest argon2 time cost (passes) accepted from an import.
pub const MAX_ARGON2_PASSES: u32 = 10;
/// The largest bcrypt cost accepted from an import (2^15 rounds; 10 to 12 is usual).
pub const MAX_BCRYPT_COST: u32 = 15;
/// The most PBKDF2 iterations accepted from an import (Django 5 uses 870,000 to 1,000,000).
pub const MAX_PBKDF2_ITERATIONS: u32 = 5_000_000;

fn hasher() -> Argon2<'static> {
    // Params::new only fails for out-of-range values; these are constants in range.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` into a PHC string (`$argon2id$v=19$...`) with a fresh salt.
///
/// `None` only for inputs argon2 refuses (longer than 4 GiB); callers bound sizes.
pub fn hash(entropy: &dyn Entropy, password: &str) -> Option<String> {
    let mut salt = [0u8; 16];
    entropy.fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).ok()?;
    hasher().hash_password(password.as_bytes(), &salt).ok().map(|h| h.to_string())
}

/// The scheme of a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Argon2,
    Bcrypt,
    Pbkdf2Phc,
    Django,
}

fn scheme_of(stored: &str) -> Option<Scheme> {
    if stored.starts_with("$argon2") {
        Some(Scheme::Argon2)
    } else if ["$2a$", "$2b$", "$2y$"].iter().any(|p| stored.starts_with(p)) {
        Some(Scheme::Bcrypt)
    } else if stored.starts_with("$pbkdf2") {
        Some(Scheme::Pbkdf2Phc)
    } else if stored.starts_with("pbkdf2_sha256$") {
        Some(Scheme::Django)
    } else {
        None
    }
}

/// Django's `pbkdf2_sha256$iterations$salt$hash`: the iterations, salt and hash.
fn django_parts(stored: &str) -> Option<(u32, &str, Vec<u8>)> {
    let mut parts = stored.split('$');
    let (Some("pbkdf2_sha256"), Some(iterations), Some(salt), Some(hash), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let iterations = iterations.parse().ok().filter(|n| *n > 0)?;
    let hash = base64::engine::general_purpose::STANDARD.decode(hash).ok().filter(|h| h.len() >= 16)?;
    (!salt.is_empty()).then_some((iterations, salt, hash))
}

/// Why `stored`, brought from another system, cannot be a user's password hash, or
/// `Ok` if Latchkey can verify it within the work-factor bounds above.
///
/// # Errors
/// A message naming the scheme or bound at fault (never the hash).
pub fn check_importable(stored: &str) -> Result<(), String> {
    let bounded = |what: &str, value: u64, max: u64| {
        if value > max { Err(format!("the {what} {value} is above the {max} Latchkey accepts")) } else { Ok(()) }
    };
    match scheme_of(stored) {
        None => Err("unsupported password hash: expected argon2, bcrypt ($2a$, $2b$, $2y$), \
                     PBKDF2 in PHC form ($pbkdf2-sha256$) or Django's pbkdf2_sha256$"
            .into()),
        Some(Scheme::Argon2) => {
            let parsed = PasswordHash::new(stored).map_err(|_| "malformed argon2 hash".to_owned())?;
            let params = Params::try_from(&parsed).map_err(|_| "malformed argon2 parameters".to_owned())?;
            if parsed.hash.is_none() {
                return Err("the argon2 hash has no hash value".into());
            }
            bounded("argon2 memory cost (KiB)", params.m_cost().into(), MAX_ARGON2_KIB.into())?;
            bounded("argon2 time cost", params.t_cost().into(), MAX_ARGON2_PASSES.into())
        }
        Some(Scheme::Bcrypt) => {
            let parts = stored.parse::<bcrypt::HashParts>().map_err(|_| "malformed bcrypt hash".to_owned())?;
            bounded("bcrypt cost", parts.get_cost().into(), MAX_BCRYPT_COST.into())
        }
        Some(Scheme::Pbkdf2Phc) => {
            let parsed = PasswordHash::new(stored).map_err(|_| "malformed PBKDF2 hash".to_owned())?;
            if !matches!(parsed.algorithm.as_str(), "pbkdf2-sha256" | "pbkdf2-sha512") {
                return Err(format!("unsupported PBKDF2 variant {}", parsed.algorithm));
            }
            let iterations = parsed.params.get_decimal("i").ok_or("the PBKDF2 hash has no iteration count i=")?;
            if parsed.hash.is_none() || parsed.salt.is_none() {
                return Err("the PBKDF2 hash has no salt or hash value".into());
            }
            bounded("PBKDF2 iteration count", iterations.into(), MAX_PBKDF2_ITERATIONS.into())
        }
        Some(Scheme::Django) => {
            let (iterations, _, _) = django_parts(stored).ok_or("malformed Django pbkdf2_sha256 hash")?;
            bounded("PBKDF2 iteration count", iterations.into(), MAX_PBKDF2_ITERATIONS.into())
        }
    }
}

/// Whether `password` matches `stored`, in any scheme [`check_importable`] accepts. A
/// malformed hash, or one past the work-factor bounds, never matches.
pub fn verify(password: &str, stored: &str) -> bool {
    if check_importable(stored).is_err() {
        return false;
    }
    match scheme_of(stored) {
        Some(Scheme::Argon2) => PasswordHash::new(stored)
            .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()),
        Some(Scheme::Bcrypt) => bcrypt::verify(password, stored).unwrap_or(false),
        Some(Scheme::Pbkdf2Phc) => PasswordHash::new(stored)
            .is_ok_and(|parsed| pbkdf2::Pbkdf2.verify_password(password.as_bytes(), &parsed).is_ok()),
        Some(Scheme::Django) => {
            let Some((iterations, salt, expected)) = django_parts(stored) else {
                return false;
            };
            let mut derived = vec![0u8; expected.len()];
            pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt.as_bytes(), iterations, &mut derived);
            derived.ct_eq(&expected).into()
        }
        None => false,
    }
}

/// The scheme of `stored`, for operators (how many users still have an imported
/// hash): `argon2id`, `argon2i`, `argon2d`, `bcrypt`, `pbkdf2-sha256`, `pbkdf2-sha512`,
/// `django-pbkdf2-sha256`, or `unknown`.
pub fn scheme_name(stored: &str) -> &'static str {
    match scheme_of(stored) {
        Some(Scheme::Bcrypt) => "bcrypt",
        Some(Scheme::Django) => "django-pbkdf2-sha256",
        Some(Scheme::Argon2 | Scheme::Pbkdf2Phc) => {
            match PasswordHash::new(stored).map(|p| p.algorithm.as_str().to_owned()).as_deref() {
                Ok("argon2id") => "argon2id",
                Ok("argon2i") => "argon2i",
                Ok("argon2d") => "argon2d",
                Ok("pbkdf2-sha256") => "pbkdf2-sha256",
                Ok("pbkdf2-sha512") => "pbkdf2-sha512",
                _ => "unknown",
            }
        }
        None => "unknown",
    }
}

/// Whether `stored` is anything but an argon2id hash with the current parameters: after
/// a successful login with it, the caller replaces it by [`hash`] of the password.
pub fn needs_upgrade(stored: &str) -> bool {
    let current = hasher();
    let Ok(parsed) = PasswordHash::new(stored) else {
        return true;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return true;
    };
    parsed.algorithm.as_str() != "argon2id"
        || parsed.version != Some(Version::V0x13.into())
        || params.m_cost() != current.params().m_cost()
        || params.t_cost() != current.params().t_cost()
        || params.p_cost() != current.params().p_cost()
}

// Kept referenced so that a PHC PBKDF2-SHA512 hash verifies through `pbkdf2::Pbkdf2`,
// which selects the digest from the hash's algorithm identifier.
const _: fn(&[u8], &[u8], u32, &mut [u8]) = pbkdf2::pbkdf2_hmac::<Sha512>;

/// A valid hash of a random password, verified against when a username is unknown, so
/// that "no such user" and "wrong password" take the same time.
pub const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$bm90LWEtcmVhbC1zYWx0$1bvx0J1CiS6mwI5Ad4kGdJlt6cHIjcWvfbNLSbsE1fk";

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl Entropy for Fixed {
        fn fill(&self, buf: &mut [u8]) {
            buf.fill(7);
        }
    }

    #[test]
    fn hash_and_verify() {
        let h = hash(&Fixed, "correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify("correct horse", &h));
        assert!(!verify("wrong", &h));
        assert!(!verify("x", "not a hash"));
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
        assert!(!verify("anything", DUMMY_HASH));
        assert!(!needs_upgrade(&h), "a current argon2id hash stays");
        assert_eq!(scheme_name(&h), "argon2id");
        assert_eq!(scheme_name("plaintext"), "unknown");
    }

    // The hashes here are made with the Rust crates Latchkey verifies with; the e2e
    // import test (tests/e2e/29-admin-import.test.mjs) checks hashes that Python's
    // bcrypt, argon2-cffi and hashlib made.
    #[test]
    fn bcrypt_hashes_verify_and_are_upgraded() {
        let made = bcrypt::hash_with_salt("correct horse battery", 4, [3u8; 16])
            .unwrap()
            .format_for_version(bcrypt::Version::TwoB);
        assert!(check_importable(&made).is_ok());
        assert!(verify("correct horse battery", &made));
        assert!(!verify("correct horse batter", &made));
        assert!(needs_upgrade(&made));
        assert_eq!(scheme_name(&made), "bcrypt");
        let too_costly = made.replacen("$2b$04$", "$2b$16$", 1);
        assert!(check_importable(&too_costly).unwrap_err().contains("bcrypt cost 16"));
        assert!(!verify("correct horse battery", &too_costly), "past the bound never verifies");
    }

    #[test]
    fn pbkdf2_hashes_verify_in_both_forms() {
        // Django's form, computed here with the same derivation Django uses.
        let mut dk = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(b"correct horse battery", b"somesalt", 1000, &mut dk);
        let django =
            format!("pbkdf2_sha256$1000${}${}", "somesalt", base64::engine::general_purpose::STANDARD.encode(dk));
        assert!(check_importable(&django).is_ok());
        assert!(verify("correct horse battery", &django));
        assert!(!verify("correct horse", &django));
        assert!(needs_upgrade(&django));
        assert_eq!(scheme_name(&django), "django-pbkdf2-sha256");
        let phc = pbkdf2::Pbkdf2
            .hash_password_customized(
                b"correct horse battery",
                Some(pbkdf2::Algorithm::Pbkdf2Sha256.ident()),
                None,
                pbkdf2::Params { rounds: 1000, output_length: 32 },
                SaltString::encode_b64(b"0123456789abcdef").unwrap().as_salt(),
            )
            .unwrap()
            .to_string();
        assert!(phc.starts_with("$pbkdf2-sha256$i=1000,l=32$"), "{phc}");
        assert!(check_importable(&phc).is_ok());
        assert_eq!(scheme_name(&phc), "pbkdf2-sha256");
        assert!(verify("correct horse battery", &phc));
        assert!(!verify("wrong horse battery", &phc));
        let slow = format!("pbkdf2_sha256$9000000$somesalt${}", base64::engine::general_purpose::STANDARD.encode(dk));
        assert!(check_importable(&slow).unwrap_err().contains("PBKDF2 iteration count 9000000"));
        assert!(check_importable("pbkdf2_sha256$1000$$AAAA").is_err(), "no salt");
    }

    #[test]
    fn foreign_argon2_hashes_verify_within_bounds() {
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, Params::new(8 * 1024, 3, 1, None).unwrap())
            .hash_password(b"correct horse battery", &SaltString::encode_b64(b"0123456789abcdef").unwrap())
            .unwrap()
            .to_string();
        assert!(check_importable(&argon2i).is_ok());
        assert!(verify("correct horse battery", &argon2i));
        assert!(needs_upgrade(&argon2i), "another variant or cost is upgraded");
        let huge = "$argon2id$v=19$m=4194304,t=2,p=1$bm90LWEtcmVhbC1zYWx0$1bvx0J1CiS6mwI5Ad4kGdJlt6cHIjcWvfbNLSbsE1fk";
        assert!(check_importable(huge).unwrap_err().contains("memory cost"));
        assert!(!verify("anything", huge));
    }

    #[test]
    fn other_hashes_are_refused() {
        for bad in ["", "plaintext", "$1$md5crypt$abc", "$5$rounds=5000$sha256crypt", "sha1$salt$hash", "$2b$10$short"]
        {
            assert!(check_importable(bad).is_err(), "{bad:?} must be refused");
            assert!(!verify("anything", bad));
        }
    }
}
