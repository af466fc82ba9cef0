//! LISTEN on a connection of its own, for work that must learn of commits made by any process
//! (the outbox's workers, the catalog cache).
//!
//! diesel hands out notifications without blocking, so the connection's socket is read every
//! `poll` (a local read, no query). A notification is delivered only after the transaction that
//! sent it commits.

use std::time::Duration;

use diesel::prelude::*;
use rand::Rng;

use crate::background::StopSignal;

/// What a listener does with its channel.
pub trait Subscriber {
    /// Listening (again): anything committed while it was not is unknown and must be assumed.
    fn connected(&mut self, conn: &mut PgConnection);
    /// Notifications that arrived since the last poll, oldest first. `conn` is the listening
    /// connection, free for a quick query.
    fn notified(&mut self, conn: &mut PgConnection, payloads: Vec<String>);
    /// The connection is gone: notifications are being missed until [`Subscriber::connected`].
    fn lost(&mut self) {}
}

/// Listens on `channel` until `stop`, reconnecting after a lost connection.
pub fn listen(database_url: &str, channel: &str, poll: Duration, stop: &StopSignal, subscriber: &mut impl Subscriber) {
    while !stop.is_stopped() {
        let mut conn = match connect_and_listen(database_url, channel) {
            Ok(conn) => conn,
            Err(error) => {
                log::warn!("listener on {channel} cannot connect, retrying: {error}");
                if stop.wait(Duration::from_secs(1)) {
                    return;
                }
                continue;
            }
        };
        subscriber.connected(&mut conn);
        loop {
            let mut payloads = Vec::new();
            let mut lost = None;
            for notification in conn.notifications_iter() {
                match notification {
                    Ok(notification) => payloads.push(notification.payload),
                    Err(error) => {
                        lost = Some(error);
                        break;
                    }
                }
            }
            if !payloads.is_empty() {
                subscriber.notified(&mut conn, payloads);
            }
            if let Some(error) = lost {
                log::warn!("listener on {channel} lost its connection, reconnecting: {error}");
                break;
            }
            if stop.wait(poll) {
                return;
            }
            // A dead connection shows as an error above; probe now and then in case it does not.
            if rand::rng().random_ratio(1, 1000) && diesel::sql_query("SELECT 1").execute(&mut conn).is_err() {
                break;
            }
        }
        subscriber.lost();
    }
}

fn connect_and_listen(database_url: &str, channel: &str) -> Result<PgConnection, String> {
    let url = super::with_connection_options(database_url, Duration::from_secs(5));
    let mut conn = PgConnection::establish(&url).map_err(|error| error.to_string())?;
    diesel::sql_query(format!("LISTEN {channel}")).execute(&mut conn).map_err(|error| error.to_string())?;
    Ok(conn)
}
