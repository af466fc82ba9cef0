//! A PostgreSQL cluster of the test's own, on a free port, removed afterwards: for tests that
//! need server settings the machine's cluster must keep (a preloaded library), or that stop,
//! freeze or replicate their database. PostgreSQL refuses to run as root, so the cluster runs as
//! the `postgres` user, in a data directory that user owns.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Cluster {
    pub port: u16,
    data: PathBuf,
    bin: PathBuf,
}

impl Cluster {
    /// Initialises and starts a cluster with `settings` added to its `postgresql.conf`.
    pub fn start(settings: &[(&str, &str)]) -> Cluster {
        let cluster = Cluster::stopped(settings);
        cluster.start_again();
        cluster
    }

    /// Initialises a cluster, not started: its port refuses connections until [`Cluster::start_again`].
    pub fn stopped(settings: &[(&str, &str)]) -> Cluster {
        let bin = postgres_bin();
        let data = std::env::temp_dir().join(format!("agora-cluster-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&data).unwrap();
        run("chown", &["postgres:postgres", data.to_str().unwrap()]);
        as_postgres(
            &bin.join("initdb"),
            &["-D", data.to_str().unwrap(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"],
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nfsync = off\n",
            data.display()
        );
        for (name, value) in settings {
            conf.push_str(&format!("{name} = '{value}'\n"));
        }
        let conf_path = data.join("postgresql.conf");
        let mut existing = std::fs::read_to_string(&conf_path).unwrap();
        existing.push_str(&conf);
        std::fs::write(&conf_path, existing).unwrap();
        Cluster { port, data, bin }
    }

    /// A streaming replica of `primary` (`pg_basebackup -R`), started: it replays the primary's
    /// WAL and answers read-only queries.
    pub fn replica_of(primary: &Cluster) -> Cluster {
        let bin = postgres_bin();
        let data = std::env::temp_dir().join(format!("agora-replica-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&data).unwrap();
        run("chown", &["postgres:postgres", data.to_str().unwrap()]);
        run("chmod", &["700", data.to_str().unwrap()]);
        let primary_port = primary.port.to_string();
        as_postgres(
            &bin.join("pg_basebackup"),
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &primary_port,
                "-U",
                "postgres",
                "-D",
                data.to_str().unwrap(),
                "-R",
                "-X",
                "stream",
            ],
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // The copied postgresql.conf names the primary's port and socket directory; later lines win.
        let conf_path = data.join("postgresql.conf");
        let mut conf = std::fs::read_to_string(&conf_path).unwrap();
        conf.push_str(&format!("\nport = {port}\nunix_socket_directories = '{}'\nhot_standby = on\n", data.display()));
        std::fs::write(&conf_path, conf).unwrap();
        let _ = std::fs::remove_file(data.join("log"));
        let replica = Cluster { port, data, bin };
        replica.start_again();
        replica
    }

    /// Ends recovery: the replica becomes a primary of its own and stops following.
    pub fn promote(&self) {
        self.pg_ctl(&["promote", "-w", "-t", "60"]);
    }

    pub fn start_again(&self) {
        self.pg_ctl(&["start", "-w", "-t", "60", "-l", self.data.join("log").to_str().unwrap()]);
    }

    /// A fast shutdown: sessions are ended, the port refuses connections.
    pub fn stop(&self) {
        self.pg_ctl(&["stop", "-m", "fast", "-w", "-t", "60"]);
    }

    /// SIGSTOP to the server and every one of its processes: connections stay open, the port
    /// still accepts, and nothing answers.
    pub fn freeze(&self) {
        self.signal_all("-STOP");
    }

    pub fn thaw(&self) {
        self.signal_all("-CONT");
    }

    fn signal_all(&self, signal: &str) {
        let pid_file = std::fs::read_to_string(self.data.join("postmaster.pid")).unwrap();
        let postmaster = pid_file.lines().next().unwrap().trim().to_owned();
        // Children first when stopping, so none is forked after the postmaster's snapshot.
        let _ = Command::new("pkill").args([signal, "-P", &postmaster]).status();
        run("kill", &[signal, &postmaster]);
        let _ = Command::new("pkill").args([signal, "-P", &postmaster]).status();
    }

    /// The URL of database `name` on this cluster.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    fn pg_ctl(&self, arguments: &[&str]) {
        let mut all = vec!["-D", self.data.to_str().unwrap()];
        all.extend_from_slice(arguments);
        as_postgres(&self.bin.join("pg_ctl"), &all);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", self.data.to_str().unwrap(), "stop", "-m", "immediate", "-w"])
            .output();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// The newest installed server's programs (Debian keeps them out of the PATH).
fn postgres_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server programs are installed under /usr/lib/postgresql")
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().expect("initdb is installed")
}

fn as_postgres(program: &Path, arguments: &[&str]) {
    let output = Command::new("runuser").args(["-u", "postgres", "--"]).arg(program).args(arguments).output().unwrap();
    assert!(
        output.status.success(),
        "{} {arguments:?} failed: {}{}",
        program.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn run(program: &str, arguments: &[&str]) {
    let status = Command::new(program).args(arguments).status().unwrap();
    assert!(status.success(), "{program} {arguments:?} failed");
}
