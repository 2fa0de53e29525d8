//! Provisio's engine: billing events become durable jobs through automation
//! rules; the worker runs them against providers, one at a time per service,
//! in event order, with retries, reconciliation of unknown outcomes, leases
//! and per-configuration limits; configurations keep their secrets encrypted.
//!
//! [`Engine`] is the shared core (store, providers, vault, settings). What
//! callers may do is split by who they are, one type each:
//!
//! | Facade | Who calls it | What it does | Where |
//! |---|---|---|---|
//! | [`Ingest`] | billing systems | events in: ours, signed, Stripe | [`events`], [`sources`] |
//! | [`Catalog`] | `admin` staff | configurations, products, clients, event sources, webhook subscribers | [`catalog`], [`sources`], [`webhooks`] |
//! | [`Access`] | every request | who is calling; tokens, staff users, client sessions | [`principal`], [`tokens`], [`staff`] |
//! | [`Actions`] | `operate` staff, the owning client | functions on demand, retries, SSO, passwords, credential reveals | [`actions`] |
//! | [`Queries`] | every reader | every read the API answers, reports, the help desk's summary, metrics | [`queries`], [`reports`] |
//! | [`Worker`] | the binary's background tasks | jobs, webhook deliveries, usage sampling | [`worker`], [`webhooks`], [`reports`] |
//!
//! Modules:
//! - [`events`]: the public event format and its ingestion (event, service
//!   change and jobs in one transaction);
//! - [`rules`]: default and per-product automation rules;
//! - [`catalog`]: configurations (secrets sealed by [`vault`]), products, clients;
//! - [`deploy`]: picking a configuration for a new service;
//! - [`import`]: what a configuration already holds becoming services;
//! - [`worker`]: claiming, running and completing jobs;
//! - [`actions`]: functions run on demand by staff or the owning client
//!   (single sign-on, passwords, credential reveals);
//! - [`principal`]: who is calling (staff token and scope, client session,
//!   event source); client sessions and hand-off codes;
//! - [`sources`]: billing systems that sign their events; Stripe;
//! - [`staff`]: staff users, argon2id passwords, sessions and lockout;
//! - [`signin`]: sign-in attempts per network address (spraying);
//! - [`client_view`]: what a client sees of its services (every client door);
//! - [`queries`]: every read: services, jobs, the catalog, a client's own services;
//! - [`reports`]: reports, the help desk's summary, the usage collector;
//! - [`webhooks`]: subscribers told what happens to services and jobs;
//! - [`workbench`]: one provider function run by hand (the console's workbench);
//! - [`demo`]: the `--demo` seed.

pub mod actions;
pub mod catalog;
pub mod client_view;
pub mod demo;
pub mod deploy;
pub mod dry_run;
pub mod events;
pub mod import;
pub mod metrics;
pub mod notices;
pub mod ownership;
pub mod params;
pub mod peers;
pub mod principal;
pub mod queries;
pub mod reports;
pub mod rules;
pub mod signin;
pub mod sources;
pub mod staff;
pub mod sync;
pub mod tokens;
pub mod vault;
pub mod webhooks;
pub mod workbench;
pub mod worker;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use provisio_sdk::Registry;
use provisio_store::models::Product;
use provisio_store::{Store, StoreError};
use serde::Serialize;
use tokio::sync::Notify;

pub use vault::Vault;

/// One field that broke a rule, named by a JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// JSON pointer into the request body.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl Violation {
    /// A violation at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Violation { path: path.into(), message: message.into() }
    }
}

/// What the engine answers when it cannot do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// The request broke the rules; nothing was changed.
    #[error("invalid request: {}", .0.iter().map(|v| format!("{} {}", v.path, v.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Violation>),
    /// A unique value (a name, a slug, an external id) is already taken.
    #[error("{} {}", .0.path, .0.message)]
    Taken(Violation),
    /// The named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// Start-up configuration is wrong.
    #[error("{0}")]
    Config(String),
    /// Stored secrets cannot be opened.
    #[error("{0}")]
    Secrets(String),
    /// The caller is not who it claims, or its proof is stale or reused.
    #[error("{0}")]
    Unauthorized(String),
    /// The caller is known but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Not now: the service or its configuration has no room; try again shortly.
    #[error("{0}")]
    Busy(String),
    /// The caller has used its allowance; it may try again after the wait.
    #[error("{0}")]
    TooMany(String, Duration),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl EngineError {
    /// The field errors of a schema check, as an invalid request.
    pub fn fields(errors: Vec<provisio_sdk::FieldError>) -> Self {
        EngineError::Invalid(errors.into_iter().map(|e| Violation::new(e.path, e.message)).collect())
    }

    /// One invalid field.
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        EngineError::Invalid(vec![Violation::new(path, message)])
    }
}

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This process's worker name (appears on leased jobs).
    pub worker_id: String,
    /// Provider calls in flight at once in this process.
    pub worker_concurrency: usize,
    /// Most jobs claimed per claim transaction.
    pub claim_batch: usize,
    /// How long a claimed job stays with this worker without a heartbeat.
    pub lease: Duration,
    /// Deadline of each provider call.
    pub call_timeout: Duration,
    /// First retry delay; doubled per attempt, with jitter.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_cap: Duration,
    /// Attempts before a job fails.
    pub max_attempts: i64,
    /// How often an idle worker looks for due jobs.
    pub poll_interval: Duration,
    /// Attempts before a webhook delivery is given up (retried with the
    /// jobs' backoff).
    pub webhook_attempts: i64,
    /// How often the usage collector samples each live service's usage;
    /// `None` turns it off.
    pub usage_interval: Option<Duration>,
    /// How often each configuration's system is asked for notices (a
    /// registry's poll messages); `None` turns it off.
    pub notice_interval: Option<Duration>,
    /// How long a service goes without being compared with its system
    /// (sync, drift); `None` turns it off.
    pub sync_interval: Option<Duration>,
    /// How long after a function left an operation pending it is first
    /// followed; each later follow waits twice as long (at most an hour).
    pub follow_interval: Duration,
    /// On shutdown, how long calls in flight may go on; those still running
    /// then are released to be reconciled by the next worker at once.
    pub shutdown_grace: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            worker_id: format!("worker-{}-{}", std::process::id(), fastrand::u32(..)),
            worker_concurrency: 256,
            claim_batch: 128,
            lease: Duration::from_secs(30),
            call_timeout: Duration::from_secs(60),
            retry_base: Duration::from_secs(1),
            retry_cap: Duration::from_secs(300),
            max_attempts: 10,
            poll_interval: Duration::from_millis(500),
            webhook_attempts: 12,
            usage_interval: Some(Duration::from_secs(3600)),
            notice_interval: Some(Duration::from_secs(60)),
            follow_interval: Duration::from_secs(30),
            sync_interval: Some(Duration::from_secs(86_400)),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// The engine: store, providers, vault and settings, shared by the API and the worker.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    registry: Registry,
    vault: Vault,
    settings: Settings,
    /// Wakes the worker when jobs may be ready.
    wake: Arc<Notify>,
    /// Products by `id:N` / `slug:S`, with when they were read.
    products: RwLock<HashMap<String, (Instant, Product)>>,
    metrics: metrics::Metrics,
    /// Sign-in attempts per network address (every door shares it).
    sign_ins: signin::SignInLimit,
}

/// Declares the per-caller facades: each holds the engine (an `Arc`, cheap
/// to clone) and is handed out by the [`Engine`] method of the same name.
macro_rules! facades {
    ($($(#[$doc:meta])* $name:ident => $method:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name {
            engine: Engine,
        }

        impl Engine {
            $(#[$doc])*
            pub fn $method(&self) -> $name {
                $name { engine: self.clone() }
            }
        }
    )*};
}

facades! {
    /// Events in, for billing systems: our format, signed by an event
    /// source, or Stripe's.
    Ingest => ingest;
    /// What `admin` staff configure: provision configurations, products,
    /// clients, event sources and webhook subscribers.
    Catalog => catalog;
    /// Who is calling, and the credentials that say so: staff tokens, staff
    /// users and their sessions, client sessions.
    Access => access;
    /// Functions run on demand by `operate` staff or the owning client, and
    /// job retries.
    Actions => actions;
    /// Every read the API answers: services, jobs, the catalog, reports,
    /// the help desk's summary, metrics. Nothing here changes the store.
    Queries => queries;
    /// The background work of one process: jobs, webhook deliveries, usage
    /// sampling.
    Worker => worker;
}

/// How long a cached product is trusted (another process may change it).
const PRODUCT_CACHE_TTL: Duration = Duration::from_secs(2);

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("settings", &self.inner.settings).finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine over an open store.
    pub fn new(store: Store, registry: Registry, vault: Vault, settings: Settings) -> Self {
        let wake = Arc::new(Notify::new());
        let woken = wake.clone();
        // Another process's jobs wake this one's worker as its own do.
        store.on_announce(Arc::new(move || woken.notify_one()));
        Engine {
            inner: Arc::new(Inner {
                store,
                registry,
                vault,
                settings,
                wake,
                products: RwLock::default(),
                metrics: metrics::Metrics::default(),
                sign_ins: signin::SignInLimit::default(),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The compiled-in blueprints and providers.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The secrets vault.
    pub fn vault(&self) -> &Vault {
        &self.inner.vault
    }

    /// The process's metrics.
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.inner.metrics
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Tells the worker, and every other process sharing the store, that
    /// jobs may be ready or room freed.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
        self.inner.store.announce();
    }

    pub(crate) fn wake_signal(&self) -> &Notify {
        &self.inner.wake
    }

    pub(crate) fn product_cache_get(&self, key: &str) -> Option<Product> {
        let cache = self.inner.products.read().expect("product cache lock");
        cache.get(key).filter(|(at, _)| at.elapsed() < PRODUCT_CACHE_TTL).map(|(_, p)| p.clone())
    }

    pub(crate) fn product_cache_put(&self, key: String, product: Product) {
        self.inner.products.write().expect("product cache lock").insert(key, (Instant::now(), product));
    }

    pub(crate) fn product_cache_clear(&self) {
        self.inner.products.write().expect("product cache lock").clear();
    }
}

impl Engine {
    /// Records one audit entry in a write of its own (for what changes
    /// nothing else in the store: a reveal, a test, a sign-in failure).
    pub(crate) async fn record_audit(
        &self,
        actor: String,
        action: &'static str,
        subject: String,
        details: serde_json::Value,
    ) -> Result<(), EngineError> {
        Ok(self
            .store()
            .write(move |conn| {
                Box::pin(async move { provisio_store::audit::record(conn, &actor, action, &subject, &details).await })
            })
            .await?)
    }
}

/// A service with its product and client, read in the caller's transaction.
pub(crate) async fn service_record(
    conn: &mut provisio_store::Conn,
    service_id: i64,
) -> Result<(provisio_store::models::Service, Product, provisio_store::models::Client), EngineError> {
    let service = provisio_store::services::get(conn, service_id)
        .await?
        .ok_or_else(|| EngineError::NotFound(format!("no service {service_id}")))?;
    let product = provisio_store::products::get(conn, service.product_id)
        .await?
        .ok_or_else(|| EngineError::NotFound("no product".into()))?;
    let client = provisio_store::clients::get(conn, service.client_id)
        .await?
        .ok_or_else(|| EngineError::NotFound("no client".into()))?;
    Ok((service, product, client))
}

/// The `AAD` that binds a configuration's sealed secrets to its row.
pub(crate) fn configuration_aad(id: i64) -> String {
    format!("configuration:{id}")
}

/// The `AAD` that binds a service's sealed secrets to its row.
pub(crate) fn service_aad(id: i64) -> String {
    format!("service:{id}")
}

/// The `AAD` that binds a job's sealed params to it (its idempotency key is unique).
pub(crate) fn job_aad(service_id: i64, idempotency_key: &str) -> String {
    format!("job:{service_id}:{idempotency_key}")
}
