//! Whole-process benchmark: `cargo bench -p provisio --bench scale`.
//!
//! Each setup runs the real `provisio` binary (built with the bench) as
//! separate processes on one store, and this process is only the load
//! generator and the stopwatch:
//!
//! - `sqlite`: one `provisio serve` (API and worker) on a SQLite file, the
//!   embedded default;
//! - `postgres:N`: one `provisio serve --no-worker` and N `provisio worker`
//!   processes on a scratch database of `PROVISIO_TEST_STORE_POSTGRES`'s
//!   server (the machine's own on 127.0.0.1:5432 by default).
//!
//! Per setup, with the demo coffee machine answering at once (a no-op job):
//!
//! - **burn-down**: orders ingested with no worker running, then the
//!   workers started: jobs done per second (as the peers' burn-downs count);
//! - **end to end**: orders posted as fast as 64 connections allow with the
//!   workers running, until every service is active: events per second
//!   (event in, durable; job claimed, call made, outcome and state recorded);
//! - **latency**: orders paced at half the end-to-end rate: event accepted
//!   to provider call started, p50 and p99;
//! - **peak RSS** of each process (the server's, the busiest worker's).
//!
//! `PROVISIO_BENCH_SETUPS=sqlite,postgres:1,postgres:2,postgres:4` (the
//! default) picks setups; `PROVISIO_BENCH_SCALE` scales the counts;
//! `PROVISIO_BENCH_LATENCY_RATE` paces the latency run at that many events
//! per second instead of half the end-to-end rate.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use provisio_store::{Store, StoreOptions};
use serde_json::{Value, json};

mod common;

use common::TOKEN;

fn scaled(n: usize) -> usize {
    let scale: f64 = std::env::var("PROVISIO_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    ((n as f64) * scale).max(1.0) as usize
}

/// One store and the processes on it.
struct Setup {
    name: String,
    url: String,
    workers: usize,
    dir: tempfile::TempDir,
    _scratch: Option<provisio_store_postgres::testing::Scratch>,
}

impl Setup {
    async fn new(spec: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        match spec.split_once(':') {
            Some(("postgres", n)) => {
                let (url, scratch) = provisio_store_postgres::testing::scratch().await;
                Setup { name: spec.into(), url, workers: n.parse().unwrap(), dir, _scratch: Some(scratch) }
            }
            _ => {
                let url = format!("sqlite://{}", dir.path().join("provisio.db").display());
                Setup { name: spec.into(), url, workers: 0, dir, _scratch: None }
            }
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_provisio"));
        command
            .args(args)
            .args(["--db", &self.url, "--worker-concurrency", "512", "--claim-batch", "512", "--poll-ms", "100"])
            .current_dir(self.dir.path())
            .env("PROVISIO_ADMIN_TOKEN", TOKEN)
            .env("PROVISIO_LOG", "warn")
            // Samples would be calls of their own.
            .env("PROVISIO_USAGE_INTERVAL_SECS", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    }

    /// The API server, on a free port: with its own worker when `worker`.
    async fn serve(&self, client: &reqwest::Client, worker: bool) -> (Child, String) {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["serve", "--demo", "--listen", &listen];
        if !worker {
            args.push("--no-worker");
        }
        let child = self.command(&args).spawn().expect("provisio serve starts");
        let base = format!("http://{listen}");
        let started = Instant::now();
        while client.get(format!("{base}/health")).send().await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "the server never answered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (child, base)
    }

    fn start_workers(&self) -> Vec<Child> {
        (0..self.workers).map(|_| self.command(&["worker"]).spawn().expect("provisio worker starts")).collect()
    }

    async fn store(&self) -> Store {
        let options = StoreOptions::new(self.url.clone());
        if self.workers > 0 {
            provisio_store_postgres::open(options).await.unwrap()
        } else {
            provisio_store_sqlite::open(options).await.unwrap()
        }
    }
}

fn stop(mut child: Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
}

/// Posts `count` orders, 64 requests in flight, paced when asked; answers the elapsed time.
async fn post(client: &reqwest::Client, base: &str, run: &str, count: usize, pace: Option<Duration>) -> Duration {
    common::post_orders(client, base, run, count, 64, pace).await
}

/// Jobs made by orders and done, and all of them.
async fn done(store: &Store) -> (i64, i64) {
    let counts = store.read(|conn| Box::pin(provisio_store::jobs::count_by_state(conn))).await.unwrap();
    let finished = counts.iter().filter(|(s, _)| s == "succeeded" || s == "failed").map(|(_, n)| n).sum();
    (finished, counts.iter().map(|(_, n)| n).sum())
}

/// Until every job is done, counting only the unfinished ones: this
/// stopwatch must not scan the store it measures.
async fn wait_done(store: &Store) {
    let open = || store.read(|conn| Box::pin(provisio_store::jobs::open_count(conn)));
    while open().await.unwrap() > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The demo coffee machine brews at once and takes any number of calls.
async fn instant_machine(client: &reqwest::Client, base: &str) {
    let machines: Value = client
        .get(format!("{base}/api/v1/configurations?blueprint=coffee"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = machines[0]["id"].as_i64().unwrap();
    let change = json!({"max_concurrency": 100_000, "values": {"latency_ms": 0, "operation_secs": 0}});
    let response = client
        .patch(format!("{base}/api/v1/configurations/{id}"))
        .bearer_auth(TOKEN)
        .json(&change)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.text().await.unwrap());
}

async fn run(spec: &str, client: &reqwest::Client) {
    let setup = Setup::new(spec).await;
    let store = setup.store().await;
    let embedded = setup.workers == 0;
    let mut worker_rss = 0.0_f64;

    // Burn-down: a backlog made with no worker running, then the workers
    // started (on SQLite, the server again with its own worker).
    let (server, base) = setup.serve(client, false).await;
    instant_machine(client, &base).await;
    post(client, &base, "burn", scaled(10_000), None).await;
    let (_, jobs) = done(&store).await;
    let started = Instant::now();
    let (server, base) = if embedded {
        stop(server);
        setup.serve(client, true).await
    } else {
        (server, base)
    };
    let workers = setup.start_workers();
    wait_done(&store).await;
    let burn = jobs as f64 / started.elapsed().as_secs_f64();
    for worker in workers {
        worker_rss = worker_rss.max(common::peak_rss_mib(Some(worker.id())));
        stop(worker);
    }

    // End to end, workers running.
    let workers = setup.start_workers();
    let (before, _) = done(&store).await;
    let count = scaled(10_000);
    let started = Instant::now();
    post(client, &base, "e2e", count, None).await;
    let (_, all) = done(&store).await;
    wait_done(&store).await;
    let e2e = count as f64 / started.elapsed().as_secs_f64();
    let jobs_per_event = (all - before) as f64 / count as f64;

    // Latency at half the end-to-end rate (a fresh store would be fairer to
    // the later orders; the backlog is done, so the queue is as short).
    // `PROVISIO_BENCH_LATENCY_RATE` paces at a rate of its own (to see latency without contention).
    let half = std::env::var("PROVISIO_BENCH_LATENCY_RATE")
        .ok()
        .and_then(|r| r.parse::<f64>().ok())
        .filter(|r| *r > 0.0)
        .unwrap_or((e2e / 2.0).max(1.0));
    let paced = scaled(5_000).min((half * 20.0) as usize).max(100);
    let pace = Duration::from_secs_f64(1.0 / half);
    post(client, &base, "paced", paced, Some(pace)).await;
    wait_done(&store).await;
    // The paced orders' jobs are the newest.
    let newest = (paced as f64 * jobs_per_event).ceil() as i64;
    let mut delays = common::event_to_call_ms(&store, newest).await;
    delays.sort_unstable();

    let server_rss = common::peak_rss_mib(Some(server.id()));
    for worker in workers {
        worker_rss = worker_rss.max(common::peak_rss_mib(Some(worker.id())));
        stop(worker);
    }
    stop(server);
    println!(
        "{:<12} burn-down {:>7} jobs/s | end to end {:>6.0} events/s ({:.1} jobs each) | at {:.0}/s: p50 {} ms, p99 {} ms | \
         peak RSS server {:.0} MiB{}",
        setup.name,
        format!("{burn:.0}"),
        e2e,
        jobs_per_event,
        half,
        common::percentile(&delays, 0.50),
        common::percentile(&delays, 0.99),
        server_rss,
        if embedded { String::new() } else { format!(", worker {worker_rss:.0} MiB") },
    );
}

fn main() {
    provisio_sdk::http::install_crypto_provider();
    let setups =
        std::env::var("PROVISIO_BENCH_SETUPS").unwrap_or_else(|_| "sqlite,postgres:1,postgres:2,postgres:4".to_owned());
    println!(
        "provisio scale benchmark ({} cores): the provisio binary as separate processes, this one the load generator",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();
        for spec in setups.split(',') {
            run(spec.trim(), &client).await;
        }
    });
}
