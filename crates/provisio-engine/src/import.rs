//! Import: what a configuration already holds becomes services.
//!
//! One call imports one page: the provider's `list` answers what the
//! configuration holds (each resource with the owner mark it carries), and
//! each resource is then, in one write transaction:
//!
//! | found | outcome |
//! |---|---|
//! | a live service holds its identifier on the configuration | `matched`: nothing changes |
//! | it carries a service's owner mark (on another configuration, ended, or another installation's) | `skipped`: never a second service |
//! | the provider refuses it (a system database, a login shared with other databases) | `skipped`, with the reason |
//! | no client found (by the chosen id, or the resource's e-mail) | `skipped` |
//! | otherwise | `created`: a service of the chosen product and client, its identifier reserved, and a job of origin `import` running the blueprint's `adopt`, which writes the service's owner mark at the system and leaves it active or suspended as found |
//!
//! A second import of the same configuration matches everything it created
//! the first time, so it changes nothing. A dry run decides the same way on a
//! read connection and writes nothing. The caller pages with `cursor`
//! (`provisio import` does, with a progress line), so no request holds the
//! writer or the provider for long.

use std::sync::OnceLock;

use provisio_sdk::blueprints::{ListParams, Listed, Listing, State};
use provisio_sdk::{BlueprintDescriptor, CallOptions, ErrorKind, SchemaDoc};
use provisio_store::models::{Client, Configuration, Product};
use provisio_store::{Conn, clients, jobs, services};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{Catalog, EngineError, ownership};

fn default_limit() -> u32 {
    100
}

/// What staff ask of an import (one page of it).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportInput {
    /// The product new services belong to (id or slug): of the
    /// configuration's blueprint, and deploying to that configuration.
    #[schemars(length(min = 1, max = 200))]
    pub product: String,
    /// The client new services belong to (when `match_email` finds none).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub client_id: Option<i64>,
    /// Find each resource's client by the contact e-mail its system holds.
    #[serde(default)]
    pub match_email: bool,
    /// Only resources whose identifier starts with this (the others of each
    /// page are left out of its answer).
    #[serde(default)]
    #[schemars(length(min = 1, max = 255))]
    pub prefix: Option<String>,
    /// Where to go on from: the previous page's `next_cursor`.
    #[serde(default)]
    #[schemars(length(min = 1, max = 1000))]
    pub cursor: Option<String>,
    /// Resources in this page.
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 500))]
    pub limit: u32,
    /// Say what would be done; change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What became of one listed resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportOutcome {
    /// A service was made for it (its adopt job queued).
    Created,
    /// A service would be made for it (dry run).
    WouldCreate,
    /// A live service already holds it on this configuration.
    Matched,
    /// Left alone: see the reason.
    Skipped,
}

/// One listed resource and what the import did with it.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ImportLine {
    /// Its service identifier.
    pub identifier: String,
    /// What was done.
    pub outcome: ImportOutcome,
    /// The service it is (created or matched), or the one whose mark or
    /// name keeps it from being imported.
    pub service_id: Option<i64>,
    /// The client it went (or would go) to.
    pub client_id: Option<i64>,
    /// The adopt job that marks it as the service's.
    pub job_id: Option<i64>,
    /// Why it was skipped.
    pub reason: Option<String>,
}

/// One page of an import.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ImportPage {
    /// The configuration imported from.
    pub configuration_id: i64,
    /// Nothing was written.
    pub dry_run: bool,
    /// Each resource of the page, in the system's order.
    pub resources: Vec<ImportLine>,
    /// How many were created (or would be).
    pub created: usize,
    /// How many were already services.
    pub matched: usize,
    /// How many were left alone.
    pub skipped: usize,
    /// Where the next page starts (send it as `cursor`); absent on the last.
    pub next_cursor: Option<String>,
    /// How many resources the configuration holds in all, when its system says.
    pub total: Option<u64>,
}

/// Everything a page's decisions need besides the store.
struct Plan {
    blueprint: &'static BlueprintDescriptor,
    adopt: &'static str,
    configuration: Configuration,
    product: Product,
    client: Option<Client>,
    match_email: bool,
    max_attempts: i64,
    dry_run: bool,
    actor: String,
}

impl Catalog {
    /// Imports one page of what configuration `id` holds (see the module).
    pub async fn import(&self, actor: &str, id: i64, body: &Value) -> Result<ImportPage, EngineError> {
        static SCHEMA: OnceLock<SchemaDoc> = OnceLock::new();
        let input: ImportInput = crate::catalog::decode(body, &SCHEMA)?;
        let configuration = self.engine.queries().configuration(id).await?;
        let address = format!("{}/{}", configuration.blueprint, configuration.provider);
        let entry = self.engine.registry().provider(&address).map_err(|err| EngineError::Conflict(err.to_string()))?;
        let blueprint = entry.blueprint();
        let Some(import) = blueprint.import else {
            return Err(EngineError::Conflict(format!("{} services cannot be imported", blueprint.name)));
        };
        let product = match self.engine.queries().product(&input.product).await {
            Ok(product) => product,
            Err(EngineError::NotFound(_)) => return Err(EngineError::invalid("/product", "no such product")),
            Err(err) => return Err(err),
        };
        if product.blueprint != configuration.blueprint {
            return Err(EngineError::invalid(
                "/product",
                format!("is a {} product; configuration {id} is {}", product.blueprint, configuration.blueprint),
            ));
        }
        if !crate::deploy::serves(&product, &configuration) {
            return Err(EngineError::invalid("/product", format!("does not deploy to configuration {id}")));
        }
        let client = match input.client_id {
            Some(client_id) => {
                let found = self
                    .engine
                    .store()
                    .read(move |conn| {
                        Box::pin(async move { Ok::<_, EngineError>(clients::get(conn, client_id).await?) })
                    })
                    .await?;
                Some(found.ok_or_else(|| EngineError::invalid("/client_id", "no such client"))?)
            }
            None if input.match_email => None,
            None => return Err(EngineError::invalid("/client_id", "is required unless match_email is true")),
        };

        let listing = self.list(&configuration, entry, import.list, &input).await?;
        let plan = Plan {
            blueprint,
            adopt: import.adopt,
            configuration,
            product,
            client,
            match_email: input.match_email,
            max_attempts: self.engine.settings().max_attempts,
            dry_run: input.dry_run,
            actor: actor.to_owned(),
        };
        let mut resources = listing.resources;
        if let Some(prefix) = &input.prefix {
            resources.retain(|r| r.identifier.starts_with(prefix.as_str()));
        }
        let dry_run = input.dry_run;
        let store = self.engine.store();
        let lines = if dry_run {
            store.read(move |conn| Box::pin(async move { page(conn, &plan, &resources).await })).await?
        } else {
            store
                .write(move |conn| {
                    Box::pin(async move {
                        // Two imports of one configuration must not both find a resource unclaimed.
                        conn.lock_admissions().await?;
                        page(conn, &plan, &resources).await
                    })
                })
                .await?
        };
        if !dry_run && lines.iter().any(|l| l.outcome == ImportOutcome::Created) {
            self.engine.wake();
        }
        let count = |outcome: ImportOutcome| lines.iter().filter(|l| l.outcome == outcome).count();
        Ok(ImportPage {
            configuration_id: id,
            dry_run,
            created: count(ImportOutcome::Created) + count(ImportOutcome::WouldCreate),
            matched: count(ImportOutcome::Matched),
            skipped: count(ImportOutcome::Skipped),
            resources: lines,
            next_cursor: listing.next_cursor,
            total: listing.total,
        })
    }

    /// One page of what the configuration holds, as its provider lists it.
    async fn list(
        &self,
        configuration: &Configuration,
        entry: &provisio_sdk::ProviderEntry,
        function: &str,
        input: &ImportInput,
    ) -> Result<Listing, EngineError> {
        let values = self.engine.configuration_values(configuration)?;
        let params = serde_json::to_value(ListParams { cursor: input.cursor.clone(), limit: input.limit })
            .expect("list params serialise");
        let options = CallOptions { timeout: self.engine.settings().call_timeout, ..Default::default() };
        let report = provisio_sdk::invoke::call(entry, &values, function, &params, &options).await;
        let envelope = report.envelope;
        let failed = |kind: ErrorKind| {
            let why = format!("{} could not list what it holds: {}", configuration.name, envelope.message);
            match kind {
                ErrorKind::Transient | ErrorKind::OutcomeUnknown => EngineError::Busy(why),
                ErrorKind::Unsupported => EngineError::Conflict(format!(
                    "{} ({}) cannot list what a configuration holds",
                    entry.about().name,
                    entry.address()
                )),
                // The params are ours but for the cursor; a bad configuration is staff's to fix.
                ErrorKind::InvalidInput
                    if envelope.field_errors().iter().all(|e| e.location == provisio_sdk::FieldLocation::Params) =>
                {
                    EngineError::invalid("/cursor", why)
                }
                _ => EngineError::Conflict(why),
            }
        };
        if let Some(kind) = envelope.error_kind {
            return Err(failed(kind));
        }
        let listing: Listing = serde_json::from_value(envelope.data.clone().unwrap_or(Value::Null)).map_err(|err| {
            EngineError::Conflict(format!("{} answered a listing that does not parse: {err}", entry.address()))
        })?;
        if listing.resources.len() > input.limit as usize {
            return Err(EngineError::Conflict(format!(
                "{} answered {} resources for a page of {}",
                entry.address(),
                listing.resources.len(),
                input.limit
            )));
        }
        Ok(listing)
    }
}

/// Decides (and unless a dry run, does) what becomes of each resource of a page.
async fn page(conn: &mut Conn, plan: &Plan, resources: &[Listed]) -> Result<Vec<ImportLine>, EngineError> {
    let mut lines = Vec::with_capacity(resources.len());
    for listed in resources {
        let (line, identifier) = decide(conn, plan, listed).await?;
        lines.push(match (line.outcome, identifier) {
            (ImportOutcome::WouldCreate, Some(identifier)) if !plan.dry_run => {
                create(conn, plan, listed, &identifier, line).await?
            }
            _ => line,
        });
    }
    if !plan.dry_run && !lines.is_empty() {
        let created = lines.iter().filter(|l| l.outcome == ImportOutcome::Created).count();
        let details = json!({"created": created, "listed": lines.len()});
        let subject = format!("configuration:{}", plan.configuration.id);
        provisio_store::audit::record(conn, &plan.actor, "configuration.import", &subject, &details).await?;
    }
    Ok(lines)
}

/// What to do with one listed resource (reads only), and the identifier it
/// would be reserved under.
async fn decide(conn: &mut Conn, plan: &Plan, listed: &Listed) -> Result<(ImportLine, Option<String>), EngineError> {
    let mut line = ImportLine {
        identifier: listed.identifier.clone(),
        outcome: ImportOutcome::Skipped,
        service_id: None,
        client_id: None,
        job_id: None,
        reason: None,
    };
    let skip = |mut line: ImportLine, why: String| {
        line.reason = Some(why);
        Ok((line, None))
    };
    let named = json!({ plan.blueprint.service_identifier: listed.identifier });
    let Some(identifier) = ownership::identifier_in(plan.blueprint, &named) else {
        return skip(line, "it has no usable identifier".into());
    };
    if let Some(holder) = services::holder(conn, plan.configuration.id, &identifier, 0).await? {
        line.service_id = Some(holder.id);
        line.client_id = Some(holder.client_id);
        // Matched only when the resource is that service's by its mark: a
        // service whose setup failed (the name was taken at the system) holds
        // the name here without owning what the system has.
        if listed.owner_mark.as_deref() == Some(holder.owner_mark.as_str()) {
            line.outcome = ImportOutcome::Matched;
            return Ok((line, None));
        }
        return skip(
            line,
            format!(
                "service {} ({}) holds this name here, but the resource does not carry its mark",
                holder.id, holder.status
            ),
        );
    }
    if let Some(mark) = &listed.owner_mark {
        return match services::by_owner_mark(conn, mark).await? {
            Some(owner) => {
                line.service_id = Some(owner.id);
                let on = owner.configuration_id.map(|c| format!(" on configuration {c}")).unwrap_or_default();
                skip(line, format!("it carries the owner mark of service {} ({}{on})", owner.id, owner.status))
            }
            None => skip(
                line,
                "it carries an owner mark no service here has (made by another system or installation)".into(),
            ),
        };
    }
    if let Some(why) = &listed.refused {
        return skip(line, why.clone());
    }
    let by_email = match (&listed.email, plan.match_email) {
        (Some(email), true) => {
            let found = clients::by_email(conn, email, 2).await?;
            match found.as_slice() {
                [one] => Some(one.id),
                [] => None,
                _ => return skip(line, format!("several clients have the e-mail {email}")),
            }
        }
        _ => None,
    };
    let Some(client_id) = by_email.or(plan.client.as_ref().map(|c| c.id)) else {
        let why = match &listed.email {
            Some(email) => format!("no client has the e-mail {email}"),
            None => "its system holds no e-mail to find its client by".into(),
        };
        return skip(line, why);
    };
    line.client_id = Some(client_id);
    if let Some(why) =
        ownership::refusal(conn, plan.blueprint, (0, client_id), plan.configuration.id, &identifier).await?
    {
        return skip(line, why);
    }
    line.outcome = ImportOutcome::WouldCreate;
    Ok((line, Some(identifier)))
}

/// Makes the service for one resource: its identifier reserved on the
/// configuration and an adopt job queued to mark it at the system.
async fn create(
    conn: &mut Conn,
    plan: &Plan,
    listed: &Listed,
    identifier: &str,
    mut line: ImportLine,
) -> Result<ImportLine, EngineError> {
    let client_id = line.client_id.expect("a client is decided before a service is made");
    let mut data = listed.data.clone();
    data.insert(plan.blueprint.service_identifier.to_owned(), json!(listed.identifier));
    let provision_data = Value::Object(data);
    let projected = match listed.state {
        State::Active => "active",
        State::Suspended => "suspended",
    };
    let mark = ownership::new_owner_mark();
    let service = services::insert(
        conn,
        &services::NewService {
            external_id: None,
            client_id,
            product_id: plan.product.id,
            projected_status: projected,
            provision_data: &provision_data,
            owner_mark: &mark,
        },
    )
    .await?;
    ownership::reserve(conn, plan.blueprint, &service, plan.configuration.id, identifier).await?;
    let change = services::ServiceChange {
        status: "provisioning",
        identifier: Some(identifier),
        provision_data: &provision_data,
        secrets: None,
        last_error: None,
    };
    services::apply(conn, service.id, &change).await?;
    let note =
        format!("Imported from {} (made outside Provisio); marking it as this service's", plan.configuration.name);
    services::add_history(conn, service.id, Some("pending"), "provisioning", None, &note).await?;
    let job = jobs::insert(
        conn,
        &jobs::NewJob {
            service_id: service.id,
            event_id: None,
            function: plan.adopt,
            args: &json!({}),
            origin: jobs::IMPORT,
            max_attempts: plan.max_attempts,
            idempotency_key: &format!("import-{}", service.id),
            secrets: None,
        },
    )
    .await?;
    line.outcome = ImportOutcome::Created;
    line.service_id = Some(service.id);
    line.job_id = Some(job.id);
    Ok(line)
}
