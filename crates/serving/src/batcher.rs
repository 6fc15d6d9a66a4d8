//! Dynamic batching for one model version: a bounded queue (full → "overloaded" at once) and
//! inference threads that each take a request, gather more that are waiting (up to
//! `max_batch_size` rows, for at most `max_queue_delay` after the first arrived), run them as
//! one engine call, and answer every caller through its oneshot channel. Inference runs on these
//! dedicated OS threads, never on the async runtime. A request whose caller has gone is dropped
//! before inference.
//!
//! Telemetry hooks in without this crate knowing about it: each request learns where its time
//! went ([`JobTimings`], from [`BatchQueue::submit_timed`]), and a [`BatchObserver`] set on the
//! queue hears of every executed batch (rows, queue depth left).

use crate::error::ServingError;
use crate::stats::VersionStats;
use arc_swap::ArcSwapOption;
use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use recserve_engine::{Engine, Tensor};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Knobs of one version's batcher.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// Rows per engine run; 0 (or a model without a batch dimension) runs each request alone.
    pub max_batch_size: usize,
    /// How long the first request of a batch waits for more.
    pub max_queue_delay: Duration,
    /// Requests that may wait; one more is refused as overloaded.
    pub max_queue_size: usize,
    /// Inference threads.
    pub threads: usize,
    /// Run a request on the caller's thread when no other request is waiting (see
    /// [`BatchQueue::submit_timed`]). For models that take a few tens of microseconds, where
    /// the two thread hand-offs cost more than the model.
    pub inline_when_idle: bool,
}

/// The answer to one queued request: outputs in signature order.
pub type BatchResult = Result<Vec<Tensor>, ServingError>;

/// Where one request's time went inside the batcher.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JobTimings {
    /// From queueing until its batch started (`None`: it never started, e.g. refused).
    pub queue: Option<Duration>,
    /// The engine run of its batch, concatenation and split included (`None`: never ran).
    pub inference: Option<Duration>,
}

/// Hears of every batch a version's inference threads execute (telemetry implements it).
/// Called on the inference thread right after the engine run: keep it to a few atomic updates.
pub trait BatchObserver: Send + Sync {
    /// An engine run of `rows` rows finished; `queue_depth` requests are still waiting.
    fn batch_executed(&self, rows: usize, queue_depth: usize);
}

/// The observer slot shared by a queue handle and its threads (replaceable at any time).
type ObserverSlot = Arc<ArcSwapOption<Arc<dyn BatchObserver>>>;

struct Job {
    inputs: Vec<Tensor>,
    rows: usize,
    enqueued: Instant,
    reply: oneshot::Sender<(BatchResult, JobTimings)>,
}

/// Identity of the version a queue serves, for error messages.
#[derive(Debug, Clone)]
struct Owner {
    model: Arc<str>,
    version: u64,
}

/// Handle to a version's queue. Dropping every handle lets the threads drain what is queued
/// and exit.
pub struct BatchQueue {
    tx: Sender<Job>,
    owner: Owner,
    capacity: usize,
    stats: Arc<VersionStats>,
    observer: ObserverSlot,
    /// Set when requests may run on the caller's thread while nothing waits.
    inline: Option<Arc<dyn Engine>>,
    /// A caller is running the engine inline now (one at a time: the next goes to the queue).
    inline_busy: AtomicBool,
}

impl BatchQueue {
    /// Starts the inference threads for `engine`.
    pub fn start(
        model: &str,
        version: u64,
        engine: Arc<dyn Engine>,
        options: BatchOptions,
        stats: Arc<VersionStats>,
    ) -> std::io::Result<BatchQueue> {
        let (tx, rx) = crossbeam_channel::bounded(options.max_queue_size.max(1));
        let owner = Owner { model: model.into(), version };
        let batching = engine.signature().batched && options.max_batch_size > 0;
        let observer: ObserverSlot = Arc::new(ArcSwapOption::empty());
        let inline = options.inline_when_idle.then(|| engine.clone());
        for i in 0..options.threads.max(1) {
            let worker = Worker {
                rx: rx.clone(),
                engine: engine.clone(),
                owner: owner.clone(),
                batching,
                max_rows: options.max_batch_size,
                delay: options.max_queue_delay,
                stats: stats.clone(),
                observer: observer.clone(),
                carry: None,
            };
            std::thread::Builder::new().name(format!("infer-{model}-{version}-{i}")).spawn(move || worker.run())?;
        }
        Ok(BatchQueue {
            tx,
            owner,
            capacity: options.max_queue_size,
            stats,
            observer,
            inline,
            inline_busy: AtomicBool::new(false),
        })
    }

    /// Queues one request (inputs in signature order, `rows` in the batch dimension) and waits
    /// for its outputs. Fails at once with [`ServingError::Overloaded`] when the queue is full.
    pub async fn submit(&self, inputs: Vec<Tensor>, rows: usize) -> BatchResult {
        self.submit_timed(inputs, rows).await.0
    }

    /// As [`BatchQueue::submit`], also saying how long the request waited and how long its
    /// batch ran.
    ///
    /// With [`BatchOptions::inline_when_idle`], no request waiting and no other caller running
    /// inline, the engine runs on the caller's thread instead: nothing could join the batch
    /// anyway, and the request saves the hand-off to an inference thread and back (each a
    /// wake-up that waits for a core on a busy machine). The caller acts as one more instance:
    /// a request arriving meanwhile goes to the queue, and what queues behind it is batched.
    /// Counted like a batch of its own (queue time zero).
    pub async fn submit_timed(&self, inputs: Vec<Tensor>, rows: usize) -> (BatchResult, JobTimings) {
        if let Some(engine) = &self.inline
            && self.tx.is_empty()
            && self.inline_busy.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_ok()
        {
            let answer = self.run_inline(engine, inputs, rows);
            self.inline_busy.store(false, Ordering::Release);
            return answer;
        }
        let (reply, answer) = oneshot::channel();
        let job = Job { inputs, rows, enqueued: Instant::now(), reply };
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.stats.rejected.inc();
                let refused = ServingError::Overloaded {
                    model: self.owner.model.to_string(),
                    version: self.owner.version,
                    capacity: self.capacity,
                };
                return (Err(refused), JobTimings::default());
            }
            Err(TrySendError::Disconnected(_)) => return (Err(ServingError::ShuttingDown), JobTimings::default()),
        }
        answer.await.unwrap_or_else(|_| {
            let stopped =
                ServingError::inference(&self.owner.model, self.owner.version, "the inference thread stopped");
            (Err(stopped), JobTimings::default())
        })
    }

    fn run_inline(&self, engine: &Arc<dyn Engine>, inputs: Vec<Tensor>, rows: usize) -> (BatchResult, JobTimings) {
        let started = Instant::now();
        self.stats.queue_time.record(Duration::ZERO);
        let result = call_engine(engine, &self.owner, inputs);
        let compute = started.elapsed();
        batch_ran(&self.stats, &self.observer, rows, result.is_ok(), compute, self.tx.len());
        (result, JobTimings { queue: Some(Duration::ZERO), inference: Some(compute) })
    }

    /// Sets (or with `None` removes) the observer told of every executed batch.
    pub fn set_observer(&self, observer: Option<Arc<dyn BatchObserver>>) {
        self.observer.store(observer.map(Arc::new));
    }

    /// Capacity of the queue (requests that may wait).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Requests waiting in the queue now.
    pub fn depth(&self) -> usize {
        self.tx.len()
    }
}

struct Worker {
    rx: Receiver<Job>,
    engine: Arc<dyn Engine>,
    owner: Owner,
    batching: bool,
    max_rows: usize,
    delay: Duration,
    stats: Arc<VersionStats>,
    observer: ObserverSlot,
    /// A request taken from the queue that did not fit the previous batch.
    carry: Option<Job>,
}

impl Worker {
    fn run(mut self) {
        loop {
            let first = match self.carry.take() {
                Some(job) => job,
                None => match self.rx.recv() {
                    Ok(job) => job,
                    Err(_) => return, // every handle dropped and the queue drained
                },
            };
            if let Some(batch) = self.gather(first) {
                self.execute(batch);
            }
        }
    }

    /// Takes the request and any that join it; `None` when its caller has gone.
    fn gather(&mut self, first: Job) -> Option<Vec<Job>> {
        if self.skip_if_abandoned(&first) {
            return None;
        }
        let mut rows = first.rows;
        let deadline = first.enqueued + self.delay;
        let mut batch = vec![first];
        if !self.batching {
            return Some(batch);
        }
        while rows < self.max_rows {
            let next = if self.delay.is_zero() {
                match self.rx.try_recv() {
                    Ok(job) => job,
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            } else {
                match self.rx.recv_deadline(deadline) {
                    Ok(job) => job,
                    Err(_) => break,
                }
            };
            if self.skip_if_abandoned(&next) {
                continue;
            }
            if rows + next.rows > self.max_rows || !same_trailing_shapes(&batch[0], &next) {
                self.carry = Some(next);
                break;
            }
            rows += next.rows;
            batch.push(next);
        }
        Some(batch)
    }

    fn skip_if_abandoned(&self, job: &Job) -> bool {
        if job.reply.is_closed() {
            self.stats.abandoned.inc();
            return true;
        }
        false
    }

    fn execute(&self, batch: Vec<Job>) {
        let started = Instant::now();
        for job in &batch {
            self.stats.queue_time.record(started.duration_since(job.enqueued));
        }
        let rows: usize = batch.iter().map(|j| j.rows).sum();
        let result = self.run_engine(&batch, rows);
        let compute = started.elapsed();
        batch_ran(&self.stats, &self.observer, rows, result.is_ok(), compute, self.rx.len());
        let timings =
            |job: &Job| JobTimings { queue: Some(started.duration_since(job.enqueued)), inference: Some(compute) };
        match result {
            Ok(per_job) => {
                for (job, outputs) in batch.into_iter().zip(per_job) {
                    let t = timings(&job);
                    let _ = job.reply.send((Ok(outputs), t));
                }
            }
            Err(e) => {
                for job in batch {
                    let t = timings(&job);
                    let _ = job.reply.send((Err(e.clone()), t));
                }
            }
        }
    }

    /// Runs the batch as one engine call and splits outputs back per request.
    fn run_engine(&self, batch: &[Job], rows: usize) -> Result<Vec<Vec<Tensor>>, ServingError> {
        let (model, version) = (&*self.owner.model, self.owner.version);
        let inputs = if batch.len() == 1 {
            batch[0].inputs.clone()
        } else {
            let n_inputs = batch[0].inputs.len();
            (0..n_inputs)
                .map(|i| {
                    let parts: Vec<&Tensor> = batch.iter().map(|j| &j.inputs[i]).collect();
                    Tensor::concat_rows(&parts)
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ServingError::inference(model, version, e))?
        };
        let outputs = call_engine(&self.engine, &self.owner, inputs)?;
        if batch.len() == 1 {
            return Ok(vec![outputs]);
        }
        let sizes: Vec<usize> = batch.iter().map(|j| j.rows).collect();
        let mut per_job: Vec<Vec<Tensor>> = (0..batch.len()).map(|_| Vec::with_capacity(outputs.len())).collect();
        for out in outputs {
            if out.shape.first() != Some(&rows) {
                return Err(ServingError::inference(
                    model,
                    version,
                    format!("an output of shape {:?} has no batch dimension of {rows} rows", out.shape),
                ));
            }
            let pieces = out.split_rows(&sizes).map_err(|e| ServingError::inference(model, version, e))?;
            for (dst, piece) in per_job.iter_mut().zip(pieces) {
                dst.push(piece);
            }
        }
        Ok(per_job)
    }
}

/// Counts one executed batch (on an inference thread or inline) and tells the observer.
fn batch_ran(stats: &VersionStats, observer: &ObserverSlot, rows: usize, ok: bool, compute: Duration, depth: usize) {
    stats.executions.inc();
    stats.compute_time.record(compute);
    if ok {
        stats.inferences.add(rows as u64);
    }
    if let Some(observer) = observer.load().as_ref() {
        observer.batch_executed(rows, depth);
    }
}

/// One engine run, a panic turned into an inference error.
fn call_engine(engine: &Arc<dyn Engine>, owner: &Owner, inputs: Vec<Tensor>) -> BatchResult {
    let (model, version) = (&*owner.model, owner.version);
    std::panic::catch_unwind(AssertUnwindSafe(|| engine.run(inputs)))
        .map_err(|_| ServingError::inference(model, version, "the engine panicked"))?
        .map_err(|e| ServingError::from_engine(model, version, e))
}

fn same_trailing_shapes(a: &Job, b: &Job) -> bool {
    a.inputs.iter().zip(&b.inputs).all(|(x, y)| x.shape.get(1..) == y.shape.get(1..))
}
