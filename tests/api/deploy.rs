//! `deploy/cluster`: the topology a person can start on one machine, started and removed as the
//! README shows.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::helpers::agent;

/// The cluster's directory; `deploy/cluster down` runs when dropped, whatever the test did.
struct Deployment {
    dir: PathBuf,
}

impl Deployment {
    fn cluster(&self, verb: &str) -> Output {
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/cluster"))
            .arg(verb)
            .env("AGORA_CLUSTER_DIR", &self.dir)
            .env("AGORA_BIN", env!("CARGO_BIN_EXE_agora"))
            .env("RUST_LOG", "warn")
            .output()
            .expect("deploy/cluster runs")
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        if self.dir.exists() {
            self.cluster("down");
        }
    }
}

/// The URL the line labelled `label` of `up`'s report gives.
fn url_of<'a>(report: &'a str, label: &str) -> &'a str {
    let line = report.lines().find(|line| line.starts_with(label)).unwrap_or_else(|| panic!("{label} in {report}"));
    line.split_whitespace().find(|word| word.contains("://")).unwrap()
}

fn get_json(url: &str) -> (u16, serde_json::Value) {
    let mut response = agent().get(url).call().unwrap();
    let status = response.status().as_u16();
    (status, serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap())
}

#[test]
fn deploy_cluster_up_serves_the_seeded_shop_through_haproxy_and_down_removes_all_of_it() {
    let deployment =
        Deployment { dir: std::env::temp_dir().join(format!("agora-deploy-{}", uuid::Uuid::new_v4().simple())) };
    let up = deployment.cluster("up");
    let report = String::from_utf8_lossy(&up.stdout).into_owned();
    assert!(up.status.success(), "up failed: {report}\n{}", String::from_utf8_lossy(&up.stderr));
    let shop = url_of(&report, "shop").to_owned();

    // The first start created, migrated and seeded the database once, whichever instance did it.
    let (status, products) = get_json(&format!("{shop}/api/products"));
    assert_eq!(status, 200);
    let items = products["items"].as_array().unwrap();
    assert!(!items.is_empty(), "the demo catalog is served: {products}");
    let on_sale = items.iter().find(|item| item["active"] == true).unwrap()["id"].as_str().unwrap().to_owned();
    let (status, stock) = get_json(&format!("{shop}/api/inventory/{on_sale}"));
    assert_eq!(status, 200);
    assert!(stock["available"].as_i64().unwrap() > 0, "{stock}");

    // An order through HAProxy, reserved on the primary through PgBouncer.
    let placed = agent()
        .post(&format!("{shop}/api/orders"))
        .send_json(crate::helpers::order_body("deploy@example.com", &[(&on_sale, 1)]))
        .unwrap();
    assert_eq!(placed.status(), 201);

    // Every instance answers ready, reading from the streaming replica.
    let instances = report.lines().find(|line| line.starts_with("instances")).unwrap();
    let instances: Vec<&str> = instances.split_whitespace().filter(|word| word.contains("://")).collect();
    assert_eq!(instances.len(), 3, "{report}");
    for instance in &instances {
        crate::helpers::eventually("each instance ready on the replica", Duration::from_secs(20), || {
            let (status, ready) = get_json(&format!("{instance}/readyz"));
            status == 200 && ready["replica"]["state"] == "in_use"
        });
    }

    let down = deployment.cluster("down");
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    assert!(!deployment.dir.exists(), "down removes the directory");
    for address in instances.iter().chain([&shop.as_str()]) {
        let host = address.trim_start_matches("http://");
        assert!(std::net::TcpStream::connect(host).is_err(), "{address} still answers after down");
    }
}
