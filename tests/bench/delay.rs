//! A TCP proxy that holds every chunk for `delay` in each direction before passing it on: a
//! network round trip of twice that between a client and PostgreSQL, on machines whose kernel has
//! no `netem` queueing discipline. It also counts round trips: a chunk from the client that
//! follows an answer (or opens the connection) starts one.
//!
//! Plain threads, one reader and one writer per direction and connection: tokio's timer has a
//! resolution of a millisecond, too coarse to hold a chunk for half of one.
// Each benchmark uses a part of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a sleep of a few hundred microseconds lasts beyond what was asked, on this machine:
/// a sleep overshoots by a tenth of a millisecond or so, which a writer subtracts. (Waiting out
/// the last stretch by spinning instead would take the cores the measured processes need.)
fn sleep_overshoot() -> Duration {
    static OVERSHOOT: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *OVERSHOOT.get_or_init(|| {
        let mut overshoots: Vec<Duration> = (0..50)
            .map(|_| {
                let started = Instant::now();
                std::thread::sleep(Duration::from_micros(300));
                started.elapsed().saturating_sub(Duration::from_micros(300))
            })
            .collect();
        overshoots.sort();
        overshoots[overshoots.len() / 2]
    })
}

pub struct DelayProxy {
    pub port: u16,
    round_trips: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl DelayProxy {
    /// Listens on a free port of 127.0.0.1 and forwards each connection to `upstream`.
    pub fn start(upstream: (String, u16), delay: Duration) -> DelayProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let round_trips = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (counted, stopped) = (round_trips.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect((upstream.0.as_str(), upstream.1)) else { continue };
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                // Whether the last chunk on this connection came from the client.
                let client_spoke_last = Arc::new(AtomicBool::new(false));
                let (spoke, counted) = (client_spoke_last.clone(), counted.clone());
                relay(&client, &server, delay, move || {
                    if !spoke.swap(true, Ordering::Relaxed) {
                        counted.fetch_add(1, Ordering::Relaxed);
                    }
                });
                relay(&server, &client, delay, move || client_spoke_last.store(false, Ordering::Relaxed));
            }
        });
        DelayProxy { port, round_trips, stop }
    }

    /// The URL of database `name` through this proxy.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Round trips started through this proxy so far, on all its connections.
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accepting thread, which then sees the flag. Open connections end when their
        // ends close them.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copies `from` to `to`, each chunk `delay` after it arrived; `on_chunk` runs as each arrives.
fn relay(from: &TcpStream, to: &TcpStream, delay: Duration, on_chunk: impl Fn() + Send + 'static) {
    let (mut reader, mut writer) = (from.try_clone().unwrap(), to.try_clone().unwrap());
    let (send, receive) = mpsc::channel::<(Instant, Vec<u8>)>();
    let overshoot = sleep_overshoot();
    std::thread::spawn(move || {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(read) => {
                    on_chunk();
                    if send.send((Instant::now() + delay, buffer[..read].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
    });
    std::thread::spawn(move || {
        for (due, chunk) in receive {
            let now = Instant::now();
            if due > now + overshoot {
                std::thread::sleep(due - now - overshoot);
            }
            if writer.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = writer.shutdown(Shutdown::Write);
    });
}
