//! The load harness both load benchmarks share: a load generator of client threads, pgbench
//! as the baseline running the same SQL, and the figures of a run.
// Each benchmark uses a part of it.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Latencies of one scenario.
pub struct Run {
    pub label: String,
    pub requests: usize,
    pub errors: usize,
    pub seconds: f64,
    pub latencies_us: Vec<u64>,
    /// CPU seconds spent meanwhile by the agora process and by every PostgreSQL process, where
    /// measured: on 2 shared cores a steadier measure of cost than throughput.
    pub cpu_seconds: Option<(f64, f64)>,
    /// p50, p95 and p99 in ms, where the load generator reported them instead of every latency.
    pub reported_percentiles: Option<[f64; 3]>,
}

impl Run {
    pub fn throughput(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    pub fn percentile(&self, p: f64) -> f64 {
        if let Some([p50, p95, p99]) = self.reported_percentiles {
            return match p {
                0.50 => p50,
                0.95 => p95,
                0.99 => p99,
                _ => f64::NAN,
            };
        }
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let index = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[index] as f64 / 1000.0
    }

    pub fn merge(mut self, other: Run) -> Run {
        self.requests += other.requests;
        self.errors += other.errors;
        self.seconds += other.seconds;
        self.latencies_us.extend(other.latencies_us);
        self.latencies_us.sort_unstable();
        self.cpu_seconds = match (self.cpu_seconds, other.cpu_seconds) {
            (Some((a, b)), Some((c, d))) => Some((a + c, b + d)),
            _ => None,
        };
        // Percentiles reported per round cannot be combined exactly: keep the worst round's.
        self.reported_percentiles = match (self.reported_percentiles, other.reported_percentiles) {
            (Some(a), Some(b)) => Some([a[0].max(b[0]), a[1].max(b[1]), a[2].max(b[2])]),
            (a, b) => a.or(b),
        };
        self
    }

    /// CPU milliseconds per request, agora and PostgreSQL, where measured.
    pub fn cpu_line(&self) -> String {
        match self.cpu_seconds {
            Some((agora, postgres)) => {
                let per_request = |seconds: f64| seconds * 1000.0 / self.requests.max(1) as f64;
                format!(
                    "- {}: CPU per request {:.3} ms in agora + {:.3} ms in PostgreSQL = {:.3} ms",
                    self.label,
                    per_request(agora),
                    per_request(postgres),
                    per_request(agora + postgres)
                )
            }
            None => format!("- {}: CPU not measured", self.label),
        }
    }

    pub fn row(&self) -> String {
        format!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
            self.label,
            self.throughput(),
            self.percentile(0.50),
            self.percentile(0.95),
            self.percentile(0.99),
            self.errors
        )
    }
}

/// `clients` threads send `request` back to back for `duration`; each keeps one HTTP connection.
pub fn load(
    label: &str,
    clients: usize,
    duration: Duration,
    request: impl Fn(&ureq::Agent, usize, u64) -> bool + Sync,
) -> Run {
    load_paced(label, clients, None, || std::thread::sleep(duration), request).0
}

/// [`load`] offering `per_second` requests in all, spread evenly over the clients: each request
/// is due at its slot, and its latency counts from then, so a server that falls behind is
/// charged the wait it caused (no coordinated omission), as wrk2 measures.
pub fn load_at_rate(
    label: &str,
    clients: usize,
    duration: Duration,
    per_second: u64,
    request: impl Fn(&ureq::Agent, usize, u64) -> bool + Sync,
) -> Run {
    load_paced(label, clients, Some(interval(clients, per_second)), || std::thread::sleep(duration), request).0
}

/// [`load_at_rate`] (or [`load`] without a rate) for as long as `during` runs on the calling
/// thread, e.g. a command whose effect on the requests in flight is what is measured.
pub fn load_while<T>(
    label: &str,
    clients: usize,
    per_second: Option<u64>,
    during: impl FnOnce() -> T,
    request: impl Fn(&ureq::Agent, usize, u64) -> bool + Sync,
) -> (Run, T) {
    load_paced(label, clients, per_second.map(|rate| interval(clients, rate)), during, request)
}

/// Each client's interval between requests for `per_second` requests in all.
fn interval(clients: usize, per_second: u64) -> Duration {
    Duration::from_secs_f64(clients as f64 / per_second.max(1) as f64)
}

fn load_paced<T>(
    label: &str,
    clients: usize,
    interval: Option<Duration>,
    until: impl FnOnce() -> T,
    request: impl Fn(&ureq::Agent, usize, u64) -> bool + Sync,
) -> (Run, T) {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let (results, outcome): (Vec<(Vec<u64>, usize)>, T) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|client| {
                let (stop, request) = (stop.clone(), &request);
                scope.spawn(move || {
                    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
                    let (mut latencies, mut errors, mut n) = (Vec::new(), 0, 0u64);
                    while !stop.load(Ordering::Relaxed) {
                        let sent = match interval {
                            None => Instant::now(),
                            Some(interval) => {
                                let due = started + interval.mul_f64(n as f64 + client as f64 / clients as f64);
                                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                                due
                            }
                        };
                        if request(&agent, client, n) {
                            latencies.push(sent.elapsed().as_micros() as u64);
                        } else {
                            errors += 1;
                        }
                        n += 1;
                    }
                    (latencies, errors)
                })
            })
            .collect();
        let outcome = until();
        stop.store(true, Ordering::Relaxed);
        (handles.into_iter().map(|handle| handle.join().unwrap()).collect(), outcome)
    });
    let seconds = started.elapsed().as_secs_f64();
    let mut latencies_us: Vec<u64> = results.iter().flat_map(|(latencies, _)| latencies.iter().copied()).collect();
    latencies_us.sort_unstable();
    let run = Run {
        label: label.to_owned(),
        requests: latencies_us.len(),
        errors: results.iter().map(|(_, errors)| errors).sum(),
        seconds,
        latencies_us,
        cpu_seconds: None,
        reported_percentiles: None,
    };
    (run, outcome)
}

/// CPU seconds (user and system) a process has used so far, from `/proc`.
pub fn cpu_of(pid: u32) -> f64 {
    let ticks = 100.0; // USER_HZ on Linux
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let field = |index: usize| fields.get(index).and_then(|value| value.parse::<f64>().ok()).unwrap_or(0.0);
    (field(11) + field(12)) / ticks
}

/// CPU seconds used so far by every PostgreSQL process on this machine.
pub fn postgres_cpu() -> f64 {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm.trim() == "postgres"))
        .map(cpu_of)
        .sum()
}

/// `load` against the agora process `pid`, with the CPU it and PostgreSQL spent meanwhile.
pub fn load_with_cpu(
    label: &str,
    pid: u32,
    clients: usize,
    duration: Duration,
    request: impl Fn(&ureq::Agent, usize, u64) -> bool + Sync,
) -> Run {
    let (agora_before, postgres_before) = (cpu_of(pid), postgres_cpu());
    let run = load(label, clients, duration, request);
    Run { cpu_seconds: Some((cpu_of(pid) - agora_before, postgres_cpu() - postgres_before)), ..run }
}

/// pgbench with `script`, parsing its per-transaction log for percentiles.
pub fn pgbench(label: &str, url: &str, script: &str, clients: usize, duration: Duration) -> Run {
    pgbench_with(label, url, script, clients, duration, &[])
}

/// [`pgbench`] with more of its options, e.g. `-M prepared` (as diesel prepares its queries).
pub fn pgbench_with(label: &str, url: &str, script: &str, clients: usize, duration: Duration, options: &[&str]) -> Run {
    let dir = std::env::temp_dir().join(format!("agora-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let script_path = dir.join("script.sql");
    std::fs::write(&script_path, script).unwrap();
    let output = Command::new("pgbench")
        .args([
            "-n",
            "-l",
            "-c",
            &clients.to_string(),
            "-j",
            &clients.to_string(),
            "-T",
            &duration.as_secs().to_string(),
        ])
        .args(options)
        .arg(format!("--log-prefix={}", dir.join("log").display()))
        .arg("-f")
        .arg(&script_path)
        .arg(url)
        .output()
        .expect("pgbench must be installed (Debian: postgresql-client)");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "pgbench failed: {report}\n{}", String::from_utf8_lossy(&output.stderr));
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.file_name().unwrap().to_string_lossy().starts_with("log") {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            match line.split_whitespace().nth(2) {
                Some("failed") | Some("skipped") => errors += 1,
                Some(latency) => latencies_us.push(latency.parse().unwrap()),
                None => {}
            }
        }
    }
    latencies_us.sort_unstable();
    let _ = std::fs::remove_dir_all(&dir);
    Run {
        label: label.to_owned(),
        requests: latencies_us.len(),
        errors,
        seconds: duration.as_secs_f64(),
        latencies_us,
        cpu_seconds: None,
        reported_percentiles: None,
    }
}

/// Runs `a` and `b` in turn, `rounds` times, so that drift during the run (a table growing,
/// the machine warming up) does not favour whichever goes second.
pub fn alternate(rounds: usize, mut a: impl FnMut() -> Run, mut b: impl FnMut() -> Run) -> (Run, Run) {
    let (mut first, mut second) = (a(), b());
    for _ in 1..rounds {
        first = first.merge(a());
        second = second.merge(b());
    }
    (first, second)
}

/// An `agora serve` process for a benchmark, killed when dropped.
pub struct Agora(pub Child);

impl Agora {
    /// Starts agora on `database_url` with a pool for `clients`, plus `env`; waits until ready.
    pub fn start(database_url: &str, port: u16, clients: usize, env: &[(&str, &str)]) -> Agora {
        Self::start_binary(env!("CARGO_BIN_EXE_agora"), database_url, port, clients, env)
    }

    /// [`Agora::start`] with another build of agora (an older one, to compare against).
    pub fn start_binary(binary: &str, database_url: &str, port: u16, clients: usize, env: &[(&str, &str)]) -> Agora {
        Self::start_command(binary, "serve", database_url, port, clients, env)
    }

    /// [`Agora::start_binary`] running `subcommand` (`notifications-service`, say): any that
    /// serves `/readyz` on AGORA_BIND.
    pub fn start_command(
        binary: &str,
        subcommand: &str,
        database_url: &str,
        port: u16,
        clients: usize,
        env: &[(&str, &str)],
    ) -> Agora {
        let mut command = Command::new(binary);
        command
            .arg(subcommand)
            .env("DATABASE_URL", database_url)
            .env("AGORA_BIND", format!("127.0.0.1:{port}"))
            .env("AGORA_SEED", "none")
            .env("AGORA_BACKGROUND", "off")
            .env("AGORA_DB_POOL_SIZE", (clients + 4).to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command.spawn().expect("the agora binary starts");
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
        let deadline = Instant::now() + Duration::from_secs(30);
        while agent.get(&format!("http://127.0.0.1:{port}/readyz")).call().map(|r| r.status().as_u16()).unwrap_or(0)
            != 200
        {
            assert!(Instant::now() < deadline, "agora did not become ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        Agora(child)
    }
}

impl Drop for Agora {
    fn drop(&mut self) {
        // SIGKILL is fine here: the next scenario starts a fresh process on the same data.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// wrk (Debian package `wrk`): `clients` connections on as many threads as cores, for
/// `duration`, each request's path given by `next_path` (Lua, with `n` counting requests).
/// A C load generator, so that the HTTP scenarios are not bounded by the client's own cost.
pub fn wrk(label: &str, base: &str, next_path: &str, clients: usize, duration: Duration) -> Run {
    let dir = std::env::temp_dir().join(format!("agora-wrk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("script.lua");
    std::fs::write(
        &script,
        format!(
            "local n = 0\n\
             request = function()\n  n = n + 1\n  return wrk.format(\"GET\", {next_path})\nend\n\
             done = function(summary, latency, requests)\n\
               local e = summary.errors\n\
               io.write(string.format(\"agora-bench %d %d %d %d %d %d\\n\", summary.requests, summary.duration,\n\
                 e.connect + e.read + e.write + e.timeout + e.status,\n\
                 latency:percentile(50), latency:percentile(95), latency:percentile(99)))\n\
             end\n"
        ),
    )
    .unwrap();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).min(clients);
    let output = Command::new("wrk")
        .args(["-t", &threads.to_string(), "-c", &clients.to_string(), "-d", &format!("{}s", duration.as_secs())])
        .arg("-s")
        .arg(&script)
        .arg(base)
        .output()
        .expect("wrk must be installed (Debian: wrk)");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "wrk failed: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    let line = stdout.lines().find_map(|line| line.strip_prefix("agora-bench ")).expect("wrk's summary line");
    let numbers: Vec<f64> = line.split_whitespace().map(|value| value.parse().unwrap()).collect();
    let ms = |us: f64| us / 1000.0;
    Run {
        label: label.to_owned(),
        requests: numbers[0] as usize,
        errors: numbers[2] as usize,
        seconds: numbers[1] / 1e6,
        latencies_us: Vec::new(),
        cpu_seconds: None,
        reported_percentiles: Some([ms(numbers[3]), ms(numbers[4]), ms(numbers[5])]),
    }
}

/// The opening of a benchmark's Markdown report: the command with its settings, then a table row
/// per run.
pub fn report_table(command_line: &str, runs: &[Run]) -> String {
    let mut report = format!("{command_line}\n\n| scenario | per second | p50 ms | p95 ms | p99 ms | errors |\n");
    report.push_str("| --- | ---: | ---: | ---: | ---: | ---: |\n");
    for run in runs {
        report.push_str(&run.row());
        report.push('\n');
    }
    report
}
