//! One run of the experiment, bounded: a deadline, and gates where buyers wait for each other
//! that a failure or the deadline opens, so that no buyer waits for one that will never come.
//! A `std::sync::Barrier` cannot be broken: one buyer failing before it left every other buyer,
//! and the request that started them, waiting forever.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::ExperimentError;

/// Why a run stopped before its end.
#[derive(Clone, Debug)]
enum Stop {
    Deadline,
    Failed(String),
}

struct State {
    stopped: Option<Stop>,
    /// Arrivals at each gate, by the gate's number.
    arrivals: Vec<usize>,
    /// The run is over (its variants returned): the watchdog may leave.
    over: bool,
}

/// Shared by everything a run does, from any thread: one lock and one condition variable for
/// the stop, every gate and the watchdog, so that a stop wakes every waiter at once.
pub(super) struct Run {
    limit: Duration,
    deadline: Instant,
    state: Mutex<State>,
    changed: Condvar,
}

/// A point where `parties` threads wait until all have arrived (see [`Run::wait`]).
pub(super) struct Gate {
    index: usize,
    parties: usize,
}

impl Run {
    pub fn new(limit: Duration) -> Run {
        Run {
            limit,
            deadline: Instant::now() + limit,
            state: Mutex::new(State { stopped: None, arrivals: Vec::new(), over: false }),
            changed: Condvar::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panicking buyer poisons nothing that matters here: the state stays consistent.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Time left until the deadline (zero once it has passed).
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    fn error(&self, stop: &Stop) -> ExperimentError {
        match stop {
            Stop::Deadline => ExperimentError::Deadline(self.limit),
            Stop::Failed(reason) => ExperimentError::Buyer(reason.clone()),
        }
    }

    /// Why the run stopped, if it did; the deadline counts once it has passed.
    pub fn stopped(&self) -> Option<ExperimentError> {
        let mut state = self.state();
        if state.stopped.is_none() && Instant::now() >= self.deadline {
            state.stopped = Some(Stop::Deadline);
            self.changed.notify_all();
        }
        state.stopped.as_ref().map(|stop| self.error(stop))
    }

    /// `Ok` while the run goes on: every step of a buyer or of the set-up asks first.
    pub fn check(&self) -> Result<(), ExperimentError> {
        self.stopped().map_or(Ok(()), Err)
    }

    /// Stops the run for everyone: the first reason given is the one reported.
    pub fn fail(&self, reason: impl Into<String>) {
        let mut state = self.state();
        if state.stopped.is_none() {
            state.stopped = Some(Stop::Failed(reason.into()));
        }
        self.changed.notify_all();
    }

    pub fn gate(&self, parties: usize) -> Gate {
        let mut state = self.state();
        state.arrivals.push(0);
        Gate { index: state.arrivals.len() - 1, parties }
    }

    /// Waits at `gate` until every party has arrived, or until the run stops (a failure
    /// elsewhere, or the deadline), whichever comes first.
    pub fn wait(&self, gate: &Gate) -> Result<(), ExperimentError> {
        let mut state = self.state();
        state.arrivals[gate.index] += 1;
        if state.arrivals[gate.index] >= gate.parties {
            self.changed.notify_all();
        }
        loop {
            if let Some(stop) = &state.stopped {
                return Err(self.error(stop));
            }
            if state.arrivals[gate.index] >= gate.parties {
                return Ok(());
            }
            let remaining = self.remaining();
            if remaining.is_zero() {
                state.stopped = Some(Stop::Deadline);
                self.changed.notify_all();
                continue;
            }
            state = self.changed.wait_timeout(state, remaining).unwrap_or_else(|poisoned| poisoned.into_inner()).0;
        }
    }

    /// Blocks until the run is over; should the deadline come first, stops the run and calls
    /// `at_deadline` (which ends whatever the run still waits for in the database).
    pub fn watch(&self, at_deadline: impl FnOnce()) {
        let mut state = self.state();
        loop {
            if state.over {
                return;
            }
            let remaining = self.remaining();
            if remaining.is_zero() {
                if state.stopped.is_none() {
                    state.stopped = Some(Stop::Deadline);
                }
                self.changed.notify_all();
                drop(state);
                at_deadline();
                return;
            }
            state = self.changed.wait_timeout(state, remaining).unwrap_or_else(|poisoned| poisoned.into_inner()).0;
        }
    }

    /// The run is over: the watchdog leaves.
    pub fn end(&self) {
        self.state().over = true;
        self.changed.notify_all();
    }

    /// Ends the run when dropped.
    pub fn ending(&self) -> Ending<'_> {
        Ending(self)
    }
}

/// See [`Run::ending`].
pub(super) struct Ending<'a>(&'a Run);

impl Drop for Ending<'_> {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// Stops the run when a buyer's thread panics, so that the others do not wait for it.
pub(super) struct StopOnPanic<'a>(pub &'a Run);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.fail("a buyer's thread panicked");
        }
    }
}

/// How many runs one process performs at once.
pub struct RunLimit {
    running: AtomicUsize,
    max: usize,
}

/// A place among the runs allowed at once, given back when dropped.
pub struct RunPermit(Arc<RunLimit>);

impl RunLimit {
    pub fn new(max: usize) -> Arc<RunLimit> {
        Arc::new(RunLimit { running: AtomicUsize::new(0), max })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// A permit, or `None` at once when `max` runs are going already.
    pub fn try_start(self: &Arc<Self>) -> Option<RunPermit> {
        self.running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |running| (running < self.max).then_some(running + 1))
            .ok()
            .map(|_| RunPermit(self.clone()))
    }
}

impl Drop for RunPermit {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gate_opens_when_everyone_has_arrived() {
        let run = Run::new(Duration::from_secs(60));
        let gate = run.gate(3);
        std::thread::scope(|scope| {
            let waiting: Vec<_> = (0..3).map(|_| scope.spawn(|| run.wait(&gate))).collect();
            for waited in waiting {
                assert!(waited.join().unwrap().is_ok());
            }
        });
        assert!(run.check().is_ok());
    }

    #[test]
    fn a_failed_buyer_releases_everyone_waiting_for_it() {
        let run = Run::new(Duration::from_secs(600));
        let gate = run.gate(4);
        let started = Instant::now();
        std::thread::scope(|scope| {
            // Three arrive; the fourth fails instead of arriving.
            let waiting: Vec<_> = (0..3).map(|_| scope.spawn(|| run.wait(&gate))).collect();
            scope.spawn(|| run.fail("buyer 3: connection lost"));
            for waited in waiting {
                let error = waited.join().unwrap().unwrap_err();
                assert_eq!(error.to_string(), "a buyer failed: buyer 3: connection lost");
            }
        });
        assert!(started.elapsed() < Duration::from_secs(60));
        run.fail("a later failure");
        assert_eq!(run.check().unwrap_err().to_string(), "a buyer failed: buyer 3: connection lost", "the first wins");
    }

    #[test]
    fn the_deadline_opens_a_gate_and_stops_the_run() {
        let run = Run::new(Duration::from_millis(50));
        let gate = run.gate(2);
        assert!(matches!(run.wait(&gate), Err(ExperimentError::Deadline(_))));
        assert!(matches!(run.check(), Err(ExperimentError::Deadline(_))));
        let watched = Run::new(Duration::from_millis(20));
        let mut called = false;
        watched.watch(|| called = true);
        assert!(called && watched.check().is_err());
        let ended = Run::new(Duration::from_secs(600));
        ended.end();
        ended.watch(|| panic!("the run ended before its deadline"));
    }

    #[test]
    fn runs_beyond_the_limit_are_refused_until_one_ends() {
        let limit = RunLimit::new(2);
        let first = limit.try_start().unwrap();
        let _second = limit.try_start().unwrap();
        assert!(limit.try_start().is_none());
        drop(first);
        assert!(limit.try_start().is_some());
    }
}
