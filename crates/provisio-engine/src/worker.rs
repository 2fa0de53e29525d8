//! The worker: claims due jobs with a lease, runs them against providers and
//! records the outcome together with the service's new state.
//!
//! Guarantees, and where they come from:
//! - one job at a time per service, in event order: `jobs::ready` only
//!   offers the first unfinished job of each service, and claims happen in
//!   the store's single writer;
//! - per-configuration concurrency and rate limits: checked in the claim
//!   transaction against the jobs table, so they hold across processes;
//! - nothing done twice: a job whose attempt may have happened (the call
//!   timed out after the request left, or its worker died and the lease ran
//!   out) is reconciled with `get_info` before anything is retried, and every
//!   attempt carries the job's idempotency key;
//! - a job's success and the service's new status and provision data are
//!   written in one transaction.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use provisio_sdk::{
    BlueprintDescriptor, CallOptions, CallReport, Envelope, ErrorKind, FunctionDescriptor, FunctionKind, Progress,
    ServiceStatus, invoke,
};
use provisio_store::models::{Client, Configuration, Job, Product, Service};
use provisio_store::{Conn, clients, configurations, jobs, now_ms, products, services};
use serde_json::{Map, Value, json};
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::deploy;
use crate::params;
use crate::rules::{self, parse_status};
use crate::webhooks::{self, WebhookEvent};
use crate::{EngineError, Worker, job_aad, ownership, service_aad};

/// A job this worker holds, with everything needed to run it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub job: Job,
    pub service: Service,
    pub product: Product,
    pub client: Client,
    pub configuration: Configuration,
}

/// What reconciling an earlier attempt found.
enum Reconciled {
    /// The check settles the job (adopted, already gone, still unknown...).
    Settled(CallReport, Outcome),
    /// The call has to be made; the check made, if any, is recorded before it.
    Proceed(Option<CallReport>),
}

/// How an attempt ended, as the job sees it.
#[derive(Debug)]
enum Outcome {
    Succeeded { data: Value, note: String },
    Retry { reconcile: bool, message: String },
    Failed { message: String },
}

impl Worker {
    /// Runs the worker until `shutdown` completes, then waits (up to
    /// `Settings::shutdown_grace`) for calls in flight and releases the rest.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        let settings = self.engine.settings().clone();
        let permits = Arc::new(Semaphore::new(settings.worker_concurrency.max(1)));
        let in_flight = InFlight::default();
        let heartbeat = tokio::spawn(self.clone().heartbeat(in_flight.clone()));
        // Webhooks are sent beside the worker, never in its way.
        let deliverer = {
            let engine = self.clone();
            tokio::spawn(async move { engine.deliver_webhooks(std::future::pending()).await })
        };
        let collector = {
            let engine = self.clone();
            tokio::spawn(async move { engine.collect_usage(std::future::pending()).await })
        };
        let notices = {
            let engine = self.clone();
            tokio::spawn(async move { engine.collect_notices(std::future::pending()).await })
        };
        let syncs = {
            let engine = self.clone();
            tokio::spawn(async move { engine.schedule_syncs(std::future::pending()).await })
        };
        tokio::pin!(shutdown);
        loop {
            let free = permits.available_permits();
            let claimed = if free == 0 {
                Vec::new()
            } else {
                match self.claim(free.min(settings.claim_batch)).await {
                    Ok(claimed) => claimed,
                    Err(err) => {
                        tracing::error!(error = %err, "claiming jobs failed");
                        Vec::new()
                    }
                }
            };
            let idle = claimed.is_empty();
            for claimed in claimed {
                let permit = permits.clone().try_acquire_owned().expect("claimed no more than the free permits");
                let worker = self.clone();
                // Only jobs a task is really running get their leases renewed;
                // the guard forgets the job even if the task panics.
                let guard = in_flight.track(claimed.job.id);
                let span = tracing::info_span!("job", job_id = claimed.job.id, service_id = claimed.service.id);
                tokio::spawn(
                    async move {
                        worker.run_claimed(claimed).await;
                        drop(guard);
                        drop(permit);
                        worker.engine.wake();
                    }
                    .instrument(span),
                );
            }
            if idle {
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = self.engine.wake_signal().notified() => {}
                    _ = tokio::time::sleep(settings.poll_interval) => {}
                }
            } else if tokio::time::timeout(Duration::ZERO, &mut shutdown).await.is_ok() {
                break;
            }
        }
        // No more claims. Calls in flight may finish within the grace (their
        // leases still renewed); those still running then are released, so
        // another worker reconciles and finishes them now, not when their
        // leases would have run out.
        let all = u32::try_from(settings.worker_concurrency.max(1)).unwrap_or(u32::MAX);
        if tokio::time::timeout(settings.shutdown_grace, permits.acquire_many(all)).await.is_err() {
            let (worker, ids) = (settings.worker_id.clone(), in_flight.ids());
            let released = self
                .engine
                .store()
                .write(move |conn| Box::pin(async move { jobs::release(conn, &worker, &ids, now_ms()).await }))
                .await;
            match released {
                Ok(ids) => tracing::info!(jobs = ?ids, "shutting down: released the jobs still running"),
                Err(err) => tracing::warn!(error = %err, "shutting down: jobs not released; their leases will run out"),
            }
        }
        heartbeat.abort();
        // A delivery cut short is sent again once its lease ends (at least once).
        deliverer.abort();
        collector.abort();
        notices.abort();
        syncs.abort();
    }

    /// Keeps the leases of the jobs in flight alive and takes back jobs of
    /// workers that stopped.
    async fn heartbeat(self, in_flight: InFlight) {
        let every = self.engine.settings().lease / 3;
        loop {
            tokio::time::sleep(every).await;
            let worker = self.engine.settings().worker_id.clone();
            let lease = self.engine.settings().lease.as_millis() as i64;
            let ids = in_flight.ids();
            let result = self
                .engine
                .store()
                .write(move |conn| {
                    Box::pin(async move {
                        let now = now_ms();
                        jobs::extend_leases(conn, &worker, &ids, now + lease).await?;
                        jobs::take_back_expired(conn, now).await
                    })
                })
                .await;
            match result {
                Ok(taken) if !taken.is_empty() => {
                    self.engine.metrics().takeovers(taken.len());
                    tracing::warn!(jobs = ?taken, "took back jobs whose worker stopped; they will be reconciled");
                    self.engine.wake();
                }
                Ok(_) => {}
                Err(err) => tracing::error!(error = %err, "heartbeat failed"),
            }
        }
    }

    /// Claims up to `limit` due jobs for this worker.
    pub async fn claim(&self, limit: usize) -> Result<Vec<Claimed>, EngineError> {
        // Many wakes find nothing due (a job done with none waiting): a read,
        // taking no lock and no writer's turn, saves those a claim. A job made
        // due after this read wakes the worker again.
        let now = now_ms();
        let due = self.engine.store().read(move |conn| Box::pin(async move { jobs::any_due(conn, now).await })).await?;
        if !due {
            return Ok(Vec::new());
        }
        let engine = self.clone();
        self.engine.store().write(move |conn| Box::pin(async move { engine.claim_in(conn, limit).await })).await
    }

    async fn claim_in(&self, conn: &mut Conn, limit: usize) -> Result<Vec<Claimed>, EngineError> {
        // Limits, capacity and one-running-job-per-service are judged from
        // what this transaction reads: no other claim may read the same.
        conn.lock_admissions().await?;
        let now = now_ms();
        let configs: HashMap<i64, Configuration> =
            configurations::list(conn, None).await?.into_iter().map(|c| (c.id, c)).collect();
        let mut running = jobs::running_by_configuration(conn).await?;
        let recent = if configs.values().any(|c| c.rate_per_minute.is_some()) {
            jobs::attempts_since_by_configuration(conn, now - 60_000).await?
        } else {
            HashMap::new()
        };
        // A configuration that can take no call now (disabled, at its
        // concurrency, or out of its rate) is left out of the query itself, so
        // its backlog never hides another configuration's work.
        let saturated = |configuration: &Configuration, running: &HashMap<i64, i64>| {
            let in_flight = running.get(&configuration.id).copied().unwrap_or(0);
            let recent = recent.get(&configuration.id).copied().unwrap_or(0);
            !configuration.enabled || no_room(configuration, in_flight, recent).is_some()
        };
        let mut blocked: Vec<i64> = configs.values().filter(|c| saturated(c, &running)).map(|c| c.id).collect();
        let mut counts: Option<HashMap<i64, i64>> = None;
        let mut products_by_id: HashMap<i64, Product> = HashMap::new();
        // Calls every configuration could still take now: no claim can
        // start more, so no more candidates are read (a saturated system
        // reads a few, for the jobs that settle without a call, not a batch
        // it cannot start: on PostgreSQL the admission lock is held meanwhile).
        let room = |blocked: &[i64], running: &HashMap<i64, i64>| -> usize {
            configs
                .values()
                .filter(|c| !blocked.contains(&c.id))
                .map(|c| {
                    let in_flight = running.get(&c.id).copied().unwrap_or(0);
                    let recent = recent.get(&c.id).copied().unwrap_or(0);
                    let by_rate = c.rate_per_minute.map_or(i64::MAX, |rate| rate - recent - in_flight);
                    usize::try_from((c.max_concurrency - in_flight).min(by_rate)).unwrap_or(0)
                })
                .sum()
        };
        let mut claimed = Vec::new();
        // A few rounds: a configuration that fills up while claiming joins
        // `blocked`, and the next round finds other work in its place.
        for _round in 0..4 {
            let wanted = (limit - claimed.len()).min(room(&blocked, &running)) * 2 + 8;
            let ready = jobs::ready(conn, now, &blocked, wanted as i64).await?;
            let exhausted = ready.len() < wanted;
            let before = claimed.len();
            // The round's services (one job each: `ready` gives one per
            // service) and their clients, read in two statements rather than
            // two per job while the admission lock is held.
            let ids: Vec<i64> = ready.iter().map(|j| j.service_id).collect();
            let mut services = services::get_locked_many(conn, &ids).await?;
            let mut owners: Vec<i64> = services.values().map(|s| s.client_id).collect();
            owners.sort_unstable();
            owners.dedup();
            let clients = clients::get_many(conn, &owners).await?;
            for job in ready {
                if claimed.len() >= limit {
                    break;
                }
                let Some(service) = services.remove(&job.service_id) else { continue };
                let Some(client) = clients.get(&service.client_id).cloned() else { continue };
                let Some(found) = self
                    .claim_one(conn, job, service, client, &configs, &mut counts, &mut products_by_id, &blocked, now)
                    .await?
                else {
                    continue;
                };
                let configuration_id = found.configuration.id;
                *running.entry(configuration_id).or_insert(0) += 1;
                if saturated(&found.configuration, &running) && !blocked.contains(&configuration_id) {
                    blocked.push(configuration_id);
                }
                claimed.push(found);
            }
            // A round that claimed nothing changed nothing the next would read.
            if exhausted || claimed.len() >= limit || claimed.len() == before {
                break;
            }
        }
        Ok(claimed)
    }

    /// Claims one ready job if it can run now (settling it instead when it
    /// cannot run at all). `None`: not claimed.
    #[allow(clippy::too_many_arguments)]
    async fn claim_one(
        &self,
        conn: &mut Conn,
        job: Job,
        mut service: Service,
        client: Client,
        configs: &HashMap<i64, Configuration>,
        counts: &mut Option<HashMap<i64, i64>>,
        products_by_id: &mut HashMap<i64, Product>,
        blocked: &[i64],
        now: i64,
    ) -> Result<Option<Claimed>, EngineError> {
        let settings = self.engine.settings();
        // Everything the job needs is read before it is claimed (the service locked).
        let product = match products_by_id.get(&service.product_id) {
            Some(product) => product.clone(),
            None => {
                let Some(product) = products::get(conn, service.product_id).await? else {
                    return Ok(None);
                };
                products_by_id.insert(product.id, product.clone());
                product
            }
        };
        let Ok(blueprint) = self.engine.registry().blueprint(&product.blueprint) else {
            return Ok(None);
        };
        let Some(function) = blueprint.function(&job.function) else {
            let message = format!("{} has no function {}", blueprint.id, job.function);
            jobs::finish(conn, job.id, "failed", Some(&message)).await?;
            return Ok(None);
        };
        let status = parse_status(&service.status);
        if !function.statuses.contains(&status) {
            let message = format!("Skipped: {} does not apply to a {} service", job.function, status.as_str());
            jobs::finish(conn, job.id, "skipped", Some(&message)).await?;
            services::add_history(conn, service.id, Some(&service.status), &service.status, Some(job.id), &message)
                .await?;
            settle_projection(conn, service.id).await?;
            return Ok(None);
        }
        let is_setup = job.function == product.setup_function;
        if !is_setup && service.configuration_id.is_none() {
            let message = format!("Skipped: the service was never set up, so {} cannot run", job.function);
            jobs::finish(conn, job.id, "skipped", Some(&message)).await?;
            settle_projection(conn, service.id).await?;
            return Ok(None);
        }
        // A setup reserves the service's identifier on its configuration
        // (picking one first for a dynamic product) before any call is made.
        let wanted = if is_setup && service.identifier.is_none() {
            ownership::identifier_in(blueprint, &service.provision_data)
        } else {
            None
        };
        let configuration_id = match service.configuration_id {
            Some(id) => id,
            None => {
                let counts = match counts {
                    Some(counts) => counts,
                    None => counts.insert(configurations::service_counts(conn).await?),
                };
                let cursor = if product.strategy.as_deref() == Some("round_robin") {
                    products::next_round_robin(conn, product.id).await?
                } else {
                    0
                };
                let choices = choices(conn, blueprint, &service, &product, configs.values(), wanted.as_deref()).await?;
                // Busy configurations are a choice later, not now.
                let (free, busy): (Vec<Configuration>, Vec<Configuration>) =
                    choices.into_iter().partition(|c| !blocked.contains(&c.id));
                let picked = match deploy::pick(&product, &free, counts, cursor) {
                    Err(_) if deploy::pick(&product, &busy, counts, cursor).is_ok() => return Ok(None),
                    picked => picked,
                };
                match picked {
                    Ok(id) => {
                        *counts.entry(id).or_insert(0) += 1;
                        id
                    }
                    Err(deploy::NoCapacity(why)) => {
                        let message = match &wanted {
                            Some(identifier) => format!("No capacity for {identifier}: {why}"),
                            None => format!("No capacity: {why}"),
                        };
                        jobs::finish(conn, job.id, "failed", Some(&message)).await?;
                        fail_service(conn, &service, Some(job.id), &message).await?;
                        settle_projection(conn, service.id).await?;
                        return Ok(None);
                    }
                }
            }
        };
        let Some(configuration) = configs.get(&configuration_id) else {
            return Ok(None);
        };
        if blocked.contains(&configuration_id) {
            return Ok(None);
        }
        if let Some(identifier) = &wanted {
            if let Err(refused) = ownership::reserve(conn, blueprint, &service, configuration_id, identifier).await {
                let EngineError::Conflict(message) = refused else { return Err(refused) };
                let message = format!("Refused: {message}");
                jobs::finish(conn, job.id, "failed", Some(&message)).await?;
                fail_service(conn, &service, Some(job.id), &message).await?;
                settle_projection(conn, service.id).await?;
                return Ok(None);
            }
            service.identifier = Some(identifier.clone());
        } else if service.configuration_id.is_none() {
            services::set_configuration(conn, service.id, configuration_id).await?;
        }
        service.configuration_id = Some(configuration_id);
        let lease_until = now + settings.lease.as_millis() as i64;
        if !jobs::claim(conn, job.id, &settings.worker_id, lease_until, Some(configuration_id)).await? {
            return Ok(None);
        }
        if is_setup && service.status != "provisioning" {
            let note = format!("Provisioning on {}", configuration.name);
            services::add_history(conn, service.id, Some(&service.status), "provisioning", Some(job.id), &note).await?;
            let change = services::ServiceChange {
                status: "provisioning",
                identifier: None,
                provision_data: &service.provision_data,
                secrets: None,
                last_error: None,
            };
            services::apply(conn, service.id, &change).await?;
            service.status = "provisioning".into();
        }
        let mut job = job;
        job.attempts += 1;
        job.state = "running".into();
        job.configuration_id = Some(configuration_id);
        Ok(Some(Claimed { job, service, product, client, configuration: configuration.clone() }))
    }

    /// Runs one claimed job to its next state.
    pub async fn run_claimed(&self, claimed: Claimed) {
        let job_id = claimed.job.id;
        if let Err(err) = self.run_claimed_inner(claimed).await {
            // The lease will run out and another attempt will reconcile.
            tracing::error!(job = job_id, error = %err, "recording a job's outcome failed");
        }
    }

    async fn run_claimed_inner(&self, claimed: Claimed) -> Result<(), EngineError> {
        let address = format!("{}/{}", claimed.configuration.blueprint, claimed.configuration.provider);
        let entry = match self.engine.registry().provider(&address) {
            Ok(entry) => entry.clone(),
            Err(err) => {
                let outcome = Outcome::Failed { message: format!("Provider {address} is not available: {err}") };
                return self.record(&claimed, Vec::new(), outcome).await;
            }
        };
        let blueprint = entry.blueprint();
        let function = blueprint.function(&claimed.job.function).expect("checked at claim").clone();
        let values = match self.engine.configuration_values(&claimed.configuration) {
            Ok(values) => values,
            Err(err) => {
                return self.record(&claimed, Vec::new(), Outcome::Failed { message: err.to_string() }).await;
            }
        };
        // Sealed secrets: the customer's secret fields, and the job's own secret params.
        let unsealed = self
            .engine
            .vault()
            .open_fields(&service_aad(claimed.service.id), claimed.service.secrets.as_deref())
            .and_then(|service_secrets| {
                let aad = job_aad(claimed.service.id, &claimed.job.idempotency_key);
                Ok((
                    params::fields_of(&service_secrets),
                    self.engine.vault().open_fields(&aad, claimed.job.secrets.as_deref())?,
                ))
            });
        let (secret_fields, job_secrets) = match unsealed {
            Ok(unsealed) => unsealed,
            Err(err) => return self.record(&claimed, Vec::new(), Outcome::Failed { message: err.to_string() }).await,
        };
        let mut args = claimed.job.args.as_object().cloned().unwrap_or_default();
        args.extend(job_secrets);
        // Secret fields of the order (a chosen password) are for the setup
        // only: a later change_password {} must generate a new one.
        let secret_fields =
            if claimed.job.function == claimed.product.setup_function { secret_fields } else { Map::new() };
        let params = params::build(
            &function,
            blueprint.service_identifier,
            &claimed.service,
            &claimed.client,
            &secret_fields,
            &Value::Object(args),
        );
        let options = CallOptions {
            timeout: self.engine.settings().call_timeout,
            idempotency_key: Some(claimed.job.idempotency_key.clone()),
            provision_data: claimed.service.provision_data.as_object().cloned().unwrap_or_default(),
            peers: Some(self.engine.peers_for(claimed.client.id)),
            owner: Some(claimed.service.owner_mark.clone()),
            ..CallOptions::default()
        };

        let mut reports = Vec::new();
        if claimed.job.reconcile {
            match self.reconcile(&claimed, &entry, &values, &params, &options).await {
                Reconciled::Settled(report, outcome) => {
                    return self.record(&claimed, vec![("get_info", report)], outcome).await;
                }
                // The check is kept in the job's record ("not there, so created").
                Reconciled::Proceed(check) => reports.extend(check.map(|report| ("get_info", report))),
            }
        }
        let report = invoke::call(&entry, &values, &claimed.job.function, &params, &options).await;
        let outcome = self.judge(&claimed, &function, &report.envelope);
        reports.push((function.name, report));
        self.record(&claimed, reports, outcome).await
    }

    /// Before retrying a job whose last attempt may have happened: asks the
    /// provider. Answers an outcome if that settles the job, or the check
    /// made (if any) to go on with the call.
    async fn reconcile(
        &self,
        claimed: &Claimed,
        entry: &provisio_sdk::ProviderEntry,
        values: &Value,
        params: &Value,
        options: &CallOptions,
    ) -> Reconciled {
        let blueprint = entry.blueprint();
        let function = &claimed.job.function;
        let is_setup = *function == claimed.product.setup_function;
        if !is_setup && function != "terminate" {
            // Every other function is idempotent, or keyed by the job's idempotency key.
            return Reconciled::Proceed(None);
        }
        let (Some(get_info), Some(identifier)) =
            (blueprint.function("get_info"), params.get(blueprint.service_identifier).cloned())
        else {
            return Reconciled::Proceed(None);
        };
        let query = json!({ blueprint.service_identifier: identifier });
        let query = params::build(
            get_info,
            blueprint.service_identifier,
            &claimed.service,
            &claimed.client,
            &Map::new(),
            &query,
        );
        let report = invoke::call(entry, values, "get_info", &query, options).await;
        let outcome = match (report.envelope.error_kind, is_setup) {
            (None, true) => Outcome::Succeeded {
                data: report.envelope.data.clone().unwrap_or(Value::Null),
                note: "Adopted: the earlier attempt had already succeeded".into(),
            },
            (Some(ErrorKind::NotFound), false) => {
                Outcome::Succeeded { data: json!({}), note: "Already gone: the earlier attempt had succeeded".into() }
            }
            // Not there yet (or still there): the call has to be made.
            (Some(ErrorKind::NotFound), true) | (None, false) => return Reconciled::Proceed(Some(report)),
            // There, but not this service's (another owner mark, or none):
            // never adopted, never acted on.
            (Some(ErrorKind::Conflict), _) => Outcome::Failed { message: report.envelope.message.to_string() },
            (_, _) if claimed.job.attempts >= claimed.job.max_attempts => Outcome::Failed {
                message: format!(
                    "The outcome of an earlier attempt is still unknown after {} attempts; check the provider",
                    claimed.job.attempts
                ),
            },
            (_, _) => Outcome::Retry { reconcile: true, message: report.envelope.message.to_string() },
        };
        Reconciled::Settled(report, outcome)
    }

    fn judge(&self, claimed: &Claimed, function: &FunctionDescriptor, envelope: &Envelope) -> Outcome {
        let out_of_attempts = claimed.job.attempts >= claimed.job.max_attempts;
        let message = envelope.message.to_string();
        match envelope.error_kind {
            None => Outcome::Succeeded {
                data: envelope.data.clone().unwrap_or(Value::Null),
                note: format!("{} succeeded", function.name),
            },
            // A sync that finds nothing: the resource is gone (a drift).
            Some(ErrorKind::NotFound) if claimed.job.origin == jobs::SYNC => {
                Outcome::Succeeded { data: Value::Null, note: "Not found at the system".into() }
            }
            Some(ErrorKind::NotFound) if function.name == "terminate" => {
                Outcome::Succeeded { data: json!({}), note: "Already gone at the provider".into() }
            }
            Some(ErrorKind::Transient) if !out_of_attempts => Outcome::Retry { reconcile: false, message },
            Some(ErrorKind::OutcomeUnknown) if !out_of_attempts => Outcome::Retry { reconcile: true, message },
            Some(ErrorKind::OutcomeUnknown) => Outcome::Failed {
                message: format!(
                    "{message} (outcome still unknown after {} attempts; check the provider)",
                    claimed.job.attempts
                ),
            },
            Some(_) => Outcome::Failed { message },
        }
    }

    pub(crate) fn backoff(&self, attempts: i64) -> i64 {
        let settings = self.engine.settings();
        let exponent = u32::try_from(attempts.saturating_sub(1)).unwrap_or(0).min(20);
        let delay = settings.retry_base.saturating_mul(2u32.saturating_pow(exponent)).min(settings.retry_cap);
        // Equal jitter: half fixed, half random, so retries of many jobs spread out.
        let millis = delay.as_millis() as f64;
        (millis * (0.5 + fastrand::f64() * 0.5)) as i64
    }

    /// Writes an attempt and the job's and service's new state in one transaction.
    async fn record(
        &self,
        claimed: &Claimed,
        reports: Vec<(&str, CallReport)>,
        outcome: Outcome,
    ) -> Result<(), EngineError> {
        let blueprint = self
            .engine
            .registry()
            .blueprint(&claimed.product.blueprint)
            .map_err(|e| EngineError::Conflict(e.to_string()))?;
        let function = blueprint.function(&claimed.job.function).cloned();
        let outcome_name = match &outcome {
            Outcome::Succeeded { .. } => "succeeded",
            Outcome::Retry { .. } => "retrying",
            Outcome::Failed { .. } => "failed",
        };
        // Counted once on record (below), so a scrape never sees more attempts than the store.
        let calls: Vec<(String, u64)> = reports.iter().map(|(name, r)| ((*name).to_owned(), r.duration_ms)).collect();
        let (blueprint_name, configuration_name) =
            (claimed.product.blueprint.clone(), claimed.configuration.name.clone());
        let attempts: Vec<StoredAttempt> =
            reports.into_iter().map(|(name, report)| stored_attempt(blueprint, name, report)).collect();
        let (result, secrets) = match (&outcome, &function) {
            (Outcome::Succeeded { data, .. }, Some(function)) => {
                let (kept, secrets) = params::split_secrets(function, data);
                (kept, secrets)
            }
            _ => (Map::new(), Map::new()),
        };
        let sealed = if secrets.is_empty() {
            None
        } else {
            let aad = service_aad(claimed.service.id);
            // A seal that cannot be opened is kept as it is, never overwritten.
            let mut all = self.engine.vault().open_fields(&aad, claimed.service.secrets.as_deref())?;
            all.extend(secrets);
            self.engine.vault().seal_fields(&aad, &all)
        };
        let retry_at = now_ms() + self.backoff(claimed.job.attempts);
        let claimed = claimed.clone();
        let params_identifier = (claimed.job.function == claimed.product.setup_function)
            .then(|| ownership::identifier_in(blueprint, &claimed.service.provision_data))
            .flatten();
        let worker = self.engine.settings().worker_id.clone();
        let (follow_interval, max_attempts) =
            (self.engine.settings().follow_interval, self.engine.settings().max_attempts);
        let job_id = claimed.job.id;
        let held = self.engine
            .store()
            .write(move |conn| {
                Box::pin(async move {
                    let job = &claimed.job;
                    for (name, started_at, duration_ms, outcome_name, envelope, http_log) in &attempts {
                        jobs::insert_attempt(
                            conn,
                            &jobs::NewAttempt {
                                job_id: job.id,
                                number: job.attempts,
                                function: name,
                                configuration_id: job.configuration_id,
                                started_at: *started_at,
                                duration_ms: *duration_ms,
                                outcome: outcome_name,
                                envelope,
                                http_log,
                            },
                        )
                        .await?;
                    }
                    // A worker whose lease was taken back (it stalled past it) keeps
                    // its attempt on record but changes nothing: the job is
                    // another worker's now, and will be reconciled first.
                    if !jobs::held_by(conn, job.id, &worker, job.attempts).await? {
                        // But a secret it was answered (a generated password) is the only
                        // copy there is: kept sealed with the service when it names the
                        // resource the service holds (the one reconciliation adopts), so
                        // no customer ends up with an account whose credentials nobody has.
                        if let (Outcome::Succeeded { data, .. }, Some(sealed)) = (&outcome, &sealed)
                            && let Some(current) = services::get(conn, claimed.service.id).await?
                            && current.secrets == claimed.service.secrets
                            && current.identifier.is_some()
                            && ownership::identifier_in(blueprint, data) == current.identifier
                        {
                            services::set_secrets(conn, current.id, Some(sealed)).await?;
                            let note = format!("Kept the secret answered late by job {} (its lease had been taken back)", job.id);
                            services::add_history(conn, current.id, Some(&current.status), &current.status, Some(job.id), &note)
                                .await?;
                        }
                        return Ok(false);
                    }
                    // The service as it is now (this worker held its only running job).
                    let service =
                        services::get_locked(conn, claimed.service.id).await?.unwrap_or(claimed.service.clone());
                    match outcome {
                        Outcome::Succeeded { note, data } => {
                            jobs::finish(conn, job.id, "succeeded", Some(&note)).await?;
                            // A sync changes the record only as the product's drift response says.
                            if job.origin == jobs::SYNC {
                                crate::sync::apply(conn, blueprint, &claimed.product, &service, job.id, &data, max_attempts)
                                    .await?;
                                settle_projection(conn, claimed.service.id).await?;
                                return Ok(true);
                            }
                            // How far the operation has got, as the blueprint reads its
                            // result: a setup the system has only begun (a transfer
                            // waiting for the other registrar, a certificate being
                            // validated) leaves the service provisioning, followed
                            // until the system has done it (or a notice says so),
                            // failed it, or the blueprint's deadline has passed.
                            let setup = job.function == claimed.product.setup_function;
                            let following = job.origin == jobs::FOLLOW;
                            // An import's adopt: the resource, now marked, is as its system says.
                            let adopting = job.origin == jobs::IMPORT;
                            let waiting = setup || (following && parse_status(&service.status) == ServiceStatus::Provisioning);
                            // A later lifecycle operation (a certificate's renewal) is
                            // followed too, leaving the live service's status alone.
                            let carried = !waiting
                                && !adopting
                                && if following {
                                    job.args.get("follow_keep_status").and_then(Value::as_bool) == Some(true)
                                } else {
                                    blueprint.function(&job.function).is_some_and(|f| f.kind == FunctionKind::Lifecycle)
                                };
                            let (since, round) = follow_round(job);
                            let progress = match blueprint.follow {
                                Some(follow) if waiting || carried => match (follow.progress)(&Value::Object(result.clone())) {
                                    Progress::Pending(_) if now_ms() - since > follow.deadline.as_millis() as i64 => {
                                        Progress::Failed(past_deadline(follow))
                                    }
                                    progress => progress,
                                },
                                _ => Progress::Done,
                            };
                            let (status, last_error) = match &progress {
                                Progress::Failed(why) if waiting => (ServiceStatus::Failed.as_str().to_owned(), Some(why.clone())),
                                Progress::Failed(why) if carried => (service.status.clone(), Some(why.clone())),
                                Progress::Pending(_) if waiting => (ServiceStatus::Provisioning.as_str().to_owned(), None),
                                Progress::Done if following && waiting => (ServiceStatus::Active.as_str().to_owned(), None),
                                _ if adopting => (
                                    match result.get("state").and_then(Value::as_str) {
                                        Some("suspended") => ServiceStatus::Suspended,
                                        _ => ServiceStatus::Active,
                                    }
                                    .as_str()
                                    .to_owned(),
                                    None,
                                ),
                                _ => (
                                    rules::effect(&job.function, &claimed.product.setup_function)
                                        .map(|s| s.as_str().to_owned())
                                        .unwrap_or_else(|| service.status.clone()),
                                    None,
                                ),
                            };
                            if (waiting || carried)
                                && let Progress::Pending(expected) = &progress
                                && let Some(follow) = blueprint.follow
                            {
                                let expected = expected.map(|at| at.timestamp_millis());
                                let later = Later { since, round, keep_status: carried, expected };
                                follow_later(conn, service.id, follow, later, follow_interval, max_attempts).await?;
                            }
                            // A follow that found nothing new leaves no trace but its job.
                            let quiet = following && status == service.status;
                            let mut data = service.provision_data.as_object().cloned().unwrap_or_default();
                            data.extend(result);
                            // The identifier is set by the setup function only.
                            let mut identifier = (job.function == claimed.product.setup_function)
                                .then(|| ownership::identifier_in(blueprint, &Value::Object(data.clone())))
                                .flatten()
                                .or(params_identifier);
                            // A vendor that answers another name than the one reserved
                            // (or issues one) cannot take a name another service holds.
                            if let (Some(name), Some(configuration_id)) = (&identifier, service.configuration_id)
                                && service.identifier.as_ref() != Some(name)
                                && services::holder(conn, configuration_id, name, service.id).await?.is_some()
                            {
                                tracing::error!(service = service.id, identifier = %name, "the setup answered an identifier another service holds; keeping the reserved one");
                                identifier = None;
                            }
                            let provision_data = Value::Object(data);
                            let change = services::ServiceChange {
                                status: &status,
                                identifier: identifier.as_deref(),
                                provision_data: &provision_data,
                                secrets: sealed.as_deref(),
                                last_error: last_error.as_deref(),
                            };
                            services::apply(conn, service.id, &change).await?;
                            if !quiet {
                                let said = last_error.as_deref().unwrap_or(note.as_str());
                                services::add_history(conn, service.id, Some(&service.status), &status, Some(job.id), said)
                                    .await?;
                                let told = Some((job.id, job.function.as_str(), "succeeded", note.as_str()));
                                if let Some(event) = WebhookEvent::for_status_change(&service.status, &status) {
                                    webhooks::outbox(conn, event, &service, told).await?;
                                }
                                webhooks::outbox(conn, WebhookEvent::JobSucceeded, &service, told).await?;
                            }
                        }
                        Outcome::Retry { reconcile, message } => {
                            jobs::reschedule(conn, job.id, retry_at, reconcile, &message).await?;
                        }
                        // A sync that could not read the system says so on its job
                            // only: the next sync tries again.
                        Outcome::Failed { message } if job.origin == jobs::SYNC => {
                            jobs::finish(conn, job.id, "failed", Some(&message)).await?;
                        }
                        Outcome::Failed { message } => {
                            jobs::finish(conn, job.id, "failed", Some(&message)).await?;
                            let told = Some((job.id, job.function.as_str(), "failed", message.as_str()));
                            webhooks::outbox(conn, WebhookEvent::JobFailed, &service, told).await?;
                            // A setup that failed (or an import's adopt: the resource
                            // was not this service's to take) fails the service.
                            if job.function == claimed.product.setup_function || job.origin == jobs::IMPORT {
                                fail_service(conn, &service, Some(job.id), &message).await?;
                            } else {
                                let change = services::ServiceChange {
                                    status: &service.status,
                                    identifier: None,
                                    provision_data: &service.provision_data,
                                    secrets: None,
                                    last_error: Some(&message),
                                };
                                services::apply(conn, service.id, &change).await?;
                                let note = format!("{} failed: {message}", job.function);
                                services::add_history(
                                    conn,
                                    service.id,
                                    Some(&service.status),
                                    &service.status,
                                    Some(job.id),
                                    &note,
                                )
                                .await?;
                            }
                            // A follow that failed (the system unreachable past its
                            // retries, or refusing to answer) is tried again later,
                            // until the blueprint's deadline fails the service.
                            let keep_status = job.args.get("follow_keep_status").and_then(Value::as_bool) == Some(true);
                            if job.origin == jobs::FOLLOW
                                && (keep_status || parse_status(&service.status) == ServiceStatus::Provisioning)
                                && let Some(follow) = blueprint.follow
                            {
                                let (since, round) = follow_round(job);
                                if now_ms() - since <= follow.deadline.as_millis() as i64 {
                                    let later = Later { since, round, keep_status, expected: None };
                                    follow_later(conn, service.id, follow, later, follow_interval, max_attempts).await?;
                                } else if !keep_status {
                                    fail_service(conn, &service, Some(job.id), &past_deadline(follow)).await?;
                                }
                            }
                        }
                    }
                    settle_projection(conn, claimed.service.id).await?;
                    Ok::<_, EngineError>(true)
                })
            })
            .await?;
        let metrics = self.engine.metrics();
        for (name, duration_ms) in &calls {
            metrics.call(&configuration_name, name, *duration_ms);
        }
        metrics.job(outcome_name, &blueprint_name, &configuration_name);
        tracing::debug!(job = job_id, configuration = %configuration_name, outcome = outcome_name, "attempt recorded");
        if !held {
            tracing::warn!(job = job_id, "the job's lease was taken back while it ran; its outcome was not applied");
        }
        Ok(())
    }
}

/// The configurations of the product's blueprint a new service may go to:
/// those where its identifier (`wanted`) is not taken.
pub(crate) async fn choices<'a>(
    conn: &mut Conn,
    blueprint: &BlueprintDescriptor,
    service: &Service,
    product: &Product,
    configurations: impl Iterator<Item = &'a Configuration>,
    wanted: Option<&str>,
) -> Result<Vec<Configuration>, EngineError> {
    let mut choices = Vec::new();
    for configuration in configurations.filter(|c| c.blueprint == product.blueprint) {
        let taken = match wanted {
            Some(identifier) => {
                ownership::refusal(conn, blueprint, (service.id, service.client_id), configuration.id, identifier)
                    .await?
                    .is_some()
            }
            None => false,
        };
        if !taken {
            choices.push(configuration.clone());
        }
    }
    Ok(choices)
}

/// Why a configuration can take no more calls now, if it cannot: at its
/// concurrency (`in_flight` calls running), or out of its rate (calls started
/// in the last minute: the `recent` attempts recorded, plus the running ones,
/// recorded only when they finish). The worker and on-demand actions both
/// keep these limits.
pub(crate) fn no_room(configuration: &Configuration, in_flight: i64, recent: i64) -> Option<&'static str> {
    if in_flight >= configuration.max_concurrency {
        return Some("its configuration is at its concurrency limit");
    }
    if configuration.rate_per_minute.is_some_and(|rate| recent + in_flight >= rate) {
        return Some("its configuration is at its rate limit");
    }
    None
}

/// Once a service has no unfinished job, the status rules are matched
/// against is its real status again (a failed setup leaves it `failed`, so a
/// later `order.paid` can set it up).
async fn settle_projection(conn: &mut Conn, service_id: i64) -> Result<(), EngineError> {
    if jobs::open_for_service(conn, service_id).await? == 0
        && let Some(service) = services::get(conn, service_id).await?
        && service.projected_status != service.status
    {
        services::set_projected_status(conn, service_id, &service.status).await?;
    }
    Ok(())
}

/// The ids of the jobs this process is running, for the heartbeat.
#[derive(Debug, Clone, Default)]
struct InFlight(Arc<std::sync::Mutex<std::collections::HashSet<i64>>>);

/// Removes a job from [`InFlight`] when dropped.
struct Tracked(InFlight, i64);

impl InFlight {
    fn track(&self, id: i64) -> Tracked {
        self.0.lock().expect("in-flight lock").insert(id);
        Tracked(self.clone(), id)
    }

    fn ids(&self) -> Vec<i64> {
        self.0.lock().expect("in-flight lock").iter().copied().collect()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.0.lock().expect("in-flight lock").remove(&self.1);
    }
}

/// Marks a service failed (its setup could not be done), keeping its data.
async fn fail_service(
    conn: &mut Conn,
    service: &Service,
    job_id: Option<i64>,
    message: &str,
) -> Result<(), EngineError> {
    let change = services::ServiceChange {
        status: "failed",
        identifier: None,
        provision_data: &service.provision_data,
        secrets: None,
        last_error: Some(message),
    };
    services::apply(conn, service.id, &change).await?;
    services::add_history(conn, service.id, Some(&service.status), "failed", job_id, message).await?;
    if service.status != "failed" {
        let told = job_id.map(|id| (id, "setup", "failed", message));
        webhooks::outbox(conn, WebhookEvent::ServiceFailed, service, told).await?;
    }
    Ok(())
}

/// The longest wait between two follows of a pending operation.
const FOLLOW_CAP: Duration = Duration::from_secs(3600);

/// When the operation a job follows began, and the round this is (0 for
/// the job that began it).
fn follow_round(job: &Job) -> (i64, i64) {
    if job.origin != jobs::FOLLOW {
        return (now_ms(), 0);
    }
    let since = job.args.get("follow_since").and_then(Value::as_i64).unwrap_or_else(now_ms);
    (since, job.args.get("follow_round").and_then(Value::as_i64).unwrap_or(0) + 1)
}

fn past_deadline(follow: provisio_sdk::Follow) -> String {
    format!("The system did not complete it within {} hours", follow.deadline.as_secs() / 3600)
}

/// Where a follow stands: since when, which round, and whether it leaves
/// the service's status alone (a later operation on a live service).
struct Later {
    since: i64,
    round: i64,
    keep_status: bool,
    /// When the system expects the operation done (Unix ms), if it said.
    expected: Option<i64>,
}

/// Queues the next follow: the delay doubles each round, up to an hour.
async fn follow_later(
    conn: &mut Conn,
    service_id: i64,
    follow: provisio_sdk::Follow,
    later: Later,
    interval: Duration,
    max_attempts: i64,
) -> Result<(), EngineError> {
    let Later { since, round, keep_status, expected } = later;
    let exponent = u32::try_from(round).unwrap_or(0).min(16);
    let mut delay = interval.saturating_mul(2u32.saturating_pow(exponent)).min(FOLLOW_CAP);
    // The system said when it expects to be done: look then (a little
    // after), never later than the usual schedule; a time already passed
    // changes nothing, so a late system is not polled in a tight loop.
    if let Some(expected) = expected.map(|at| at - now_ms()).filter(|left| *left > 0) {
        delay = delay.min(Duration::from_millis(expected as u64 + 100));
    }
    let args = json!({"follow_since": since, "follow_round": round, "follow_keep_status": keep_status});
    jobs::insert_follow(conn, service_id, follow.function, &args, now_ms() + delay.as_millis() as i64, max_attempts)
        .await?;
    Ok(())
}

/// An attempt ready to store (function, started at, duration, outcome,
/// envelope, log): secret result fields masked, log as JSON.
pub(crate) type StoredAttempt = (String, i64, i64, String, Value, Value);

pub(crate) fn stored_attempt(blueprint: &BlueprintDescriptor, name: &str, report: CallReport) -> StoredAttempt {
    let envelope = report.logged_envelope(blueprint.function(name));
    let outcome = envelope.error_kind.map(|k| k.to_string()).unwrap_or_else(|| "ok".into());
    (
        name.to_owned(),
        report.started_at_ms,
        report.duration_ms as i64,
        outcome,
        serde_json::to_value(&envelope).expect("envelopes serialise"),
        serde_json::to_value(&report.http_log).expect("logs serialise"),
    )
}
