//! Background threads (event dispatcher, payment-timeout sweeper) and their orderly shutdown.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// A stop flag that sleeping threads can wait on, so shutdown does not wait out a poll interval.
#[derive(Clone, Default)]
pub struct StopSignal {
    inner: Arc<(Mutex<bool>, Condvar)>,
}

impl StopSignal {
    pub fn stop(&self) {
        let (stopped, wakeup) = &*self.inner;
        *stopped.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = true;
        wakeup.notify_all();
    }

    pub fn is_stopped(&self) -> bool {
        *self.inner.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sleeps up to `timeout`; returns `true` as soon as a stop was requested.
    pub fn wait(&self, timeout: Duration) -> bool {
        let (stopped, wakeup) = &*self.inner;
        let guard = stopped.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (guard, _) = wakeup
            .wait_timeout_while(guard, timeout, |stopped| !*stopped)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *guard
    }
}

/// Threads that run until told to stop.
#[derive(Default)]
pub struct BackgroundTasks {
    stop: StopSignal,
    threads: Vec<(&'static str, JoinHandle<()>)>,
}

impl BackgroundTasks {
    pub fn stop_signal(&self) -> StopSignal {
        self.stop.clone()
    }

    pub fn spawn(&mut self, name: &'static str, task: impl FnOnce(StopSignal) + Send + 'static) {
        let stop = self.stop.clone();
        let handle = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || task(stop))
            .expect("the OS refused to start a background thread");
        self.threads.push((name, handle));
    }

    /// Asks every thread to stop and waits for them: work in flight is finished or released.
    pub fn shutdown(self) {
        self.stop.stop();
        for (name, handle) in self.threads {
            if handle.join().is_err() {
                log::error!("background task {name} panicked");
            }
        }
    }
}

/// Wakes one sleeping worker when there is work for it, rather than at its next poll: the outbox
/// rings a handler's workers on a notification, and the notifications sender is rung when an
/// e-mail was written to be sent. A ring wakes one worker, which answers it: every worker woken
/// for one new piece of work would find it taken. A ring while nobody waits is kept for the next.
#[derive(Clone, Default)]
pub struct Doorbell {
    inner: Arc<(Mutex<bool>, Condvar)>,
}

impl Doorbell {
    pub fn ring(&self) {
        let (rung, bell) = &*self.inner;
        *rung.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = true;
        bell.notify_one();
    }

    /// Sleeps until a ring (rung before the call too), `timeout`, or a stop (checked a few times
    /// a second).
    pub fn wait(&self, timeout: Duration, stop: &StopSignal) {
        let deadline = std::time::Instant::now() + timeout;
        let (rung, bell) = &*self.inner;
        let mut rung = rung.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while !*rung && !stop.is_stopped() {
            let now = std::time::Instant::now();
            if now >= deadline {
                return;
            }
            let slice = (deadline - now).min(Duration::from_millis(200));
            rung = bell.wait_timeout(rung, slice).unwrap_or_else(|poisoned| poisoned.into_inner()).0;
        }
        *rung = false;
    }
}
