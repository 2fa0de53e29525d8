//! Provision configurations: the list, adding one (choose the blueprint,
//! then the provider, then fill the form generated from the provider's
//! configuration schema), editing (secrets write-only: "set", or replace)
//! and the connection test with its diagnosis.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use provisio_engine::catalog::ConfigurationRecord;
use provisio_sdk::ProviderEntry;
use provisio_store::models::Scope;
use serde_json::{Map, Value, json};

use crate::Console;
use crate::form::{self, Field, Filled};
use crate::layout::{self, Refusal};
use crate::session::StaffSession;
use crate::staff::cell;

type Pairs = Vec<(String, String)>;

/// `GET /configurations`.
pub async fn list(State(console): State<Console>, session: StaffSession) -> Response {
    let records = match console.engine.queries().configurations(None).await {
        Ok(records) => records,
        Err(err) => return crate::failure(err),
    };
    let body = html! {
        @if session.scope >= Scope::Admin { p { a.button href="/configurations/new" { "Add a configuration" } } }
        @if records.is_empty() {
            p.muted { "No provision configurations yet." }
        } @else {
            div.scroll { table {
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Provider" } th scope="col" { "Services" }
                    th scope="col" { "Attributes" } th scope="col" { "Enabled" }
                } }
                tbody { @for record in &records {
                    @let c = &record.configuration;
                    tr {
                        td { a href=(format!("/configurations/{}", c.id)) { (c.name) } }
                        td { (record.address) }
                        td { (record.services) @if let Some(max) = c.max_services { " / " (max) } }
                        td { (cell(&c.attributes)) }
                        td { (if c.enabled { "yes" } else { "no (draining)" }) }
                    }
                } }
            } }
        }
    };
    layout::respond(StatusCode::OK, layout::staff("Provision configurations", &session, body))
}

/// `GET /configurations/new[?provider=BLUEPRINT/PROVIDER]`: first the
/// blueprints and their providers, then the provider's form.
pub async fn new(
    State(console): State<Console>,
    session: StaffSession,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    if let Err(refused) = session.require(Scope::Admin) {
        return refused.into_response();
    }
    let registry = console.engine.registry();
    let Some(address) = query.get("provider") else {
        let body = html! {
            p { "Choose the blueprint, then the provider that will run it." }
            @for blueprint in registry.blueprints() {
                section.choice {
                    h2 { (blueprint.name) }
                    p.help { (blueprint.description) }
                    ul { @for provider in registry.providers(Some(blueprint.id)) {
                        li { a href=(format!("/configurations/new?provider={}", provider.address())) { (provider.about().name) }
                             " — " (provider.about().description) }
                    } }
                }
            }
        };
        return layout::respond(StatusCode::OK, layout::staff("Add a configuration", &session, body));
    };
    match registry.provider(address) {
        Ok(entry) => editor(&session, entry, None, None, &BTreeMap::new(), StatusCode::OK),
        Err(_) => layout::error_page(StatusCode::NOT_FOUND, "There is no such provider."),
    }
}

/// The fields every configuration has beside its provider's values.
fn common_fields() -> Vec<Field> {
    let schema = json!({
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "description": "A unique name, e.g. eu-hosting-1."},
            "attributes": {"type": "object", "description": "Routing attributes for dynamic deployment, as JSON, e.g. {\"location\": \"eu\"}."},
            "max_services": {"type": "integer", "description": "Most services it may hold (empty: no limit)."},
            "max_concurrency": {"type": "integer", "default": 8, "description": "Most calls in flight toward it at once."},
            "rate_per_minute": {"type": "integer", "description": "Most calls started per minute (empty: no limit)."},
            "enabled": {"type": "boolean", "default": true, "description": "New services may be deployed to it (off: draining)."}
        }
    });
    form::fields(&schema, "")
}

fn value_fields(entry: &ProviderEntry) -> Vec<Field> {
    form::fields(entry.config_schema().value(), "/values")
}

/// The form to add or change a configuration.
fn editor(
    session: &StaffSession,
    entry: &ProviderEntry,
    stored: Option<&ConfigurationRecord>,
    submitted: Option<&Value>,
    errors: &BTreeMap<String, String>,
    status: StatusCode,
) -> Response {
    let shown = submitted.cloned().or_else(|| stored.map(stored_body));
    let secrets_set: Vec<String> =
        stored.map(|r| r.secrets_set.iter().map(|p| format!("/values{p}")).collect()).unwrap_or_default();
    let filled = Filled { values: shown.as_ref(), secrets_set: &secrets_set, errors };
    let (action, title) = match stored {
        Some(record) => (format!("/configurations/{}", record.configuration.id), record.configuration.name.clone()),
        None => ("/configurations".to_owned(), format!("Add a {} configuration", entry.about().name)),
    };
    let body = html! {
        @if !errors.is_empty() {
            div.notice.bad role="alert" {
                p { "Please correct the fields below." }
                ul { @for (pointer, message) in errors { li { a href=(format!("#f{}", pointer.replace('/', "-"))) { (message) } } } }
            }
        }
        @if let Some(record) = stored { (summary(record)) }
        form method="post" action=(action) {
            input type="hidden" name="_csrf" value=(session.csrf);
            input type="hidden" name="provider" value=(entry.address());
            fieldset {
                legend { "Configuration" }
                (form::render(&common_fields(), &filled))
            }
            fieldset {
                legend { (entry.about().name) " settings" }
                (form::render(&value_fields(entry), &filled))
            }
            button.primary type="submit" { (if stored.is_some() { "Save" } else { "Add configuration" }) }
        }
        @if let Some(record) = stored {
            form method="post" action=(format!("/configurations/{}/test", record.configuration.id)) {
                input type="hidden" name="_csrf" value=(session.csrf);
                button type="submit" { "Test connection" }
            }
        }
    };
    layout::respond(status, layout::staff(&title, session, body))
}

fn summary(record: &ConfigurationRecord) -> Markup {
    let c = &record.configuration;
    html! {
        dl.summary {
            dt { "Provider" } dd { (record.address) }
            dt { "Services" } dd { (record.services) @if let Some(max) = c.max_services { " of " (max) } }
            dt { "Secrets set" } dd { @if record.secrets_set.is_empty() { "none" } @else { (record.secrets_set.join(", ")) } }
        }
    }
}

/// A stored configuration in the request body's shape (secret values are
/// masked in the row and never put in the form).
fn stored_body(record: &ConfigurationRecord) -> Value {
    let c = &record.configuration;
    let mut values = c.config_values.clone();
    for pointer in &record.secrets_set {
        if let Some(slot) = values.pointer_mut(pointer) {
            *slot = Value::Null;
        }
    }
    json!({
        "name": c.name, "attributes": c.attributes, "max_services": c.max_services,
        "max_concurrency": c.max_concurrency, "rate_per_minute": c.rate_per_minute, "enabled": c.enabled,
        "values": values,
    })
}

/// The request body of a submitted form, or the errors by field.
fn read_body(entry: &ProviderEntry, pairs: &Pairs) -> Result<Value, (Value, BTreeMap<String, String>)> {
    let mut fields = common_fields();
    fields.extend(value_fields(entry));
    let (mut body, errors) = match form::read(&fields, pairs) {
        Ok(body) => (body, BTreeMap::new()),
        Err((kept, errors)) => (kept, errors),
    };
    // An emptied optional limit is cleared, not kept (the engine keeps what a
    // change leaves out).
    for name in ["max_services", "rate_per_minute"] {
        let emptied = pairs
            .iter()
            .rev()
            .find(|(k, _)| k.strip_prefix('/') == Some(name))
            .is_some_and(|(_, v)| v.trim().is_empty());
        if emptied {
            form::set(&mut body, &format!("/{name}"), Value::Null);
        }
    }
    form::set(&mut body, "/provider", Value::String(entry.address()));
    if body.get("values").is_none() {
        form::set(&mut body, "/values", Value::Object(Map::new()));
    }
    if errors.is_empty() { Ok(body) } else { Err((body, errors)) }
}

fn provider_of<'a>(console: &'a Console, pairs: &Pairs) -> Result<&'a ProviderEntry, Refusal> {
    let address = form::field(pairs, "provider");
    console
        .engine
        .registry()
        .provider(address)
        .map_err(|_| Refusal::new(StatusCode::UNPROCESSABLE_ENTITY, "Choose a provider."))
}

/// `POST /configurations`.
pub async fn create(State(console): State<Console>, session: StaffSession, Form(pairs): Form<Pairs>) -> Response {
    if let Err(refused) = session.check(&console, &pairs).and_then(|()| session.require(Scope::Admin)) {
        return refused.into_response();
    }
    let entry = match provider_of(&console, &pairs) {
        Ok(entry) => entry,
        Err(refused) => return refused.into_response(),
    };
    let body = match read_body(entry, &pairs) {
        Ok(body) => body,
        Err((body, errors)) => {
            let shown = without_secrets(entry, body);
            return editor(&session, entry, None, Some(&shown), &errors, StatusCode::UNPROCESSABLE_ENTITY);
        }
    };
    match console.engine.catalog().create_configuration(&session.actor(), &body).await {
        Ok(record) => Redirect::to(&format!("/configurations/{}", record.configuration.id)).into_response(),
        Err(err) => match crate::field_messages(&err) {
            Some(errors) => editor(
                &session,
                entry,
                None,
                Some(&without_secrets(entry, body)),
                &errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            None => crate::failure(err),
        },
    }
}

/// A submitted body to show again: secrets are never echoed into the page.
fn without_secrets(entry: &ProviderEntry, mut body: Value) -> Value {
    if let Some(values) = body.get_mut("values") {
        form::blank_secrets(values, entry.config_schema());
    }
    body
}

/// `GET /configurations/{id}`.
pub async fn show(State(console): State<Console>, session: StaffSession, Path(id): Path<i64>) -> Response {
    let record = match console.engine.queries().configuration_record(id).await {
        Ok(record) => record,
        Err(err) => return crate::failure(err),
    };
    match console.engine.registry().provider(&record.address) {
        Ok(entry) => editor(&session, entry, Some(&record), None, &BTreeMap::new(), StatusCode::OK),
        Err(_) => layout::error_page(StatusCode::CONFLICT, "This configuration's provider is not compiled in."),
    }
}

/// `POST /configurations/{id}`: changes it (an empty secret keeps the stored one).
pub async fn update(
    State(console): State<Console>,
    session: StaffSession,
    Path(id): Path<i64>,
    Form(pairs): Form<Pairs>,
) -> Response {
    if let Err(refused) = session.check(&console, &pairs).and_then(|()| session.require(Scope::Admin)) {
        return refused.into_response();
    }
    let record = match console.engine.queries().configuration_record(id).await {
        Ok(record) => record,
        Err(err) => return crate::failure(err),
    };
    let Ok(entry) = console.engine.registry().provider(&record.address) else {
        return layout::error_page(StatusCode::CONFLICT, "This configuration's provider is not compiled in.");
    };
    let body = match read_body(entry, &pairs) {
        Ok(body) => body,
        Err((body, errors)) => {
            let shown = without_secrets(entry, body);
            return editor(&session, entry, Some(&record), Some(&shown), &errors, StatusCode::UNPROCESSABLE_ENTITY);
        }
    };
    match console.engine.catalog().update_configuration(&session.actor(), id, &body).await {
        Ok(_) => Redirect::to(&format!("/configurations/{id}")).into_response(),
        Err(err) => match crate::field_messages(&err) {
            Some(errors) => {
                let shown = without_secrets(entry, body);
                editor(&session, entry, Some(&record), Some(&shown), &errors, StatusCode::UNPROCESSABLE_ENTITY)
            }
            None => crate::failure(err),
        },
    }
}

/// `POST /configurations/{id}/test`: the provider's connection test, with
/// its message and staff diagnosis.
pub async fn test(
    State(console): State<Console>,
    session: StaffSession,
    Path(id): Path<i64>,
    Form(pairs): Form<Pairs>,
) -> Response {
    if let Err(refused) = session.check(&console, &pairs).and_then(|()| session.require(Scope::Admin)) {
        return refused.into_response();
    }
    let envelope = match console.engine.catalog().test_configuration(&session.actor(), id).await {
        Ok(envelope) => serde_json::to_value(envelope).unwrap_or_default(),
        Err(err) => return crate::failure(err),
    };
    let ok = envelope["status"] == "ok";
    let body = html! {
        div.notice.good[ok].bad[!ok] role="status" {
            p { strong { (if ok { "Connected." } else { "The test failed." }) } " " (cell(&envelope["message"])) }
        }
        @if let Some(details) = envelope["data"]["details"].as_object().filter(|d| !d.is_empty()) {
            h2 { "What the system reports" }
            dl.summary { @for (key, value) in details { dt { (key) } dd { (cell(value)) } } }
        }
        @if !envelope["debug"].is_null() {
            h2 { "Diagnosis" }
            pre.code { (serde_json::to_string_pretty(&envelope["debug"]).unwrap_or_default()) }
        }
        p { a href=(format!("/configurations/{id}")) { "Back to the configuration" } }
    };
    layout::respond(StatusCode::OK, layout::staff("Connection test", &session, body))
}
