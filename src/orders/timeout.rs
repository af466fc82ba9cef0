//! The payment timeout: a background task cancels orders left unpaid for longer than
//! `AGORA_PAYMENT_TIMEOUT_SECS`, releasing their stock. Several agora processes can run it on
//! one database: each order is claimed with `SKIP LOCKED` and its status re-checked under the
//! lock, so each is cancelled exactly once.

use std::time::Duration;

use chrono::Utc;

use crate::background::{BackgroundTasks, StopSignal};
use crate::config::Config;
use crate::db::Db;
use crate::kernel::Module;

pub fn start(tasks: &mut BackgroundTasks, db: &Db, config: &Config) {
    let db = db.clone();
    let timeout = config.payment_timeout;
    // Checking a few times per timeout period keeps the overshoot small without busy polling.
    let interval = (timeout / 4).clamp(Duration::from_millis(200), Duration::from_secs(30));
    tasks.spawn("payment-timeout", move |stop| run(&db, timeout, interval, &stop));
}

fn run(db: &Db, timeout: Duration, interval: Duration, stop: &StopSignal) {
    log::info!("cancelling orders unpaid after {}s (checking every {:?})", timeout.as_secs(), interval);
    loop {
        match cancel_expired(db, timeout, stop) {
            Ok(0) => {}
            Ok(count) => log::info!("cancelled {count} unpaid order(s) after the payment timeout"),
            Err(error) => log::warn!("payment-timeout sweep failed, will retry: {error}"),
        }
        if stop.wait(interval) {
            return;
        }
    }
}

/// Cancels every order past the timeout, one transaction each; returns how many.
pub fn cancel_expired(db: &Db, timeout: Duration, stop: &StopSignal) -> Result<usize, crate::error::AppError> {
    let cutoff = Utc::now() - chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
    let mut cancelled = 0;
    while !stop.is_stopped() {
        let order = db.run_blocking(Module::Orders.op("cancel_unpaid"), |conn| {
            super::lifecycle::cancel_one_expired(conn, cutoff)
        })?;
        match order {
            Some(order) => {
                log::info!("order {} cancelled: not paid within {}s", order.display_number(), timeout.as_secs());
                cancelled += 1;
            }
            None => break,
        }
    }
    Ok(cancelled)
}
