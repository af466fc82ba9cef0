//! An HAProxy of its own in front of Agora instances, on free ports, balancing round robin and
//! checking each instance's `/readyz`; killed and its files removed when dropped. Shared by the
//! integration tests and the benchmarks.
// Each user of this file uses a part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub struct HaProxy {
    pub address: String,
    stats: String,
    child: Child,
    dir: PathBuf,
}

impl HaProxy {
    pub fn start(servers: &[String], check_interval: Duration, failed_checks: u32) -> HaProxy {
        let dir = std::env::temp_dir().join(format!("agora-haproxy-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let [port, stats_port] = [free_port(), free_port()];
        let servers: String = servers
            .iter()
            .enumerate()
            .map(|(index, server)| format!("    server agora{} {server} check\n", index + 1))
            .collect();
        let config = format!(
            "global\n    maxconn 4096\n\ndefaults\n    mode http\n    timeout connect 1s\n    timeout check 2s\n    timeout client 30s\n    \
             timeout server 30s\n    retries 2\n    option redispatch\n\nfrontend shop\n    bind 127.0.0.1:{port}\n    \
             option forwardfor\n    default_backend agora\n\nbackend agora\n    balance roundrobin\n    \
             option httpchk GET /readyz\n    http-check expect status 200\n    \
             default-server inter {inter}ms fall {failed_checks} rise 1\n{servers}\n\
             listen stats\n    bind 127.0.0.1:{stats_port}\n    stats enable\n    stats uri /stats\n",
            inter = check_interval.as_millis(),
        );
        std::fs::write(dir.join("haproxy.cfg"), config).unwrap();
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(dir.join("haproxy.cfg"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("haproxy is installed (cargo xtask test installs it)");
        let balancer = HaProxy {
            address: format!("http://127.0.0.1:{port}"),
            stats: format!("http://127.0.0.1:{stats_port}/stats;csv"),
            child,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let statuses = balancer.statuses();
            if !statuses.is_empty() && statuses.values().all(|status| status == "UP") {
                return balancer;
            }
            assert!(Instant::now() < deadline, "HAProxy did not see every instance up within 10 s: {statuses:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Each instance's status as HAProxy sees it (`UP`, `DOWN`, ...), by server name.
    pub fn statuses(&self) -> HashMap<String, String> {
        let Ok(mut response) = ureq::get(&self.stats).call() else { return HashMap::new() };
        let csv = response.body_mut().read_to_string().unwrap_or_default();
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap_or_default().trim_start_matches("# ").split(',').collect();
        let column = |name: &str| header.iter().position(|field| *field == name);
        let (Some(proxy), Some(server), Some(status)) = (column("pxname"), column("svname"), column("status")) else {
            return HashMap::new();
        };
        lines
            .map(|line| line.split(',').collect::<Vec<_>>())
            .filter(|fields| fields.get(proxy) == Some(&"agora") && fields[server].starts_with("agora"))
            .map(|fields| (fields[server].to_owned(), fields[status].to_owned()))
            .collect()
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
