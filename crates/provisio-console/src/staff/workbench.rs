//! The workbench page for provider developers (`admin`): pick a provider
//! and a stored configuration (reads only) or give values by hand, pick a
//! function, fill its params as JSON, run, and see the envelope and the
//! redacted HTTP log; the answer's fields are carried into the next call's
//! params.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use provisio_engine::EngineError;
use provisio_engine::workbench::WorkbenchTarget;
use provisio_sdk::CallReport;
use provisio_store::models::Scope;
use serde_json::{Map, Value};

use crate::session::StaffSession;
use crate::{Console, layout};

/// What the form holds.
#[derive(Debug, Default, Clone)]
struct Choice {
    provider: String,
    configuration: String,
    values: String,
    function: String,
    params: String,
}

impl Choice {
    fn of(get: impl Fn(&str) -> Option<String>) -> Choice {
        Choice {
            provider: get("provider").unwrap_or_default(),
            configuration: get("configuration").unwrap_or_default(),
            values: get("values").unwrap_or_default(),
            function: get("function").unwrap_or_default(),
            params: get("params").unwrap_or_default(),
        }
    }
}

/// `GET /workbench`.
pub async fn page(
    State(console): State<Console>,
    session: StaffSession,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    if let Err(refused) = session.require(Scope::Admin) {
        return refused.into_response();
    }
    let choice = Choice::of(|k| query.get(k).cloned());
    render(&console, &session, &choice, None, StatusCode::OK).await
}

/// `POST /workbench`: runs the call.
pub async fn run(
    State(console): State<Console>,
    session: StaffSession,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(refused) = session.check(&console, &pairs).and_then(|()| session.require(Scope::Admin)) {
        return refused.into_response();
    }
    let mut choice = Choice::of(|k| Some(crate::form::field(&pairs, k).to_owned()));
    let entry = console.engine.registry().provider(&choice.provider).ok();
    let parse = |text: &str, path: &str| -> Result<Value, EngineError> {
        if text.trim().is_empty() {
            return Ok(Value::Object(Map::new()));
        }
        serde_json::from_str(text).map_err(|err| EngineError::invalid(path, format!("is not valid JSON: {err}")))
    };
    let result = async {
        let params = parse(&choice.params, "/params")?;
        let target = match choice.configuration.parse::<i64>() {
            Ok(id) => WorkbenchTarget::Stored(id),
            Err(_) => WorkbenchTarget::AdHoc(parse(&choice.values, "/values")?),
        };
        let report = console
            .engine
            .catalog()
            .workbench_call(&session.actor(), &choice.provider, target, &choice.function, &params)
            .await?;
        Ok::<_, EngineError>((params, report))
    }
    .await;
    // A secret typed in or answered is never written into a page: what is
    // shown again has secret fields left out (to be typed again).
    choice.values = without_secrets(&choice.values, entry.map(|e| e.config_schema()));
    let function = entry.and_then(|e| e.blueprint().function(&choice.function));
    match result {
        Ok((params, mut report)) => {
            // What is shown and carried is the call as it would be logged:
            // secret result fields masked, every secret of the call redacted.
            report.envelope = report.logged_envelope(function);
            // The answer's fields are carried into the next call's params.
            let mut next = params.as_object().cloned().unwrap_or_default();
            if let Some(Value::Object(data)) = &report.envelope.data {
                let shown = data.iter().filter(|(_, v)| v.as_str() != Some(provisio_sdk::redact::REDACTED));
                next.extend(shown.map(|(k, v)| (k.clone(), v.clone())));
            }
            choice.params = pretty(&without_secrets(&Value::Object(next).to_string(), function.map(|f| &f.params)));
            render(&console, &session, &choice, Some(Ok(report)), StatusCode::OK).await
        }
        Err(EngineError::Invalid(violations)) => {
            choice.params = without_secrets(&choice.params, function.map(|f| &f.params));
            let text = violations.iter().map(|v| format!("{} {}", v.path, v.message)).collect::<Vec<_>>().join("; ");
            render(&console, &session, &choice, Some(Err(text)), StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(EngineError::Forbidden(text)) => {
            choice.params = without_secrets(&choice.params, function.map(|f| &f.params));
            render(&console, &session, &choice, Some(Err(text)), StatusCode::FORBIDDEN).await
        }
        Err(err) => crate::failure(err),
    }
}

async fn render(
    console: &Console,
    session: &StaffSession,
    choice: &Choice,
    outcome: Option<Result<CallReport, String>>,
    status: StatusCode,
) -> Response {
    let registry = console.engine.registry();
    let entry = registry.provider(&choice.provider).ok();
    let configurations = match entry {
        Some(entry) => match console.engine.queries().configurations(Some(entry.blueprint().id.to_owned())).await {
            Ok(list) => list.into_iter().filter(|c| c.address == entry.address()).collect(),
            Err(err) => return crate::failure(err),
        },
        None => Vec::new(),
    };
    let body = html! {
        form method="get" action="/workbench" {
            div.field {
                label for="provider" { "Provider" }
                select id="provider" name="provider" {
                    option value="" { "(choose)" }
                    @for p in registry.providers(None) {
                        option value=(p.address()) selected[p.address() == choice.provider] { (p.address()) " — " (p.about().name) }
                    }
                }
            }
            button type="submit" { "Choose" }
        }
        @if let Some(entry) = entry {
            form method="post" action="/workbench" {
                input type="hidden" name="_csrf" value=(session.csrf);
                input type="hidden" name="provider" value=(entry.address());
                div.field {
                    label for="configuration" { "Configuration" }
                    select id="configuration" name="configuration" aria-describedby="configuration-help" {
                        option value="" { "values given below" }
                        @for c in &configurations {
                            @let id = c.configuration.id.to_string();
                            option value=(id) selected[choice.configuration == id] { (c.configuration.name) " (reads only)" }
                        }
                    }
                    p.help id="configuration-help" { "A stored configuration runs only reads; values given here may run anything." }
                }
                div.field {
                    label for="values" { "Configuration values, JSON" }
                    textarea.code id="values" name="values" rows="5" aria-describedby="values-help" { (choice.values) }
                    p.help id="values-help" { "Its schema: " code { "provisio describe " (entry.address()) } "." }
                }
                div.field {
                    label for="function" { "Function" }
                    select id="function" name="function" {
                        @for f in &entry.blueprint().functions {
                            option value=(f.name) selected[f.name == choice.function] { (f.name) " (" (format!("{:?}", f.kind).to_lowercase()) ")" }
                        }
                    }
                }
                div.field {
                    label for="params" { "Params, JSON" }
                    textarea.code id="params" name="params" rows="6" { (choice.params) }
                }
                button.primary type="submit" { "Run" }
            }
        }
        @if let Some(outcome) = &outcome { (result(outcome)) }
    };
    layout::respond(status, layout::staff("Workbench", session, body))
}

fn result(outcome: &Result<CallReport, String>) -> Markup {
    match outcome {
        Err(text) => html! { div.notice.bad role="alert" { p { (text) } } },
        Ok(report) => {
            let envelope = serde_json::to_value(&report.envelope).unwrap_or_default();
            let log = serde_json::to_value(&report.http_log).unwrap_or_default();
            html! {
                h2 { "Envelope" }
                p { (report.duration_ms) " ms" }
                pre.code id="envelope" { (serde_json::to_string_pretty(&envelope).unwrap_or_default()) }
                h2 { "HTTP log (redacted)" }
                pre.code { (serde_json::to_string_pretty(&log).unwrap_or_default()) }
                p.help { "The answer's fields are in the params above for the next call." }
            }
        }
    }
}

/// JSON text with the schema's secret fields left out; text that is not a
/// JSON object is not shown again at all (it might hold a secret).
fn without_secrets(text: &str, schema: Option<&provisio_sdk::SchemaDoc>) -> String {
    if text.trim().is_empty() {
        return String::new();
    }
    let (Ok(mut value @ Value::Object(_)), Some(schema)) = (serde_json::from_str::<Value>(text), schema) else {
        return String::new();
    };
    crate::form::blank_secrets(&mut value, schema);
    value.to_string()
}

fn pretty(text: &str) -> String {
    serde_json::from_str::<Value>(text).ok().and_then(|v| serde_json::to_string_pretty(&v).ok()).unwrap_or_default()
}
