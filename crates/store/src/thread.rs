//! [`StoreThread`]: a store of its own on a dedicated std thread, for synchronous callers.
//!
//! Sync traits (the telemetry series persistence, the sync state-document facade) are called
//! from plain threads and, at start-up, possibly from inside a tokio worker, where blocking on a
//! runtime handle would panic. So each sync adapter owns a thread running a current-thread
//! runtime and a small pool; a call sends a job (a closure over the thread's worker state) over a
//! channel and waits on a std channel for its reply. The job queue is a tokio unbounded channel:
//! sending never blocks and the thread awaits it, so the pool's own background tasks keep running
//! between calls.
//!
//! Dropping the handle closes the queue; the thread finishes the jobs already sent, closes its
//! pool and is joined.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;

use tokio::sync::mpsc;

use crate::config::StoreConfig;
use crate::db::{PoolSize, Store};
use crate::error::StoreError;

/// A future borrowing the worker state; it runs on the store thread and need not be `Send`.
pub(crate) type LocalFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

type Job<W> = Box<dyn for<'a> FnOnce(&'a mut W) -> LocalFuture<'a, ()> + Send>;

/// The handle on a store thread whose jobs see a `&mut W` (see the module docs).
pub(crate) struct StoreThread<W: 'static> {
    jobs: Option<mpsc::UnboundedSender<Job<W>>>,
    thread: Option<JoinHandle<()>>,
    describe: String,
}

impl<W: 'static> StoreThread<W> {
    /// Starts the thread `name`, opens the store there (migrations included) with a small pool,
    /// builds the worker state with `make`, and waits until it is ready. Safe to call from inside
    /// or outside a tokio runtime.
    pub(crate) fn spawn(
        name: &str,
        config: &StoreConfig,
        make: impl FnOnce(Store) -> W + Send + 'static,
    ) -> Result<Self, StoreError> {
        let config = config.clone();
        let (ready_tx, ready_rx) = std_mpsc::channel::<Result<String, StoreError>>();
        let (tx, mut rx) = mpsc::unbounded_channel::<Job<W>>();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(source) => {
                        let _ = ready_tx.send(Err(StoreError::Io { path: PathBuf::from("(tokio runtime)"), source }));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let store = match Store::open_sized(&config, PoolSize::SMALL, None).await {
                        Ok(s) => s,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(store.describe()));
                    let mut worker = make(store.clone());
                    while let Some(job) = rx.recv().await {
                        job(&mut worker).await;
                    }
                    drop(worker);
                    store.close().await;
                });
            })
            .map_err(|source| StoreError::Io { path: PathBuf::from(format!("({name} thread)")), source })?;
        let describe = match ready_rx.recv() {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(StoreError::ThreadGone { target: name.to_string() });
            }
        };
        Ok(Self { jobs: Some(tx), thread: Some(thread), describe })
    }

    /// "sqlite <path>" or "mysql host:port/db".
    pub(crate) fn describe(&self) -> &str {
        &self.describe
    }

    /// Runs `f` on the store thread and waits for its result. Blocks the calling thread (never a
    /// runtime: the wait is on a std channel, so it cannot panic inside tokio).
    pub(crate) fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a mut W) -> LocalFuture<'a, Result<T, StoreError>> + Send + 'static,
    {
        let gone = || StoreError::ThreadGone { target: self.describe.clone() };
        let (reply_tx, reply_rx) = std_mpsc::sync_channel(1);
        let job: Job<W> = Box::new(move |worker: &mut W| {
            let fut = f(worker);
            Box::pin(async move {
                let _ = reply_tx.send(fut.await);
            })
        });
        self.jobs.as_ref().ok_or_else(gone)?.send(job).map_err(|_| gone())?;
        reply_rx.recv().map_err(|_| gone())?
    }
}

impl<W: 'static> Drop for StoreThread<W> {
    fn drop(&mut self) {
        // Closing the queue ends the thread's loop; it then closes its pool.
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
