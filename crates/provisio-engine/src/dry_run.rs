//! What an event would do, without doing it.
//!
//! A dry run ingests the event exactly as [`Ingest::event`] would (the same
//! code: validation, the service found or made, its rules, its jobs), reads
//! what that made, explains it, and rolls the whole transaction back. So the
//! plan can never drift from what the real event then does, and nothing of
//! it is kept: no event, service, client, job or reserved name.

use std::sync::{Arc, Mutex};

use provisio_sdk::ServiceStatus;
use provisio_store::models::{Configuration, Product, Service};
use provisio_store::{Conn, clients, configurations, jobs, products, services};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::events::EventPayload;
use crate::rules::{self, Rule};
use crate::{EngineError, Ingest, deploy, ownership, params, service_aad, worker};

/// What `POST /api/v1/events?dry_run=true` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventPlan {
    /// This event id was received before: nothing would be done again.
    pub duplicate: bool,
    /// The service the event is about.
    pub service: PlannedService,
    /// The product's rules for this event type, in order, each with whether
    /// it would run and why.
    pub rules: Vec<PlannedRule>,
    /// The jobs it would queue, in order.
    pub jobs: Vec<PlannedJob>,
}

/// The service an event is about, as the event would leave it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedService {
    /// Its id; `None` for a service the event would create.
    pub id: Option<i64>,
    /// The event would create it (and its client, if new).
    pub new: bool,
    /// Its product (slug).
    pub product: String,
    /// Its status now (`pending` for a new one).
    pub status: ServiceStatus,
    /// The status its queued jobs lead to, before this event.
    pub projected_before: ServiceStatus,
    /// The status once this event's jobs are done.
    pub projected_after: ServiceStatus,
    /// Its identifier, when known (reserved by a static product at once).
    pub identifier: Option<String>,
}

/// One of the product's rules for the event type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedRule {
    /// The function it names (`setup` resolved).
    pub function: String,
    /// Statuses it applies in (empty: any but terminated).
    pub when_status: Vec<ServiceStatus>,
    /// Whether it would make a job.
    pub matches: bool,
    /// Why, in a sentence.
    pub why: String,
}

/// A job the event would queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedJob {
    /// The function.
    pub function: String,
    /// The params it would receive if it ran now (secret ones masked).
    pub params: Value,
    /// Where it would run, for a setup: the configuration and why.
    pub configuration: Option<PlannedConfiguration>,
}

/// The configuration a job would run on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedConfiguration {
    /// Its id, when one would be chosen.
    pub id: Option<i64>,
    /// Its name.
    pub name: Option<String>,
    /// Why this one (or why none).
    pub why: String,
}

impl Ingest {
    /// What `body` would do as an event; nothing is written.
    pub async fn plan_event(&self, body: &Value) -> Result<EventPlan, EngineError> {
        let event = EventPayload::decode(body)?;
        let engine = self.clone();
        let slot: Arc<Mutex<Option<EventPlan>>> = Arc::default();
        let found = slot.clone();
        let outcome = self
            .engine
            .store()
            .write(move |conn| {
                Box::pin(async move {
                    let plan = engine.plan_in(conn, &event).await?;
                    *found.lock().expect("plan slot") = Some(plan);
                    // Undone: an error rolls the savepoint back.
                    Err::<(), _>(EngineError::Conflict("a dry run keeps nothing".into()))
                })
            })
            .await;
        if let Some(plan) = slot.lock().expect("plan slot").take() {
            return Ok(plan);
        }
        outcome?;
        Err(EngineError::Conflict("the dry run answered nothing".into()))
    }

    async fn plan_in(&self, conn: &mut Conn, event: &EventPayload) -> Result<EventPlan, EngineError> {
        let before = match (event.service.id, &event.service.external_id) {
            (Some(id), _) => services::get(conn, id).await?,
            (None, Some(external)) => services::get_by_external(conn, external).await?,
            (None, None) => None,
        };
        let accepted = self.ingest_in(conn, event).await?;
        let service = services::get(conn, accepted.service_id)
            .await?
            .ok_or_else(|| EngineError::Conflict("the event's service vanished".into()))?;
        let product = products::get(conn, service.product_id)
            .await?
            .ok_or_else(|| EngineError::Conflict(format!("service {} has no product", service.id)))?;
        let blueprint =
            self.engine.registry().blueprint(&product.blueprint).map_err(|e| EngineError::Conflict(e.to_string()))?;
        let projected_before =
            before.as_ref().map(|s| rules::parse_status(&s.projected_status)).unwrap_or(ServiceStatus::Pending);

        // The rules, walked as ingestion walks them.
        let own: Vec<Rule> = serde_json::from_value(product.rules.clone()).unwrap_or_default();
        let mut projected = projected_before;
        let mut planned_rules = Vec::new();
        for rule in rules::effective(blueprint, &own).iter().filter(|r| r.event == event.event_type) {
            let function = rule.function_name(&product.setup_function).to_owned();
            let matches = !accepted.duplicate && rule.applies(projected);
            let why = if accepted.duplicate {
                "the event was received before: nothing runs again".to_owned()
            } else if matches {
                format!("the service will be {} when it runs", projected.as_str())
            } else if rule.when_status.is_empty() {
                "the service will be terminated".to_owned()
            } else {
                let wanted: Vec<&str> = rule.when_status.iter().map(|s| s.as_str()).collect();
                format!("it applies when the service is {}; it will be {}", wanted.join(" or "), projected.as_str())
            };
            if matches && let Some(status) = rules::effect(&function, &product.setup_function) {
                projected = status;
            }
            planned_rules.push(PlannedRule { function, when_status: rule.when_status.clone(), matches, why });
        }

        // The jobs, with the params they would receive and where a setup would run.
        let client = clients::get(conn, service.client_id)
            .await?
            .ok_or_else(|| EngineError::Conflict(format!("service {} has no client", service.id)))?;
        let vault = self.engine.vault();
        let sealed = vault.open_fields(&service_aad(service.id), service.secrets.as_deref())?;
        let secret_keys = params::secret_keys(blueprint);
        let mut planned_jobs = Vec::new();
        // A duplicate makes nothing (the jobs it answers are the first event's).
        for made in accepted.jobs.iter().filter(|_| !accepted.duplicate) {
            let Some(job) = jobs::get(conn, made.id).await? else { continue };
            let Some(function) = blueprint.function(&job.function) else { continue };
            let mut args = job.args.as_object().cloned().unwrap_or_default();
            args.extend(vault.open_fields(&crate::job_aad(service.id, &job.idempotency_key), job.secrets.as_deref())?);
            let built = params::build(
                function,
                blueprint.service_identifier,
                &service,
                &client,
                &params::fields_of(&sealed),
                &Value::Object(args),
            );
            let configuration = if job.function == product.setup_function && !accepted.duplicate {
                Some(self.placement(conn, blueprint, &service, &product).await?)
            } else {
                None
            };
            planned_jobs.push(PlannedJob {
                function: job.function.clone(),
                params: params::mask_keys(&built, &secret_keys),
                configuration,
            });
        }
        Ok(EventPlan {
            duplicate: accepted.duplicate,
            service: PlannedService {
                id: before.as_ref().map(|s| s.id),
                new: before.is_none(),
                product: product.slug.clone(),
                status: rules::parse_status(&service.status),
                projected_before,
                projected_after: if accepted.duplicate { projected_before } else { projected },
                identifier: service.identifier.clone(),
            },
            rules: planned_rules,
            jobs: planned_jobs,
        })
    }

    /// Where the service's setup would run, as the worker would choose it
    /// now (the round-robin turn it takes is rolled back with the rest).
    async fn placement(
        &self,
        conn: &mut Conn,
        blueprint: &provisio_sdk::BlueprintDescriptor,
        service: &Service,
        product: &Product,
    ) -> Result<PlannedConfiguration, EngineError> {
        let listed = configurations::list(conn, None).await?;
        let name_of = |id: i64| listed.iter().find(|c: &&Configuration| c.id == id).map(|c| c.name.clone());
        if let Some(id) = service.configuration_id {
            let why = if product.deployment == "static" {
                "the product names it (static deployment)"
            } else {
                "the service is already on it"
            };
            return Ok(PlannedConfiguration { id: Some(id), name: name_of(id), why: why.into() });
        }
        let wanted = ownership::identifier_in(blueprint, &service.provision_data);
        let choices = worker::choices(conn, blueprint, service, product, listed.iter(), wanted.as_deref()).await?;
        let counts = configurations::service_counts(conn).await?;
        let cursor = if product.strategy.as_deref() == Some("round_robin") {
            products::next_round_robin(conn, product.id).await?
        } else {
            0
        };
        Ok(match deploy::pick(product, &choices, &counts, cursor) {
            Ok(id) => PlannedConfiguration {
                id: Some(id),
                name: name_of(id),
                why: format!(
                    "{} deployment by {} among configurations matching {} with room",
                    product.deployment,
                    product.strategy.as_deref().unwrap_or("least_used"),
                    product.attribute_filters
                ),
            },
            Err(deploy::NoCapacity(why)) => {
                PlannedConfiguration { id: None, name: None, why: format!("No capacity: {why}") }
            }
        })
    }
}
