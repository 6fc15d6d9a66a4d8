//! recserve's store: one schema kept by migrations over two sqlx backends, SQLite in the data
//! directory (the default, WAL) and MySQL/MariaDB (`--store mysql://…`). Everything that persists
//! goes through it: request and service logs, series snapshots, control-plane state documents
//! (alert states, silences, later deployments), the notification log and the audit trail.
//!
//! # Wiring (what the server does)
//!
//! ```no_run
//! # async fn wire() -> Result<(), recserve_store::StoreError> {
//! use std::time::Duration;
//! use recserve_store::*;
//!
//! let config = StoreConfig { url: None, data_dir: "/var/lib/recserve".into(), retention: Retention::default() };
//! let store = Store::open(&config).await?;
//! let writer = store.start_writer(WriterConfig::default());
//! let sink = writer.sink(); // clone into request handlers and the tracing layer
//! let pseudonyms = Pseudonymizer::load_or_create(&config.data_dir, None)?;
//! let mut record = RequestRecord::new("r-1", 1_700_000_000_000);
//! record.user = Some(pseudonyms.pseudonymize("customer-42"));
//! record.input = Some(input_or_digest(r#"{"query":"shoes"}"#.to_string(), 4096));
//! let _accepted = sink.submit(LogRecord::Request(record)); // never blocks; false = dropped, counted
//! let _retention = store.start_retention(Duration::from_secs(300));
//! // The telemetry series store persists through its own small pool on its own thread:
//! let persistence = SqlSeriesPersistence::open(&config)?;
//! # let _ = persistence;
//! // On shutdown:
//! let stats = writer.shutdown().await;
//! # let _ = stats;
//! store.close().await;
//! # Ok(()) }
//! ```
//!
//! Modules: [`config`] (URLs, backends), [`db`] ([`Store`]: pools, migrations, size),
//! [`records`] (what is logged), `blocks` (the request log's compressed record blocks),
//! [`writer`] (the batched log writer), [`query`] (log queries
//! with keyset paging), [`retention`], [`pseudonym`] (keyed user pseudonyms, input digests),
//! [`series`] (the telemetry series persistence), [`state`] (state documents shared by
//! replicas, and their sync facade), [`notifications`] (the notification log and its
//! non-blocking recorder), [`audit`] (the audit trail, which retention never deletes),
//! [`tokens`] (API tokens, stored as SHA-256 hashes only), [`lease`] (a role one replica holds at a
//! time: the alert evaluator). The sync
//! adapters share one piece of plumbing, a store on a thread of its own (`thread`).

pub mod audit;
mod blocks;
pub mod config;
pub mod db;
pub mod error;
pub mod lease;
pub mod notifications;
pub mod pseudonym;
pub mod query;
pub mod records;
pub mod retention;
pub mod series;
pub mod state;
mod thread;
pub mod tokens;
pub mod writer;

pub use audit::{AuditOutcome, AuditQuery, AuditRecord};
pub use config::{Backend, Retention, StoreConfig};
pub use db::Store;
pub use error::StoreError;
pub use lease::Lease;
pub use notifications::{NotificationQuery, NotificationRecord, NotificationRecorder, RecorderStats};
pub use pseudonym::{PSEUDONYM_KEY_ENV, Pseudonymizer, input_or_digest};
pub use query::{LogQuery, Page, RequestQueryStats, StatusFilter};
pub use records::{LogRecord, RequestRecord, ServiceRecord};
pub use retention::RetentionReport;
pub use series::SqlSeriesPersistence;
pub use state::{Document, SqlStateDocuments, StateChanges};
pub use tokens::{NewToken, StoredToken, TokenRecord};
pub use writer::{LogSink, LogWriter, WriterConfig, WriterStats};
