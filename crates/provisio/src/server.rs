//! `provisio serve` and `provisio worker`: open the store, load the secrets
//! key, make sure a staff token exists, then run the API and/or the worker
//! until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use provisio_engine::vault::KeySource;
use provisio_engine::{Engine, Settings, Vault};
use provisio_sdk::Registry;
use provisio_store::StoreOptions;

/// Where the store and the secrets key are.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// Database URL: `sqlite://PATH` (one machine, embedded) or
    /// `postgres://USER:PASSWORD@HOST/DB` (any number of processes and machines).
    #[arg(long, env = "PROVISIO_DB", default_value = "sqlite://provisio.db")]
    db: String,
    /// Database connections kept open: SQLite's idle readers, PostgreSQL's pool.
    #[arg(long, env = "PROVISIO_DB_CONNECTIONS", default_value_t = 10)]
    db_connections: usize,
    /// The secrets key file, created (mode 0600) on first start unless
    /// PROVISIO_SECRET_KEY (64 hex digits) is set.
    #[arg(long, env = "PROVISIO_KEY_FILE", default_value = "provisio.key")]
    key_file: PathBuf,
}

/// How the worker runs.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// Provider calls in flight at once.
    #[arg(long, env = "PROVISIO_WORKER_CONCURRENCY", default_value_t = 256)]
    worker_concurrency: usize,
    /// Most jobs claimed in one transaction.
    #[arg(long, env = "PROVISIO_CLAIM_BATCH", default_value_t = 128)]
    claim_batch: usize,
    /// Seconds a claimed job stays with a worker that stopped answering.
    #[arg(long, env = "PROVISIO_LEASE_SECS", default_value_t = 30.0)]
    lease_secs: f64,
    /// Deadline of each provider call, seconds.
    #[arg(long, env = "PROVISIO_CALL_TIMEOUT_SECS", default_value_t = 60.0)]
    call_timeout_secs: f64,
    /// First retry delay, milliseconds (doubles per attempt, with jitter).
    #[arg(long, env = "PROVISIO_RETRY_BASE_MS", default_value_t = 1000)]
    retry_base_ms: u64,
    /// Longest retry delay, milliseconds.
    #[arg(long, env = "PROVISIO_RETRY_CAP_MS", default_value_t = 300_000)]
    retry_cap_ms: u64,
    /// Attempts before a job fails.
    #[arg(long, env = "PROVISIO_MAX_ATTEMPTS", default_value_t = 10)]
    max_attempts: i64,
    /// How often an idle worker looks for due jobs, milliseconds.
    #[arg(long, env = "PROVISIO_POLL_MS", default_value_t = 500)]
    poll_ms: u64,
    /// How often each live service's usage is sampled, seconds (0: never).
    #[arg(long, env = "PROVISIO_USAGE_INTERVAL_SECS", default_value_t = 3600)]
    usage_interval_secs: u64,
    /// How often each configuration's system is asked for notices (a
    /// registry's poll messages), seconds (0: never).
    #[arg(long, env = "PROVISIO_NOTICE_INTERVAL_SECS", default_value_t = 60.0)]
    notice_interval_secs: f64,
    /// Seconds before an operation a function left pending (a transfer, a
    /// certificate's validation) is first followed; each later follow waits
    /// twice as long, at most an hour.
    #[arg(long, env = "PROVISIO_FOLLOW_INTERVAL_SECS", default_value_t = 30.0)]
    follow_interval_secs: f64,
    /// Seconds a service goes without being compared with its system (sync
    /// and drift; 0: never).
    #[arg(long, env = "PROVISIO_SYNC_INTERVAL_SECS", default_value_t = 86_400.0)]
    sync_interval_secs: f64,
    /// On SIGTERM (or Ctrl-C), seconds calls in flight may go on; those still
    /// running then are released, for the next worker to check and finish.
    #[arg(long, env = "PROVISIO_SHUTDOWN_GRACE_SECS", default_value_t = 30.0)]
    shutdown_grace_secs: f64,
    /// Attempts before a webhook delivery is given up.
    #[arg(long, env = "PROVISIO_WEBHOOK_ATTEMPTS", default_value_t = 12)]
    webhook_attempts: i64,
}

/// `provisio serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    worker: WorkerArgs,
    /// Address of the staff API.
    #[arg(long, env = "PROVISIO_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Seed a demo client, configurations and one product per blueprint.
    #[arg(long, env = "PROVISIO_DEMO")]
    demo: bool,
    /// The demo providers' state file (with --demo).
    #[arg(long, env = "PROVISIO_DEMO_STATE", default_value = "provisio-demo.sqlite")]
    demo_state: String,
    /// Where clients reach this server, e.g. `https://provisio.example.com`:
    /// hand-off links are made from it, and client cookies are `Secure` when
    /// it is https. Default: `http://` and the listening address.
    #[arg(long, env = "PROVISIO_PUBLIC_URL")]
    public_url: Option<url::Url>,
    /// Serve the API only; run workers with `provisio worker`.
    #[arg(long, env = "PROVISIO_NO_WORKER")]
    no_worker: bool,
    /// Connections open at once (capped by the open-files limit); past it the
    /// longest-idle connection makes room.
    #[arg(long, env = "PROVISIO_MAX_CONNECTIONS", default_value_t = 1024)]
    max_connections: usize,
    /// Seconds a client has to send a request's headers.
    #[arg(long, env = "PROVISIO_HEADER_TIMEOUT_SECS", default_value_t = 10.0)]
    header_timeout_secs: f64,
    /// Seconds a request may take, body included.
    #[arg(long, env = "PROVISIO_REQUEST_TIMEOUT_SECS", default_value_t = 120.0)]
    request_timeout_secs: f64,
    /// Seconds a connection may stay open between requests.
    #[arg(long, env = "PROVISIO_IDLE_TIMEOUT_SECS", default_value_t = 60.0)]
    idle_timeout_secs: f64,
}

/// `provisio worker`.
#[derive(Debug, clap::Args)]
pub struct WorkerOnlyArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    worker: WorkerArgs,
}

fn seconds(value: f64, flag: &str) -> anyhow::Result<Duration> {
    anyhow::ensure!(value.is_finite() && value > 0.0, "{flag} must be a positive number of seconds");
    Ok(Duration::from_secs_f64(value))
}

fn settings(args: &WorkerArgs) -> anyhow::Result<Settings> {
    Ok(Settings {
        worker_concurrency: args.worker_concurrency.max(1),
        claim_batch: args.claim_batch.clamp(1, 10_000),
        lease: seconds(args.lease_secs, "--lease-secs")?,
        call_timeout: seconds(args.call_timeout_secs, "--call-timeout-secs")?,
        retry_base: Duration::from_millis(args.retry_base_ms),
        retry_cap: Duration::from_millis(args.retry_cap_ms.max(args.retry_base_ms)),
        max_attempts: args.max_attempts.max(1),
        poll_interval: Duration::from_millis(args.poll_ms.max(10)),
        usage_interval: (args.usage_interval_secs > 0).then(|| Duration::from_secs(args.usage_interval_secs)),
        notice_interval: (args.notice_interval_secs > 0.0)
            .then(|| seconds(args.notice_interval_secs, "--notice-interval-secs"))
            .transpose()?,
        webhook_attempts: args.webhook_attempts.max(1),
        follow_interval: seconds(args.follow_interval_secs, "--follow-interval-secs")?,
        sync_interval: (args.sync_interval_secs > 0.0)
            .then(|| seconds(args.sync_interval_secs, "--sync-interval-secs"))
            .transpose()?,
        shutdown_grace: seconds(args.shutdown_grace_secs, "--shutdown-grace-secs")?,
        ..Settings::default()
    })
}

/// Logs to stderr: text, or one JSON object a line with `PROVISIO_LOG_FORMAT=json` (each line
/// carries its spans' fields: `request_id`, `job_id`, `service_id`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PROVISIO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if std::env::var("PROVISIO_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().flatten_event(true).with_current_span(false).with_span_list(true).try_init()
    } else {
        builder.try_init()
    };
}

/// The store a URL names: the binary is where a backend is chosen.
pub async fn open_store(url: &str, connections: usize) -> anyhow::Result<provisio_store::Store> {
    let options = StoreOptions { connections, ..StoreOptions::new(url) };
    if provisio_store_postgres::handles(url) {
        Ok(provisio_store_postgres::open(options).await?)
    } else if provisio_store_sqlite::handles(url) {
        Ok(provisio_store_sqlite::open(options).await?)
    } else {
        anyhow::bail!("--db {url}: expected sqlite://PATH or postgres://...")
    }
}

async fn open(args: &StoreArgs, registry: Registry, settings: Settings) -> anyhow::Result<Engine> {
    let store = open_store(&args.db, args.db_connections).await?;
    let env_key = std::env::var("PROVISIO_SECRET_KEY").ok();
    // A database that knows its key never gets a fresh one in place of a lost file.
    if env_key.is_none() && !args.key_file.exists() && provisio_engine::tokens::secrets_key_recorded(&store).await? {
        anyhow::bail!(
            "the secrets key file {} is missing, and {} holds secrets sealed with it: restore the file (or set \
             PROVISIO_SECRET_KEY) rather than starting with a new key",
            args.key_file.display(),
            store.describe()
        );
    }
    let (vault, source) = Vault::load(env_key.as_deref(), &args.key_file)?;
    match source {
        KeySource::Created => {
            tracing::info!(file = %args.key_file.display(), "created a new secrets key file (mode 0600); back it up")
        }
        KeySource::File => {
            tracing::info!(file = %args.key_file.display(), "secrets key loaded from file")
        }
        KeySource::Environment => tracing::info!("secrets key loaded from PROVISIO_SECRET_KEY"),
    }
    let engine = Engine::new(store, registry, vault, settings);
    engine.access().check_secrets_key().await?;
    Ok(engine)
}

/// Makes sure a staff token exists: PROVISIO_ADMIN_TOKEN (replacing the
/// previous environment token), or a new one printed once when none is live.
async fn ensure_token(engine: &Engine) -> anyhow::Result<()> {
    let from_env = std::env::var("PROVISIO_ADMIN_TOKEN").ok().filter(|t| !t.trim().is_empty());
    if let Some(token) = from_env {
        engine.access().install_token(provisio_engine::tokens::ENVIRONMENT, token.trim()).await?;
    } else if let Some(token) = engine.access().ensure_a_token().await? {
        // Shown once: only its digest is stored.
        out!("Staff API token (shown once, keep it): {token}");
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut signal) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            signal.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

/// `provisio serve`.
pub fn serve(args: ServeArgs, registry: Registry) -> anyhow::Result<ExitCode> {
    init_logging();
    let settings = settings(&args.worker)?;
    runtime()?.block_on(async move {
        let engine = open(&args.store, registry, settings).await?;
        ensure_token(&engine).await?;
        if args.demo && engine.catalog().seed_demo(&args.demo_state).await? {
            tracing::info!(products = ?provisio_engine::demo::PRODUCTS, "seeded the demo");
        }
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        tracing::info!(address = %listener.local_addr()?, "staff API listening");
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let worker = (!args.no_worker).then(|| {
            let engine = engine.clone();
            let mut stopped = stopped.clone();
            tokio::spawn(async move {
                engine
                    .worker()
                    .run(async move {
                        let _ = stopped.changed().await;
                    })
                    .await
            })
        });
        let limits = provisio_http::server::Limits {
            max_connections: provisio_http::server::connections_allowed_by_the_system(args.max_connections.max(1)),
            header_timeout: seconds(args.header_timeout_secs, "--header-timeout-secs")?,
            request_timeout: seconds(args.request_timeout_secs, "--request-timeout-secs")?,
            idle_timeout: seconds(args.idle_timeout_secs, "--idle-timeout-secs")?,
        };
        tracing::info!(max_connections = limits.max_connections, "connection limits");
        let public_url = match &args.public_url {
            Some(url) => url.as_str().trim_end_matches('/').to_owned(),
            None => format!("http://{}", listener.local_addr()?),
        };
        let console = provisio_console::ConsoleOptions { public_url: Some(public_url.clone()) };
        let pages = provisio_console::router(engine.clone(), console);
        let options = provisio_http::RouterOptions { public_url: Some(public_url), pages: Some(pages) };
        let router = provisio_http::router_with(engine, options);
        provisio_http::server::serve(listener, router, limits, shutdown_signal()).await?;
        let _ = stop.send(true);
        if let Some(worker) = worker {
            let _ = worker.await;
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `provisio worker`.
pub fn worker(args: WorkerOnlyArgs, registry: Registry) -> anyhow::Result<ExitCode> {
    init_logging();
    let settings = settings(&args.worker)?;
    runtime()?.block_on(async move {
        let engine = open(&args.store, registry, settings).await?;
        tracing::info!(worker = %engine.settings().worker_id, "worker running");
        engine.worker().run(shutdown_signal()).await;
        Ok(ExitCode::SUCCESS)
    })
}
