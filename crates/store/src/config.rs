//! Store configuration: where the database is ([`StoreConfig`]), which backend a URL selects
//! ([`Backend`]), how long logs are kept ([`Retention`]), and URL handling that never shows a
//! password.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::mysql::MySqlConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;

use crate::error::StoreError;

/// File name of the default SQLite database inside the data directory.
pub const SQLITE_FILE: &str = "recserve.db";

/// Where the store lives.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// `None`: SQLite file `<data_dir>/recserve.db`. Otherwise `sqlite://<path>` or
    /// `mysql://user:pass@host:port/db`.
    pub url: Option<String>,
    /// The data directory (SQLite file, pseudonym key).
    pub data_dir: PathBuf,
    /// How long logs are kept.
    pub retention: Retention,
}

impl StoreConfig {
    /// The default SQLite store in `data_dir`, no retention limits.
    pub fn sqlite_in(data_dir: impl Into<PathBuf>) -> Self {
        Self { url: None, data_dir: data_dir.into(), retention: Retention::default() }
    }
}

/// Log retention: records older than `max_age` go, then the oldest until the store is under
/// `max_bytes`.
#[derive(Clone, Debug, Default)]
pub struct Retention {
    /// Maximum age of a log record.
    pub max_age: Option<Duration>,
    /// Maximum size of the store in bytes.
    pub max_bytes: Option<u64>,
}

/// The database behind a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Backend {
    /// SQLite (embedded, default).
    Sqlite,
    /// MySQL or MariaDB.
    MySql,
}

/// A resolved connection target.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    Sqlite { path: PathBuf, options: SqliteConnectOptions },
    MySql { options: MySqlConnectOptions, display: String },
}

impl Target {
    pub(crate) fn resolve(config: &StoreConfig) -> Result<Self, StoreError> {
        let Some(url) = config.url.as_deref().map(str::trim).filter(|u| !u.is_empty()) else {
            let path = config.data_dir.join(SQLITE_FILE);
            return Ok(Target::Sqlite { options: SqliteConnectOptions::new().filename(&path), path });
        };
        let bad = |reason: String| StoreError::BadUrl { url: redact_url(url), reason };
        if let Some(rest) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            let file = rest.split('?').next().unwrap_or_default();
            if file.is_empty() || file.starts_with(":memory:") {
                return Err(bad("an SQLite store needs a file path".into()));
            }
            let options = SqliteConnectOptions::from_str(url).map_err(|e| bad(e.to_string()))?;
            let path = options.get_filename().to_path_buf();
            return Ok(Target::Sqlite { path, options });
        }
        if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            let normalized = match url.strip_prefix("mariadb://") {
                Some(rest) => format!("mysql://{rest}"),
                None => url.to_string(),
            };
            let options = MySqlConnectOptions::from_str(&normalized).map_err(|e| bad(e.to_string()))?;
            if options.get_database().is_none_or(str::is_empty) {
                return Err(bad("no database name (mysql://user:pass@host:port/<db>)".into()));
            }
            let display =
                format!("{}:{}/{}", options.get_host(), options.get_port(), options.get_database().unwrap_or_default());
            return Ok(Target::MySql { options, display });
        }
        let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("(none)");
        Err(bad(format!("unsupported scheme {scheme:?}")))
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Target::Sqlite { .. } => Backend::Sqlite,
            Target::MySql { .. } => Backend::MySql,
        }
    }

    /// "sqlite <path>" or "mysql host:port/db".
    pub(crate) fn describe(&self) -> String {
        match self {
            Target::Sqlite { path, .. } => format!("sqlite {}", path.display()),
            Target::MySql { display, .. } => format!("mysql {display}"),
        }
    }

    pub(crate) fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Target::Sqlite { path, .. } => Some(path),
            Target::MySql { .. } => None,
        }
    }
}

/// `url` with the password (if any) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}
