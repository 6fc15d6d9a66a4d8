//! Pseudonymous user ids and input digests.
//!
//! [`Pseudonymizer`] owns the key of the keyed hash (HMAC-SHA-256) that turns a raw user id into
//! the pseudonym stored in the request log and used by log queries. The key comes from
//! configuration, else the environment ([`PSEUDONYM_KEY_ENV`]), else `<data_dir>/pseudonym.key`,
//! which is created (32 random bytes, hex, mode 0600) when absent and reused afterwards, so
//! pseudonyms stay stable across restarts. [`input_or_digest`] replaces oversized inputs with a
//! digest.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::error::StoreError;

/// The environment variable holding the pseudonym key (hex or any text).
pub const PSEUDONYM_KEY_ENV: &str = "RECSERVE_PSEUDONYM_KEY";
/// File name of the generated key inside the data directory.
pub const PSEUDONYM_KEY_FILE: &str = "pseudonym.key";

/// Keyed hashing of user ids.
#[derive(Clone)]
pub struct Pseudonymizer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pseudonymizer").field("key", &"<hidden>").finish()
    }
}

/// Key text → key bytes: hex (even length, at least 32 digits) is decoded, anything else is
/// used as it is.
fn key_bytes(text: &str) -> Vec<u8> {
    let t = text.trim();
    if t.len() >= 32
        && t.len().is_multiple_of(2)
        && let Ok(bytes) = hex::decode(t)
    {
        return bytes;
    }
    t.as_bytes().to_vec()
}

impl Pseudonymizer {
    /// A pseudonymizer with this key.
    pub fn new(key: &[u8]) -> Self {
        Self { key: key.to_vec() }
    }

    /// The key from `configured` (hex or any text), else the environment variable
    /// [`PSEUDONYM_KEY_ENV`], else `<data_dir>/pseudonym.key` (created when absent).
    pub fn load_or_create(data_dir: &Path, configured: Option<&str>) -> Result<Self, StoreError> {
        let env = std::env::var(PSEUDONYM_KEY_ENV).ok();
        Self::resolve(data_dir, configured, env.as_deref())
    }

    /// [`Pseudonymizer::load_or_create`] with the environment's value passed in: `configured`
    /// wins, then `env`, then the key file. Empty values count as absent.
    pub fn resolve(data_dir: &Path, configured: Option<&str>, env: Option<&str>) -> Result<Self, StoreError> {
        let given = configured.filter(|k| !k.trim().is_empty()).or(env.filter(|k| !k.trim().is_empty()));
        if let Some(text) = given {
            return Ok(Self::new(&key_bytes(text)));
        }
        let path = data_dir.join(PSEUDONYM_KEY_FILE);
        let io = |source| StoreError::Io { path: path.clone(), source };
        match fs::read_to_string(&path) {
            Ok(text) if !text.trim().is_empty() => return Ok(Self::new(&key_bytes(&text))),
            Ok(_) => {
                return Err(StoreError::Io {
                    path: path.clone(),
                    source: std::io::Error::new(ErrorKind::InvalidData, "the pseudonym key file is empty"),
                });
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        fs::create_dir_all(data_dir).map_err(|source| StoreError::Io { path: data_dir.to_path_buf(), source })?;
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| StoreError::Random { path: path.clone(), reason: e.to_string() })?;
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        match options.open(&path) {
            Ok(mut file) => {
                file.write_all(format!("{}\n", hex::encode(key)).as_bytes())
                    .and_then(|_| file.sync_all())
                    .map_err(io)?;
                tracing::info!(path = %path.display(), "created a new pseudonym key");
                Ok(Self::new(&key))
            }
            // Another process created it first: use theirs.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let text = fs::read_to_string(&path).map_err(io)?;
                Ok(Self::new(&key_bytes(&text)))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The pseudonym of `raw_user`: lowercase hex HMAC-SHA-256.
    pub fn pseudonymize(&self, raw_user: &str) -> String {
        // HMAC accepts keys of any length; an error here is impossible.
        match <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key) {
            Ok(mut mac) => {
                mac.update(raw_user.as_bytes());
                hex::encode(mac.finalize().into_bytes())
            }
            Err(_) => hex::encode(Sha256::digest([self.key.as_slice(), raw_user.as_bytes()].concat())),
        }
    }
}

/// `json` itself when it is at most `cap_bytes` long, else `"sha256:<hex> (<n> bytes)"`.
pub fn input_or_digest(json: String, cap_bytes: usize) -> String {
    if json.len() <= cap_bytes {
        json
    } else {
        format!("sha256:{} ({} bytes)", hex::encode(Sha256::digest(json.as_bytes())), json.len())
    }
}
