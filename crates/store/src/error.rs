//! The store's error type: every variant names what it was working on (the database, the file,
//! the query field) so a message alone says what went wrong where.

use std::path::PathBuf;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL is neither `sqlite://…` nor `mysql://…`, or does not parse.
    #[error("store URL {url}: {reason} (expected sqlite://<path> or mysql://user:pass@host:port/db)")]
    BadUrl {
        /// The URL with any password hidden.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Connecting to the database failed.
    #[error("cannot connect to the store {target}: {source}")]
    Connect {
        /// The database (URL without password, or SQLite path).
        target: String,
        /// The driver error.
        source: sqlx::Error,
    },
    /// Connecting took longer than the connect timeout.
    #[error("cannot connect to the store {target}: no answer within {seconds} s")]
    ConnectTimeout {
        /// The database.
        target: String,
        /// The timeout.
        seconds: u64,
    },
    /// Applying the schema migrations failed.
    #[error("store {target}: applying migrations failed: {source}")]
    Migrate {
        /// The database.
        target: String,
        /// The migration error.
        source: sqlx::migrate::MigrateError,
    },
    /// A statement failed.
    #[error("store {target}: {what}: {source}")]
    Query {
        /// The database.
        target: String,
        /// What the statement was doing.
        what: &'static str,
        /// The driver error.
        source: sqlx::Error,
    },
    /// A file in the data directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The operating system's random source failed.
    #[error("cannot create a pseudonym key {path}: no OS randomness: {reason}")]
    Random {
        /// The key file that was to be created.
        path: PathBuf,
        /// The error.
        reason: String,
    },
    /// A log query parameter is invalid.
    #[error("invalid log query parameter {field}: {reason}")]
    BadQuery {
        /// The parameter.
        field: &'static str,
        /// Expected vs received.
        reason: String,
    },
    /// A value given to the store is invalid (a document name, an audit actor or action …).
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What the value is.
        what: &'static str,
        /// Expected vs received.
        reason: String,
    },
    /// A stored row could not be decoded.
    #[error("store {target}: stored row in {table} is malformed: {reason}")]
    Corrupt {
        /// The database.
        target: String,
        /// The table.
        table: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The store's background thread is gone (series persistence, sync state documents).
    #[error("store {target}: the store thread has stopped")]
    ThreadGone {
        /// The database.
        target: String,
    },
}
