//! A PgBouncer of its own, in transaction mode, on a free port, in front of a PostgreSQL server;
//! killed and its files removed when dropped. Shared by the integration tests, the benchmarks and
//! `cargo xtask test-through-pgbouncer`, so it needs nothing but std. PgBouncer refuses to run as
//! root: as root it switches to the `postgres` user, who then owns its directory.
// Each user of this file uses a part of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PgBouncer {
    pub port: u16,
    child: Child,
    dir: PathBuf,
}

impl PgBouncer {
    /// Transaction pooling in front of `host:port`, at most `pool_size` server sessions per
    /// database (and user).
    pub fn start(host: &str, port: u16, pool_size: u32) -> Result<PgBouncer, String> {
        let dir = std::env::temp_dir().join(format!(
            "agora-pgbouncer-{}-{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos()
        ));
        std::fs::create_dir_all(&dir).map_err(|error| format!("{}: {error}", dir.display()))?;
        let listen_port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|error| format!("no free port: {error}"))?
            .port();
        let write =
            |name: &str, text: String| std::fs::write(dir.join(name), text).map_err(|error| format!("{name}: {error}"));
        write("userlist.txt", "\"postgres\" \"\"\n".to_owned())?;
        // No reset query: in transaction mode Agora leaves nothing on a server session, and a
        // reset would hide it if it did.
        write(
            "pgbouncer.ini",
            format!(
                "[databases]\n* = host={host} port={port}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\n\
                 listen_port = {listen_port}\nunix_socket_dir =\nauth_type = trust\nauth_file = {dir}/userlist.txt\n\
                 pool_mode = transaction\ndefault_pool_size = {pool_size}\nmin_pool_size = 0\n\
                 max_client_conn = 5000\nserver_reset_query =\nignore_startup_parameters = extra_float_digits\n\
                 admin_users = postgres\nlogfile = {dir}/pgbouncer.log\n",
                dir = dir.display()
            ),
        )?;
        let as_root = Command::new("id").arg("-u").output().is_ok_and(|output| output.stdout.trim_ascii() == b"0");
        let mut command = Command::new("pgbouncer");
        if as_root {
            let owned = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status();
            if !owned.is_ok_and(|status| status.success()) {
                return Err(format!("cannot give {} to the postgres user", dir.display()));
            }
            command.args(["-u", "postgres"]);
        }
        let child = command
            .arg(dir.join("pgbouncer.ini"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| format!("pgbouncer could not start (Debian package pgbouncer): {error}"))?;
        let bouncer = PgBouncer { port: listen_port, child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", listen_port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!("PgBouncer did not listen on port {listen_port} within 10 s:\n{}", bouncer.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(bouncer)
    }

    /// The URL of database `name` through this PgBouncer.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// What PgBouncer logged, for a failure's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// (host, port) of a `postgres://user@host:port/db` URL.
pub fn host_and_port(url: &str) -> (String, u16) {
    let authority = url.split("://").nth(1).unwrap_or(url).split('/').next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    match host_port.rsplit_once(':') {
        Some((host, port)) => (host.to_owned(), port.parse().unwrap_or(5432)),
        None => (host_port.to_owned(), 5432),
    }
}
