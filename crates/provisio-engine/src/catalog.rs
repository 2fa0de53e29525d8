//! Provision configurations, products and clients: validation, secrets
//! sealed at rest, and the audit trail of every change.

use std::sync::OnceLock;

use provisio_sdk::{FieldLocation, FunctionKind, ProviderEntry, SchemaDoc};
use provisio_store::models::{Client, Configuration, Product};
use provisio_store::{audit, clients, configurations, products};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::rules::{self, Rule};
use crate::vault::merge_fields;
use crate::{Catalog, EngineError, Violation, configuration_aad};

/// Decodes a request body after checking it against `T`'s schema, so every
/// broken field is named by its JSON pointer.
pub fn decode<T: DeserializeOwned + JsonSchema>(
    body: &Value,
    schema: &'static OnceLock<SchemaDoc>,
) -> Result<T, EngineError> {
    let doc = schema.get_or_init(SchemaDoc::of::<T>);
    doc.validate(body, FieldLocation::Params).map_err(EngineError::fields)?;
    // JSON Schema counts `85.0` as an integer; so does the decoding.
    serde_json::from_value(integral(body)).map_err(|err| EngineError::invalid("/", err.to_string()))
}

/// A copy where numbers with no fraction (`85.0`) are integers.
fn integral(value: &Value) -> Value {
    match value {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 => Value::from(f as i64),
            _ => value.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(integral).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), integral(v))).collect()),
        other => other.clone(),
    }
}

fn default_concurrency() -> i64 {
    8
}

fn default_true() -> bool {
    true
}

/// A provision configuration as staff send it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigurationInput {
    /// A unique name, e.g. `eu-hosting-1`.
    #[schemars(length(min = 1, max = 100))]
    pub name: String,
    /// `BLUEPRINT/PROVIDER`, e.g. `shared-hosting/demo`.
    #[schemars(length(min = 3, max = 100), regex(pattern = r"^[a-z0-9-]+/[a-z0-9-]+$"))]
    pub provider: String,
    /// Values of the provider's configuration schema; secret fields are write-only.
    #[serde(default)]
    pub values: Map<String, Value>,
    /// Routing attributes for dynamic deployment, e.g. `{"location": "eu"}`.
    #[serde(default)]
    pub attributes: Map<String, Value>,
    /// Most services it may hold (no limit when absent).
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub max_services: Option<i64>,
    /// Most calls in flight toward it at once.
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1, max = 100000))]
    pub max_concurrency: i64,
    /// Most calls started per minute (no limit when absent).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub rate_per_minute: Option<i64>,
    /// Whether new services may be deployed to it and jobs run against it.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

/// A configuration with what the API shows beside it (secret values stay
/// in the row, masked).
#[derive(Debug, Clone)]
pub struct ConfigurationRecord {
    pub configuration: Configuration,
    /// `BLUEPRINT/PROVIDER`.
    pub address: String,
    /// JSON pointers of the secret fields that hold a value.
    pub secrets_set: Vec<String>,
    /// Services it holds (not terminated).
    pub services: i64,
}

impl Catalog {
    fn provider_entry(&self, address: &str, path: &str) -> Result<&ProviderEntry, EngineError> {
        self.engine.registry().provider(address).map_err(|err| EngineError::invalid(path, err.to_string()))
    }

    /// Seals the secret fields of `values`; answers the masked values and the sealed secrets.
    fn seal_configuration(&self, entry: &ProviderEntry, id: i64, values: &Value) -> (Value, Option<Vec<u8>>) {
        let schema = entry.config_schema();
        let secrets: Map<String, Value> = schema.secret_entries(values).into_iter().collect();
        (schema.mask_secrets(values), self.engine.vault().seal_fields(&configuration_aad(id), &secrets))
    }

    fn check_configuration(&self, input: &ConfigurationInput) -> Result<&ProviderEntry, EngineError> {
        let entry = self.provider_entry(&input.provider, "/provider")?;
        let values = Value::Object(input.values.clone());
        if let Err(errors) = entry.validate_config(&values) {
            // Messages never quote values, so secrets cannot leak through them.
            return Err(EngineError::Invalid(
                errors.into_iter().map(|e| Violation::new(format!("/values{}", e.path), e.message)).collect(),
            ));
        }
        if let Some((key, _)) = input.attributes.iter().find(|(_, v)| !v.is_string()) {
            return Err(EngineError::invalid(format!("/attributes/{key}"), "must be a string"));
        }
        Ok(entry)
    }

    /// Creates a configuration.
    pub async fn create_configuration(&self, actor: &str, body: &Value) -> Result<ConfigurationRecord, EngineError> {
        static SCHEMA: OnceLock<SchemaDoc> = OnceLock::new();
        let input: ConfigurationInput = decode(body, &SCHEMA)?;
        let entry = self.check_configuration(&input)?.clone();
        let engine = self.clone();
        let actor = actor.to_owned();
        let id = self
            .engine
            .store()
            .write(move |conn| {
                Box::pin(async move {
                    let mut row = row_of(&input, entry.blueprint().id, &entry.about().id);
                    let id =
                        configurations::insert(conn, &row).await.map_err(|err| unique(err, "/name", "is taken"))?;
                    let (masked, sealed) = engine.seal_configuration(&entry, id, &Value::Object(input.values.clone()));
                    row.config_values = masked;
                    configurations::update(conn, id, &row).await?;
                    configurations::set_secrets(conn, id, sealed.as_deref()).await?;
                    audit::record(
                        conn,
                        &actor,
                        "configuration.create",
                        &format!("configuration:{id}"),
                        &json!({"name": input.name, "provider": input.provider}),
                    )
                    .await?;
                    Ok::<_, EngineError>(id)
                })
            })
            .await?;
        self.engine.queries().configuration_record(id).await
    }

    /// Changes a configuration: top-level keys of `patch` replace the current
    /// ones; inside `values`, keys replace one by one, and a secret left out
    /// (or sent as `"[REDACTED]"`) keeps its value.
    pub async fn update_configuration(
        &self,
        actor: &str,
        id: i64,
        patch: &Value,
    ) -> Result<ConfigurationRecord, EngineError> {
        let Value::Object(patch) = patch else {
            return Err(EngineError::invalid("/", "must be an object"));
        };
        let current = self.engine.queries().configuration(id).await?;
        let mut values = self.engine.configuration_values(&current)?;
        let before = values.clone();
        let mut changed_values = Vec::new();
        if let Some(Value::Object(changes)) = patch.get("values") {
            let object = values.as_object_mut().expect("values are an object");
            for (key, value) in changes {
                if value != provisio_sdk::redact::REDACTED {
                    if object.get(key) != Some(value) {
                        changed_values.push(key.clone());
                    }
                    object.insert(key.clone(), value.clone());
                }
            }
        }
        self.check_endpoint_change(&current, &before, patch.get("values"), &changed_values)?;
        let mut body = json!({
            "name": current.name, "provider": format!("{}/{}", current.blueprint, current.provider), "values": values,
            "attributes": current.attributes, "max_services": current.max_services, "max_concurrency": current.max_concurrency,
            "rate_per_minute": current.rate_per_minute, "enabled": current.enabled,
        });
        for (key, value) in patch {
            if key == "provider" && value != &body["provider"] {
                return Err(EngineError::invalid("/provider", "cannot change; create a new configuration"));
            }
            if key != "values" {
                body[key] = value.clone();
            }
        }
        static SCHEMA: OnceLock<SchemaDoc> = OnceLock::new();
        let input: ConfigurationInput = decode(&body, &SCHEMA)?;
        let entry = self.check_configuration(&input)?.clone();
        let engine = self.clone();
        let actor = actor.to_owned();
        let changed: Vec<String> = patch.keys().cloned().collect();
        changed_values.sort();
        self.engine
            .store()
            .write(move |conn| {
                Box::pin(async move {
                    let mut row = row_of(&input, entry.blueprint().id, &entry.about().id);
                    let (masked, sealed) = engine.seal_configuration(&entry, id, &Value::Object(input.values.clone()));
                    row.config_values = masked;
                    if !configurations::update(conn, id, &row).await.map_err(|err| unique(err, "/name", "is taken"))? {
                        return Err(EngineError::NotFound(format!("no configuration {id}")));
                    }
                    configurations::set_secrets(conn, id, sealed.as_deref()).await?;
                    audit::record(
                        conn,
                        &actor,
                        "configuration.update",
                        &format!("configuration:{id}"),
                        &json!({"fields": changed, "values": changed_values}),
                    )
                    .await?;
                    Ok::<_, EngineError>(())
                })
            })
            .await?;
        self.engine.queries().configuration_record(id).await
    }

    /// A change of where the credentials go (an `x-endpoint` field: URL,
    /// host, port, server) must bring every stored secret again in the same
    /// request: otherwise whoever may edit configurations could point a
    /// stored password at their own listener and `test` it there.
    fn check_endpoint_change(
        &self,
        current: &Configuration,
        before: &Value,
        supplied: Option<&Value>,
        changed: &[String],
    ) -> Result<(), EngineError> {
        let address = format!("{}/{}", current.blueprint, current.provider);
        let Ok(entry) = self.engine.registry().provider(&address) else { return Ok(()) };
        let schema = entry.config_schema();
        let Some(endpoint) = schema.endpoint_names().into_iter().find(|name| changed.iter().any(|c| c == name)) else {
            return Ok(());
        };
        let missing: Vec<Violation> = schema
            .secret_paths()
            .into_iter()
            .filter(|path| before.pointer(path).is_some_and(|v| !v.is_null()))
            .filter(|path| {
                supplied
                    .and_then(|values| values.pointer(path))
                    .is_none_or(|v| v.is_null() || v == provisio_sdk::redact::REDACTED)
            })
            .map(|path| {
                Violation::new(
                    format!("/values{path}"),
                    format!("must be given again when /values/{endpoint} changes (the stored one is never sent to a new place)"),
                )
            })
            .collect();
        if missing.is_empty() { Ok(()) } else { Err(EngineError::Invalid(missing)) }
    }

    /// Deletes a configuration no service was ever deployed to.
    pub async fn delete_configuration(&self, actor: &str, id: i64) -> Result<(), EngineError> {
        let actor = actor.to_owned();
        self.engine
            .store()
            .write(move |conn| {
                Box::pin(async move {
                    if configurations::references(conn, id).await? > 0 {
                        return Err(EngineError::Conflict(format!(
                            "configuration {id} holds services; disable it instead"
                        )));
                    }
                    if !configurations::delete(conn, id)
                        .await
                        .map_err(|_| EngineError::Conflict(format!("configuration {id} is used by a product or job")))?
                    {
                        return Err(EngineError::NotFound(format!("no configuration {id}")));
                    }
                    audit::record(conn, &actor, "configuration.delete", &format!("configuration:{id}"), &json!({}))
                        .await?;
                    Ok(())
                })
            })
            .await
    }

    /// Runs the provider's connection test against a stored configuration.
    pub async fn test_configuration(&self, actor: &str, id: i64) -> Result<provisio_sdk::Envelope, EngineError> {
        let configuration = self.engine.queries().configuration(id).await?;
        let address = format!("{}/{}", configuration.blueprint, configuration.provider);
        let entry = self.engine.registry().provider(&address).map_err(|err| EngineError::Conflict(err.to_string()))?;
        let values = self.engine.configuration_values(&configuration)?;
        let options = provisio_sdk::CallOptions { timeout: self.engine.settings().call_timeout, ..Default::default() };
        let report = provisio_sdk::invoke::test_connection(entry, &values, &options).await;
        let outcome = report.envelope.error_kind.map(|k| k.to_string()).unwrap_or_else(|| "ok".into());
        self.engine
            .record_audit(
                actor.to_owned(),
                "configuration.test",
                format!("configuration:{id}"),
                json!({"outcome": outcome}),
            )
            .await?;
        Ok(report.envelope)
    }
}

fn row_of(input: &ConfigurationInput, blueprint: &str, provider: &str) -> configurations::ConfigurationRow {
    configurations::ConfigurationRow {
        blueprint: blueprint.to_owned(),
        provider: provider.to_owned(),
        name: input.name.clone(),
        config_values: Value::Object(Map::new()),
        attributes: Value::Object(input.attributes.clone()),
        max_services: input.max_services,
        max_concurrency: input.max_concurrency,
        rate_per_minute: input.rate_per_minute,
        enabled: input.enabled,
    }
}

/// Maps a UNIQUE violation to a conflict naming the field.
pub(crate) fn unique(err: provisio_store::StoreError, path: &str, message: &str) -> EngineError {
    if err.is_unique_violation() { EngineError::Taken(Violation::new(path, message)) } else { EngineError::Store(err) }
}

/// How a dynamic product picks a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The configuration holding the fewest services.
    LeastUsed,
    /// Each in turn.
    RoundRobin,
    /// The first with capacity, until it is full.
    Fill,
}

impl Strategy {
    /// Every strategy.
    pub const ALL: [Strategy; 3] = [Strategy::LeastUsed, Strategy::RoundRobin, Strategy::Fill];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::LeastUsed => "least_used",
            Strategy::RoundRobin => "round_robin",
            Strategy::Fill => "fill",
        }
    }
}

/// Where a product's services go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Deployment {
    /// Always this configuration.
    Static {
        /// The configuration's id.
        configuration_id: i64,
    },
    /// Picked at setup among enabled configurations of the blueprint (and
    /// provider, if explicit) whose attributes match and that have capacity.
    Dynamic {
        /// How to pick.
        strategy: Strategy,
        /// Attributes a configuration must have, e.g. `{"location": "eu"}`.
        #[serde(default)]
        attributes: Map<String, Value>,
    },
}

/// A product as staff send it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    /// A unique slug, e.g. `demo-hosting`.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-z0-9][a-z0-9-]*$"))]
    pub slug: String,
    /// Display name.
    #[schemars(length(min = 1, max = 200))]
    pub name: String,
    /// The blueprint id.
    #[schemars(length(min = 1, max = 64))]
    pub blueprint: String,
    /// A provider id of the blueprint; chosen automatically when absent.
    #[serde(default)]
    pub provider: Option<String>,
    /// Static or dynamic deployment.
    pub deployment: Deployment,
    /// The function run at activation; the blueprint's default when absent.
    #[serde(default)]
    pub setup_function: Option<String>,
    /// Preset values for function params, e.g. `{"package_name": "basic"}`.
    #[serde(default)]
    pub provision_fields: Map<String, Value>,
    /// Automation rules replacing the blueprint's defaults per event type.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// How a difference sync finds between a service's record and its
    /// system is met: reported, accepted as the truth, or repaired.
    #[serde(default)]
    pub drift_response: DriftResponse,
}

/// How a product meets drift.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DriftResponse {
    /// Record it (and tell rules and webhooks); change nothing.
    #[default]
    Report,
    /// The system is the truth: the record takes its values.
    Accept,
    /// The record is the truth: a job puts the system back (where the
    /// blueprint knows how; otherwise it is reported).
    Repair,
}

impl DriftResponse {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DriftResponse::Report => "report",
            DriftResponse::Accept => "accept",
            DriftResponse::Repair => "repair",
        }
    }

    /// Parses a stored name (anything unknown is `report`).
    pub fn parse(name: &str) -> DriftResponse {
        match name {
            "accept" => DriftResponse::Accept,
            "repair" => DriftResponse::Repair,
            _ => DriftResponse::Report,
        }
    }
}

impl Catalog {
    async fn check_product(&self, input: &ProductInput) -> Result<products::ProductRow, EngineError> {
        let blueprint = self
            .engine
            .registry()
            .blueprint(&input.blueprint)
            .map_err(|e| EngineError::invalid("/blueprint", e.to_string()))?;
        if let Some(provider) = &input.provider {
            self.provider_entry(&format!("{}/{provider}", blueprint.id), "/provider")?;
        }
        let setup = input.setup_function.clone().unwrap_or_else(|| blueprint.default_setup_function.to_owned());
        match blueprint.function(&setup) {
            Some(f) if f.kind == FunctionKind::Lifecycle => {}
            _ => {
                return Err(EngineError::invalid(
                    "/setup_function",
                    format!("{setup} is not a lifecycle function of {}", blueprint.id),
                ));
            }
        }
        for (i, rule) in input.rules.iter().enumerate() {
            if rule.function != rules::SETUP && blueprint.function(&rule.function).is_none() {
                return Err(EngineError::invalid(
                    format!("/rules/{i}/function"),
                    format!("{} has no function {}", blueprint.id, rule.function),
                ));
            }
        }
        let (configuration_id, strategy, filters) = match &input.deployment {
            Deployment::Static { configuration_id } => {
                let id = *configuration_id;
                let configuration = self
                    .engine
                    .store()
                    .read(move |conn| {
                        Box::pin(async move { Ok::<_, EngineError>(configurations::get(conn, id).await?) })
                    })
                    .await?
                    .ok_or_else(|| {
                        EngineError::invalid("/deployment/configuration_id", format!("no configuration {id}"))
                    })?;
                if configuration.blueprint != blueprint.id
                    || input.provider.as_ref().is_some_and(|p| *p != configuration.provider)
                {
                    return Err(EngineError::invalid(
                        "/deployment/configuration_id",
                        format!(
                            "configuration {id} is {}/{}, not of this product's blueprint and provider",
                            configuration.blueprint, configuration.provider
                        ),
                    ));
                }
                (Some(id), None, Map::new())
            }
            Deployment::Dynamic { strategy, attributes } => {
                (None, Some(strategy.as_str().to_owned()), attributes.clone())
            }
        };
        Ok(products::ProductRow {
            slug: input.slug.clone(),
            name: input.name.clone(),
            blueprint: blueprint.id.to_owned(),
            provider: input.provider.clone(),
            deployment: if configuration_id.is_some() { "static" } else { "dynamic" }.to_owned(),
            configuration_id,
            strategy,
            attribute_filters: Value::Object(filters),
            setup_function: setup,
            provision_fields: Value::Object(input.provision_fields.clone()),
            rules: serde_json::to_value(&input.rules).expect("rules serialise"),
            drift_response: input.drift_response.as_str().to_owned(),
        })
    }

    /// Creates a product.
    pub async fn create_product(&self, actor: &str, body: &Value) -> Result<Product, EngineError> {
        static SCHEMA: OnceLock<SchemaDoc> = OnceLock::new();
        let input: ProductInput = decode(body, &SCHEMA)?;
        let row = self.check_product(&input).await?;
        let actor = actor.to_owned();
        let id = self
            .engine
            .store()
            .write(move |conn| {
                Box::pin(async move {
                    let id = products::insert(conn, &row).await.map_err(|err| unique(err, "/slug", "is taken"))?;
                    audit::record(conn, &actor, "product.create", &format!("product:{id}"), &json!({"slug": row.slug}))
                        .await?;
                    Ok::<_, EngineError>(id)
                })
            })
            .await?;
        self.engine.product_cache_clear();
        self.engine.queries().product(&id.to_string()).await
    }

    /// Changes a product: top-level keys of `patch` replace the current ones.
    pub async fn update_product(&self, actor: &str, key: &str, patch: &Value) -> Result<Product, EngineError> {
        let Value::Object(patch) = patch else {
            return Err(EngineError::invalid("/", "must be an object"));
        };
        let current = self.engine.queries().product(key).await?;
        let mut body = product_input(&current);
        for (key, value) in patch {
            if key == "blueprint" && value != &body["blueprint"] {
                return Err(EngineError::invalid("/blueprint", "cannot change; create a new product"));
            }
            body[key] = value.clone();
        }
        static SCHEMA: OnceLock<SchemaDoc> = OnceLock::new();
        let input: ProductInput = decode(&body, &SCHEMA)?;
        let row = self.check_product(&input).await?;
        let id = current.id;
        let actor = actor.to_owned();
        let fields: Vec<String> = patch.keys().cloned().collect();
        self.engine
            .store()
            .write(move |conn| {
                Box::pin(async move {
                    products::update(conn, id, &row).await.map_err(|err| unique(err, "/slug", "is taken"))?;
                    audit::record(conn, &actor, "product.update", &format!("product:{id}"), &json!({"fields": fields}))
                        .await?;
                    Ok::<_, EngineError>(())
                })
            })
            .await?;
        self.engine.product_cache_clear();
        self.engine.queries().product(&id.to_string()).await
    }

    /// Creates a client.
    pub async fn create_client(&self, actor: &str, body: &Value) -> Result<Client, EngineError> {
        static SCHEMA: OnceLock<SchemaDoc> = OnceLock::new();
        let input: crate::events::EventClient = decode(body, &SCHEMA)?;
        let actor = actor.to_owned();
        self.engine
            .store()
            .write(move |conn| {
                Box::pin(async move {
                    let client = clients::insert(conn, input.external_id.as_deref(), &input.name, input.email.as_str())
                        .await
                        .map_err(|err| unique(err, "/external_id", "is taken"))?;
                    audit::record(conn, &actor, "client.create", &format!("client:{}", client.id), &json!({})).await?;
                    Ok::<_, EngineError>(client)
                })
            })
            .await
    }
}

/// A product back in its input shape (for patches).
fn product_input(product: &Product) -> Value {
    let deployment = match product.configuration_id {
        Some(id) if product.deployment == "static" => {
            json!({"type": "static", "configuration_id": id})
        }
        _ => {
            json!({"type": "dynamic", "strategy": product.strategy.clone().unwrap_or_else(|| "least_used".into()),
                    "attributes": product.attribute_filters})
        }
    };
    json!({
        "slug": product.slug, "name": product.name, "blueprint": product.blueprint, "provider": product.provider,
        "deployment": deployment, "setup_function": product.setup_function,
        "provision_fields": product.provision_fields, "rules": product.rules,
        "drift_response": product.drift_response,
    })
}

impl crate::Engine {
    /// Full configuration values (secrets opened) for calling the provider.
    pub(crate) fn configuration_values(&self, configuration: &Configuration) -> Result<Value, EngineError> {
        let secrets =
            self.vault().open_fields(&configuration_aad(configuration.id), configuration.secrets.as_deref())?;
        let mut values = configuration.config_values.clone();
        merge_fields(&mut values, &secrets);
        Ok(values)
    }
}
