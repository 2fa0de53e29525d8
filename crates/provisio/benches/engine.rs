//! Engine benchmark: `cargo bench -p provisio --bench engine`.
//!
//! Runs the real router on loopback over a real SQLite file (WAL,
//! `synchronous=FULL`: a 202 means the event is on disk) with the demo
//! providers, and a load generator in the same process. Prints one line per
//! measurement; results and the machine are written down in BENCHMARKS.md.
//!
//! Sizes can be scaled with `PROVISIO_BENCH_SCALE` (1.0 = the documented run).

use std::sync::Arc;
use std::time::{Duration, Instant};

use provisio_engine::{Engine, Settings, Vault};
use provisio_store::{StoreOptions, now_ms};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

mod common;

use common::{TOKEN, order};

struct Bench {
    base: String,
    client: reqwest::Client,
    engine: Engine,
    _dir: tempfile::TempDir,
}

fn scaled(n: usize) -> usize {
    let scale: f64 = std::env::var("PROVISIO_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    ((n as f64) * scale).max(1.0) as usize
}

async fn setup(settings: Settings, worker: bool, latency_ms: u64, max_concurrency: i64) -> Bench {
    provisio_sdk::http::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("provisio.db").display());
    let store = provisio_store_sqlite::open(StoreOptions::new(url)).await.unwrap();
    let engine = Engine::new(store, provisio_providers::registry(), Vault::new(&[3; 32]), settings);
    engine.access().install_token("bench", TOKEN).await.unwrap();
    let state = dir.path().join("demo.sqlite").display().to_string();
    engine.catalog().seed_demo(&state).await.unwrap();
    let machine = engine.queries().configurations(Some("coffee".into())).await.unwrap()[0].configuration.id;
    engine
        .catalog()
        .update_configuration(
            "bench",
            machine,
            &json!({"max_concurrency": max_concurrency, "values": {"latency_ms": latency_ms, "operation_secs": 0}}),
        )
        .await
        .unwrap();
    if worker {
        let worker = engine.clone();
        tokio::spawn(async move { worker.worker().run(std::future::pending()).await });
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = provisio_http::router(engine.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();
    Bench { base, client, engine, _dir: dir }
}

/// Posts `count` events with `concurrency` requests in flight; answers the elapsed time.
async fn post_events(bench: &Bench, run: &str, count: usize, concurrency: usize, pace: Option<Duration>) -> Duration {
    common::post_orders(&bench.client, &bench.base, run, count, concurrency, pace).await
}

/// Sends `count` events (`event(n)`) straight into the engine, 64 at once;
/// answers the elapsed time.
async fn ingest_directly(bench: &Bench, count: usize, event: impl Fn(usize) -> Value) -> Duration {
    let started = Instant::now();
    let permits = Arc::new(Semaphore::new(64));
    let mut tasks = Vec::with_capacity(count);
    for n in 0..count {
        let permit = permits.clone().acquire_owned().await.unwrap();
        let (engine, event) = (bench.engine.clone(), event(n));
        tasks.push(tokio::spawn(async move {
            engine.ingest().event(&event).await.unwrap();
            drop(permit);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}

async fn active_services(bench: &Bench) -> i64 {
    bench
        .engine
        .store()
        .read(|conn| Box::pin(async move { provisio_store::services::count_by_status(conn).await }))
        .await
        .unwrap()
        .into_iter()
        .filter(|(s, _)| s == "active")
        .map(|(_, n)| n)
        .sum()
}

async fn wait_active(bench: &Bench, count: usize) {
    while (active_services(bench).await as usize) < count {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn fast_settings(concurrency: usize) -> Settings {
    Settings {
        worker_concurrency: concurrency,
        claim_batch: 512,
        poll_interval: Duration::from_millis(100),
        call_timeout: Duration::from_secs(30),
        ..Settings::default()
    }
}

/// Whether a scenario runs (`PROVISIO_BENCH_ONLY=ingest,slow` picks some).
fn wanted(name: &str) -> bool {
    std::env::var("PROVISIO_BENCH_ONLY").map(|only| only.split(',').any(|o| o == name)).unwrap_or(true)
}

const SCENARIOS: [&str; 6] = ["ingest", "ingest-direct", "e2e", "latency", "slow", "sync-rate"];

/// The most of `times` (ms, sorted) inside any `window` ms.
fn busiest_window(times: &[i64], window: i64) -> usize {
    let mut start = 0;
    let mut most = 0;
    for (end, t) in times.iter().enumerate() {
        while times[start] <= t - window {
            start += 1;
        }
        most = most.max(end + 1 - start);
    }
    most
}

fn main() {
    // Each scenario runs in a fresh process, so one's memory and caches do
    // not count against the next (peak RSS is per process).
    if std::env::var("PROVISIO_BENCH_ONLY").is_err() {
        println!(
            "provisio engine benchmark ({} cores)",
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        );
        let me = std::env::current_exe().expect("own path");
        for scenario in SCENARIOS {
            let status = std::process::Command::new(&me)
                .env("PROVISIO_BENCH_ONLY", scenario)
                .status()
                .expect("the scenario runs");
            assert!(status.success(), "scenario {scenario} failed");
        }
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        // 1. Ingest: POST /api/v1/events, durable before 202, no worker.
        if wanted("ingest") {
            let bench = setup(fast_settings(256), false, 0, 64).await;
            let count = scaled(20_000);
            post_events(&bench, "warm", 500, 64, None).await;
            let elapsed = post_events(&bench, "ingest", count, 64, None).await;
            println!(
                "ingest: {count} events, 64 concurrent requests: {:.0} events/s ({:.2} s)",
                count as f64 / elapsed.as_secs_f64(),
                elapsed.as_secs_f64()
            );
        }

        // 1b. The same events straight into the engine (no HTTP), for comparison.
        if wanted("ingest-direct") {
            let bench = setup(fast_settings(256), false, 0, 64).await;
            let count = scaled(20_000);
            let elapsed = ingest_directly(&bench, count, |n| order("direct", n)).await;
            println!("ingest without HTTP: {count} events: {:.0} events/s", count as f64 / elapsed.as_secs_f64());
        }

        // 2. End to end with a no-latency provider: events in, services active.
        if wanted("e2e") {
            let bench = setup(fast_settings(256), true, 0, 256).await;
            let count = scaled(5_000);
            let started = Instant::now();
            post_events(&bench, "e2e", count, 64, None).await;
            wait_active(&bench, count).await;
            let elapsed = started.elapsed();
            println!(
                "end to end: {count} orders to active, no provider latency: {:.0} jobs/s ({:.2} s)",
                count as f64 / elapsed.as_secs_f64(),
                elapsed.as_secs_f64()
            );
        }

        // 3. Latency at moderate load: 200 events/s for 10 s.
        if wanted("latency") {
            let bench = setup(fast_settings(256), true, 0, 256).await;
            let count = scaled(2_000);
            post_events(&bench, "latency", count, 32, Some(Duration::from_millis(5))).await;
            wait_active(&bench, count).await;
            let mut delays = common::event_to_call_ms(bench.engine.store(), 1_000_000).await;
            delays.sort_unstable();
            println!(
                "event accepted to provider call started at 200 events/s ({} events): p50 {} ms, p99 {} ms, max {} ms",
                delays.len(),
                common::percentile(&delays, 0.50),
                common::percentile(&delays, 0.99),
                delays.last().copied().unwrap_or(0)
            );
        }

        // 4. 10,000 services whose provider takes 1 s per call.
        if wanted("slow") {
            let count = scaled(10_000);
            let bench = setup(fast_settings(count), false, 1000, count as i64).await;
            let ingest = post_events(&bench, "slow", count, 64, None).await;
            let before = now_ms();
            let worker = bench.engine.clone();
            tokio::spawn(async move { worker.worker().run(std::future::pending()).await });
            wait_active(&bench, count).await;
            let burn = Duration::from_millis((now_ms() - before) as u64);
            println!(
                "slow provider (1 s per call): {count} services active {:.2} s after the worker started \
             (events ingested beforehand in {:.2} s); peak RSS of the process (server and load generator) {:.0} MiB",
                burn.as_secs_f64(),
                ingest.as_secs_f64(),
                common::peak_rss_mib(None)
            );
        }

        // 5. Sync of 10,000 services on one configuration with a rate limit:
        // every service due again 30 s after its last sync, so the limit binds
        // for the whole run; no 60-second window may hold more calls than it allows.
        if wanted("sync-rate") {
            let count = scaled(10_000);
            let (rate, measured) = (120_i64, Duration::from_secs(150));
            let mut settings = fast_settings(256);
            settings.sync_interval = Some(Duration::from_secs(30));
            let bench = setup(settings, true, 0, 64).await;
            let eu = bench.engine.queries().configurations(Some("shared-hosting".into())).await.unwrap();
            let eu = eu.iter().find(|c| c.configuration.name == "demo-hosting-eu").unwrap().configuration.id;
            let started = Instant::now();
            ingest_directly(&bench, count, |n| {
                json!({"id": format!("sync-{n}"), "type": "order.paid",
                    "service": {"external_id": format!("sync-contract-{n}"),
                                "client": {"external_id": format!("cust-{}", n % 1000), "name": "Ann Lee", "email": "ann@example.com"},
                                "product": "demo-hosting",
                                "fields": {"domain": format!("site{n}.example.net"), "username": format!("user{n}")}}})
            })
            .await;
            wait_active(&bench, count).await;
            let created = started.elapsed();
            let change = json!({"rate_per_minute": rate});
            bench.engine.catalog().update_configuration("bench", eu, &change).await.unwrap();
            let since = now_ms();
            tokio::time::sleep(measured).await;
            let (calls, syncs) = bench
                .engine
                .store()
                .read(move |conn| {
                    Box::pin(async move {
                        let starts = provisio_store::jobs::attempt_spans(conn, eu, since).await?;
                        let calls: Vec<i64> = starts.iter().map(|a| a.started_at).collect();
                        let syncs = starts.iter().filter(|a| a.origin == "sync").count();
                        Ok::<_, provisio_store::StoreError>((calls, syncs))
                    })
                })
                .await
                .unwrap();
            let busiest = busiest_window(&calls, 60_000);
            println!(
                "sync under a rate limit: {count} services on one configuration (made in {:.1} s), rate_per_minute {rate}, \
                 {} s measured: {syncs} syncs of {} calls; the busiest 60-second window held {busiest} calls ({})",
                created.as_secs_f64(),
                measured.as_secs(),
                calls.len(),
                if busiest as i64 <= rate { "within the limit" } else { "OVER THE LIMIT" }
            );
        }
    });
}
