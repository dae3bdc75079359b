//! The data directory: `latchkey.yaml` (config), `latchkey.secrets.yaml` (signing keys
//! and client secrets, mode 0600) and `latchkey.sqlite3` (the store).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use latchkey_endpoints::{Config, parse_config, parse_secrets};
use latchkey_store_sqlite::SqliteStore;
use latchkey_token::keys::{Algorithm, KeySet};

/// What a server loads from a data directory.
pub struct Loaded {
    pub config: Arc<Config>,
    pub keys: Arc<KeySet>,
    /// SHA-256 (hex) of each admin API key; none: the admin API is off.
    pub admin_key_hashes: Vec<String>,
    /// The secrets' private JWKs, which seed the key ring at the first rotation.
    pub private_jwks: Vec<serde_json::Value>,
    /// Public JWKs of operators' admin JWTs.
    pub admin_jwt_keys: Arc<latchkey_token::admin_jwt::AdminJwtKeys>,
}

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
    pub fn load(&self) -> Result<Loaded, String> {
        let secrets_text =
            fs::read_to_string(self.secrets()).map_err(|e| format!("cannot read {}: {e}", self.secrets().display()))?;
        let secrets = parse_secrets(&secrets_text).map_err(|e| format!("invalid {}: {e}", self.secrets().display()))?;
        let config_text =
            fs::read_to_string(self.config()).map_err(|e| format!("cannot read {}: {e}", self.config().display()))?;
        let config =
            parse_config(&config_text, &secrets).map_err(|e| format!("invalid {}: {e}", self.config().display()))?;
        Ok(Loaded {
            config: Arc::new(config),
            keys: Arc::new(secrets.keys),
            admin_key_hashes: secrets.admin_key_hashes,
            private_jwks: secrets.private_jwks,
            admin_jwt_keys: secrets.admin_jwt_keys,
        })
    }

    /// Makes a new admin API key, adds its SHA-256 to the secrets file `path`'s `admin`
    /// entry (creating the entry if needed) and returns the key, which is stored
    /// nowhere. The file is edited as text, so its comments and layout stay as they
    /// are, and the result is parsed before it replaces the file (atomically, mode
    /// 0600): unless it holds exactly the old admin keys and the new one, the file is
    /// left alone and the error says what to add by hand.
    pub fn add_admin_key(path: &Path, entropy: &dyn latchkey_token::Entropy) -> Result<String, String> {
        let text = fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let before = parse_secrets(&text).map_err(|e| format!("invalid {}: {e}", path.display()))?;
        let mut raw = [0u8; 32];
        entropy.fill(&mut raw);
        let key = format!("lk_admin_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw));
        let hex = latchkey_token::secret::sha256_hex(&key);
        let updated = with_admin_hash(&text, &hex);
        let mut expected = before.admin_key_hashes.clone();
        expected.push(hex.clone());
        let parsed = updated.as_deref().map(parse_secrets);
        if !matches!(&parsed, Some(Ok(after)) if after.admin_key_hashes == expected) {
            return Err(format!(
                "cannot add the key to {} automatically; add this entry to its secrets list by hand:\n  \
                 - key: admin\n    data:\n      key_hashes:\n        - \"sha256:{hex}\"",
                path.display()
            ));
        }
        let updated = updated.unwrap_or_default();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("latchkey.secrets.yaml");
        let tmp = path.with_file_name(format!(".{name}.tmp"));
        let _ = fs::remove_file(&tmp);
        write_new(&tmp, updated.as_bytes(), 0o600)?;
        fs::rename(&tmp, path).map_err(|e| format!("cannot replace {}: {e}", path.display()))?;
        Ok(key)
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

/// `text` with `sha256:<hex>` added to its `admin` entry's `key_hashes` block list, or
/// a new `admin` entry appended to the `secrets:` list (indented like its first item).
/// `None` when the layout is not one this knows; the caller verifies the result.
fn with_admin_hash(text: &str, hex: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let indent_of = |l: &str| l.len() - l.trim_start().len();
    let admin_at = lines.iter().position(|l| {
        let t = l.trim_start();
        t == "- key: admin" || t == "- key: \"admin\"" || t == "- key: 'admin'"
    });
    let mut out: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    match admin_at {
        Some(at) => {
            let hashes_at = (at + 1..lines.len())
                .take_while(|&i| lines[i].trim().is_empty() || indent_of(lines[i]) > indent_of(lines[at]))
                .find(|&i| lines[i].trim() == "key_hashes:")?;
            let item_indent = lines
                .get(hashes_at + 1)
                .filter(|l| l.trim_start().starts_with("- "))
                .map_or(indent_of(lines[hashes_at]) + 2, |l| indent_of(l));
            // After the last item, so the new key comes last.
            let items = lines[hashes_at + 1..]
                .iter()
                .take_while(|l| indent_of(l) == item_indent && l.trim_start().starts_with("- "))
                .count();
            out.insert(hashes_at + 1 + items, format!("{}- \"sha256:{hex}\"", " ".repeat(item_indent)));
        }
        None => {
            let first_item = lines.iter().skip_while(|l| l.trim() != "secrets:").nth(1)?;
            let pad = " ".repeat(indent_of(first_item));
            out.push(format!("{pad}- key: admin"));
            out.push(format!("{pad}  data:"));
            out.push(format!("{pad}    key_hashes:"));
            out.push(format!("{pad}      - \"sha256:{hex}\""));
        }
    }
    Some(out.join("\n") + "\n")
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

/// A new private JWK (one line of JSON) whose `kid` is its RFC 7638 thumbprint.
pub fn generate_jwk(algorithm: Algorithm) -> Result<String, String> {
    latchkey_token::keys::generate_private_jwk(algorithm).map(|jwk| jwk.to_string()).map_err(|e| e.to_string())
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
