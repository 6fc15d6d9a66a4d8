use crate::fake::{Doubler, Gate, x};
use recserve_engine::TensorData;
use recserve_serving::ServingError;
use recserve_serving::batcher::{BatchOptions, BatchQueue};
use recserve_serving::stats::VersionStats;
use std::sync::Arc;
use std::time::Duration;

fn options(max_batch_size: usize, delay_us: u64, queue: usize) -> BatchOptions {
    BatchOptions {
        max_batch_size,
        max_queue_delay: Duration::from_micros(delay_us),
        max_queue_size: queue,
        threads: 1,
        inline_when_idle: false,
    }
}

/// A queue over a doubling engine that holds every run at `gate` until it opens.
fn gated(opts: BatchOptions) -> (Arc<Gate>, Arc<Doubler>, Arc<VersionStats>, Arc<BatchQueue>) {
    let gate = Arc::new(Gate::default());
    let mut engine = Doubler::new(2.0);
    engine.gate = Some(gate.clone());
    let engine = Arc::new(engine);
    let stats = Arc::new(VersionStats::default());
    let queue = Arc::new(BatchQueue::start("m", 1, engine.clone(), opts, stats.clone()).unwrap());
    (gate, engine, stats, queue)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_batched_and_answered_separately() {
    let (gate, engine, stats, queue) = gated(options(4, 0, 100));

    // The first request occupies the inference thread at the gate; ten more queue behind it.
    let mut handles = Vec::new();
    for i in 0..11 {
        let q = queue.clone();
        handles.push(tokio::spawn(async move { q.submit(vec![x(&[[i as f32, -(i as f32)]])], 1).await }));
        if i == 0 {
            while *gate.waiting.lock().unwrap() == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    while queue.depth() < 10 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    gate.open();
    for (i, h) in handles.into_iter().enumerate() {
        let out = h.await.unwrap().unwrap();
        assert_eq!(out[0].data, TensorData::F32(vec![2.0 * i as f32, -2.0 * i as f32]));
    }
    let batches = engine.batches.lock().unwrap().clone();
    assert_eq!(batches, vec![1, 4, 4, 2], "max_batch_size 4 caps each run");
    assert_eq!(stats.inferences.get(), 11);
    assert_eq!(stats.executions.get(), 4);
}

/// `inline_when_idle`: a request that finds nothing waiting runs on the caller's thread (counted
/// like any batch); requests that queue behind a busy inference thread are still batched there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_when_idle_runs_on_the_caller_and_batches_what_waits() {
    let (gate, engine, stats, queue) = gated(BatchOptions { inline_when_idle: true, ..options(4, 0, 100) });

    // Idle: runs here, on this test's thread, not on an inference thread.
    gate.open();
    let (out, timings) = queue.submit_timed(vec![x(&[[1.0, -1.0]])], 1).await;
    assert_eq!(out.unwrap()[0].data, TensorData::F32(vec![2.0, -2.0]));
    assert_eq!(timings.queue, Some(Duration::ZERO));
    assert!(timings.inference.is_some());
    let ran_on = engine.threads.lock().unwrap().clone();
    assert_eq!(ran_on.len(), 1);
    assert!(!ran_on[0].starts_with("infer-"), "ran on {ran_on:?}");
    assert_eq!((stats.executions.get(), stats.inferences.get()), (1, 1));
    assert_eq!(stats.compute_time.count(), 1);
}

/// While one caller runs inline, the next request goes to the inference thread, and what queues
/// behind that is batched there.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn inline_runs_one_at_a_time_and_what_queues_is_batched() {
    let (gate, engine, stats, queue) = gated(BatchOptions { inline_when_idle: true, ..options(4, 0, 100) });
    let mut handles = Vec::new();
    // The first runs inline (held at the gate on its worker), the second on the inference
    // thread (held at the gate), three more queue.
    for i in 0..5 {
        let q = queue.clone();
        handles.push(tokio::spawn(async move { q.submit(vec![x(&[[i as f32, 0.0]])], 1).await }));
        if i < 2 {
            while *gate.waiting.lock().unwrap() <= i {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    while queue.depth() < 3 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    gate.open();
    for (i, h) in handles.into_iter().enumerate() {
        let out = h.await.unwrap().unwrap();
        assert_eq!(out[0].data, TensorData::F32(vec![2.0 * i as f32, 0.0]));
    }
    let mut batches = engine.batches.lock().unwrap().clone();
    batches.sort();
    assert_eq!(batches, vec![1, 1, 3]);
    let threads = engine.threads.lock().unwrap().clone();
    assert_eq!(threads.iter().filter(|t| t.starts_with("infer-")).count(), 2, "{threads:?}");
    assert_eq!((stats.executions.get(), stats.inferences.get()), (3, 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_delay_gathers_requests_that_arrive_later() {
    let engine = Arc::new(Doubler::new(2.0));
    let stats = Arc::new(VersionStats::default());
    // A long delay: the batch waits until it holds 3 rows.
    let queue = Arc::new(BatchQueue::start("m", 1, engine.clone(), options(3, 5_000_000, 100), stats).unwrap());
    let mut handles = Vec::new();
    for i in 0..3 {
        let q = queue.clone();
        handles.push(tokio::spawn(async move { q.submit(vec![x(&[[i as f32, 0.0]])], 1).await }));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for h in handles {
        h.await.unwrap().unwrap();
    }
    assert_eq!(engine.batches.lock().unwrap().clone(), vec![3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_is_refused_at_once_with_a_clear_message() {
    let gate = Arc::new(Gate::default());
    let mut engine = Doubler::new(2.0);
    engine.gate = Some(gate.clone());
    let stats = Arc::new(VersionStats::default());
    let queue = Arc::new(BatchQueue::start("m", 7, Arc::new(engine), options(1, 0, 2), stats.clone()).unwrap());
    let q = queue.clone();
    let first = tokio::spawn(async move { q.submit(vec![x(&[[1.0, 1.0]])], 1).await });
    while *gate.waiting.lock().unwrap() == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut queued = Vec::new();
    for _ in 0..2 {
        let q = queue.clone();
        queued.push(tokio::spawn(async move { q.submit(vec![x(&[[1.0, 1.0]])], 1).await }));
    }
    while queue.depth() < 2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let refused = queue.submit(vec![x(&[[1.0, 1.0]])], 1).await.unwrap_err();
    assert!(matches!(refused, ServingError::Overloaded { capacity: 2, version: 7, .. }), "{refused:?}");
    assert!(refused.to_string().contains("queue of 2 requests is full"), "{refused}");
    assert_eq!(stats.rejected.get(), 1);
    gate.open();
    first.await.unwrap().unwrap();
    for h in queued {
        h.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_requests_are_dropped_before_inference() {
    let gate = Arc::new(Gate::default());
    let mut engine = Doubler::new(2.0);
    engine.gate = Some(gate.clone());
    let engine = Arc::new(engine);
    let stats = Arc::new(VersionStats::default());
    let queue = Arc::new(BatchQueue::start("m", 1, engine.clone(), options(8, 0, 10), stats.clone()).unwrap());
    let q = queue.clone();
    let first = tokio::spawn(async move { q.submit(vec![x(&[[1.0, 1.0]])], 1).await });
    while *gate.waiting.lock().unwrap() == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // A caller that gives up while queued: its future is dropped.
    let q = queue.clone();
    let gone = tokio::spawn(async move { q.submit(vec![x(&[[5.0, 5.0]])], 1).await });
    while queue.depth() < 1 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    gone.abort();
    let _ = gone.await;
    gate.open();
    first.await.unwrap().unwrap();
    // A later request still works, and the abandoned one never reached the engine.
    queue.submit(vec![x(&[[2.0, 2.0]])], 1).await.unwrap();
    assert_eq!(stats.abandoned.get(), 1);
    assert_eq!(engine.batches.lock().unwrap().iter().sum::<usize>(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_error_fails_only_its_batch() {
    let engine = Arc::new(Doubler::new(2.0));
    let queue = BatchQueue::start("m", 1, engine, options(4, 0, 10), Arc::new(VersionStats::default())).unwrap();
    let err = queue.submit(vec![x(&[[f32::NAN, 0.0]])], 1).await.unwrap_err();
    assert!(err.to_string().contains("NaN input"), "{err}");
    let ok = queue.submit(vec![x(&[[1.0, 0.0]])], 1).await.unwrap();
    assert_eq!(ok[0].data, TensorData::F32(vec![2.0, 0.0]));
}
