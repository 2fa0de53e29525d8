//! What the engine and scale benchmarks share.

use provisio_store::Store;

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
