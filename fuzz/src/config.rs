//! `config`: `parse_secrets` and `parse_config` (against the fixed secrets document)
//! on arbitrary UTF-8.
//!
//! Invariants: nothing panics; every error names a non-empty key path; an accepted
//! config keeps the promises the endpoints rely on (issuer without a trailing slash,
//! redirect URIs for every client that can use them, secrets exactly for the clients
//! that need them).

use latchkey_endpoints::config::{ApplicationType, Config};
use latchkey_endpoints::{parse_config, parse_secrets};

use crate::fixtures::secrets;

fn check_config(config: &Config) {
    assert!(!config.issuer.ends_with('/'), "issuer {:?} ends with '/'", config.issuer);
    assert!(url::Url::parse(&config.issuer).is_ok(), "issuer {:?} is not a URL", config.issuer);
    for c in &config.clients {
        assert!(!c.id.is_empty() && !c.id.contains(':'), "client id {:?}", c.id);
        match c.application_type {
            ApplicationType::M2m => assert!(c.is_confidential(), "m2m client {:?} without a secret", c.id),
            ApplicationType::Confidential => {
                assert!(c.is_confidential(), "confidential client {:?} without a secret", c.id);
                assert!(!c.redirect_uris.is_empty(), "client {:?} without redirect URIs", c.id);
            }
            ApplicationType::Spa | ApplicationType::Native => {
                assert!(!c.is_confidential(), "public client {:?} with a secret", c.id);
                assert!(!c.redirect_uris.is_empty(), "client {:?} without redirect URIs", c.id);
            }
            ApplicationType::TraditionalWebapp => {
                assert!(!c.redirect_uris.is_empty(), "client {:?} without redirect URIs", c.id)
            }
        }
        assert!(c.access_token_lifetime_seconds > 0 && c.refresh_token_lifetime_seconds > 0);
    }
    for o in &config.cors_origins {
        let url = url::Url::parse(o).unwrap_or_else(|e| panic!("CORS origin {o:?}: {e}"));
        assert_eq!(&url.origin().ascii_serialization(), o, "CORS origin {o:?} is not an origin");
    }
}

/// The fuzz target.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse_secrets(text) {
        Ok(s) => {
            let _ = s.keys.signing_key().kid();
            let _ = s.keys.jwks();
        }
        Err(e) => assert!(!e.path.is_empty(), "secrets error without a path: {e:?}"),
    }
    match parse_config(text, secrets()) {
        Ok(config) => check_config(&config),
        Err(e) => assert!(!e.path.is_empty(), "config error without a path: {e:?}"),
    }
}
