//! Long work on a worker thread, its events delivered to the caller's thread.
//!
//! Both bindings must run host-language callbacks (Python with the GIL, C on the thread that
//! called) and poll for interruption (Ctrl-C, a C flag) while a generation runs. A [`Job`]
//! runs the work on its own thread and hands its events (text pieces, finished steps) over a
//! channel; the caller waits for them with a timeout, calling back and polling between them.
//! [`drive`] is the blocking loop both bindings use.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use zipp_core::error::{Error, Result};
use zipp_core::lm::Cancel;

/// How often [`drive`] polls `interrupted` while no event arrives.
pub const POLL: Duration = Duration::from_millis(20);

/// What [`Job::next`] found.
#[derive(Debug)]
pub enum Polled<E, R> {
    /// The next event.
    Event(E),
    /// Nothing yet within the wait: poll for interruption and call again.
    Pending,
    /// The work ended (its result, or its error); every event was delivered before.
    Done(Result<R>),
}

/// Work running on its own thread. Dropping it cancels the work and waits for the thread.
#[derive(Debug)]
pub struct Job<E, R> {
    events: Receiver<E>,
    cancel: Cancel,
    worker: Option<JoinHandle<Result<R>>>,
}

impl<E: Send + 'static, R: Send + 'static> Job<E, R> {
    /// Starts `work(cancel, emit)` on a thread named `name`.
    pub fn start(
        name: &str,
        work: impl FnOnce(&Cancel, &mut (dyn FnMut(E) + Send)) -> Result<R> + Send + 'static,
    ) -> Result<Job<E, R>> {
        let (tx, events) = mpsc::channel();
        let cancel = Cancel::new();
        let c = cancel.clone();
        let worker = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let _inside = zipp_core::runtime::enter();
                work(&c, &mut |e| {
                    // The receiver only goes away when the job is dropped, which cancels.
                    let _ = tx.send(e);
                })
            })
            .map_err(|e| Error::Internal(format!("cannot start the {name} thread: {e}")))?;
        Ok(Job { events, cancel, worker: Some(worker) })
    }

    /// Waits up to `wait` for the next event.
    pub fn next(&mut self, wait: Duration) -> Polled<E, R> {
        match self.events.recv_timeout(wait) {
            Ok(e) => Polled::Event(e),
            Err(RecvTimeoutError::Timeout) => Polled::Pending,
            Err(RecvTimeoutError::Disconnected) => Polled::Done(self.join()),
        }
    }

    fn join(&mut self) -> Result<R> {
        match self.worker.take() {
            Some(w) => w.join().unwrap_or_else(|p| Err(Error::Internal(zipp_core::error::panic_message(&*p)))),
            None => Err(Error::InvalidInput("this generation has already ended".into())),
        }
    }
}

impl<E, R> Job<E, R> {
    /// Asks the work to stop at its next check.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// The work's cancellation flag (to cancel from another thread while the job is
    /// borrowed).
    pub fn cancel_handle(&self) -> Cancel {
        self.cancel.clone()
    }
}

impl<E, R> Drop for Job<E, R> {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// Runs a job to its end on this thread: `on_event` for each event (returning `false`
/// cancels), `interrupted()` polled every [`POLL`] while waiting (returning `true` cancels).
/// Errors of the callbacks are the caller's to keep (they only return `false` here).
pub fn drive<E: Send + 'static, R: Send + 'static>(
    mut job: Job<E, R>,
    mut on_event: impl FnMut(E) -> bool,
    mut interrupted: impl FnMut() -> bool,
) -> Result<R> {
    let mut cancelled = false;
    if interrupted() {
        cancelled = true;
        job.cancel();
    }
    loop {
        match job.next(POLL) {
            Polled::Event(e) => {
                // Events can arrive faster than the poll interval: check the flag on each.
                if !cancelled && (!on_event(e) || interrupted()) {
                    cancelled = true;
                    job.cancel();
                }
            }
            Polled::Pending => {
                if !cancelled && interrupted() {
                    cancelled = true;
                    job.cancel();
                }
            }
            Polled::Done(result) => return result,
        }
    }
}
