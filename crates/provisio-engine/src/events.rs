//! Billing events: the public format, and ingestion.
//!
//! Ingesting an event records it, creates the service (and its client) on
//! first sight of an unknown `external_id`, and enqueues the jobs its rules
//! ask for, all in one transaction. The same event id twice makes jobs once.

use std::sync::OnceLock;

use provisio_sdk::formats::Email;
use provisio_sdk::{FieldLocation, SchemaDoc, ServiceStatus};
use provisio_store::models::{Client, Product, Service};
use provisio_store::{Conn, StoreError, clients, configurations, events, jobs, products, services};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::catalog::decode;
use crate::rules::{self, Rule};
use crate::{EngineError, Ingest, Violation, job_aad, ownership, params};

/// The jobs an event makes: function and rule params, in order.
type Plan = Vec<(String, Map<String, Value>)>;

/// A billing event. This shape is a public contract: extend it, never rename.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct EventPayload {
    /// The billing system's event id; the same id twice makes jobs once.
    #[schemars(length(min = 1, max = 255))]
    pub id: String,
    /// `order.placed`, `order.paid`, `invoice.paid`, `contract.renewed`,
    /// `contract.overdue`, `contract.unsuspended`, `contract.upgraded`,
    /// `contract.cancelled`, or a custom type.
    #[serde(rename = "type")]
    #[schemars(length(min = 1, max = 100), regex(pattern = r"^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*$"))]
    pub event_type: String,
    /// When it happened in billing (RFC 3339).
    #[serde(default)]
    #[schemars(extend("format" = "date-time"))]
    pub occurred_at: Option<String>,
    /// The service it is about.
    pub service: EventService,
    /// Event-specific extras, passed to the function (e.g. the new `package_name` of an upgrade).
    #[serde(default)]
    pub data: Map<String, Value>,
}

/// Names the service an event is about (by `id` or `external_id`), and
/// describes it when it is new.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("anyOf" = [
    {"required": ["id"], "properties": {"id": {"type": "integer"}}},
    {"required": ["external_id"], "properties": {"external_id": {"type": "string"}}}
]))]
pub struct EventService {
    /// Our service id.
    #[serde(default)]
    pub id: Option<i64>,
    /// The billing system's id of the service (contract).
    #[serde(default)]
    #[schemars(length(min = 1, max = 255))]
    pub external_id: Option<String>,
    /// The client, needed when the service is new.
    #[serde(default)]
    pub client: Option<EventClient>,
    /// Product slug or id, needed when the service is new.
    #[serde(default)]
    pub product: Option<ProductRef>,
    /// Customer-entered provision fields (domain, username...).
    #[serde(default)]
    pub fields: Map<String, Value>,
}

/// A client as billing describes it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct EventClient {
    /// The billing system's client id.
    #[serde(default)]
    #[schemars(length(min = 1, max = 255))]
    pub external_id: Option<String>,
    /// Full name.
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// Email.
    pub email: Email,
}

/// A product by slug or by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ProductRef {
    /// By id.
    Id(i64),
    /// By slug.
    Slug(String),
}

impl EventPayload {
    /// An event from its JSON, each problem named by its path.
    pub(crate) fn decode(body: &Value) -> Result<EventPayload, EngineError> {
        static SCHEMA: OnceLock<SchemaDoc> = OnceLock::new();
        // Said plainly, before the schema's "any of" would name just one of them.
        let names = |key: &str| body["service"].get(key).is_some_and(|v| !v.is_null());
        if body["service"].is_object() && !names("id") && !names("external_id") {
            return Err(EngineError::invalid("/service", "needs an id or an external_id"));
        }
        decode(body, &SCHEMA)
    }
}

/// A job as the event answer lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSummary {
    pub id: i64,
    pub function: String,
    pub state: String,
}

/// What `POST /api/v1/events` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accepted {
    /// Our id of the event.
    pub event_id: i64,
    /// The service it is about.
    pub service_id: i64,
    /// True when this event id was already received (nothing new was done).
    pub duplicate: bool,
    /// The jobs it made.
    pub jobs: Vec<JobSummary>,
}

impl Ingest {
    /// Ingests a billing event: validated, recorded with its service change
    /// and jobs in one durable transaction. Bad input changes nothing.
    pub async fn event(&self, body: &Value) -> Result<Accepted, EngineError> {
        self.ingest_with_receipt(body, None).await
    }

    /// [`Ingest::event`] that also records a signed request's receipt in
    /// the same transaction: a replayed signature is refused, and a refused
    /// event leaves no receipt behind.
    pub(crate) async fn ingest_with_receipt(
        &self,
        body: &Value,
        receipt: Option<crate::sources::Receipt>,
    ) -> Result<Accepted, EngineError> {
        let event = EventPayload::decode(body)?;
        let event_type = event.event_type.clone();
        // Where writers run side by side (PostgreSQL), two may both find an
        // event, service or client missing and insert it: the second's
        // unique violation rolls it back whole, and run again it finds the
        // first's (a resend is then a duplicate, as it is on one writer). A
        // deadlock or lock timeout is run again the same way.
        let mut tries = 0;
        let accepted = loop {
            tries += 1;
            let (engine, event, receipt) = (self.clone(), event.clone(), receipt.clone());
            let written = self
                .engine
                .store()
                .write(move |conn| {
                    Box::pin(async move {
                        if let Some(receipt) = receipt {
                            receipt.record(conn).await?;
                        }
                        engine.ingest_in(conn, &event).await
                    })
                })
                .await;
            match written {
                Err(EngineError::Store(err))
                    if (err.is_unique_violation() || matches!(err, StoreError::Busy(_))) && tries < 3 =>
                {
                    continue;
                }
                other => break other?,
            }
        };
        if !accepted.duplicate {
            self.engine.metrics().event(&event_type);
        }
        if !accepted.jobs.is_empty() {
            self.engine.wake();
        }
        Ok(accepted)
    }

    pub(crate) async fn ingest_in(&self, conn: &mut Conn, event: &EventPayload) -> Result<Accepted, EngineError> {
        let body_digest =
            self.engine.vault().digest(&canonical(&serde_json::to_value(event).expect("events serialise")));
        if let Some(existing) = events::get_by_external(conn, &event.id).await? {
            // A resend is a duplicate; the same id on another event is a mistake
            // to say out loud, not to swallow (as payment APIs treat a reused key).
            if existing.body_digest.as_ref().is_some_and(|stored| *stored != body_digest) {
                return Err(EngineError::Conflict(format!(
                    "event id {} was already used for a different event (event {}); give this one its own id",
                    event.id, existing.id
                )));
            }
            let filter = jobs::JobFilter { event_id: Some(existing.id), limit: 100, ..Default::default() };
            let mut made = jobs::list(conn, &filter).await?;
            made.reverse();
            return Ok(Accepted {
                event_id: existing.id,
                service_id: existing.service_id,
                duplicate: true,
                jobs: made.into_iter().map(|j| JobSummary { id: j.id, function: j.function, state: j.state }).collect(),
            });
        }
        let (service, product, before) = self.resolve_service(conn, event).await?;
        let secret_keys = self.secret_keys_of(&product);
        // The event is kept as received, but for secret values (a password, an EPP code).
        let mut payload = serde_json::to_value(event).expect("events serialise");
        payload["data"] = params::mask_keys(&payload["data"], &secret_keys);
        payload["service"]["fields"] = params::mask_keys(&payload["service"]["fields"], &secret_keys);
        let event_id = events::insert(
            conn,
            &events::NewEvent {
                external_id: &event.id,
                event_type: &event.event_type,
                service_id: service.id,
                payload: &payload,
                occurred_at: event.occurred_at.as_deref(),
                body_digest: &body_digest,
            },
        )
        .await?;

        let (plan, projected) = self.plan(&product, &event.event_type, before)?;
        self.check_setup(conn, &service, &product, &plan, event).await?;
        let mut made = Vec::new();
        for (function, rule_params) in plan {
            let mut args = rule_params;
            args.extend(event.data.iter().map(|(k, v)| (k.clone(), v.clone())));
            let key = format!("{}:{}:{}", event.id, function, made.len());
            let (args, secret_args) = params::split_keys(&args, &secret_keys);
            let sealed = self.engine.vault().seal_fields(&job_aad(service.id, &key), &secret_args);
            let job = jobs::insert(
                conn,
                &jobs::NewJob {
                    service_id: service.id,
                    event_id: Some(event_id),
                    function: &function,
                    args: &Value::Object(args),
                    origin: &format!("event:{}", event.event_type),
                    max_attempts: self.engine.settings().max_attempts,
                    idempotency_key: &key,
                    secrets: sealed.as_deref(),
                },
            )
            .await?;
            made.push(JobSummary { id: job.id, function, state: job.state });
        }
        if projected.as_str() != service.projected_status {
            services::set_projected_status(conn, service.id, projected.as_str()).await?;
        }
        Ok(Accepted { event_id, service_id: service.id, duplicate: false, jobs: made })
    }

    /// The jobs an event makes for a service of `product` whose queued jobs
    /// will leave it in `projected`: (function, rule params) each, and the
    /// status once they are done.
    fn plan(
        &self,
        product: &Product,
        event_type: &str,
        mut projected: ServiceStatus,
    ) -> Result<(Plan, ServiceStatus), EngineError> {
        let blueprint =
            self.engine.registry().blueprint(&product.blueprint).map_err(|e| EngineError::Conflict(e.to_string()))?;
        let own: Vec<Rule> = serde_json::from_value(product.rules.clone()).unwrap_or_default();
        let rules = rules::effective(blueprint, &own);
        // An event type no rule knows (a typo such as `order.payed`) is refused,
        // rather than recorded with a service nobody will ever set up.
        if !rules::STANDARD_EVENTS.contains(&event_type) && !rules.iter().any(|r| r.event == event_type) {
            let mut known: Vec<&str> =
                rules::STANDARD_EVENTS.into_iter().chain(rules.iter().map(|r| r.event.as_str())).collect();
            known.sort_unstable();
            known.dedup();
            return Err(EngineError::invalid(
                "/type",
                format!("no rule of product {} handles {event_type} (it handles {})", product.slug, known.join(", ")),
            ));
        }
        let mut plan = Vec::new();
        for rule in rules.iter().filter(|r| r.event == event_type) {
            if !rule.applies(projected) {
                continue;
            }
            let function = rule.function_name(&product.setup_function).to_owned();
            if let Some(status) = rules::effect(&function, &product.setup_function) {
                projected = status;
            }
            plan.push((function, rule.params.clone()));
        }
        Ok((plan, projected))
    }

    /// A product by id or slug, from a short-lived cache (products change
    /// rarely; ingestion reads one per event).
    async fn cached_product(&self, conn: &mut Conn, key: &ProductRef) -> Result<Option<Product>, EngineError> {
        let cache_key = match key {
            ProductRef::Id(id) => format!("id:{id}"),
            ProductRef::Slug(slug) => format!("slug:{slug}"),
        };
        if let Some(product) = self.engine.product_cache_get(&cache_key) {
            return Ok(Some(product));
        }
        let product = match key {
            ProductRef::Slug(slug) => products::get_by_slug(conn, slug).await?,
            ProductRef::Id(id) => products::get(conn, *id).await?,
        };
        if let Some(product) = &product {
            self.engine.product_cache_put(cache_key, product.clone());
        }
        Ok(product)
    }

    /// Finds the event's service, creating it (and its client) when new;
    /// also answers the status its queued jobs led to before this event.
    async fn resolve_service(
        &self,
        conn: &mut Conn,
        event: &EventPayload,
    ) -> Result<(Service, Product, ServiceStatus), EngineError> {
        let named = &event.service;
        let found = match (named.id, &named.external_id) {
            (Some(id), external) => {
                let service = services::get(conn, id)
                    .await?
                    .ok_or_else(|| EngineError::invalid("/service/id", format!("no service {id}")))?;
                if external.as_ref().is_some_and(|e| service.external_id.as_ref() != Some(e)) {
                    return Err(EngineError::invalid("/service/external_id", "names another service than /service/id"));
                }
                Some(service)
            }
            (None, Some(external)) => services::get_by_external(conn, external).await?,
            (None, None) => None,
        };
        if let Some(found) = found {
            // Two events of one service are planned one after the other.
            let mut service = services::get_locked(conn, found.id).await?.unwrap_or(found);
            let product = products::get(conn, service.product_id)
                .await?
                .ok_or_else(|| EngineError::Conflict(format!("service {} has no product", service.id)))?;
            if !named.fields.is_empty() {
                // Fields of an existing service never rename it.
                let mut fields = named.fields.clone();
                if service.identifier.is_some()
                    && let Ok(blueprint) = self.engine.registry().blueprint(&product.blueprint)
                {
                    fields.remove(blueprint.service_identifier);
                }
                let (fields, secret_fields) = params::split_keys(&fields, &self.secret_keys_of(&product));
                let data = merge_fields(&service.provision_data, &product.provision_fields, &fields);
                services::set_provision_data(conn, service.id, &data).await?;
                service.provision_data = data;
                if !secret_fields.is_empty() {
                    service.secrets = self.seal_secret_fields(conn, &service, secret_fields).await?;
                }
            }
            let before = rules::parse_status(&service.projected_status);
            return Ok((service, product, before));
        }

        // A new service.
        let Some(product_ref) = &named.product else {
            return Err(EngineError::invalid("/service/product", "is required for a new service"));
        };
        let product = self
            .cached_product(conn, product_ref)
            .await?
            .ok_or_else(|| EngineError::invalid("/service/product", "names no product"))?;
        let Some(client) = &named.client else {
            return Err(EngineError::invalid("/service/client", "is required for a new service"));
        };
        let provision_data = merge_fields(&json!({}), &product.provision_fields, &named.fields);
        self.check_fields(&product, &named.fields, &provision_data, client)?;
        // Secret fields (a chosen password) are sealed apart from provision data.
        let (public_fields, secret_fields) = params::split_keys(&named.fields, &self.secret_keys_of(&product));
        let provision_data = merge_fields(&json!({}), &product.provision_fields, &public_fields);
        let client: Client = match &client.external_id {
            Some(external) => clients::upsert_external(conn, external, &client.name, client.email.as_str()).await?,
            None => clients::insert(conn, None, &client.name, client.email.as_str()).await?,
        };
        let (_, projected) = self.plan(&product, &event.event_type, ServiceStatus::Pending)?;
        let owner_mark = ownership::new_owner_mark();
        let mut service = services::insert(
            conn,
            &services::NewService {
                external_id: named.external_id.as_deref(),
                client_id: client.id,
                product_id: product.id,
                projected_status: projected.as_str(),
                provision_data: &provision_data,
                owner_mark: &owner_mark,
            },
        )
        .await?;
        // A static product's configuration is known now: the identifier is
        // reserved in this transaction, or the order is refused whole.
        // (A full configuration is left to the setup job, which says so.)
        if let (Some(configuration_id), Ok(blueprint)) = (
            product.configuration_id.filter(|_| product.deployment == "static"),
            self.engine.registry().blueprint(&product.blueprint),
        ) && let Some(identifier) = ownership::identifier_in(blueprint, &provision_data)
            && let Some(configuration) = configurations::get(conn, configuration_id).await?
            && match configuration.max_services {
                None => true,
                Some(max) => {
                    // Room is judged from what this transaction reads: no
                    // other order may count the same services.
                    conn.lock_admissions().await?;
                    configurations::service_count(conn, configuration_id).await? < max
                }
            }
        {
            ownership::reserve(conn, blueprint, &service, configuration_id, &identifier).await?;
            service.configuration_id = Some(configuration_id);
            service.identifier = Some(identifier);
        }
        services::add_history(conn, service.id, None, "pending", None, &format!("Created by event {}", event.id))
            .await?;
        if !secret_fields.is_empty() {
            service.secrets = self.seal_secret_fields(conn, &service, secret_fields).await?;
        }
        Ok((service, product, ServiceStatus::Pending))
    }

    /// Names of the product's blueprint's secret params.
    fn secret_keys_of(&self, product: &Product) -> std::collections::BTreeSet<String> {
        self.engine.registry().blueprint(&product.blueprint).map(params::secret_keys).unwrap_or_default()
    }

    /// Adds the customer's secret fields to the service's sealed secrets.
    async fn seal_secret_fields(
        &self,
        conn: &mut Conn,
        service: &Service,
        fields: Map<String, Value>,
    ) -> Result<Option<Vec<u8>>, EngineError> {
        let aad = crate::service_aad(service.id);
        let mut secrets = self.engine.vault().open_fields(&aad, service.secrets.as_deref())?;
        secrets.extend(fields.into_iter().map(|(k, v)| (format!("{}{k}", params::FIELD), v)));
        let sealed = self.engine.vault().seal_fields(&aad, &secrets);
        services::set_secrets(conn, service.id, sealed.as_deref()).await?;
        Ok(sealed)
    }

    /// Refuses an event whose setup job would be refused: what the setup
    /// function will receive (client facts, provision data, the service's
    /// secret fields, the rule's params and the event's data) is checked
    /// against its params schema now, naming each missing or wrong field.
    async fn check_setup(
        &self,
        conn: &mut Conn,
        service: &Service,
        product: &Product,
        plan: &Plan,
        event: &EventPayload,
    ) -> Result<(), EngineError> {
        let Some((_, rule_params)) = plan.iter().find(|(function, _)| *function == product.setup_function) else {
            return Ok(());
        };
        let Ok(blueprint) = self.engine.registry().blueprint(&product.blueprint) else { return Ok(()) };
        let Some(setup) = blueprint.function(&product.setup_function) else { return Ok(()) };
        let client = clients::get(conn, service.client_id)
            .await?
            .ok_or_else(|| EngineError::Conflict(format!("service {} has no client", service.id)))?;
        let sealed = self.engine.vault().open_fields(&crate::service_aad(service.id), service.secrets.as_deref())?;
        let mut args = rule_params.clone();
        args.extend(event.data.iter().map(|(k, v)| (k.clone(), v.clone())));
        let params = params::build(
            setup,
            blueprint.service_identifier,
            service,
            &client,
            &params::fields_of(&sealed),
            &Value::Object(args),
        );
        let Err(errors) = setup.params.validate(&params, FieldLocation::Params) else {
            return Ok(());
        };
        Err(EngineError::Invalid(
            errors
                .into_iter()
                .map(|e| {
                    let top = e.path.trim_start_matches('/').split('/').next().unwrap_or_default();
                    let within = if event.data.contains_key(top) { "/data" } else { "/service/fields" };
                    Violation::new(format!("{within}{}", e.path), e.message)
                })
                .collect(),
        ))
    }

    /// Rejects customer fields the setup function would refuse, naming them
    /// (fields it does not know, and missing ones, are left for later events).
    fn check_fields(
        &self,
        product: &Product,
        fields: &Map<String, Value>,
        provision_data: &Value,
        client: &EventClient,
    ) -> Result<(), EngineError> {
        let Ok(blueprint) = self.engine.registry().blueprint(&product.blueprint) else {
            return Ok(());
        };
        let Some(setup) = blueprint.function(&product.setup_function) else {
            return Ok(());
        };
        let mut params = Map::new();
        params.insert("email".into(), json!(client.email));
        params.insert("customer_email".into(), json!(client.email));
        params.insert("customer_name".into(), json!(client.name));
        if let Value::Object(data) = provision_data {
            params.extend(data.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let known = setup.params.property_names();
        params.retain(|k, _| known.contains(&k.as_str()));
        let Err(errors) = setup.params.validate(&Value::Object(params), FieldLocation::Params) else {
            return Ok(());
        };
        let violations: Vec<Violation> = errors
            .into_iter()
            .filter_map(|e| {
                let top = e.path.trim_start_matches('/').split('/').next().unwrap_or_default().to_owned();
                fields.contains_key(&top).then(|| Violation::new(format!("/service/fields{}", e.path), e.message))
            })
            .collect();
        if violations.is_empty() { Ok(()) } else { Err(EngineError::Invalid(violations)) }
    }
}

/// Customer fields over current data; preset fields of the product win.
fn merge_fields(current: &Value, presets: &Value, fields: &Map<String, Value>) -> Value {
    let mut data = current.as_object().cloned().unwrap_or_default();
    let presets = presets.as_object().cloned().unwrap_or_default();
    for (key, value) in fields {
        if !presets.contains_key(key) {
            data.insert(key.clone(), value.clone());
        }
    }
    for (key, value) in presets {
        data.entry(key).or_insert(value);
    }
    Value::Object(data)
}

/// JSON with every object's keys sorted, as text: the same event resent with
/// its keys in another order has the same digest.
pub(crate) fn canonical(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                Value::Object(keys.into_iter().map(|k| (k.clone(), sorted(&map[k]))).collect())
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}
