//! The sync scheduler's questions on a store of live services (10,000 by
//! default; `PROVISIO_BENCH_SERVICES` changes it), as `provisio serve` asks
//! them every few seconds: which services are due (none while idle; a
//! batch once due), and how many syncs wait per configuration.
//!
//! ```sh
//! cargo bench -p provisio-store-sqlite --bench sync
//! ```

use std::time::{Duration, Instant};

use provisio_store::configurations::ConfigurationRow;
use provisio_store::products::ProductRow;
use provisio_store::{StoreError, StoreOptions, clients, configurations, drifts, now_ms, products, services};
use serde_json::json;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(run());
}

/// The median of `runs` timings of `question`.
async fn median<F, Fut>(runs: usize, mut question: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        std::hint::black_box(question().await);
        times.push(started.elapsed());
    }
    times.sort();
    times[runs / 2]
}

async fn run() {
    let count: usize = std::env::var("PROVISIO_BENCH_SERVICES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let store = provisio_store_sqlite::open(StoreOptions::new(format!("sqlite://{}/bench.db", dir.path().display())))
        .await
        .unwrap();
    let seeded = Instant::now();
    store
        .write(move |conn| {
            Box::pin(async move {
                let configuration = configurations::insert(
                    conn,
                    &ConfigurationRow {
                        blueprint: "shared-hosting".into(),
                        provider: "demo".into(),
                        name: "bench".into(),
                        config_values: json!({}),
                        attributes: json!({}),
                        max_services: None,
                        max_concurrency: 8,
                        rate_per_minute: Some(600),
                        enabled: true,
                    },
                )
                .await?;
                let product = products::insert(
                    conn,
                    &ProductRow {
                        slug: "bench".into(),
                        name: "bench".into(),
                        blueprint: "shared-hosting".into(),
                        provider: None,
                        deployment: "static".into(),
                        configuration_id: Some(configuration),
                        strategy: None,
                        attribute_filters: json!({}),
                        setup_function: "create".into(),
                        provision_fields: json!({}),
                        rules: json!([]),
                        drift_response: "report".into(),
                    },
                )
                .await?;
                let client = clients::insert(conn, None, "Bench", "bench@example.com").await?;
                for n in 0..count {
                    let data = json!({"username": format!("user{n}")});
                    let service = services::insert(
                        conn,
                        &services::NewService {
                            external_id: None,
                            client_id: client.id,
                            product_id: product,
                            projected_status: "active",
                            provision_data: &data,
                            owner_mark: &format!("mark{n}"),
                        },
                    )
                    .await?;
                    services::set_configuration(conn, service.id, configuration).await?;
                    let change = services::ServiceChange {
                        status: "active",
                        identifier: None,
                        provision_data: &data,
                        secrets: None,
                        last_error: None,
                    };
                    services::apply(conn, service.id, &change).await?;
                    drifts::synced(conn, service.id).await?;
                }
                Ok::<_, StoreError>(())
            })
        })
        .await
        .unwrap();
    println!("seeded {count} live services in {:?}", seeded.elapsed());
    let blueprints = ["shared-hosting", "dns-hosting", "domain-names", "ssl-certificates"];
    let ask = |cutoff: i64| {
        let store = store.clone();
        async move {
            store
                .read(move |conn| {
                    Box::pin(async move { drifts::due_for_sync(conn, &blueprints, cutoff, 500).await.map(|d| d.len()) })
                })
                .await
                .unwrap()
        }
    };
    let idle = median(200, || ask(now_ms() - 86_400_000)).await;
    let due = median(50, || ask(now_ms() + 1)).await;
    let open = median(200, || {
        let store = store.clone();
        async move {
            store.read(|conn| Box::pin(async move { drifts::open_syncs(conn).await.map(|o| o.len()) })).await.unwrap()
        }
    })
    .await;
    println!("| due_for_sync, none due (the idle scheduler's tick) | {count} services | {idle:?} |");
    println!("| due_for_sync, all due (a batch of 500 chosen) | {count} services | {due:?} |");
    println!("| open_syncs (syncs waiting per configuration) | {count} services | {open:?} |");
}
