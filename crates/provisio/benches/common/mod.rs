//! What the engine and scale benchmarks share.

use std::sync::Arc;
use std::time::{Duration, Instant};

use provisio_store::Store;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

/// The staff token the benchmarks' servers install.
pub const TOKEN: &str = "bench-token-0123456789";

/// An `order.paid` for a demo coffee: a new service and its job.
pub fn order(run: &str, n: usize) -> Value {
    json!({"id": format!("{run}-{n}"), "type": "order.paid",
           "service": {"external_id": format!("{run}-contract-{n}"),
                       "client": {"external_id": format!("cust-{}", n % 1000), "name": "Ann Lee", "email": "ann@example.com"},
                       "product": "demo-coffee", "fields": {"sugar": 1}}})
}

/// Posts `count` orders to `base` with `concurrency` requests in flight,
/// paced when asked; answers the elapsed time.
pub async fn post_orders(
    client: &reqwest::Client,
    base: &str,
    run: &str,
    count: usize,
    concurrency: usize,
    pace: Option<Duration>,
) -> Duration {
    let started = Instant::now();
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = Vec::with_capacity(count);
    for n in 0..count {
        if let Some(pace) = pace {
            tokio::time::sleep_until((started + pace * n as u32).into()).await;
        }
        let permit = permits.clone().acquire_owned().await.unwrap();
        let (client, url, body) = (client.clone(), format!("{base}/api/v1/events"), order(run, n));
        tasks.push(tokio::spawn(async move {
            let response = client.post(url).bearer_auth(TOKEN).json(&body).send().await.unwrap();
            assert_eq!(response.status().as_u16(), 202, "{}", response.text().await.unwrap());
            drop(permit);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}

/// Event accepted (`received_at`) to first provider call started, per job
/// made by an event among the newest `limit` jobs, ms.
pub async fn event_to_call_ms(store: &Store, limit: i64) -> Vec<i64> {
    store
        .read(|conn| {
            Box::pin(async move {
                let mut delays = Vec::new();
                let filter = provisio_store::jobs::JobFilter { limit, ..Default::default() };
                for job in provisio_store::jobs::list(conn, &filter).await? {
                    let attempts = provisio_store::jobs::attempts(conn, job.id).await?;
                    if let (Some(first), Some(event)) = (attempts.first(), job.event_id)
                        && let Some(event) = provisio_store::events::get(conn, event).await?
                    {
                        delays.push(first.started_at - event.received_at);
                    }
                }
                Ok::<_, provisio_store::StoreError>(delays)
            })
        })
        .await
        .unwrap()
}

/// The `p` quantile of sorted values.
pub fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// The peak resident memory (`VmHWM`) of a process, MiB: `None` is this one.
pub fn peak_rss_mib(pid: Option<u32>) -> f64 {
    let path = pid.map_or_else(|| "/proc/self/status".to_owned(), |pid| format!("/proc/{pid}/status"));
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}
