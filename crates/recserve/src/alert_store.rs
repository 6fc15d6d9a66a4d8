//! Alerting's state in the store: the active alerts, the silences and the notification log as
//! three state documents (`alerting/alerts`, `alerting/silences`, `alerting/nflog`, so every
//! replica of a fleet sees the same ones and the next evaluator continues from them), and
//! each notification attempt in the store's notification log. The alerting crate knows nothing
//! of SQL; this module adapts its persistence traits to the store.

use recserve_alerting::{
    AlertStatePersistence, NflogEntry, NotificationLogEntry, NotificationSink, PersistError, PersistedAlert, Silence,
};
use recserve_store::{NotificationRecord, NotificationRecorder, SqlStateDocuments, StoreConfig, StoreError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;

/// State document of the active alerts.
pub const ALERTS_DOCUMENT: &str = "alerting/alerts";
/// State document of the silences.
pub const SILENCES_DOCUMENT: &str = "alerting/silences";

/// State document of the notification log (what each group was last notified of).
pub const NFLOG_DOCUMENT: &str = "alerting/nflog";

/// [`AlertStatePersistence`] over the store's state documents.
pub struct StoreAlertState {
    documents: SqlStateDocuments,
}

impl StoreAlertState {
    /// Opens its own connection to the store (callable from any thread).
    pub fn open(config: &StoreConfig) -> Result<Self, StoreError> {
        Ok(StoreAlertState { documents: SqlStateDocuments::open(config)? })
    }

    fn load<T: DeserializeOwned>(&self, name: &str) -> Result<Vec<T>, PersistError> {
        let backend = |e: StoreError| PersistError::Backend(format!("reading {name}: {e}"));
        match self.documents.get(name).map_err(backend)? {
            None => Ok(Vec::new()),
            Some(doc) => serde_json::from_str(&doc.body)
                .map_err(|e| PersistError::Backend(format!("state document {name} is not what alerting wrote: {e}"))),
        }
    }

    fn save<T: Serialize>(&self, name: &str, items: &[T]) -> Result<(), PersistError> {
        let body = serde_json::to_string(items).map_err(|e| PersistError::Backend(format!("encoding {name}: {e}")))?;
        self.documents.put(name, &body).map_err(|e| PersistError::Backend(format!("writing {name}: {e}")))?;
        Ok(())
    }
}

impl AlertStatePersistence for StoreAlertState {
    fn load_alerts(&self) -> Result<Vec<PersistedAlert>, PersistError> {
        self.load(ALERTS_DOCUMENT)
    }
    fn save_alerts(&self, alerts: &[PersistedAlert]) -> Result<(), PersistError> {
        self.save(ALERTS_DOCUMENT, alerts)
    }
    fn load_silences(&self) -> Result<Vec<Silence>, PersistError> {
        self.load(SILENCES_DOCUMENT)
    }
    fn save_silences(&self, silences: &[Silence]) -> Result<(), PersistError> {
        self.save(SILENCES_DOCUMENT, silences)
    }
    fn load_nflog(&self) -> Result<BTreeMap<String, NflogEntry>, PersistError> {
        Ok(self.load::<(String, NflogEntry)>(NFLOG_DOCUMENT)?.into_iter().collect())
    }
    fn save_nflog(&self, nflog: &BTreeMap<String, NflogEntry>) -> Result<(), PersistError> {
        self.save(NFLOG_DOCUMENT, &nflog.iter().collect::<Vec<_>>())
    }
}

/// [`NotificationSink`] that hands each attempt to the store's non-blocking recorder.
pub struct StoreNotificationLog {
    recorder: NotificationRecorder,
    replica: Option<String>,
}

impl StoreNotificationLog {
    pub fn new(recorder: NotificationRecorder, replica: Option<String>) -> Self {
        StoreNotificationLog { recorder, replica }
    }
}

impl NotificationSink for StoreNotificationLog {
    fn record(&self, entry: &NotificationLogEntry) {
        let mut record =
            NotificationRecord::new(entry.time, entry.receiver.clone(), entry.group_key.clone(), entry.outcome.clone());
        record.alerts = u32::try_from(entry.alerts).unwrap_or(u32::MAX);
        record.attempt = entry.attempt;
        record.error = entry.error.clone();
        record.payload = Some(format!("{} {} alert(s) to {}", entry.status, entry.alerts, entry.target));
        record.replica = self.replica.clone();
        // A full queue counts the drop in the recorder's statistics.
        let _accepted = self.recorder.record(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use recserve_alerting::{Matcher, Silences};

    #[test]
    fn silences_round_trip_through_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig::sqlite_in(dir.path());
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async { recserve_store::Store::open(&config).await.unwrap().close().await });
        let state = StoreAlertState::open(&config).unwrap();
        assert!(state.load_silences().unwrap().is_empty());
        assert!(state.load_alerts().unwrap().is_empty());
        let silences = Silences::new();
        let now = 1_700_000_000_000;
        let s = silences
            .add(
                recserve_alerting::NewSilence {
                    matchers: vec![Matcher {
                        name: "alertname".into(),
                        value: "X".into(),
                        is_regex: false,
                        is_equal: true,
                    }],
                    starts_at: now,
                    ends_at: now + 60_000,
                    created_by: "me".into(),
                    comment: "test".into(),
                },
                now,
            )
            .unwrap();
        state.save_silences(std::slice::from_ref(&s)).unwrap();
        drop(state);
        let reopened = StoreAlertState::open(&config).unwrap();
        assert_eq!(reopened.load_silences().unwrap(), vec![s]);
    }
}
