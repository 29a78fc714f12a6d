//! Dynamic batching: texts from concurrent requests wait in one bounded queue; each worker
//! takes the oldest and the queued texts of a similar length (up to `max_batch`), waits up to
//! `max_wait` for more when the batch is not full, sorts the batch by length so that padding
//! is short, and runs it on its own encoder. A request that does not fit in the queue is refused at once.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// Runs padded batches of token windows; one per worker thread.
pub trait Encoder: Send {
    fn encode(&mut self, windows: &[Vec<u32>]) -> anyhow::Result<Vec<Vec<f32>>>;
}

/// One text's vector, or why the batch failed.
pub type Reply = oneshot::Receiver<Result<Vec<f32>, String>>;

struct Job {
    window: Vec<u32>,
    reply: oneshot::Sender<Result<Vec<f32>, String>>,
    /// The span of the request that queued it: the batch's inference span is a child of
    /// the first request's and links the others.
    span: tracing::Span,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
}

/// The queue was full: the caller should retry later (`RESOURCE_EXHAUSTED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull {
    pub queued: usize,
    pub capacity: usize,
}

/// Batch sizes and waits.
#[derive(Debug, Clone, Copy)]
pub struct BatchOptions {
    pub max_batch: usize,
    pub max_wait: Duration,
    pub capacity: usize,
}

/// The handle requests submit through; dropping the last one stops the workers.
#[derive(Clone)]
pub struct Batcher {
    shared: Arc<(Mutex<Queue>, Condvar)>,
    options: BatchOptions,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("options", &self.options)
            .finish()
    }
}

/// Counters for `/metrics` and tests.
#[derive(Debug)]
pub struct Stats {
    pub batches: std::sync::atomic::AtomicU64,
    pub texts: std::sync::atomic::AtomicU64,
    /// `apex_embedder_queue_depth`: texts waiting for a batch.
    pub queue_depth: prometheus::IntGauge,
    /// `apex_embedder_batch_texts`: texts per batch run.
    pub batch_texts: prometheus::Histogram,
    /// `apex_embedder_inference_seconds`: time of one batch's inference.
    pub inference_seconds: prometheus::Histogram,
}

impl Default for Stats {
    fn default() -> Self {
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            prometheus::Histogram::with_opts(
                prometheus::HistogramOpts::new(name, help).buckets(buckets),
            )
            .unwrap_or_else(|e| panic!("metric {name}: {e}"))
        };
        Self {
            batches: Default::default(),
            texts: Default::default(),
            queue_depth: prometheus::IntGauge::new(
                "apex_embedder_queue_depth",
                "Texts queued for the embedding batches",
            )
            .unwrap_or_else(|e| panic!("metric: {e}")),
            batch_texts: histogram(
                "apex_embedder_batch_texts",
                "Texts per inference batch",
                vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
            ),
            inference_seconds: histogram(
                "apex_embedder_inference_seconds",
                "Time of one batch's inference",
                vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0],
            ),
        }
    }
}

impl Stats {
    /// Registers the batch metrics in `registry`.
    pub fn register(&self, registry: &prometheus::Registry) {
        let _ = registry.register(Box::new(self.queue_depth.clone()));
        let _ = registry.register(Box::new(self.batch_texts.clone()));
        let _ = registry.register(Box::new(self.inference_seconds.clone()));
    }
}

fn worker(
    shared: Arc<(Mutex<Queue>, Condvar)>,
    options: BatchOptions,
    mut encoder: Box<dyn Encoder>,
    stats: Arc<Stats>,
) {
    let (lock, ready) = &*shared;
    loop {
        let mut batch: Vec<Job> = Vec::new();
        {
            let Ok(mut queue) = lock.lock() else { return };
            while queue.jobs.is_empty() && !queue.closed {
                queue = match ready.wait(queue) {
                    Ok(q) => q,
                    Err(_) => return,
                };
            }
            if queue.jobs.is_empty() && queue.closed {
                return;
            }
            // Gather: what is queued now, then wait a little for a fuller batch.
            let deadline = Instant::now() + options.max_wait;
            loop {
                take_similar(&mut queue.jobs, &mut batch, options.max_batch);
                let now = Instant::now();
                if batch.len() >= options.max_batch || now >= deadline || queue.closed {
                    break;
                }
                queue = match ready.wait_timeout(queue, deadline - now) {
                    Ok((q, _)) => q,
                    Err(_) => return,
                };
            }
        }
        if let Ok(queue) = lock.lock() {
            stats.queue_depth.set(queue.jobs.len() as i64);
        }
        // A request that gave up (deadline, cancelled call) no longer waits for its texts.
        batch.retain(|j| !j.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        // Short windows together: less padding per batch.
        batch.sort_by_key(|j| j.window.len());
        let windows: Vec<Vec<u32>> = batch.iter().map(|j| j.window.clone()).collect();
        stats
            .batches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        stats
            .texts
            .fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let span = inference_span(&batch, &windows);
        stats.batch_texts.observe(windows.len() as f64);
        let started = Instant::now();
        let encoded = span.in_scope(|| encoder.encode(&windows));
        stats
            .inference_seconds
            .observe(started.elapsed().as_secs_f64());
        match encoded {
            Ok(vectors) => {
                for (job, v) in batch.into_iter().zip(vectors) {
                    let _ = job.reply.send(Ok(v));
                }
            }
            Err(e) => {
                let message = format!("{e:#}");
                for job in batch {
                    let _ = job.reply.send(Err(message.clone()));
                }
            }
        }
    }
}

/// Padding class of a window: the power of two its length rounds up to (a batch is
/// padded to its longest window).
fn length_class(len: usize) -> u32 {
    len.max(1).next_power_of_two().trailing_zeros()
}

/// Moves queued jobs into `batch` up to `max`: the oldest first (nothing waits behind
/// newer texts forever), then the queued ones of its length class, in order, so short texts
/// (queries, events) are not padded to the length of a long chunk. Other lengths stay queued
/// for the next batch, which any worker takes at once.
fn take_similar(queue: &mut VecDeque<Job>, batch: &mut Vec<Job>, max: usize) {
    if batch.is_empty() {
        match queue.pop_front() {
            Some(j) => batch.push(j),
            None => return,
        }
    }
    let class = length_class(batch[0].window.len());
    let mut i = 0;
    while batch.len() < max && i < queue.len() {
        if length_class(queue[i].window.len()) == class {
            if let Some(j) = queue.remove(i) {
                batch.push(j);
            }
        } else {
            i += 1;
        }
    }
}

/// The span of one batch's inference: a child of the first request in it, linked to the
/// other requests whose texts it carries.
fn inference_span(batch: &[Job], windows: &[Vec<u32>]) -> tracing::Span {
    let Some(first) = batch.first() else {
        return tracing::Span::none();
    };
    let span = tracing::info_span!(
        parent: &first.span,
        "embed.inference",
        otel.name = "inference",
        apex.batch.texts = windows.len(),
        apex.batch.tokens = windows.iter().map(Vec::len).sum::<usize>(),
        apex.batch.longest = windows.iter().map(Vec::len).max().unwrap_or(0),
    );
    let mut linked = vec![first.span.id()];
    for job in &batch[1..] {
        let id = job.span.id();
        if !linked.contains(&id) {
            span.follows_from(id.clone());
            linked.push(id);
        }
    }
    span
}

impl Batcher {
    /// Starts one worker thread per encoder.
    pub fn start(encoders: Vec<Box<dyn Encoder>>, options: BatchOptions) -> Self {
        let shared = Arc::new((Mutex::new(Queue::default()), Condvar::new()));
        let stats = Arc::new(Stats::default());
        for (i, encoder) in encoders.into_iter().enumerate() {
            let (shared, stats) = (shared.clone(), stats.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("embed-worker-{i}"))
                .spawn(move || worker(shared, options, encoder, stats));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start an embedding worker");
            }
        }
        Self {
            shared,
            options,
            stats,
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Queues every window of one request (all or none) and returns their receivers.
    pub fn submit(&self, windows: Vec<Vec<u32>>) -> Result<Vec<Reply>, QueueFull> {
        let (lock, ready) = &*self.shared;
        let mut queue = match lock.lock() {
            Ok(q) => q,
            Err(p) => p.into_inner(),
        };
        if queue.jobs.len() + windows.len() > self.options.capacity {
            return Err(QueueFull {
                queued: queue.jobs.len(),
                capacity: self.options.capacity,
            });
        }
        let mut receivers = Vec::with_capacity(windows.len());
        let span = tracing::Span::current();
        for window in windows {
            let (reply, rx) = oneshot::channel();
            queue.jobs.push_back(Job {
                window,
                reply,
                span: span.clone(),
            });
            receivers.push(rx);
        }
        self.stats.queue_depth.set(queue.jobs.len() as i64);
        drop(queue);
        ready.notify_all();
        Ok(receivers)
    }

    /// Stops the workers once the queue is empty.
    pub fn close(&self) {
        let (lock, ready) = &*self.shared;
        if let Ok(mut q) = lock.lock() {
            q.closed = true;
        }
        ready.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records batch sizes; the vector is [length of the window].
    struct Recording(Arc<Mutex<Vec<Vec<usize>>>>);

    impl Encoder for Recording {
        fn encode(&mut self, windows: &[Vec<u32>]) -> anyhow::Result<Vec<Vec<f32>>> {
            if let Ok(mut b) = self.0.lock() {
                b.push(windows.iter().map(Vec::len).collect());
            }
            Ok(windows.iter().map(|w| vec![w.len() as f32]).collect())
        }
    }

    #[tokio::test]
    async fn concurrent_texts_share_sorted_batches_and_a_full_queue_refuses() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let batcher = Batcher::start(
            vec![Box::new(Recording(seen.clone()))],
            BatchOptions {
                max_batch: 4,
                max_wait: Duration::from_millis(200),
                capacity: 6,
            },
        );
        // Six texts from two requests: every reply is its own text's, whatever the order.
        let a = batcher
            .submit(vec![vec![1; 5], vec![1; 1], vec![1; 3]])
            .expect("a");
        let b = batcher
            .submit(vec![vec![1; 2], vec![1; 4], vec![1; 6]])
            .expect("b");
        let mut got = Vec::new();
        for rx in a.into_iter().chain(b) {
            got.push(rx.await.expect("reply").expect("vector")[0] as usize);
        }
        assert_eq!(got, [5, 1, 3, 2, 4, 6]);
        let batches = seen.lock().expect("lock").clone();
        assert!(batches.iter().all(|b| b.len() <= 4), "{batches:?}");
        assert!(
            batches.iter().all(|b| b.windows(2).all(|w| w[0] <= w[1])),
            "sorted: {batches:?}"
        );
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 6);
        // Nothing is queued now; seven texts do not fit in six.
        let full = batcher.submit(vec![vec![1]; 7]).expect_err("full");
        assert_eq!(full.capacity, 6);
        batcher.close();
    }

    /// Blocks in its first batch until released, then records like `Recording`.
    struct Gated {
        gate: Arc<(Mutex<bool>, Condvar)>,
        seen: Arc<Mutex<Vec<Vec<usize>>>>,
    }

    impl Encoder for Gated {
        fn encode(&mut self, windows: &[Vec<u32>]) -> anyhow::Result<Vec<Vec<f32>>> {
            let (open, cv) = &*self.gate;
            let mut o = open.lock().expect("lock");
            while !*o {
                o = cv.wait(o).expect("wait");
            }
            drop(o);
            self.seen
                .lock()
                .expect("lock")
                .push(windows.iter().map(Vec::len).collect());
            Ok(windows.iter().map(|w| vec![w.len() as f32]).collect())
        }
    }

    type Gate = Arc<(Mutex<bool>, Condvar)>;

    /// A batcher whose one worker blocks in its first batch until [`open`], and what its
    /// batches held.
    fn gated(max_batch: usize, capacity: usize) -> (Batcher, Gate, Arc<Mutex<Vec<Vec<usize>>>>) {
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let batcher = Batcher::start(
            vec![Box::new(Gated {
                gate: gate.clone(),
                seen: seen.clone(),
            })],
            BatchOptions {
                max_batch,
                max_wait: Duration::ZERO,
                capacity,
            },
        );
        (batcher, gate, seen)
    }

    /// Returns once the worker has taken its first batch (and blocks in it).
    async fn first_batch_taken(batcher: &Batcher) {
        while batcher
            .stats()
            .batches
            .load(std::sync::atomic::Ordering::SeqCst)
            == 0
        {
            tokio::task::yield_now().await;
        }
    }

    fn open(gate: &Gate) {
        let (open, cv) = &**gate;
        *open.lock().expect("lock") = true;
        cv.notify_all();
    }

    #[tokio::test]
    async fn texts_of_a_request_that_gave_up_are_not_computed() {
        let (batcher, gate, seen) = gated(1, 8);
        // The worker takes the first text and blocks on the gate.
        let first = batcher.submit(vec![vec![1; 1]]).expect("first");
        first_batch_taken(&batcher).await;
        // A request that then gives up (its receivers dropped), and one that waits.
        drop(
            batcher
                .submit(vec![vec![1; 2], vec![1; 3]])
                .expect("abandoned"),
        );
        let kept = batcher.submit(vec![vec![1; 4]]).expect("kept");
        open(&gate);
        assert_eq!(
            first
                .into_iter()
                .next()
                .expect("rx")
                .await
                .expect("reply")
                .expect("v"),
            [1.0]
        );
        assert_eq!(
            kept.into_iter()
                .next()
                .expect("rx")
                .await
                .expect("reply")
                .expect("v"),
            [4.0]
        );
        assert_eq!(
            *seen.lock().expect("lock"),
            [vec![1], vec![4]],
            "lengths 2 and 3 skipped"
        );
        batcher.close();
    }

    #[tokio::test]
    async fn queued_texts_are_batched_with_texts_of_their_length() {
        let (batcher, gate, seen) = gated(4, 16);
        // The worker takes the first text and blocks; then long and short texts queue up,
        // interleaved, with the oldest long.
        let first = batcher.submit(vec![vec![1; 3]]).expect("first");
        first_batch_taken(&batcher).await;
        let lengths = [200, 20, 250, 30, 240, 17, 18];
        let rest = batcher
            .submit(lengths.iter().map(|n| vec![1; *n]).collect())
            .expect("rest");
        open(&gate);
        let mut got = Vec::new();
        for rx in first.into_iter().chain(rest) {
            got.push(rx.await.expect("reply").expect("vector")[0] as usize);
        }
        assert_eq!(
            got,
            [3, 200, 20, 250, 30, 240, 17, 18],
            "each its own vector"
        );
        assert_eq!(
            *seen.lock().expect("lock"),
            [vec![3], vec![200, 240, 250], vec![17, 18, 20, 30]],
            "the oldest first, each batch one length class"
        );
        batcher.close();
    }
}
