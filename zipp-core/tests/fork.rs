//! A forked child can still run candle on the CPU after its parent has (runtime::compute).
//!
//! The one test of this binary, on purpose: `fork()` copies only the calling thread, and a
//! concurrent test holding a lock (stdout, the environment) at that moment would leave it
//! locked in the child. Needs the provisioned model (`bash scripts/provision-models.sh`).
#![cfg(unix)]

use std::time::{Duration, Instant};

use zipp_core::embed::{Embedder, MiniLm, MiniLmOptions};
use zipp_core::models::ModelSource;

/// How long the child may take; a hang (a pool whose threads are not in the child) fails
/// the test after this instead of hanging CI.
const DEADLINE: Duration = Duration::from_secs(120);

/// Short texts, plus long ones: a (texts × tokens × 1536) FFN activation of 64 Ki elements
/// or more sends candle's element-wise ops to its barrier pool, not rayon.
fn texts() -> Vec<String> {
    let mut t: Vec<String> = ["a lighthouse in fog", "two cats asleep on a red sofa"].map(String::from).to_vec();
    for i in 0..4 {
        t.push(format!("{i} ") + &"a long walk along the harbour wall at dawn, gulls and fishing boats; ".repeat(12));
    }
    t
}

#[test]
fn forked_child_computes_the_same_candle_embeddings() {
    let options = MiniLmOptions { force_candle: true, ..Default::default() };
    let m = MiniLm::load_with(&ModelSource::Default, options).unwrap_or_else(|e| panic!("{e}"));
    let texts = texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let want = m.embed(&refs).unwrap();
    assert_eq!(zipp_core::runtime::candle_barrier_workers(), 0, "candle's barrier pool has threads a child lacks");

    // SAFETY: the child runs only this thread; it touches state this test owns (the model,
    // the expected vectors) and zipp's per-process pool, and leaves through `_exit` without
    // running the parent's destructors or the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match m.embed(&refs) {
            Ok(got) if got.as_slice() == want.as_slice() => 0,
            Ok(_) => 1,
            Err(_) => 2,
        }))
        .unwrap_or(3);
        // SAFETY: ends the child at once, as a forked child of a multithreaded process must.
        unsafe { libc::_exit(code) };
    }

    let t0 = Instant::now();
    let mut status = 0;
    loop {
        // SAFETY: `pid` is our child; `status` is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert!(r >= 0, "waitpid failed");
        if r == pid {
            break;
        }
        if t0.elapsed() > DEADLINE {
            // SAFETY: kills and reaps our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("the forked child did not finish within {DEADLINE:?}: it hangs on a pool of its parent");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(libc::WIFEXITED(status), "child ended by signal {}", libc::WTERMSIG(status));
    let code = libc::WEXITSTATUS(status);
    assert_eq!(code, 0, "child: 1 = different vectors, 2 = error, 3 = panic");
    println!("child finished in {:?}", t0.elapsed());
}
