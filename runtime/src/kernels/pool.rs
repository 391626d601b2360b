//! The thread pool vigia's kernels split their work over: `threads - 1` workers plus the
//! calling thread, which takes tasks too.
//!
//! Between two kernels a worker keeps polling for [`SPIN`] before it sleeps (yielding its core
//! after the first [`SPIN_HOT`]), so the many short convolutions of a network start on every
//! core at once: waking a sleeping thread costs tens to hundreds of microseconds (more in a
//! virtual machine), about what a small layer takes. One
//! job runs at a time; a caller that finds the pool busy (another engine's thread) runs its
//! tasks alone on its own thread.

use std::cell::RefCell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle worker spins before it sleeps.
const SPIN: Duration = Duration::from_millis(2);

/// After this much of [`SPIN`], the worker yields its core between polls, so that other
/// threads (tract's pool, the pipeline's stages) run first when they need it.
const SPIN_HOT: Duration = Duration::from_micros(50);

/// The job slot state, one atomic word: generation (16 bits), next task to claim (24 bits),
/// task count (24 bits). A claim is one compare-and-swap on the whole word, so a worker can
/// never claim a task of a job other than the one it read.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Slot {
    generation: u64,
    next: u64,
    tasks: u64,
}

const FIELD: u64 = (1 << 24) - 1;

impl Slot {
    fn pack(self) -> u64 {
        (self.generation & 0xFFFF) << 48 | (self.next & FIELD) << 24 | (self.tasks & FIELD)
    }

    fn unpack(word: u64) -> Slot {
        Slot {
            generation: word >> 48,
            next: (word >> 24) & FIELD,
            tasks: word & FIELD,
        }
    }
}

/// A job: the task body, lifetime erased (it outlives the job: [`Pool::run`] waits for it).
type Job = *const (dyn Fn(usize) + Sync);

struct Shared {
    slot: AtomicU64,
    job: Mutex<Option<SendJob>>,
    /// Tasks of the current job not yet finished.
    remaining: AtomicUsize,
    /// Serializes callers.
    busy: Mutex<()>,
    sleepers: Mutex<usize>,
    wake: Condvar,
    stop: AtomicBool,
    /// A task of the current job panicked on a worker.
    panicked: AtomicBool,
}

#[derive(Clone, Copy)]
struct SendJob(Job);
// SAFETY: the job is `Sync` and outlives every use (see `Pool::run`).
unsafe impl Send for SendJob {}

/// A pool of `threads - 1` spinning workers plus the caller.
pub struct Pool {
    threads: usize,
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pool({} threads)", self.threads)
    }
}

impl Pool {
    /// A pool running jobs on `threads` threads (the caller and `threads - 1` workers).
    pub fn new(threads: usize) -> Pool {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            slot: AtomicU64::new(0),
            job: Mutex::new(None),
            remaining: AtomicUsize::new(0),
            busy: Mutex::new(()),
            sleepers: Mutex::new(0),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
        });
        let workers = (1..threads)
            .map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("vigia-kernels-{i}"))
                    .spawn(move || worker(&shared))
                    .expect("spawning a kernel thread")
            })
            .collect();
        Pool {
            threads,
            shared,
            workers,
        }
    }

    /// Threads a job runs on.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `task(i)` for every `i < tasks`, spread over the pool, and returns when all are done.
    pub fn run(&self, tasks: usize, task: &(dyn Fn(usize) + Sync)) {
        let guard = match self.shared.busy.try_lock() {
            Ok(guard) if self.threads > 1 && tasks > 1 => guard,
            // One thread, one task, or the pool busy with another caller's job: run it here.
            _ => {
                (0..tasks).for_each(task);
                return;
            }
        };
        assert!(tasks as u64 <= FIELD, "{tasks} tasks in one job");
        let s = &self.shared;
        // SAFETY (lifetime): this function does not return before `remaining` is zero, that
        // is before every task has finished; no worker reads the job after its last task.
        let job: Job = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), Job>(task) };
        *s.job.lock().expect("job slot") = Some(SendJob(job));
        s.remaining.store(tasks, Ordering::Release);
        let generation = Slot::unpack(s.slot.load(Ordering::Acquire)).generation + 1;
        s.slot.store(
            Slot {
                generation,
                next: 0,
                tasks: tasks as u64,
            }
            .pack(),
            Ordering::Release,
        );
        if *s.sleepers.lock().expect("sleepers") > 0 {
            s.wake.notify_all();
        }
        // A panicking task must not end this call while workers still run the job's tasks:
        // it is caught, the job finished, and the panic raised again afterwards.
        let mut caller_panic = None;
        while let Some(i) = claim(s) {
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| task(i))) {
                caller_panic.get_or_insert(p);
            }
            s.remaining.fetch_sub(1, Ordering::AcqRel);
        }
        while s.remaining.load(Ordering::Acquire) > 0 {
            std::hint::spin_loop();
        }
        *s.job.lock().expect("job slot") = None;
        let worker_panicked = s.panicked.swap(false, Ordering::AcqRel);
        drop(guard);
        if let Some(p) = caller_panic {
            resume_unwind(p);
        }
        assert!(!worker_panicked, "a kernel task panicked on a pool thread");
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        {
            let _sleepers = self.shared.sleepers.lock();
            self.shared.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Claims the next task of the current job, if one is left.
fn claim(s: &Shared) -> Option<usize> {
    let mut word = s.slot.load(Ordering::Acquire);
    loop {
        let slot = Slot::unpack(word);
        if slot.next >= slot.tasks {
            return None;
        }
        let next = Slot {
            next: slot.next + 1,
            ..slot
        };
        match s
            .slot
            .compare_exchange_weak(word, next.pack(), Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => return Some(slot.next as usize),
            Err(now) => word = now,
        }
    }
}

/// A worker: takes tasks while there are some, spins for [`SPIN`], then sleeps until woken.
fn worker(s: &Shared) {
    let mut idle_since = Instant::now();
    let mut polls = 0u32;
    loop {
        if s.stop.load(Ordering::Acquire) {
            return;
        }
        if let Some(i) = claim(s) {
            // The claimed task keeps its job alive: read it now.
            let job = s.job.lock().expect("job slot").expect("a job with tasks");
            // SAFETY: the caller waits for this task before the job goes away.
            if catch_unwind(AssertUnwindSafe(|| unsafe { (*job.0)(i) })).is_err() {
                s.panicked.store(true, Ordering::Release);
            }
            s.remaining.fetch_sub(1, Ordering::AcqRel);
            idle_since = Instant::now();
            continue;
        }
        polls = polls.wrapping_add(1);
        if !polls.is_multiple_of(64) {
            std::hint::spin_loop();
            continue;
        }
        let idle = idle_since.elapsed();
        if idle < SPIN_HOT {
            continue;
        }
        if idle < SPIN {
            std::thread::yield_now();
            continue;
        }
        // Sleep until the next job (checked under the lock the caller notifies under).
        let mut sleepers = s.sleepers.lock().expect("sleepers");
        let seen = s.slot.load(Ordering::Acquire);
        let pending = {
            let slot = Slot::unpack(seen);
            slot.next < slot.tasks
        };
        if !pending && !s.stop.load(Ordering::Acquire) {
            *sleepers += 1;
            while s.slot.load(Ordering::Acquire) == seen && !s.stop.load(Ordering::Acquire) {
                sleepers = s.wake.wait(sleepers).expect("sleepers");
            }
            *sleepers -= 1;
        }
        drop(sleepers);
        idle_since = Instant::now();
    }
}

fn global() -> &'static Mutex<Arc<Pool>> {
    static POOL: OnceLock<Mutex<Arc<Pool>>> = OnceLock::new();
    POOL.get_or_init(|| Mutex::new(Arc::new(Pool::new(1))))
}

thread_local! {
    /// A pool this thread uses instead of the global one (see [`with_pool`]).
    static OVERRIDE: RefCell<Option<Arc<Pool>>> = const { RefCell::new(None) };
}

/// Sets the threads of the global pool (1 = the caller alone, the default).
pub fn set_threads(threads: usize) {
    let mut pool = global().lock().expect("kernel pool");
    if pool.threads() != threads.max(1) {
        *pool = Arc::new(Pool::new(threads));
    }
}

/// The pool kernels called from this thread use.
pub fn current() -> Arc<Pool> {
    OVERRIDE
        .with_borrow(|o| o.clone())
        .unwrap_or_else(|| global().lock().expect("kernel pool").clone())
}

/// Runs `f` with `pool` as this thread's kernel pool.
pub fn with_pool<R>(pool: Arc<Pool>, f: impl FnOnce() -> R) -> R {
    let previous = OVERRIDE.replace(Some(pool));
    let result = f();
    OVERRIDE.set(previous);
    result
}

/// Below this much work (multiply-adds or values touched) a job runs on the caller alone.
pub const MIN_PARALLEL_WORK: usize = 1 << 16;

/// Runs `f(first_row, rows)` over `data` cut into whole rows of `row_len`, spread over the
/// current pool when `work` is worth it.
pub fn for_each_rows(
    data: &mut [f32],
    row_len: usize,
    work: usize,
    f: impl Fn(usize, &mut [f32]) + Sync,
) {
    let rows = data.len() / row_len.max(1);
    let pool = current();
    if pool.threads() < 2 || rows < 2 || work < MIN_PARALLEL_WORK {
        f(0, data);
        return;
    }
    let parts = (2 * pool.threads()).min(rows);
    let base = SharedMut::new(data);
    pool.run(parts, &|i| {
        let (first, last) = (rows * i / parts, rows * (i + 1) / parts);
        // SAFETY: the parts are disjoint row ranges of `data`, alive for the whole job.
        let chunk = unsafe {
            std::slice::from_raw_parts_mut(
                base.get().add(first * row_len),
                (last - first) * row_len,
            )
        };
        f(first, chunk);
    });
}

/// A base pointer the tasks of one job share, each writing only its own part of the buffer
/// (rows, tiles or bands: the caller of [`Pool::run`] keeps the parts disjoint).
#[derive(Clone, Copy)]
pub(crate) struct SharedMut(*mut f32);
// SAFETY: the tasks of a job write disjoint parts of the buffer, which outlives the job.
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// Shares `data`'s base pointer.
    pub(crate) fn new(data: &mut [f32]) -> Self {
        SharedMut(data.as_mut_ptr())
    }

    /// The same buffer from `offset` values on.
    ///
    /// # Safety
    /// `offset` must lie inside the buffer.
    pub(crate) unsafe fn at(self, offset: usize) -> Self {
        SharedMut(self.0.add(offset))
    }

    /// The base pointer.
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_once_across_many_jobs_and_callers() {
        let pool = Arc::new(Pool::new(3));
        let hits: Vec<AtomicUsize> = (0..1000).map(|_| AtomicUsize::new(0)).collect();
        for round in 1..=200 {
            let n = 1 + round % 37;
            pool.run(n, &|i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
        }
        let want: Vec<usize> = (0..1000)
            .map(|i| (1..=200).filter(|r| i < 1 + r % 37).count())
            .collect();
        let got: Vec<usize> = hits.iter().map(|h| h.load(Ordering::Relaxed)).collect();
        assert_eq!(got, want);
        // Two callers at once: one runs its tasks itself, both complete.
        let total = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    for _ in 0..50 {
                        pool.run(16, &|_| {
                            total.fetch_add(1, Ordering::Relaxed);
                        });
                    }
                });
            }
        });
        assert_eq!(total.load(Ordering::Relaxed), 2 * 50 * 16);
    }

    #[test]
    fn a_panicking_task_is_reported_after_the_job_and_the_pool_still_works() {
        let pool = Pool::new(2);
        for bad in [0, 5] {
            let done = AtomicUsize::new(0);
            let result = catch_unwind(AssertUnwindSafe(|| {
                pool.run(8, &|i| {
                    assert!(i != bad, "task {i} fails");
                    done.fetch_add(1, Ordering::Relaxed);
                })
            }));
            assert!(
                result.is_err(),
                "the panic of task {bad} reaches the caller"
            );
            assert_eq!(done.load(Ordering::Relaxed), 7, "every other task ran");
        }
        let done = AtomicUsize::new(0);
        pool.run(8, &|_| {
            done.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(done.load(Ordering::Relaxed), 8);
    }

    #[test]
    fn workers_that_slept_wake_for_the_next_job() {
        let pool = Pool::new(2);
        std::thread::sleep(SPIN * 3);
        let done = AtomicUsize::new(0);
        pool.run(8, &|_| {
            done.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(done.load(Ordering::Relaxed), 8);
    }
}
