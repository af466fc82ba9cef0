//! `cargo xtask test [ARGS...]`: makes this machine able to run Agora's whole test suite, then
//! runs `cargo test ARGS...`. On a Debian machine (the kind Agora is developed and tested on) it
//! installs what is missing and starts what is not running:
//!
//! - PostgreSQL, running at 127.0.0.1:5432 (the integration tests' server; Debian `postgresql`);
//! - RabbitMQ, running at 127.0.0.1:5672 with guest/guest (the broker tests; Debian
//!   `rabbitmq-server`);
//! - Chromium and chromedriver for the browser tests (Debian `chromium`, `chromium-driver`);
//! - axe-core for those tests, at the version `tests/browser/package-lock.json` pins (npm);
//! - PgBouncer and HAProxy, which the tests start instances of their own of (Debian `pgbouncer`,
//!   `haproxy`).
//!
//! `cargo xtask test-through-pgbouncer [ARGS...]` prepares the same, starts a PgBouncer of its own
//! in transaction mode in front of the tests' PostgreSQL, and runs the core integration tests
//! (orders, payments, refunds, catalog, inventory, admin, sessions, roles, or ARGS' selection)
//! with Agora reaching its database through it (`AGORA_DB_POOL_MODE=transaction`).
//!
//! Packages are installed with apt-get, as root (or through sudo). Everything it does, it says.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

// The one the integration tests and benchmarks start too.
#[path = "../../../tests/support/pgbouncer.rs"]
mod pgbouncer;
use pgbouncer::PgBouncer;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("test") => match prepare_for_tests() {
            Ok(()) => run_tests(args.collect(), &[]),
            Err(problem) => {
                eprintln!("xtask: cannot prepare the tests: {problem}");
                ExitCode::FAILURE
            }
        },
        // Four server sessions per test database: fewer than the eight connections of each test's
        // Agora, so that transactions of different connections do share server sessions.
        Some("test-through-pgbouncer") => {
            match prepare_for_tests().and_then(|()| PgBouncer::start("127.0.0.1", 5432, 4)) {
                Ok(bouncer) => {
                    let mut args: Vec<String> = args.collect();
                    if args.is_empty() {
                        args = ["--test", "api", "--"].into_iter().chain(CORE_TESTS).map(str::to_owned).collect();
                    }
                    let url = bouncer.url("postgres");
                    println!("xtask: PgBouncer (transaction mode) at {url}");
                    run_tests(args, &[("AGORA_TEST_PGBOUNCER_URL", &url)])
                }
                Err(problem) => {
                    eprintln!("xtask: cannot prepare the tests: {problem}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!(
                "usage: cargo xtask test [ARGS...]                     (ARGS go to cargo test, e.g. -- browser::)\n       \
                 cargo xtask test-through-pgbouncer [ARGS...]   (the core tests, Agora behind PgBouncer)"
            );
            ExitCode::from(2)
        }
    }
}

type Outcome = Result<(), String>;

fn repository() -> PathBuf {
    // .ci/xtask, two levels below the repository.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the repository exists")
}

fn prepare_for_tests() -> Outcome {
    postgresql()?;
    rabbitmq()?;
    debian_packages(&[
        ("chromium", "/usr/bin/chromium"),
        ("chromium-driver", "/usr/bin/chromedriver"),
        ("pgbouncer", "/usr/sbin/pgbouncer"),
        ("haproxy", "/usr/sbin/haproxy"),
    ])?;
    axe_core()
}

/// The modules of the integration tests that run through PgBouncer: every module's own work,
/// sessions, and the roles PostgreSQL enforces.
const CORE_TESTS: [&str; 8] =
    ["orders::", "payments::", "refunds::", "catalog::", "inventory::", "admin::", "sessions::", "roles::"];

fn run_tests(args: Vec<String>, env: &[(&str, &str)]) -> ExitCode {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    // The test runner's summary is the last thing printed: nothing follows it.
    let mut command = Command::new(cargo);
    command.arg("test").args(args).current_dir(repository());
    for (name, value) in env {
        command.env(name, value);
    }
    match command.status() {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(status) => ExitCode::from(status.code().map_or(1, |code| code.clamp(1, 255) as u8)),
        Err(error) => {
            eprintln!("xtask: cannot run cargo test: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The tests' PostgreSQL: the one `AGORA_TEST_DATABASE_URL` (or `DATABASE_URL`) names when it is
/// another machine's, else the local cluster at 127.0.0.1:5432, started (or installed) if needed.
fn postgresql() -> Outcome {
    let url = std::env::var("AGORA_TEST_DATABASE_URL").or_else(|_| std::env::var("DATABASE_URL")).unwrap_or_default();
    let local = url.is_empty() || url.contains("@127.0.0.1:5432/") || url.contains("@localhost:5432/");
    if !local {
        println!("xtask: the tests use the PostgreSQL server of AGORA_TEST_DATABASE_URL or DATABASE_URL");
        return Ok(());
    }
    if !command_exists("pg_ctlcluster") {
        debian_packages(&[("postgresql", "/usr/bin/pg_ctlcluster")])?;
    }
    if postgres_answers() {
        return Ok(());
    }
    let version = std::fs::read_dir("/etc/postgresql")
        .map_err(|error| format!("no PostgreSQL cluster in /etc/postgresql: {error}"))?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .max()
        .ok_or("no PostgreSQL cluster in /etc/postgresql")?;
    println!("xtask: starting PostgreSQL {version}");
    run(&mut as_root(Command::new("pg_ctlcluster").args(["--skip-systemctl-redirect", &version, "main", "start"])))?;
    for _ in 0..60 {
        if postgres_answers() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    Err("PostgreSQL did not answer at 127.0.0.1:5432 within 30 s of starting".to_owned())
}

fn postgres_answers() -> bool {
    Command::new("pg_isready").args(["-q", "-h", "127.0.0.1", "-p", "5432"]).status().is_ok_and(|s| s.success())
}

/// The tests' RabbitMQ at 127.0.0.1:5672, started (or installed) if nothing answers there. The
/// tests only declare and delete names of their own on it; they never stop it.
fn rabbitmq() -> Outcome {
    let answers = || std::net::TcpStream::connect(("127.0.0.1", 5672)).is_ok();
    if answers() {
        return Ok(());
    }
    debian_packages(&[("rabbitmq-server", "/usr/sbin/rabbitmq-server")])?;
    println!("xtask: starting RabbitMQ");
    // As root, Debian's wrapper runs the node as the rabbitmq user.
    run(&mut as_root(Command::new("rabbitmq-server").arg("-detached")))?;
    for _ in 0..120 {
        if answers() {
            return run(&mut as_root(Command::new("rabbitmqctl").args(["--quiet", "await_startup"])));
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    Err("RabbitMQ did not answer at 127.0.0.1:5672 within 60 s of starting".to_owned())
}

/// Installs each Debian package whose file is missing, in one apt-get run.
fn debian_packages(packages: &[(&str, &str)]) -> Outcome {
    let missing: Vec<&str> =
        packages.iter().filter(|(_, file)| !Path::new(file).exists()).map(|(package, _)| *package).collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!("xtask: installing Debian packages: {}", missing.join(" "));
    run(&mut as_root(Command::new("apt-get").args(["update", "-qq"])))?;
    run(&mut as_root(
        Command::new("apt-get").env("DEBIAN_FRONTEND", "noninteractive").args(["install", "-y", "-qq"]).args(&missing),
    ))
}

/// axe-core at the locked version, where the browser tests read it.
fn axe_core() -> Outcome {
    let package = repository().join("tests/browser");
    if package.join("node_modules/axe-core/axe.min.js").exists() {
        return Ok(());
    }
    if !command_exists("npm") {
        debian_packages(&[("nodejs", "/usr/bin/node"), ("npm", "/usr/bin/npm")])?;
    }
    println!("xtask: installing axe-core (tests/browser/package-lock.json)");
    run(Command::new("npm").args(["ci", "--no-audit", "--no-fund", "--prefix"]).arg(&package))
}

fn command_exists(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
}

/// `command` as root: as it is when this already runs as root, else through sudo.
fn as_root(command: &mut Command) -> Command {
    let is_root = Command::new("id").arg("-u").output().is_ok_and(|output| output.stdout.trim_ascii() == b"0");
    let mut root = if is_root {
        Command::new(command.get_program())
    } else {
        let mut sudo = Command::new("sudo");
        sudo.arg(command.get_program());
        sudo
    };
    root.args(command.get_args());
    for (name, value) in command.get_envs() {
        if let Some(value) = value {
            root.env(name, value);
        }
    }
    root
}

fn run(command: &mut Command) -> Outcome {
    let shown = format!("{command:?}");
    match command.status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("{shown} failed ({status})")),
        Err(error) => Err(format!("{shown} could not start: {error}")),
    }
}
