//! River's workers, as its own bench runs them, for the jobs another process
//! inserts: prints `ready` once working, stops on SIGTERM.

use std::convert::Infallible;
use std::time::Duration;

use riverqueue::{Client, Job, JobArgs, QueueConfig, WorkContext, WorkOutcome, Worker, Workers};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgPoolOptions;

/// The bench's own job kind, so its jobs and load.mjs's are the same.
#[derive(Clone, Debug, Deserialize, JobArgs, Serialize)]
#[river(kind = "benchmark")]
struct BenchmarkArgs {
    num: u64,
}

struct Noop;

impl Worker<BenchmarkArgs> for Noop {
    type Error = Infallible;

    fn work(
        &self,
        _context: WorkContext,
        _job: Job<BenchmarkArgs>,
    ) -> impl Future<Output = Result<WorkOutcome, Self::Error>> + Send {
        std::future::ready(Ok(WorkOutcome::Complete))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let url = std::env::var("DATABASE_URL")?;
    let pool = PgPoolOptions::new().max_connections(50).connect(&url).await?;
    let mut workers = Workers::new();
    workers.add::<BenchmarkArgs, _>(Noop)?;
    let client = Client::builder(pool)
        .id("provisio-bench-river-worker")
        .workers(workers)
        .queue(
            riverqueue::QUEUE_DEFAULT,
            QueueConfig::new(2_000)
                .with_fetch_cooldown(Duration::from_millis(2))
                .with_fetch_poll_interval(Duration::from_millis(20)),
        )
        .build()?;
    let mut run = client.start()?;
    run.wait_ready().await?;
    println!("ready");
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?.recv().await;
    run.stop().await?;
    println!("{{}}");
    Ok(())
}
