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

use provisio_sdk::{BlueprintDescriptor, CallOptions, CallReport, Envelope, ErrorKind, FunctionDescriptor, invoke};
use provisio_store::models::{Client, Configuration, Job, Product, Service};
use provisio_store::{Conn, clients, configurations, jobs, now_ms, products, services};
use serde_json::{Map, Value, json};
use tokio::sync::Semaphore;

use crate::deploy;
use crate::params;
use crate::rules::{self, parse_status};
use crate::{Engine, EngineError, job_aad, service_aad};

/// A job this worker holds, with everything needed to run it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub job: Job,
    pub service: Service,
    pub product: Product,
    pub client: Client,
    pub configuration: Configuration,
}

/// How an attempt ended, as the job sees it.
#[derive(Debug)]
enum Outcome {
    Succeeded { data: Value, note: String },
    Retry { reconcile: bool, message: String },
    Failed { message: String },
}

impl Engine {
    /// Runs the worker until `shutdown` completes, then waits (up to the
    /// lease) for calls in flight.
    pub async fn run_worker(&self, shutdown: impl Future<Output = ()>) {
        let settings = self.settings().clone();
        let permits = Arc::new(Semaphore::new(settings.worker_concurrency.max(1)));
        let in_flight = InFlight::default();
        let heartbeat = tokio::spawn(self.clone().heartbeat(in_flight.clone()));
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
                let engine = self.clone();
                // Only jobs a task is really running get their leases renewed;
                // the guard forgets the job even if the task panics.
                let guard = in_flight.track(claimed.job.id);
                tokio::spawn(async move {
                    engine.run_claimed(claimed).await;
                    drop(guard);
                    drop(permit);
                    engine.wake();
                });
            }
            if idle {
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = self.wake_signal().notified() => {}
                    _ = tokio::time::sleep(settings.poll_interval) => {}
                }
            } else if tokio::time::timeout(Duration::ZERO, &mut shutdown).await.is_ok() {
                break;
            }
        }
        // Calls in flight finish (their leases still renewed) before the worker stops.
        let all = u32::try_from(settings.worker_concurrency.max(1)).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(settings.call_timeout.max(settings.lease), permits.acquire_many(all)).await;
        heartbeat.abort();
    }

    /// Keeps the leases of the jobs in flight alive and takes back jobs of
    /// workers that stopped.
    async fn heartbeat(self, in_flight: InFlight) {
        let every = self.settings().lease / 3;
        loop {
            tokio::time::sleep(every).await;
            let worker = self.settings().worker_id.clone();
            let lease = self.settings().lease.as_millis() as i64;
            let ids = in_flight.ids();
            let result = self
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
                    tracing::warn!(jobs = ?taken, "took back jobs whose worker stopped; they will be reconciled");
                    self.wake();
                }
                Ok(_) => {}
                Err(err) => tracing::error!(error = %err, "heartbeat failed"),
            }
        }
    }

    /// Claims up to `limit` due jobs for this worker.
    pub async fn claim(&self, limit: usize) -> Result<Vec<Claimed>, EngineError> {
        let engine = self.clone();
        self.store().write(move |conn| Box::pin(async move { engine.claim_in(conn, limit).await })).await
    }

    async fn claim_in(&self, conn: &mut Conn, limit: usize) -> Result<Vec<Claimed>, EngineError> {
        let now = now_ms();
        let ready = jobs::ready(conn, now, (limit * 4) as i64).await?;
        if ready.is_empty() {
            return Ok(Vec::new());
        }
        let settings = self.settings();
        let configs: HashMap<i64, Configuration> =
            configurations::list(conn, None).await?.into_iter().map(|c| (c.id, c)).collect();
        let mut running = jobs::running_by_configuration(conn).await?;
        let recent = if configs.values().any(|c| c.rate_per_minute.is_some()) {
            jobs::attempts_since_by_configuration(conn, now - 60_000).await?
        } else {
            HashMap::new()
        };
        let mut counts: Option<HashMap<i64, i64>> = None;
        let mut products_by_id: HashMap<i64, Product> = HashMap::new();
        let mut claimed = Vec::new();
        for job in ready {
            if claimed.len() >= limit {
                break;
            }
            let Some(mut service) = services::get(conn, job.service_id).await? else {
                continue;
            };
            // Everything the job needs is read before it is claimed.
            let Some(client) = clients::get(conn, service.client_id).await? else { continue };
            let product = match products_by_id.get(&service.product_id) {
                Some(product) => product.clone(),
                None => {
                    let Some(product) = products::get(conn, service.product_id).await? else {
                        continue;
                    };
                    products_by_id.insert(product.id, product.clone());
                    product
                }
            };
            let Ok(blueprint) = self.registry().blueprint(&product.blueprint) else {
                continue;
            };
            let Some(function) = blueprint.function(&job.function) else {
                jobs::finish(
                    conn,
                    job.id,
                    "failed",
                    Some(&format!("{} has no function {}", blueprint.id, job.function)),
                )
                .await?;
                continue;
            };
            let status = parse_status(&service.status);
            if !function.statuses.contains(&status) {
                let message = format!("Skipped: {} does not apply to a {} service", job.function, status.as_str());
                jobs::finish(conn, job.id, "skipped", Some(&message)).await?;
                services::add_history(conn, service.id, Some(&service.status), &service.status, Some(job.id), &message)
                    .await?;
                settle_projection(conn, service.id).await?;
                continue;
            }
            let is_setup = job.function == product.setup_function;
            let configuration_id = match service.configuration_id {
                Some(id) => id,
                None if is_setup => {
                    let counts = match &mut counts {
                        Some(counts) => counts,
                        None => counts.insert(configurations::service_counts(conn).await?),
                    };
                    let cursor = if product.strategy.as_deref() == Some("round_robin") {
                        products::next_round_robin(conn, product.id).await?
                    } else {
                        0
                    };
                    let all: Vec<Configuration> = configs.values().cloned().collect();
                    match deploy::pick(&product, &all, counts, cursor) {
                        Ok(id) => {
                            *counts.entry(id).or_insert(0) += 1;
                            services::set_configuration(conn, service.id, id).await?;
                            service.configuration_id = Some(id);
                            id
                        }
                        Err(deploy::NoCapacity(why)) => {
                            let message = format!("No capacity: {why}");
                            jobs::finish(conn, job.id, "failed", Some(&message)).await?;
                            fail_service(conn, &service, Some(job.id), &message).await?;
                            settle_projection(conn, service.id).await?;
                            continue;
                        }
                    }
                }
                None => {
                    let message = format!("Skipped: the service was never set up, so {} cannot run", job.function);
                    jobs::finish(conn, job.id, "skipped", Some(&message)).await?;
                    settle_projection(conn, service.id).await?;
                    continue;
                }
            };
            let Some(configuration) = configs.get(&configuration_id) else {
                continue;
            };
            if !configuration.enabled {
                continue;
            }
            if running.get(&configuration_id).copied().unwrap_or(0) >= configuration.max_concurrency {
                continue;
            }
            // Calls in the window: attempts recorded in the last minute, plus
            // running ones (recorded as attempts only when they finish).
            let started = recent.get(&configuration_id).copied().unwrap_or(0)
                + running.get(&configuration_id).copied().unwrap_or(0);
            if configuration.rate_per_minute.is_some_and(|rate| started >= rate) {
                continue;
            }
            let lease_until = now + settings.lease.as_millis() as i64;
            if !jobs::claim(conn, job.id, &settings.worker_id, lease_until, Some(configuration_id)).await? {
                continue;
            }
            *running.entry(configuration_id).or_insert(0) += 1;
            if is_setup && service.status != "provisioning" {
                let note = format!("Provisioning on {}", configuration.name);
                services::add_history(conn, service.id, Some(&service.status), "provisioning", Some(job.id), &note)
                    .await?;
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
            claimed.push(Claimed { job, service, product, client, configuration: configuration.clone() });
        }
        Ok(claimed)
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
        let entry = match self.registry().provider(&address) {
            Ok(entry) => entry.clone(),
            Err(err) => {
                let outcome = Outcome::Failed { message: format!("Provider {address} is not available: {err}") };
                return self.record(&claimed, None, outcome).await;
            }
        };
        let blueprint = entry.blueprint();
        let function = blueprint.function(&claimed.job.function).expect("checked at claim").clone();
        let values = match self.configuration_values(&claimed.configuration) {
            Ok(values) => values,
            Err(err) => {
                return self.record(&claimed, None, Outcome::Failed { message: err.to_string() }).await;
            }
        };
        // Sealed secrets: the customer's secret fields, and the job's own secret params.
        let unsealed = self
            .vault()
            .open_fields(&service_aad(claimed.service.id), claimed.service.secrets.as_deref())
            .and_then(|service_secrets| {
                let aad = job_aad(claimed.service.id, &claimed.job.idempotency_key);
                Ok((
                    params::fields_of(&service_secrets),
                    self.vault().open_fields(&aad, claimed.job.secrets.as_deref())?,
                ))
            });
        let (secret_fields, job_secrets) = match unsealed {
            Ok(unsealed) => unsealed,
            Err(err) => return self.record(&claimed, None, Outcome::Failed { message: err.to_string() }).await,
        };
        let mut args = claimed.job.args.as_object().cloned().unwrap_or_default();
        args.extend(job_secrets);
        let params = params::build(
            &function,
            blueprint.service_identifier,
            &claimed.service,
            &claimed.client,
            &secret_fields,
            &Value::Object(args),
        );
        let options = CallOptions {
            timeout: self.settings().call_timeout,
            idempotency_key: Some(claimed.job.idempotency_key.clone()),
            provision_data: claimed.service.provision_data.as_object().cloned().unwrap_or_default(),
            peers: Some(self.peers_for(claimed.client.id)),
            ..CallOptions::default()
        };

        if claimed.job.reconcile
            && let Some((report, outcome)) = self.reconcile(&claimed, &entry, &values, &params, &options).await
        {
            return self.record(&claimed, Some(("get_info", report)), outcome).await;
        }
        let report = invoke::call(&entry, &values, &claimed.job.function, &params, &options).await;
        let outcome = self.judge(&claimed, &function, &report.envelope);
        self.record(&claimed, Some((function.name, report)), outcome).await
    }

    /// Before retrying a job whose last attempt may have happened: asks the
    /// provider. Answers an outcome if that settles the job; `None` to go on
    /// with the call.
    async fn reconcile(
        &self,
        claimed: &Claimed,
        entry: &provisio_sdk::ProviderEntry,
        values: &Value,
        params: &Value,
        options: &CallOptions,
    ) -> Option<(CallReport, Outcome)> {
        let blueprint = entry.blueprint();
        let function = &claimed.job.function;
        let is_setup = *function == claimed.product.setup_function;
        if !is_setup && function != "terminate" {
            // Every other function is idempotent, or keyed by the job's idempotency key.
            return None;
        }
        let get_info = blueprint.function("get_info")?;
        let identifier = params.get(blueprint.service_identifier)?.clone();
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
            (Some(ErrorKind::NotFound), true) | (None, false) => return None,
            (_, _) if claimed.job.attempts >= claimed.job.max_attempts => Outcome::Failed {
                message: format!(
                    "The outcome of an earlier attempt is still unknown after {} attempts; check the provider",
                    claimed.job.attempts
                ),
            },
            (_, _) => Outcome::Retry { reconcile: true, message: report.envelope.message.to_string() },
        };
        Some((report, outcome))
    }

    fn judge(&self, claimed: &Claimed, function: &FunctionDescriptor, envelope: &Envelope) -> Outcome {
        let out_of_attempts = claimed.job.attempts >= claimed.job.max_attempts;
        let message = envelope.message.to_string();
        match envelope.error_kind {
            None => Outcome::Succeeded {
                data: envelope.data.clone().unwrap_or(Value::Null),
                note: format!("{} succeeded", function.name),
            },
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

    fn backoff(&self, attempts: i64) -> i64 {
        let settings = self.settings();
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
        attempt: Option<(&str, CallReport)>,
        outcome: Outcome,
    ) -> Result<(), EngineError> {
        let blueprint =
            self.registry().blueprint(&claimed.product.blueprint).map_err(|e| EngineError::Conflict(e.to_string()))?;
        let function = blueprint.function(&claimed.job.function).cloned();
        let attempt = attempt.map(|(name, report)| stored_attempt(blueprint, name, report));
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
            let mut all = self.vault().open_fields(&aad, claimed.service.secrets.as_deref())?;
            all.extend(secrets);
            self.vault().seal_fields(&aad, &all)
        };
        let retry_at = now_ms() + self.backoff(claimed.job.attempts);
        let claimed = claimed.clone();
        let identifier_field = blueprint.service_identifier;
        let params_identifier = (claimed.job.function == claimed.product.setup_function)
            .then(|| claimed.service.provision_data.get(identifier_field).and_then(Value::as_str).map(str::to_owned))
            .flatten();
        let worker = self.settings().worker_id.clone();
        let job_id = claimed.job.id;
        let held = self
            .store()
            .write(move |conn| {
                Box::pin(async move {
                    let job = &claimed.job;
                    if let Some((name, started_at, duration_ms, outcome_name, envelope, http_log)) = &attempt {
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
                        return Ok(false);
                    }
                    // The service as it is now (this worker held its only running job).
                    let service = services::get(conn, claimed.service.id).await?.unwrap_or(claimed.service.clone());
                    match outcome {
                        Outcome::Succeeded { note, .. } => {
                            jobs::finish(conn, job.id, "succeeded", Some(&note)).await?;
                            let status = rules::effect(&job.function, &claimed.product.setup_function)
                                .map(|s| s.as_str().to_owned())
                                .unwrap_or_else(|| service.status.clone());
                            let mut data = service.provision_data.as_object().cloned().unwrap_or_default();
                            data.extend(result);
                            // The identifier is set by the setup function only.
                            let identifier = (job.function == claimed.product.setup_function)
                                .then(|| data.get(identifier_field).and_then(Value::as_str).map(str::to_owned))
                                .flatten()
                                .or(params_identifier);
                            let provision_data = Value::Object(data);
                            let change = services::ServiceChange {
                                status: &status,
                                identifier: identifier.as_deref(),
                                provision_data: &provision_data,
                                secrets: sealed.as_deref(),
                                last_error: None,
                            };
                            services::apply(conn, service.id, &change).await?;
                            services::add_history(
                                conn,
                                service.id,
                                Some(&service.status),
                                &status,
                                Some(job.id),
                                &note,
                            )
                            .await?;
                        }
                        Outcome::Retry { reconcile, message } => {
                            jobs::reschedule(conn, job.id, retry_at, reconcile, &message).await?;
                        }
                        Outcome::Failed { message } => {
                            jobs::finish(conn, job.id, "failed", Some(&message)).await?;
                            if job.function == claimed.product.setup_function {
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
                        }
                    }
                    settle_projection(conn, claimed.service.id).await?;
                    Ok::<_, EngineError>(true)
                })
            })
            .await?;
        if !held {
            tracing::warn!(job = job_id, "the job's lease was taken back while it ran; its outcome was not applied");
        }
        Ok(())
    }
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
    Ok(())
}

/// An attempt ready to store (function, started at, duration, outcome,
/// envelope, log): secret result fields masked, log as JSON.
pub(crate) type StoredAttempt = (String, i64, i64, String, Value, Value);

pub(crate) fn stored_attempt(blueprint: &BlueprintDescriptor, name: &str, report: CallReport) -> StoredAttempt {
    let mut envelope = report.envelope;
    if let (Some(function), Some(data)) = (blueprint.function(name), envelope.data.as_mut())
        && envelope.status == provisio_sdk::Status::Ok
    {
        *data = function.result.mask_secrets(data);
    }
    let outcome = envelope.error_kind.map(|k| k.to_string()).unwrap_or_else(|| "ok".into());
    let started_at = now_ms() - report.duration_ms as i64;
    (
        name.to_owned(),
        started_at,
        report.duration_ms as i64,
        outcome,
        serde_json::to_value(&envelope).expect("envelopes serialise"),
        serde_json::to_value(&report.http_log).expect("logs serialise"),
    )
}
