//! The data directory: `latchkey.yaml` (config), `latchkey.secrets.yaml` (signing keys
//! and client secrets, mode 0600) and `latchkey.sqlite3` (the store).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jwt_simple::prelude::*;
use latchkey_endpoints::{Config, parse_config, parse_secrets};
use latchkey_store_sqlite::SqliteStore;
use latchkey_token::keys::{Algorithm, KeySet};

/// Paths inside a data directory.
pub struct DataDir {
    pub root: PathBuf,
}

impl DataDir {
    pub fn new(root: &Path) -> Self {
        DataDir { root: root.to_owned() }
    }
    pub fn config(&self) -> PathBuf {
        self.root.join("latchkey.yaml")
    }
    pub fn secrets(&self) -> PathBuf {
        self.root.join("latchkey.secrets.yaml")
    }
    pub fn database(&self) -> PathBuf {
        self.root.join("latchkey.sqlite3")
    }
    pub fn is_initialised(&self) -> bool {
        self.config().exists()
    }

    pub fn open_store(&self) -> Result<SqliteStore, String> {
        SqliteStore::open(&self.database()).map_err(|e| format!("cannot open {}: {e}", self.database().display()))
    }

    /// Reads and validates config and secrets.
    pub fn load(&self) -> Result<(Arc<Config>, Arc<KeySet>), String> {
        let secrets_text =
            fs::read_to_string(self.secrets()).map_err(|e| format!("cannot read {}: {e}", self.secrets().display()))?;
        let secrets = parse_secrets(&secrets_text).map_err(|e| format!("invalid {}: {e}", self.secrets().display()))?;
        let config_text =
            fs::read_to_string(self.config()).map_err(|e| format!("cannot read {}: {e}", self.config().display()))?;
        let config =
            parse_config(&config_text, &secrets).map_err(|e| format!("invalid {}: {e}", self.config().display()))?;
        Ok((Arc::new(config), Arc::new(secrets.keys)))
    }

    /// Creates the directory, a config with the demo client, a fresh signing key and
    /// the database. Refuses if a config is already there. Returns the files written.
    pub fn init(&self, public_origin: &str, algorithm: Algorithm) -> Result<Vec<PathBuf>, String> {
        if self.is_initialised() {
            return Err(format!("{} already exists; refusing to overwrite it", self.config().display()));
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(|e| format!("cannot create {}: {e}", self.root.display()))?;
        let jwk = generate_jwk(algorithm)?;
        let secrets = format!(
            "# Latchkey secrets: signing keys and client secrets. Keep this file private\n\
             # (mode 0600) and out of version control. The first key signs; every key is\n\
             # published in the JWKS. Secrets of confidential clients go in a second\n\
             # entry of this list (see the README).\n\
             secrets:\n  - key: oauth\n    data:\n      keys:\n        - {jwk}\n"
        );
        write_new(&self.secrets(), secrets.as_bytes(), 0o600)?;
        write_new(&self.config(), config_template(public_origin).as_bytes(), 0o644)?;
        // Validate what was just written, so a bad --public-origin fails here.
        self.load()?;
        self.open_store()?;
        Ok(vec![self.config(), self.secrets(), self.database()])
    }
}

fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), String> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    f.write_all(contents).and_then(|()| f.sync_all()).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// A new private JWK whose `kid` is its RFC 7638 thumbprint.
pub fn generate_jwk(algorithm: Algorithm) -> Result<String, String> {
    let fail = |e: jwt_simple::Error| format!("key generation failed: {e}");
    Ok(match algorithm {
        Algorithm::Rs256 => {
            let k = RS256KeyPair::generate(2048).map_err(fail)?;
            let kid = k.jwk_thumbprint();
            k.with_key_id(&kid).to_jwk()
        }
        Algorithm::Es256 => {
            let k = ES256KeyPair::generate();
            let kid = k.jwk_thumbprint();
            k.with_key_id(&kid).to_jwk()
        }
        Algorithm::EdDsa => {
            let k = Ed25519KeyPair::generate();
            let kid = k.jwk_thumbprint();
            k.with_key_id(&kid).to_jwk()
        }
    })
}

fn config_template(public_origin: &str) -> String {
    format!(
        r##"# Latchkey configuration. Key names follow Authgear's authgear.yaml where they exist.
# Every key below shows its default unless marked otherwise. Secrets live in
# latchkey.secrets.yaml beside this file.

http:
  # The issuer: every URL and the `iss`/`aud` of tokens are built from it. Required.
  public_origin: "{public_origin}"
  # Extra origins allowed by CORS (the origins of registered redirect URIs always are).
  allowed_origins: []
  # Prefix of cookie names; the session cookie is "<prefix>session".
  cookie_prefix: ""
  # Domain attribute of the session cookie, for apps on sibling subdomains
  # (e.g. example.com when this runs at identity.example.com). Unset: host-only.
  # cookie_domain: example.com
  # Behind a reverse proxy, take the client address (for rate limits) from the last
  # X-Forwarded-For entry. Leave false when clients connect directly: they could forge it.
  trust_proxy: false

session:
  # Browser (cookie) sessions: expire at min(created + lifetime, last use + idle timeout).
  lifetime_seconds: 31449600
  idle_timeout_enabled: true
  idle_timeout_seconds: 2592000

jwt:
  # Clock skew tolerated when verifying exp, nbf and iat.
  time_tolerance_seconds: 60

resolver:
  # true: /_resolver/resolve answers 401 for missing or invalid credentials, for
  # proxies that should block rather than forward.
  strict: false

# Fixed-window limits; over a limit the answer is 429 with Retry-After. limit: 0 disables.
rate_limits:
  token_per_ip: {{ limit: 120, window_seconds: 60 }}
  token_per_user: {{ limit: 60, window_seconds: 60 }}
  client_credentials_per_client: {{ limit: 60, window_seconds: 60 }}
  login_failures_per_ip: {{ limit: 60, window_seconds: 60 }}
  login_failures_per_user_ip: {{ limit: 10, window_seconds: 60 }}

# Account lockout per username after repeated failed sign-ins, with exponential backoff.
lockout:
  enabled: true
  max_attempts: 10
  minimum_duration_seconds: 60
  maximum_duration_seconds: 3600
  backoff_factor: 2
  history_duration_seconds: 900

ui:
  product_name: Latchkey
  # logo_url: https://example.com/logo.png
  primary_color: "#1f6feb"

oauth:
  clients:
    - client_id: demo
      name: Demo app
      x_application_type: spa
      redirect_uris:
        - http://127.0.0.1:4000/callback
        - http://localhost:4000/callback
      post_logout_redirect_uris:
        - http://127.0.0.1:4000/
      grant_types: [authorization_code, refresh_token]
      access_token_lifetime_seconds: 1800
      refresh_token_lifetime_seconds: 31449600
      refresh_token_idle_timeout_enabled: true
      refresh_token_idle_timeout_seconds: 2592000
      refresh_token_rotation_enabled: true
"##
    )
}
