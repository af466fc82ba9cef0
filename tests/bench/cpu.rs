//! What a request costs the `agora` process in CPU instructions, counted by valgrind's callgrind:
//! repeatable to a fraction of a percent, where timings on two shared cores are not.
//!
//!     cargo bench --bench cpu
//!
//! The release `agora` runs under `valgrind --tool=callgrind` on a database of its own. After
//! warm-up requests (enough for the runtime's table sampling to settle at one run in 64: the first
//! 32 runs of an operation on each thread render their SQL to read table names from it), the
//! counters are zeroed (`callgrind_control --zero`), requests are sent one
//! after another, and the counters dumped (`callgrind_control --dump`); the instructions of all
//! the process's threads over that stretch, divided by the requests, are the cost of one. The
//! catalog cache is off (its listener polls a socket on a timer, which would charge the requests
//! for valgrind's slowness) and so is background work.
//!
//! Settings (environment): AGORA_BENCH_REQUESTS (per scenario, default 200),
//! AGORA_BENCH_BASELINE (another build of agora, measured the same way in the same run).
//! Needs valgrind (Debian package `valgrind`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel::prelude::*;

#[path = "common.rs"]
mod common;
#[path = "shop.rs"]
mod shop;

use common::{database_url, env_number, server_url};
use shop::PRODUCTS;

/// An agora process under callgrind, killed when dropped.
struct Counted {
    child: Child,
    base: String,
    dir: std::path::PathBuf,
}

impl Counted {
    fn start(binary: &str, database: &str) -> Counted {
        let dir = std::env::temp_dir().join(format!("agora-callgrind-{}-{}", std::process::id(), rand_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("valgrind")
            .args(["--tool=callgrind", "--quiet"])
            .arg(format!("--callgrind-out-file={}/callgrind.out.%p", dir.display()))
            .arg(binary)
            .arg("serve")
            .env("DATABASE_URL", database_url(database))
            .env("AGORA_BIND", format!("127.0.0.1:{port}"))
            .env("AGORA_SEED", "none")
            .env("AGORA_BACKGROUND", "off")
            .env("AGORA_CATALOG_CACHE_ENTRIES", "0")
            .env("AGORA_DB_POOL_SIZE", "2")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("valgrind must be installed (Debian: valgrind)");
        let counted = Counted { child, base: format!("http://127.0.0.1:{port}"), dir };
        let agent = agent();
        let deadline = Instant::now() + Duration::from_secs(300);
        while agent.get(&format!("{}/readyz", counted.base)).call().map(|r| r.status().as_u16()).unwrap_or(0) != 200 {
            assert!(Instant::now() < deadline, "agora under callgrind did not become ready");
            std::thread::sleep(Duration::from_millis(200));
        }
        counted
    }

    fn control(&self, option: &str) {
        let status = Command::new("callgrind_control")
            .arg(option)
            .arg(self.child.id().to_string())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "callgrind_control {option}");
    }

    /// Instructions per request of `requests` sequential calls of `request`, after `warm_up` ones.
    fn instructions_per_request(
        &self,
        warm_up: u64,
        requests: u64,
        request: impl Fn(&ureq::Agent, u64) -> bool,
    ) -> f64 {
        let agent = agent();
        for n in 0..warm_up {
            assert!(request(&agent, n), "warm-up request {n} failed");
        }
        for entry in std::fs::read_dir(&self.dir).unwrap() {
            let _ = std::fs::remove_file(entry.unwrap().path());
        }
        self.control("--zero");
        for n in warm_up..warm_up + requests {
            assert!(request(&agent, n), "request {n} failed");
        }
        self.control("--dump");
        // Every thread's part of the dump, summed (callgrind writes one total per dump file).
        let mut total = 0u64;
        for entry in std::fs::read_dir(&self.dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
            total += text
                .lines()
                .filter_map(|line| line.strip_prefix("totals: ").or_else(|| line.strip_prefix("summary: ")))
                .filter_map(|value| value.split_whitespace().next()?.parse::<u64>().ok())
                .next()
                .unwrap_or(0);
        }
        total as f64 / requests as f64
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Requests before counting.
const WARM_UP: u64 = 100;

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().new_agent()
}

fn main() {
    let requests = env_number("AGORA_BENCH_REQUESTS", 200);
    let database = format!("agora_bench_cpu_{}", std::process::id());
    let mut maintenance = PgConnection::establish(&server_url()).expect("PostgreSQL must be reachable");
    diesel::sql_query(format!("CREATE DATABASE {database}")).execute(&mut maintenance).unwrap();
    let result = std::panic::catch_unwind(|| run(&database, requests));
    diesel::sql_query(format!("DROP DATABASE {database} WITH (FORCE)")).execute(&mut maintenance).unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

fn run(database: &str, requests: u64) {
    common::migrate(database);
    let mut conn = PgConnection::establish(&database_url(database)).unwrap();
    let product_ids = shop::stock_products(&mut conn);
    let mut builds = vec![("this build".to_owned(), env!("CARGO_BIN_EXE_agora").to_owned())];
    if let Ok(baseline) = std::env::var("AGORA_BENCH_BASELINE") {
        builds.push((format!("baseline {baseline}"), baseline));
    }
    let mut report = format!(
        "Command: `cargo bench --bench cpu` (callgrind, {requests} sequential requests per scenario after {WARM_UP} to warm up)\n\n\
         | build | 2-line checkout | GET /healthz | checkout / healthz |\n| --- | ---: | ---: | ---: |\n"
    );
    for (label, binary) in builds {
        let counted = Counted::start(&binary, database);
        let base = counted.base.clone();
        let checkout = counted.instructions_per_request(WARM_UP, requests, |agent, n| {
            let a = (n as usize * 7) % PRODUCTS;
            shop::checkout(&base, agent, 0, n, &[&product_ids[a], &product_ids[(a + 1) % PRODUCTS]])
        });
        let healthz = counted.instructions_per_request(WARM_UP, requests, |agent, _| {
            agent.get(&format!("{base}/healthz")).call().is_ok_and(|response| response.status() == 200)
        });
        report.push_str(&format!("| {label} | {checkout:.0} | {healthz:.0} | {:.1} |\n", checkout / healthz));
    }
    println!("{report}");
    let _ = std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench-cpu.md"), &report);
}
