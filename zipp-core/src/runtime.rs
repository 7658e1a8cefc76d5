//! The thread pool zipp computes in, and the fork gate that keeps forked children usable.
//!
//! Two things go wrong when a process that has used a thread pool calls `fork()` (Python's
//! `multiprocessing` does by default on Linux): the child has the pool's bookkeeping but none
//! of its threads, so the first parallel job waits forever; and a lock another thread held at
//! the moment of the fork stays locked in the child. zipp avoids both:
//!
//! - Every parallel computation (the MiniLM forward pass, the tokenizer's batch encoding,
//!   candle's CPU kernels) runs inside [`install`], in a pool owned by the *current process*:
//!   a child sees a different pid and builds its own pool on first use. The parent's pool is
//!   leaked in the child (its threads do not exist there, so it cannot be shut down).
//! - Bindings bracket each call that touches shared state with [`enter`], and register
//!   [`before_fork`] as the fork handler before (`os.register_at_fork` in Python,
//!   `pthread_atfork` in C), with [`after_fork_in_parent`] / [`after_fork_in_child`] after.
//!   `before_fork` waits until no call is inside zipp and holds new ones back, so no zipp
//!   lock can be held across the fork.
//!
//! Pool size: `$ZIPP_NUM_THREADS` if set to a positive integer, else
//! `std::thread::available_parallelism()`.

use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::time::Duration;

struct Pool {
    pid: u32,
    pool: rayon::ThreadPool,
}

static POOL: AtomicPtr<Pool> = AtomicPtr::new(std::ptr::null_mut());

fn configured_threads() -> usize {
    std::env::var("ZIPP_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
}

/// This process's pool, built on first use (and again in a forked child).
fn pool() -> &'static rayon::ThreadPool {
    let pid = std::process::id();
    let current = POOL.load(Ordering::Acquire);
    // SAFETY: a non-null POOL always points to a leaked `Box<Pool>` that is never freed.
    if let Some(p) = unsafe { current.as_ref() } {
        if p.pid == pid {
            return &p.pool;
        }
    }
    let built = rayon::ThreadPoolBuilder::new()
        .num_threads(configured_threads())
        .thread_name(|i| format!("zipp-{i}"))
        .build()
        .map(|pool| Box::into_raw(Box::new(Pool { pid, pool })));
    // Spawning threads only fails under hard resource limits; one thread is then enough.
    let fresh = built.unwrap_or_else(|_| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("zipp cannot spawn a single thread");
        Box::into_raw(Box::new(Pool { pid, pool }))
    });
    match POOL.compare_exchange(current, fresh, Ordering::AcqRel, Ordering::Acquire) {
        // The old pool (if any) belongs to the parent process; it is leaked on purpose.
        Ok(_) => unsafe { &(*fresh).pool },
        Err(winner) => {
            // Another thread of this process installed its pool first: use that one.
            // SAFETY: `fresh` was never shared; `winner` is a leaked Box<Pool>.
            drop(unsafe { Box::from_raw(fresh) });
            unsafe { &(*winner).pool }
        }
    }
}

/// Runs `f` inside this process's zipp pool (rayon and candle parallelism included).
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    pool().install(f)
}

/// Threads of this process's zipp pool.
pub fn num_threads() -> usize {
    pool().current_num_threads()
}

// SeqCst throughout: `enter` writes ACTIVE then reads FORKING while `before_fork` writes
// FORKING then reads ACTIVE (store buffering); anything weaker lets both read the old value,
// and a fork would proceed with a call inside zipp.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
/// Forks being prepared right now (a count: two threads may fork at once).
static FORKING: AtomicUsize = AtomicUsize::new(0);

/// Marks a call as inside zipp until the guard drops; waits while a fork is being prepared.
#[must_use = "the call is only registered while the guard lives"]
pub struct CallGuard(());

impl Drop for CallGuard {
    fn drop(&mut self) {
        ACTIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Registers a call that may take zipp's internal locks (see the module docs). Never nest
/// it: a call that holds a guard must not wait for another.
pub fn enter() -> CallGuard {
    loop {
        while FORKING.load(Ordering::SeqCst) > 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
        ACTIVE.fetch_add(1, Ordering::SeqCst);
        if FORKING.load(Ordering::SeqCst) == 0 {
            return CallGuard(());
        }
        // A fork started between the check and the increment: step back and wait.
        ACTIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Fork handler, *before* `fork()`: holds new calls back and waits for running ones.
pub fn before_fork() {
    FORKING.fetch_add(1, Ordering::SeqCst);
    while ACTIVE.load(Ordering::SeqCst) > 0 {
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Fork handler, *after* `fork()` in the parent: this fork no longer holds calls back.
pub fn after_fork_in_parent() {
    // Saturating: a handler registered after a fork began must not wrap the count.
    let _ = FORKING.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| Some(n.saturating_sub(1)));
}

/// Fork handler, *after* `fork()` in the child: the child has one thread, the one that forked,
/// and it is not inside zipp, so nothing is in progress and nothing is held back.
pub fn after_fork_in_child() {
    ACTIVE.store(0, Ordering::SeqCst);
    FORKING.store(0, Ordering::SeqCst);
}

/// Calls inside zipp right now (for tests and diagnostics).
pub fn active_calls() -> usize {
    ACTIVE.load(Ordering::Acquire)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_runs_on_a_pool_thread_and_returns() {
        let name = install(|| std::thread::current().name().map(str::to_string));
        assert!(name.unwrap_or_default().starts_with("zipp-"));
        assert!(num_threads() >= 1);
        // Same pool on the second call.
        let a = pool() as *const _;
        assert_eq!(a, pool() as *const _);
    }

    #[test]
    fn before_fork_waits_for_running_calls_and_a_panic_releases_its_call() {
        // One test, so no other test of this binary holds a guard meanwhile.
        let _ = std::panic::catch_unwind(|| {
            let _g = enter();
            panic!("inside a call");
        });
        assert_eq!(active_calls(), 0);
        // Two forks prepared at once: the first one finishing must not reopen the gate.
        before_fork();
        before_fork();
        after_fork_in_parent();
        assert_eq!(FORKING.load(Ordering::SeqCst), 1);
        after_fork_in_parent();
        assert_eq!(FORKING.load(Ordering::SeqCst), 0);
        let g = enter();
        let t = std::thread::spawn(|| {
            let t0 = std::time::Instant::now();
            before_fork();
            let waited = t0.elapsed();
            after_fork_in_parent();
            waited
        });
        std::thread::sleep(Duration::from_millis(50));
        drop(g);
        let waited = t.join().unwrap();
        assert!(waited >= Duration::from_millis(40), "before_fork returned after {waited:?}");
    }
}
