//! What a call through the external provider protocol costs, against the
//! same function run in process: the software-licenses demo (Rust, in this
//! process) and the Python and Node.js examples (a pool of two copies each),
//! all reading one licence from a file-backed state.
//!
//! ```text
//! cargo bench -p provisio-external --bench calls
//! PROVISIO_BENCH_CALLS=200 cargo bench -p provisio-external --bench calls   # quicker
//! ```
//!
//! For each: `get_info` called one after another (latency p50/p99 and
//! calls/s), then with 16 in flight (calls/s; the pool runs two at once).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use provisio_sdk::{CallOptions, ProviderEntry, Registry, invoke};
use serde_json::{Value, json};

fn calls() -> usize {
    std::env::var("PROVISIO_BENCH_CALLS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000)
}

async fn one(entry: &ProviderEntry, config: &Value, key: &str) -> Duration {
    let started = Instant::now();
    let report = invoke::call(entry, config, "get_info", &json!({"license_key": key}), &CallOptions::default()).await;
    assert!(report.envelope.is_ok(), "{report:?}");
    started.elapsed()
}

async fn measure(name: &str, entry: ProviderEntry, config: Value) {
    let params = json!({"reference": "bench-1", "package_identifier": "basic", "customer_name": "Ann",
                        "customer_email": "ann@example.com"});
    let created = invoke::call(&entry, &config, "create", &params, &CallOptions::default()).await;
    let key = created.envelope.data.as_ref().expect("created")["license_key"].as_str().unwrap().to_owned();
    for _ in 0..20 {
        one(&entry, &config, &key).await;
    }
    let count = calls();
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(count);
    for _ in 0..count {
        latencies.push(one(&entry, &config, &key).await);
    }
    let sequential = count as f64 / started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)].as_micros();

    let (entry, config, key) = (Arc::new(entry), Arc::new(config), Arc::new(key));
    let permits = Arc::new(tokio::sync::Semaphore::new(16));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(count);
    for _ in 0..count {
        let permit = permits.clone().acquire_owned().await.unwrap();
        let (entry, config, key) = (entry.clone(), config.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            one(&entry, &config, &key).await;
            drop(permit);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let concurrent = count as f64 / started.elapsed().as_secs_f64();
    println!("| {name} | {} µs | {} µs | {sequential:.0} | {concurrent:.0} |", at(0.5), at(0.99));
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new(provisio_sdk::blueprints::all());
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    println!("{} calls each", calls());
    println!("| provider | p50 | p99 | calls/s, one at a time | calls/s, 16 in flight |");
    println!("| --- | --- | --- | --- | --- |");
    let demo = provisio_demo::entries().into_iter().find(|e| e.blueprint().id == "software-licenses").unwrap();
    measure("software-licenses/demo (in process)", demo, json!({"state_path": dir.path().join("demo.sqlite")})).await;
    for (name, program) in [
        ("software-licenses/licenses-py (Python)", "python-licenses/provider.py"),
        ("software-licenses/licenses-node (Node.js)", "node-licenses/provider.js"),
    ] {
        let entry = provisio_external::load(&examples.join(program), &registry).expect("the example loads");
        let state = dir.path().join(format!("{}.json", entry.about().id));
        measure(name, entry, json!({"state_path": state, "api_key": "bench-key-0123"})).await;
    }
}
