//! Sync and drift: each live service is compared with its system now and
//! then (`Settings::sync_interval`), by a job of origin `sync` running the
//! blueprint's query function (`get_info`), so configurations' concurrency
//! and rate limits hold. The blueprint says what to compare
//! ([`provisio_sdk::DriftCheck`]); each difference becomes a drift record
//! (open until resolved), an event `drift.detected` on the service, a line
//! in its history and a webhook; then the product's response:
//!
//! | response | what happens |
//! |---|---|
//! | report | nothing more |
//! | accept | the record takes the system's value (a renewed expiry, a status changed by hand; a resource gone ends the service) |
//! | repair | a job of origin `repair` puts the system back (unsuspend, suspend, change_package, update_nameservers), where the blueprint knows how |

use std::future::Future;
use std::time::Duration;

use provisio_sdk::{BlueprintDescriptor, Drift, ServiceStatus};
use provisio_store::models::{Product, Service};
use provisio_store::{Conn, drifts, events, jobs, now_ms, services};
use serde_json::{Value, json};

use crate::catalog::DriftResponse;
use crate::rules::{Rule, parse_status};

/// The event type of a drift found.
pub const DRIFT_DETECTED: &str = "drift.detected";
use crate::webhooks::{self, WebhookEvent};
use crate::{EngineError, Worker};

impl Worker {
    /// Queues a sync job for every service due one, until `shutdown`.
    pub async fn schedule_syncs(&self, shutdown: impl Future<Output = ()>) {
        let Some(interval) = self.engine.settings().sync_interval else { return };
        let blueprints: Vec<&'static str> =
            self.engine.registry().blueprints().iter().filter(|b| b.drift.is_some()).map(|b| b.id).collect();
        let pause = (interval / 10).clamp(Duration::from_millis(100), Duration::from_secs(5));
        tokio::pin!(shutdown);
        loop {
            let list = blueprints.clone();
            let cutoff = now_ms() - interval.as_millis() as i64;
            // Chosen on a read connection (the writer is not held for it);
            // at most SYNCS_PER_CONFIGURATION waiting per configuration, so
            // syncs never queue up ahead of a configuration's other work.
            let due = self
                .engine
                .store()
                .read(move |conn| {
                    Box::pin(async move {
                        let due = drifts::due_for_sync(conn, &list, cutoff, 500).await?;
                        let mut open = drifts::open_syncs(conn).await?;
                        let mut chosen = Vec::new();
                        for (service_id, configuration_id) in due {
                            let waiting = open.entry(configuration_id).or_insert(0);
                            if *waiting < SYNCS_PER_CONFIGURATION {
                                *waiting += 1;
                                chosen.push(service_id);
                            }
                        }
                        Ok::<_, EngineError>(chosen)
                    })
                })
                .await
                .unwrap_or_default();
            let engine = self.engine.clone();
            let queued = self
                .engine
                .store()
                .write(move |conn| {
                    Box::pin(async move {
                        if !due.is_empty() {
                            // Other processes schedule too: "still due" is judged once.
                            conn.lock_admissions().await?;
                        }
                        for service_id in &due {
                            let Some(service) = services::get(conn, *service_id).await? else { continue };
                            let Some(product) = provisio_store::products::get(conn, service.product_id).await? else {
                                continue;
                            };
                            let Some(check) =
                                engine.registry().blueprint(&product.blueprint).ok().and_then(|b| b.drift)
                            else {
                                continue;
                            };
                            // Still due (nothing started on it, and no other
                            // process scheduled it, since it was chosen).
                            if !drifts::still_due(conn, *service_id, cutoff).await? {
                                continue;
                            }
                            let key = format!("sync-{service_id}-{}", now_ms());
                            jobs::insert(
                                conn,
                                &jobs::NewJob {
                                    service_id: *service_id,
                                    event_id: None,
                                    function: check.function,
                                    args: &json!({}),
                                    origin: jobs::SYNC,
                                    // A sync that fails is tried at the next one, not hammered.
                                    max_attempts: 2,
                                    idempotency_key: &key,
                                    secrets: None,
                                },
                            )
                            .await?;
                            drifts::synced(conn, *service_id).await?;
                        }
                        Ok::<_, EngineError>(due.len())
                    })
                })
                .await;
            match queued {
                Ok(n) if n > 0 => self.engine.wake(),
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "syncs not scheduled"),
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}

/// Unfinished syncs a configuration may have at once.
const SYNCS_PER_CONFIGURATION: i64 = 16;

/// What a sync job's answer means for its service: `real` is what the
/// blueprint's query answered (`Null`: the resource is gone).
///
/// A service with other work queued since (billing's suspend, a client's
/// change) is only reported on: its record is about to change, and a
/// repair or an acceptance now could undo that work.
pub(crate) async fn apply(
    conn: &mut Conn,
    blueprint: &BlueprintDescriptor,
    product: &Product,
    service: &Service,
    job_id: i64,
    real: &Value,
    max_attempts: i64,
) -> Result<(), EngineError> {
    let Some(check) = blueprint.drift else { return Ok(()) };
    let status = parse_status(&service.status);
    let found: Vec<Drift> = if real.is_null() {
        vec![Drift { field: "existence", recorded: json!("present"), real: json!("missing"), repair: None }]
    } else {
        (check.compare)(status, &service.provision_data, real)
    };
    // What is no longer different is resolved.
    for open in drifts::open_for(conn, service.id).await? {
        if !found.iter().any(|d| d.field == open.field) {
            drifts::resolve(conn, open.id, "gone").await?;
        }
    }
    let busy = jobs::open_for_service(conn, service.id).await? > 0;
    let response = if busy { DriftResponse::Report } else { DriftResponse::parse(&product.drift_response) };
    let mut current = service.clone();
    let mut projected = parse_status(&service.projected_status);
    for drift in &found {
        let (record, new) = drifts::found(conn, service.id, drift.field, &drift.recorded, &drift.real).await?;
        let note = format!("Drift: {} is {} at the system, {} in the record", drift.field, drift.real, drift.recorded);
        if new {
            let payload = json!({"type": DRIFT_DETECTED, "drift_id": record.id, "field": drift.field,
                                 "recorded": drift.recorded, "real": drift.real});
            let event_id = events::insert(
                conn,
                &events::NewEvent {
                    // Apart from billing's ids (a random tail: a billing id can never take it first).
                    external_id: &crate::vault::random_token(&format!("provisio:drift:{}:", record.id)),
                    event_type: DRIFT_DETECTED,
                    service_id: service.id,
                    payload: &payload,
                    occurred_at: None,
                    body_digest: "",
                },
            )
            .await?;
            // The product's own rules on drift.detected run as for any event
            // (and move the projected status as theirs do).
            let own: Vec<Rule> = serde_json::from_value(product.rules.clone()).unwrap_or_default();
            for (n, rule) in own.iter().filter(|r| r.event == DRIFT_DETECTED).enumerate() {
                let function = rule.function_name(&product.setup_function);
                if blueprint.function(function).is_none() || busy || !rule.applies(projected) {
                    continue;
                }
                if let Some(status) = crate::rules::effect(function, &product.setup_function) {
                    projected = status;
                    services::set_projected_status(conn, service.id, status.as_str()).await?;
                }
                let key = format!("drift:{}:{function}:{n}", record.id);
                jobs::insert(
                    conn,
                    &jobs::NewJob {
                        service_id: service.id,
                        event_id: Some(event_id),
                        function,
                        args: &Value::Object(rule.params.clone()),
                        origin: &format!("event:{DRIFT_DETECTED}"),
                        max_attempts,
                        idempotency_key: &key,
                        secrets: None,
                    },
                )
                .await?;
            }
            services::add_history(conn, service.id, Some(&current.status), &current.status, Some(job_id), &note)
                .await?;
            let told = Some((job_id, "sync", "drift", note.as_str()));
            webhooks::outbox(conn, WebhookEvent::DriftDetected, &current, told).await?;
        }
        match response {
            DriftResponse::Report => {}
            // A resource gone is never accepted on its own (a wrong address
            // makes everything look gone): staff decide.
            DriftResponse::Accept if drift.field == "existence" => {}
            DriftResponse::Accept => {
                current = accept(conn, &current, drift, job_id).await?;
                drifts::resolve(conn, record.id, "accepted").await?;
            }
            DriftResponse::Repair => {
                let Some((function, args)) = &drift.repair else { continue };
                if blueprint.function(function).is_none() {
                    continue;
                }
                let key = format!("repair-{}-{}", record.id, now_ms());
                let job = jobs::insert(
                    conn,
                    &jobs::NewJob {
                        service_id: service.id,
                        event_id: None,
                        function,
                        args,
                        origin: jobs::REPAIR,
                        max_attempts,
                        idempotency_key: &key,
                        secrets: None,
                    },
                )
                .await?;
                // Resolved when a later sync finds the system as recorded.
                let note = format!("Repair of {} queued: job {}", drift.field, job.id);
                services::add_history(conn, service.id, Some(&current.status), &current.status, Some(job_id), &note)
                    .await?;
                if let Some(status) = crate::rules::effect(function, &product.setup_function) {
                    services::set_projected_status(conn, service.id, status.as_str()).await?;
                }
            }
        }
    }
    Ok(())
}

/// The record takes the system's value; answers the service as it now is.
async fn accept(conn: &mut Conn, service: &Service, drift: &Drift, job_id: i64) -> Result<Service, EngineError> {
    let to = match drift.field {
        "existence" => Some(ServiceStatus::Terminated),
        "state" => match drift.real.as_str() {
            Some("suspended") => Some(ServiceStatus::Suspended),
            Some("active") => Some(ServiceStatus::Active),
            _ => None,
        },
        _ => None,
    };
    let mut data = service.provision_data.as_object().cloned().unwrap_or_default();
    if to.is_none() {
        data.insert(drift.field.to_owned(), drift.real.clone());
    }
    let status = to.map(|s| s.as_str().to_owned()).unwrap_or_else(|| service.status.clone());
    let provision_data = Value::Object(data);
    let change = services::ServiceChange {
        status: &status,
        identifier: None,
        provision_data: &provision_data,
        secrets: None,
        last_error: None,
    };
    services::apply(conn, service.id, &change).await?;
    if status != service.status {
        // Only ever reached with no job queued: the projection is the status.
        services::set_projected_status(conn, service.id, &status).await?;
        let note = format!("Accepted from the system: {} is {}", drift.field, drift.real);
        services::add_history(conn, service.id, Some(&service.status), &status, Some(job_id), &note).await?;
        if let Some(event) = WebhookEvent::for_status_change(&service.status, &status) {
            webhooks::outbox(conn, event, service, Some((job_id, "sync", "accepted", note.as_str()))).await?;
        }
    }
    Ok(services::get(conn, service.id).await?.unwrap_or_else(|| service.clone()))
}
