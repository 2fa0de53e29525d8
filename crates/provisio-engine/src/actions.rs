//! Functions run on demand by staff or by the client who owns the service.
//!
//! Lifecycle functions go through the queue like any job (so they keep the
//! service's order and its guarantees) and the call waits for the outcome;
//! queries and on-demand functions (login links, usage) run at once. Either
//! way a job and its attempt are recorded.

use std::time::Duration;

use provisio_sdk::{CallOptions, Caller, Envelope, FunctionKind, invoke};
use provisio_store::models::Job;
use provisio_store::{audit, configurations, jobs, now_ms, services};
use serde_json::{Map, Value, json};

use crate::principal::Principal;
use crate::rules::{self, parse_status};
use crate::worker::{no_room, stored_attempt};
use crate::{Actions, EngineError, Violation, params};

/// How long an on-demand action waits for its service and configuration to
/// have room before answering `busy`.
const ON_DEMAND_WAIT: Duration = Duration::from_secs(5);

/// An idempotency key no other job has: random, not a timestamp (two
/// actions in one millisecond must not share one).
fn unique_key(service_id: i64, function: &str) -> String {
    format!("action:{service_id}:{function}:{}", &crate::vault::random_token("")[..32])
}

/// What an action answered.
#[derive(Debug, Clone)]
pub struct ActionOutcome {
    /// The job that recorded it.
    pub job: Job,
    /// The provider's envelope (result data unmasked, for the caller only).
    pub envelope: Option<Envelope>,
}

impl Actions {
    /// Runs `function` of a service's blueprint with `args` over its
    /// provision data, for staff or for the client who owns the service
    /// (another client's service is not found). The blueprint says who may
    /// call each function and in which statuses.
    pub async fn run_action(
        &self,
        principal: &Principal,
        service_id: i64,
        function: &str,
        args: Value,
    ) -> Result<ActionOutcome, EngineError> {
        if !args.is_object() {
            return Err(EngineError::invalid("/", "must be a JSON object of params"));
        }
        let (caller, owner) = match principal {
            Principal::Client { client_id, .. } => (Caller::Client, Some(*client_id)),
            Principal::Staff { scope, .. } if *scope >= provisio_store::models::Scope::Operate => (Caller::Staff, None),
            Principal::Staff { .. } => {
                return Err(EngineError::Forbidden("running a provider function needs the operate scope".into()));
            }
            Principal::Source { .. } => {
                return Err(EngineError::Unauthorized("event sources cannot run actions".into()));
            }
        };
        let (service, product, client) = self
            .engine
            .store()
            .read(move |conn| Box::pin(async move { crate::service_record(conn, service_id).await }))
            .await?;
        if owner.is_some_and(|owner| owner != service.client_id) {
            // Said exactly as for a service that does not exist.
            return Err(EngineError::NotFound(format!("no service {service_id}")));
        }
        let blueprint =
            self.engine.registry().blueprint(&product.blueprint).map_err(|e| EngineError::Conflict(e.to_string()))?;
        let descriptor = blueprint
            .function(function)
            .ok_or_else(|| EngineError::NotFound(format!("{} has no function {function}", blueprint.id)))?
            .clone();
        if !descriptor.callers.contains(&caller) {
            let who = if caller == Caller::Client { "clients" } else { "staff" };
            return Err(EngineError::Conflict(format!("{function} cannot be run on demand by {who}")));
        }
        let secret_keys = params::secret_keys(blueprint);
        if caller == Caller::Client {
            // A client adds what the function asks of them; what names the
            // service (its identifier, its provision data) is not theirs to re-aim.
            let fixed: Vec<Violation> = args
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(key, _)| {
                    // Secret params (a new password) are the caller's to give.
                    !secret_keys.contains(key.as_str())
                })
                .filter(|(key, _)| {
                    *key == blueprint.service_identifier
                        || service.provision_data.get(key.as_str()).is_some()
                        || params::BASE_FIELDS.contains(&key.as_str())
                })
                .map(|(key, _)| Violation::new(format!("/{key}"), "is the service's own and cannot be set here"))
                .collect();
            if !fixed.is_empty() {
                return Err(EngineError::Invalid(fixed));
            }
        }
        let status = parse_status(&service.status);
        if !descriptor.statuses.contains(&status) {
            return Err(EngineError::Conflict(format!(
                "{function} cannot run while the service is {}; it needs {}",
                status.as_str(),
                descriptor.statuses.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" or ")
            )));
        }
        self.check_action_params(&descriptor, blueprint, &service, &client, &product.setup_function, &args)?;
        let actor = principal.actor();
        let origin = match caller {
            Caller::Staff => format!("staff:{actor}"),
            Caller::Client => actor.clone(),
        };
        if descriptor.kind == FunctionKind::Lifecycle {
            let (public, secret) = params::split_keys(args.as_object().expect("checked above"), &secret_keys);
            return self.queue_and_wait(&origin, &service, &product.setup_function, function, public, secret).await;
        }

        let configuration_id = service
            .configuration_id
            .ok_or_else(|| EngineError::Conflict("the service has not been deployed to a configuration yet".into()))?;
        let configuration = self.engine.queries().configuration(configuration_id).await?;
        let entry = self
            .engine
            .registry()
            .provider(&format!("{}/{}", configuration.blueprint, configuration.provider))
            .map_err(|e| EngineError::Conflict(e.to_string()))?
            .clone();
        let values = self.engine.configuration_values(&configuration)?;
        // Order-time secret fields belong to the setup only; an on-demand
        // function gets what its own call supplies.
        let params = params::build(&descriptor, blueprint.service_identifier, &service, &client, &Map::new(), &args);
        // The job records what was asked, secret params masked.
        let args = params::mask_keys(&args, &secret_keys);
        let key = unique_key(service.id, function);
        let job = self.start_on_demand(&service, &configuration, function, &origin, args, &key).await?;
        let options = CallOptions {
            timeout: self.engine.settings().call_timeout,
            idempotency_key: Some(key.clone()),
            provision_data: service.provision_data.as_object().cloned().unwrap_or_default(),
            peers: Some(self.engine.peers_for(client.id)),
            owner: Some(service.owner_mark.clone()),
            ..CallOptions::default()
        };
        let report = invoke::call(&entry, &values, function, &params, &options).await;
        let envelope = report.envelope.clone();
        let state = if envelope.is_ok() { "succeeded" } else { "failed" };
        let message = envelope.message.to_string();
        // Stored like a worker's attempt: secret result fields masked.
        let (function, started_at, duration, outcome, stored, http_log) = stored_attempt(blueprint, function, report);
        let actor = actor.to_owned();
        let job_id = job.id;
        let job = self
            .engine
            .store()
            .write(move |conn| {
                Box::pin(async move {
                    jobs::insert_attempt(
                        conn,
                        &jobs::NewAttempt {
                            job_id,
                            number: 1,
                            function: &function,
                            configuration_id: Some(configuration_id),
                            started_at,
                            duration_ms: duration,
                            outcome: &outcome,
                            envelope: &stored,
                            http_log: &http_log,
                        },
                    )
                    .await?;
                    jobs::finish(conn, job_id, state, Some(&message)).await?;
                    audit::record(
                        conn,
                        &actor,
                        "service.action",
                        &format!("service:{service_id}"),
                        &json!({"function": function, "outcome": outcome, "job": job_id}),
                    )
                    .await?;
                    Ok::<_, EngineError>(jobs::get(conn, job_id).await?.expect("just written"))
                })
            })
            .await?;
        self.engine.wake();
        Ok(ActionOutcome { job, envelope: Some(envelope) })
    }

    /// Refuses params the function does not take, and params that would make
    /// its call invalid once merged over the service's data, naming each
    /// field (422) before any job is made: a typo is never silently dropped.
    fn check_action_params(
        &self,
        descriptor: &provisio_sdk::FunctionDescriptor,
        blueprint: &provisio_sdk::BlueprintDescriptor,
        service: &provisio_store::models::Service,
        client: &provisio_store::models::Client,
        setup_function: &str,
        args: &Value,
    ) -> Result<(), EngineError> {
        let known = descriptor.params.property_names();
        let unknown: Vec<Violation> = args
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(key, _)| !known.contains(&key.as_str()))
            .map(|(key, _)| Violation::new(format!("/{key}"), format!("is not a param of {}", descriptor.name)))
            .collect();
        if !unknown.is_empty() {
            return Err(EngineError::Invalid(unknown));
        }
        // What was sent is valid by itself (even a value the service's own data will replace).
        descriptor.partial_params.validate(args, provisio_sdk::FieldLocation::Params).map_err(EngineError::fields)?;
        // The setup gets the order's secret fields too; nothing else does.
        let secret_fields = if descriptor.name == setup_function {
            params::fields_of(
                &self.engine.vault().open_fields(&crate::service_aad(service.id), service.secrets.as_deref())?,
            )
        } else {
            Map::new()
        };
        let built = params::build(descriptor, blueprint.service_identifier, service, client, &secret_fields, args);
        descriptor.params.validate(&built, provisio_sdk::FieldLocation::Params).map_err(EngineError::fields)
    }

    /// Records an on-demand job as running, once the service has no job
    /// running and its configuration has room under its concurrency and rate
    /// limits (the same limits the worker keeps). It may go ahead of queued
    /// jobs, never beside a running one. Waits a little for room, then
    /// answers `busy`.
    async fn start_on_demand(
        &self,
        service: &provisio_store::models::Service,
        configuration: &provisio_store::models::Configuration,
        function: &str,
        origin: &str,
        args: Value,
        key: &str,
    ) -> Result<Job, EngineError> {
        let deadline = tokio::time::Instant::now() + ON_DEMAND_WAIT;
        // The lease outlives the call: no worker may take it back while it runs.
        let lease = self.engine.settings().call_timeout + Duration::from_secs(30);
        loop {
            let (service_id, configuration_id) = (service.id, configuration.id);
            let (function, origin, args, key) = (function.to_owned(), origin.to_owned(), args.clone(), key.to_owned());
            let worker = format!("{}/on-demand", self.engine.settings().worker_id);
            let started = self
                .engine
                .store()
                .write(move |conn| {
                    Box::pin(async move {
                        // The limits below are judged from what this transaction reads.
                        conn.lock_admissions().await?;
                        if jobs::running_for_service(conn, service_id).await? {
                            return Ok::<_, EngineError>(Err("a job of this service is running"));
                        }
                        let Some(configuration) = configurations::get(conn, configuration_id).await? else {
                            return Err(EngineError::NotFound(format!("no configuration {configuration_id}")));
                        };
                        if !configuration.enabled {
                            return Err(EngineError::Conflict(format!(
                                "the configuration {} is disabled",
                                configuration.name
                            )));
                        }
                        let now = now_ms();
                        let in_flight = jobs::running_on(conn, configuration_id).await?;
                        let recent = match configuration.rate_per_minute {
                            Some(_) => jobs::attempts_since_on(conn, configuration_id, now - 60_000).await?,
                            None => 0,
                        };
                        if let Some(why) = no_room(&configuration, in_flight, recent) {
                            return Ok(Err(why));
                        }
                        let job = jobs::insert_on_demand(
                            conn,
                            &jobs::NewJob {
                                service_id,
                                event_id: None,
                                function: &function,
                                args: &args,
                                origin: &origin,
                                max_attempts: 1,
                                idempotency_key: &key,
                                secrets: None,
                            },
                            configuration_id,
                            &worker,
                            now + lease.as_millis() as i64,
                        )
                        .await?;
                        Ok(Ok(job))
                    })
                })
                .await?;
            match started {
                Ok(job) => return Ok(job),
                Err(why) if tokio::time::Instant::now() >= deadline => {
                    return Err(EngineError::Busy(format!("The service is busy ({why}); try again shortly")));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
            }
        }
    }

    async fn queue_and_wait(
        &self,
        origin: &str,
        service: &provisio_store::models::Service,
        setup_function: &str,
        function: &str,
        args: serde_json::Map<String, Value>,
        secret_args: serde_json::Map<String, Value>,
    ) -> Result<ActionOutcome, EngineError> {
        let service_id = service.id;
        let key = unique_key(service_id, function);
        let sealed = self.engine.vault().seal_fields(&crate::job_aad(service_id, &key), &secret_args);
        let args = Value::Object(args);
        let (origin, function_name, setup) = (origin.to_owned(), function.to_owned(), setup_function.to_owned());
        let max_attempts = self.engine.settings().max_attempts;
        let job = self
            .engine
            .store()
            .write(move |conn| {
                Box::pin(async move {
                    let job = jobs::insert(
                        conn,
                        &jobs::NewJob {
                            service_id,
                            event_id: None,
                            function: &function_name,
                            args: &args,
                            origin: &origin,
                            max_attempts,
                            idempotency_key: &key,
                            secrets: sealed.as_deref(),
                        },
                    )
                    .await?;
                    if let Some(status) = rules::effect(&function_name, &setup) {
                        services::set_projected_status(conn, service_id, status.as_str()).await?;
                    }
                    audit::record(
                        conn,
                        &origin,
                        "service.action",
                        &format!("service:{service_id}"),
                        &json!({"function": function_name, "job": job.id}),
                    )
                    .await?;
                    Ok::<_, EngineError>(job)
                })
            })
            .await?;
        self.engine.wake();
        // Wait for the worker, up to the call deadline and a little more.
        let deadline = tokio::time::Instant::now() + self.engine.settings().call_timeout + Duration::from_secs(5);
        loop {
            let (current, attempts) = self.engine.queries().job(job.id).await?;
            let settled = matches!(current.state.as_str(), "succeeded" | "failed" | "skipped");
            if settled || tokio::time::Instant::now() >= deadline {
                let envelope = attempts.last().and_then(|a| serde_json::from_value(a.envelope.clone()).ok());
                return Ok(ActionOutcome { job: current, envelope });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Queues a failed job again (staff retry).
    pub async fn retry_job(&self, actor: &str, id: i64) -> Result<Job, EngineError> {
        let actor = actor.to_owned();
        let extra = self.engine.settings().max_attempts;
        let job = self
            .engine
            .store()
            .write(move |conn| {
                Box::pin(async move {
                    let job =
                        jobs::get(conn, id).await?.ok_or_else(|| EngineError::NotFound(format!("no job {id}")))?;
                    if job.state != "failed" {
                        return Err(EngineError::Conflict(format!(
                            "job {id} is {}; only failed jobs can be retried",
                            job.state
                        )));
                    }
                    jobs::requeue(conn, id, extra).await?;
                    audit::record(conn, &actor, "job.retry", &format!("job:{id}"), &json!({})).await?;
                    Ok::<_, EngineError>(jobs::get(conn, id).await?.expect("exists"))
                })
            })
            .await?;
        self.engine.wake();
        Ok(job)
    }
}

/// What a password change answered.
#[derive(Debug, Clone)]
pub struct PasswordChange {
    /// The new password, only when Provisio generated it (shown this once,
    /// never stored); a password the caller chose is never echoed.
    pub generated_password: Option<String>,
    /// The provider's answer, secret fields masked.
    pub outcome: ActionOutcome,
}

impl Actions {
    /// Credentials the provider answered at setup that the client must know
    /// (a generated password, a private key), by JSON pointer. Each reveal
    /// is audited with the fields named, never their values.
    pub async fn reveal_credentials(
        &self,
        principal: &Principal,
        service_id: i64,
    ) -> Result<Map<String, Value>, EngineError> {
        let owner = match principal {
            Principal::Client { client_id, .. } => Some(*client_id),
            Principal::Staff { scope, .. } if *scope >= provisio_store::models::Scope::Operate => None,
            _ => return Err(EngineError::Forbidden("revealing credentials needs the operate scope".into())),
        };
        let service = self
            .engine
            .store()
            .read(move |conn| Box::pin(async move { services::get(conn, service_id).await }))
            .await?
            .filter(|s| owner.is_none_or(|owner| owner == s.client_id))
            .ok_or_else(|| EngineError::NotFound(format!("no service {service_id}")))?;
        let revealed = self.engine.setup_credentials(&service)?;
        let fields: Vec<String> = revealed.keys().cloned().collect();
        self.engine
            .record_audit(
                principal.actor(),
                "service.credentials_reveal",
                format!("service:{service_id}"),
                json!({"fields": fields}),
            )
            .await?;
        Ok(revealed)
    }

    /// Runs the blueprint's login function for a service (single sign-on).
    pub async fn login(&self, principal: &Principal, service_id: i64) -> Result<ActionOutcome, EngineError> {
        let (function, _) =
            self.declared_function(principal, service_id, |b| b.login_function, "single sign-on").await?;
        self.run_action(principal, service_id, function, json!({})).await
    }

    /// Sets the password the client logs in with: `password` as given, or
    /// one generated and answered once.
    pub async fn change_password(
        &self,
        principal: &Principal,
        service_id: i64,
        password: Option<String>,
    ) -> Result<PasswordChange, EngineError> {
        let (function, blueprint) =
            self.declared_function(principal, service_id, |b| b.password_function, "a password to change").await?;
        let generated_password = password.is_none().then(|| provisio_sdk::formats::generate_password(20));
        let password = password.or_else(|| generated_password.clone()).expect("one of them");
        let mut outcome = self.run_action(principal, service_id, function, json!({"password": password})).await?;
        // What the provider echoes is masked: the caller already knows it.
        if let Some(data) = outcome.envelope.as_mut().and_then(|e| e.data.as_mut())
            && let Some(descriptor) = blueprint.function(function)
        {
            for (pointer, _) in descriptor.result.secret_entries(data) {
                if let Some(value) = data.pointer_mut(&pointer) {
                    *value = Value::String(provisio_sdk::redact::REDACTED.to_owned());
                }
            }
        }
        Ok(PasswordChange { generated_password, outcome })
    }

    /// The function a service's blueprint declares for a purpose, and the
    /// blueprint, once the caller may see the service.
    async fn declared_function(
        &self,
        principal: &Principal,
        service_id: i64,
        pick: impl Fn(&provisio_sdk::BlueprintDescriptor) -> Option<&'static str>,
        what: &str,
    ) -> Result<(&'static str, &provisio_sdk::BlueprintDescriptor), EngineError> {
        let owner = match principal {
            Principal::Client { client_id, .. } => Some(*client_id),
            _ => None,
        };
        let (service, product, _) = self
            .engine
            .store()
            .read(move |conn| Box::pin(async move { crate::service_record(conn, service_id).await }))
            .await?;
        if owner.is_some_and(|owner| owner != service.client_id) {
            return Err(EngineError::NotFound(format!("no service {service_id}")));
        }
        let blueprint =
            self.engine.registry().blueprint(&product.blueprint).map_err(|e| EngineError::Conflict(e.to_string()))?;
        let function = pick(blueprint)
            .ok_or_else(|| EngineError::NotFound(format!("a {} service has no {what}", blueprint.name)))?;
        Ok((function, blueprint))
    }
}

impl crate::Engine {
    /// The credentials a service's setup answered (sealed result fields), by JSON pointer.
    pub(crate) fn setup_credentials(
        &self,
        service: &provisio_store::models::Service,
    ) -> Result<Map<String, Value>, EngineError> {
        let opened = self.vault().open_fields(&crate::service_aad(service.id), service.secrets.as_deref())?;
        Ok(opened.into_iter().filter(|(key, _)| key.starts_with('/')).collect())
    }
}
