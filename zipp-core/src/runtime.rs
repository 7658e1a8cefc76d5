//! The thread pool zipp computes in, and the fork gate that keeps forked children usable.
//!
//! Two things go wrong when a process that has used a thread pool calls `fork()` (Python's
//! `multiprocessing` does by default on Linux): the child has the pool's bookkeeping but none
//! of its threads, so the first parallel job waits forever; and a lock another thread held at
//! the moment of the fork stays locked in the child. zipp avoids both:
//!
//! - Every parallel computation (the MiniLM forward pass, the tokenizer's batch encoding)
//!   runs inside [`install`], in a pool owned by the *current process*: a child sees a
//!   different pid and builds its own pool on first use. The parent's pool is leaked in the
//!   child (its threads do not exist there, so it cannot be shut down).
//! - **All candle CPU work runs through [`compute`]**, never through candle's
//!   `Device::with_context`: that one installs candle's own process-wide rayon pool (a
//!   `OnceLock`, sized by `RAYON_NUM_THREADS` or the physical core count, not by the settings
//!   below), which a forked child inherits without its threads and then waits on forever.
//!   This holds for every crate that runs candle (MiniLM here; the GGUF LLM, UNet, GATv2 and
//!   CLIP elsewhere). See [`compute`] for what it redirects and what it cannot.
//! - Bindings bracket each call that touches shared state with [`enter`], and register
//!   [`before_fork`] as the fork handler before (`os.register_at_fork` in Python,
//!   `pthread_atfork` in C), with [`after_fork_in_parent`] / [`after_fork_in_child`] after.
//!   `before_fork` waits until no call is inside zipp and holds new ones back, so no zipp
//!   lock can be held across the fork.
//!
//! Pool size, first that applies: `$ZIPP_NUM_THREADS` if it is a positive integer;
//! `$OMP_NUM_THREADS` if it is one (or a list whose first entry is: the outermost level),
//! which Ray and other engines set per worker; `std::thread::available_parallelism()`.
//! Read when a process builds its pool (a forked child reads them again).

use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::time::Duration;

struct Pool {
    pid: u32,
    pool: rayon::ThreadPool,
}

static POOL: AtomicPtr<Pool> = AtomicPtr::new(std::ptr::null_mut());

/// The pool size from the environment (see the module docs for the order).
fn configured_threads() -> usize {
    threads_from(
        std::env::var("ZIPP_NUM_THREADS").ok().as_deref(),
        std::env::var("OMP_NUM_THREADS").ok().as_deref(),
        || std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    )
}

/// The pool size for the given `$ZIPP_NUM_THREADS` and `$OMP_NUM_THREADS` values: the first
/// positive integer of the two (for `OMP_NUM_THREADS`, the first entry of a comma-separated
/// list, i.e. the outermost nesting level), else `cores()`. Anything else (empty, `0`,
/// negative, not a number) counts as unset.
fn threads_from(zipp: Option<&str>, omp: Option<&str>, cores: impl FnOnce() -> usize) -> usize {
    let positive = |v: &str| v.trim().parse::<usize>().ok().filter(|&n| n > 0);
    zipp.and_then(positive)
        .or_else(|| omp.and_then(|v| v.split(',').next()).and_then(positive))
        .unwrap_or_else(|| cores().max(1))
}

/// This process's pool, built on first use (and again in a forked child).
fn pool() -> &'static rayon::ThreadPool {
    let pid = std::process::id();
    let current = POOL.load(Ordering::Acquire);
    // SAFETY: a non-null POOL always points to a leaked `Box<Pool>` that is never freed
    // (published below by `compare_exchange` with Release, read here with Acquire).
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
        // SAFETY: `fresh` comes from `Box::into_raw` just above and, now published in POOL,
        // is never freed, so a `'static` borrow of it is valid.
        Ok(_) => unsafe { &(*fresh).pool },
        Err(winner) => {
            // Another thread of this process installed its pool first: use that one.
            // SAFETY: `fresh` comes from `Box::into_raw` above and the failed exchange
            // never published it, so this is its only owner.
            drop(unsafe { Box::from_raw(fresh) });
            // SAFETY: `winner` is the non-null value another thread published in POOL, a
            // leaked `Box<Pool>` that is never freed.
            unsafe { &(*winner).pool }
        }
    }
}

/// Runs `f` inside this process's zipp pool (rayon parallelism included). Candle work goes
/// through [`compute`] instead, which also covers what candle does outside rayon.
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    pool().install(f)
}

/// Runs a candle computation on `device`. **Every candle computation in zipp runs through
/// this function**, never through candle's `Device::with_context` (see the module docs).
///
/// On the CPU, `f` runs in this process's zipp pool ([`install`]), which is what candle's
/// CPU backend parallelises over: its `par_iter`s and `rayon::scope`s use the *current*
/// rayon pool, and its GEMMs (the `gemm` crate, `Parallelism::Rayon(n)`) split into `n`
/// tasks with `into_par_iter` in the current pool — `n` is candle's own thread count
/// (`$RAYON_NUM_THREADS` or the physical cores), but only zipp's threads run those tasks.
///
/// candle 0.11 also has a second, private pool that rayon cannot redirect: the *barrier
/// pool* (`candle_core::utils::barrier_pool`, a process-wide `OnceLock` of spinning
/// threads sized by `$CANDLE_NUM_THREADS` − 1). It runs f32/f16 element-wise unary and
/// binary ops of 64 Ki elements or more on every CPU, the quantized matmul kernels (x86 and
/// aarch64 NEON) and the repacked quantized layouts. A forked child inherits it without its
/// threads and spins forever on its first large element-wise op. So before the first CPU
/// computation of the process, `compute` makes candle build that pool with **no worker
/// threads** (everything then runs inline, on the zipp thread that calls it): if
/// `$CANDLE_NUM_THREADS` is unset it is set to `1`, then the pool is built. Set
/// `CANDLE_NUM_THREADS` yourself (to 1) if other code in the process may run candle before
/// zipp does: a barrier pool built with workers before this point cannot be replaced.
/// [`candle_barrier_workers`] says how many it has.
///
/// On other devices (CUDA, Metal) `f` runs on the calling thread, as `with_context` does:
/// the work is queued to the device by the calling thread, no CPU pool is involved, and
/// moving the call to a pool thread would only add a hand-off (and change which thread
/// holds the device context). A forked child cannot use its parent's GPU context anyway.
pub fn compute<R: Send>(device: &candle_core::Device, f: impl FnOnce() -> R + Send) -> R {
    if device.is_cpu() {
        candle_barrier_pool_inline();
        install(f)
    } else {
        f()
    }
}

/// Threads of candle's barrier pool (see [`compute`]); 0 once zipp has run CPU work, unless
/// candle built that pool before zipp did with `$CANDLE_NUM_THREADS` unset or above 1.
pub fn candle_barrier_workers() -> usize {
    candle_core::utils::barrier_pool().n_workers()
}

/// Builds candle's barrier pool without worker threads, once per process (a forked child
/// inherits the parent's pool, already built).
fn candle_barrier_pool_inline() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
            // The only way to size candle's barrier pool is this variable, read when the
            // pool is built. Setting the environment races with C code reading it in another
            // thread; it happens once, at the process's first candle CPU computation.
            std::env::set_var("CANDLE_NUM_THREADS", "1");
        }
        let _ = candle_core::utils::barrier_pool();
    });
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
