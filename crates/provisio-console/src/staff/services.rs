//! Services: the list by status, and one service's page (status, provision
//! data with secrets masked, history, jobs), which refreshes itself while a
//! job is still running.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use provisio_sdk::{BlueprintDescriptor, Caller, ServiceStatus};
use provisio_store::models::{Scope, Service};
use provisio_store::services::ServiceFilter;

use crate::form::{self, Filled};
use crate::session::StaffSession;
use crate::staff::{cell, status, when};
use crate::{Console, layout};

/// `GET /services[?status=S]`.
pub async fn list(
    State(console): State<Console>,
    session: StaffSession,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let wanted = query.get("status").filter(|s| ServiceStatus::ALL.iter().any(|k| k.as_str() == *s)).cloned();
    let number = |name: &str| query.get(name).and_then(|c| c.parse::<i64>().ok());
    let (configuration_id, client_id, product_id) = (number("configuration"), number("client"), number("product"));
    let filter = ServiceFilter {
        status: wanted.clone(),
        configuration_id,
        client_id,
        product_id,
        limit: 200,
        ..Default::default()
    };
    let services = match console.engine.queries().services(filter).await {
        Ok(services) => services,
        Err(err) => return crate::failure(err),
    };
    let body = html! {
        form.filters method="get" action="/services" {
            label for="status" { "Status" }
            @if let Some(c) = configuration_id { input type="hidden" name="configuration" value=(c); }
            @if let Some(c) = client_id { input type="hidden" name="client" value=(c); }
            @if let Some(p) = product_id { input type="hidden" name="product" value=(p); }
            select id="status" name="status" {
                option value="" { "any" }
                @for s in ServiceStatus::ALL { option value=(s.as_str()) selected[wanted.as_deref() == Some(s.as_str())] { (s.as_str()) } }
            }
            button type="submit" { "Show" }
        }
        @if services.is_empty() { p.muted { "No services." } } @else {
            div.scroll { table {
                thead { tr {
                    th scope="col" { "Service" } th scope="col" { "Identifier" } th scope="col" { "Status" }
                    th scope="col" { "Client" } th scope="col" { "Configuration" } th scope="col" { "Updated" }
                } }
                tbody { @for s in &services { tr {
                    td { a href=(format!("/services/{}", s.id)) { "#" (s.id) } }
                    td { (s.identifier.as_deref().unwrap_or("—")) }
                    td { (status(&s.status)) }
                    td { a href=(format!("/services?client={}", s.client_id)) { (s.client_id) } }
                    td { @if let Some(c) = s.configuration_id { a href=(format!("/configurations/{c}")) { (c) } } @else { "—" } }
                    td { (when(s.updated_at)) }
                } } }
            } }
        }
    };
    layout::respond(StatusCode::OK, layout::staff("Services", &session, body))
}

/// `GET /services/{id}`.
pub async fn show(State(console): State<Console>, session: StaffSession, Path(id): Path<i64>) -> Response {
    let detail = match console.engine.queries().service_detail(id).await {
        Ok(detail) => detail,
        Err(err) => return crate::failure(err),
    };
    let service = &detail.service;
    let blueprint = blueprint_of(&console, detail.product.as_deref()).await;
    let unfinished = detail.jobs.iter().any(|j| !matches!(j.state.as_str(), "succeeded" | "failed" | "skipped"));
    let body = html! {
        // The script re-reads this page while a job is unfinished and swaps
        // this region in (without script, reloading shows the same).
        div id="live" data-live=(if unfinished { "true" } else { "false" }) aria-live="polite" {
            dl.summary {
                dt { "Status" } dd { (status(&service.status)) }
                dt { "Identifier" } dd { (service.identifier.as_deref().unwrap_or("—")) }
                dt { "Product" } dd { (detail.product.as_deref().unwrap_or("—")) }
                dt { "Client" } dd { @if let Some(c) = &detail.client { (c.name) " (" (c.email) ")" } @else { "—" } }
                dt { "Configuration" } dd { @if let Some(c) = service.configuration_id { a href=(format!("/configurations/{c}")) { (c) } } @else { "not yet" } }
                @if let Some(error) = &service.last_error { dt { "Last error" } dd.bad { (error) } }
            }
            h2 { "Jobs" }
            div.scroll { table {
                thead { tr { th scope="col" { "Job" } th scope="col" { "Function" } th scope="col" { "State" } th scope="col" { "Attempts" } th scope="col" { "Message" } } }
                tbody { @for job in &detail.jobs { tr {
                    td { a href=(format!("/jobs/{}", job.id)) { (job.id) } } td { (job.function) } td { (status(&job.state)) }
                    td { (job.attempts) " / " (job.max_attempts) } td { (job.message.as_deref().unwrap_or("")) }
                } } }
            } }
            // Inside the live region: what may run changes with the status.
            (functions(&session, service, blueprint))
        }
        h2 { "Provision data" }
        p.help { "Secret fields are masked." }
        dl.summary { @for (key, value) in service.provision_data.as_object().into_iter().flatten() { dt { (key) } dd { (cell(value)) } } }
        h2 { "Events" }
        @if detail.events.is_empty() { p.muted { "None." } } @else {
            div.scroll { table {
                thead { tr { th scope="col" { "Event" } th scope="col" { "Type" } th scope="col" { "Received" } } }
                tbody { @for e in &detail.events { tr {
                    td { (cell(&e["external_id"])) } td { (cell(&e["type"])) } td { (e["received_at"].as_i64().map(when).unwrap_or_default()) }
                } } }
            } }
        }
        h2 { "History" }
        ol.history { @for entry in &detail.history {
            li { (when(entry.at)) ": " (entry.from_status.as_deref().unwrap_or("new")) " → " (status(&entry.to_status)) " " span.muted { (entry.note) } }
        } }
    };
    layout::respond(StatusCode::OK, layout::staff(&format!("Service #{id}"), &session, body))
}

/// The functions staff may run on this service now, each with the form
/// generated from what a caller may give it.
fn functions(session: &StaffSession, service: &Service, blueprint: Option<&BlueprintDescriptor>) -> Markup {
    let Some(blueprint) = blueprint.filter(|_| session.scope >= Scope::Operate) else { return html! {} };
    let status = provisio_engine::rules::parse_status(&service.status);
    let runnable: Vec<_> = blueprint
        .functions
        .iter()
        .filter(|f| f.callers.contains(&Caller::Staff) && f.statuses.contains(&status))
        .collect();
    let errors = BTreeMap::new();
    html! {
        @if !runnable.is_empty() {
            h2 { "Run a function" }
            @for function in runnable {
                details.function {
                    summary { (function.name) " — " span.muted { (function.description.lines().next().unwrap_or("")) } }
                    form method="post" action=(format!("/services/{}/actions/{}", service.id, function.name)) {
                        input type="hidden" name="_csrf" value=(session.csrf);
                        (form::render(&form::fields(function.partial_params.value(), ""), &Filled { values: None, secrets_set: &[], errors: &errors }))
                        button.primary type="submit" { "Run " (function.name) }
                    }
                }
            }
        }
    }
}

/// The blueprint of a service's product (by its slug).
async fn blueprint_of(console: &Console, product: Option<&str>) -> Option<&'static BlueprintDescriptor> {
    let product = console.engine.queries().product(product?).await.ok()?;
    console.engine.registry().blueprint(&product.blueprint).ok()
}

/// `POST /services/{id}/actions/{function}`: runs it now and shows the answer.
pub async fn action(
    State(console): State<Console>,
    session: StaffSession,
    Path((id, function)): Path<(i64, String)>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(refused) = session.check(&console, &pairs).and_then(|()| session.require(Scope::Operate)) {
        return refused.into_response();
    }
    let detail = match console.engine.queries().service_detail(id).await {
        Ok(detail) => detail,
        Err(err) => return crate::failure(err),
    };
    let Some(blueprint) = blueprint_of(&console, detail.product.as_deref()).await else {
        return layout::error_page(StatusCode::CONFLICT, "This service's blueprint is not known.");
    };
    let Some(descriptor) = blueprint.function(&function) else {
        return layout::error_page(StatusCode::NOT_FOUND, "There is no such function.");
    };
    let args = match form::read(&form::fields(descriptor.partial_params.value(), ""), &pairs) {
        Ok(args) => args,
        Err((_, errors)) => {
            let list = errors.values().cloned().collect::<Vec<_>>().join("; ");
            return layout::error_page(StatusCode::UNPROCESSABLE_ENTITY, &list);
        }
    };
    let outcome = match console.engine.actions().run_action(&session.principal, id, &function, args).await {
        Ok(outcome) => outcome,
        Err(err) => return crate::failure(err),
    };
    // The page shows the attempt as recorded: secret result fields masked
    // and every secret of the call redacted (staff read credentials through
    // the audited reveal, never from a page).
    let recorded = match console.engine.queries().job(outcome.job.id).await {
        Ok((_, attempts)) => attempts.last().map(|a| a.envelope.clone()),
        Err(err) => return crate::failure(err),
    };
    let envelope = recorded.unwrap_or_else(|| {
        let mut masked =
            outcome.envelope.as_ref().map(|e| serde_json::to_value(e).unwrap_or_default()).unwrap_or_default();
        if let Some(data) = masked.get_mut("data").filter(|d| !d.is_null()) {
            *data = descriptor.result.mask_secrets(data);
        }
        masked
    });
    let ok = envelope["status"] == "ok";
    let body = html! {
        div.notice.good[ok].bad[!ok] role="status" {
            p { strong { (function) ": " (if ok { "done." } else { "failed." }) } " " (cell(&envelope["message"])) }
            p { "Job " (outcome.job.id) ", " (status(&outcome.job.state)) }
        }
        @if !envelope["data"].is_null() { h2 { "Answer" } pre.code { (serde_json::to_string_pretty(&envelope["data"]).unwrap_or_default()) } }
        @if !envelope["debug"].is_null() { h2 { "Diagnosis" } pre.code { (serde_json::to_string_pretty(&envelope["debug"]).unwrap_or_default()) } }
        p { a href=(format!("/services/{id}")) { "Back to the service" } }
    };
    layout::respond(StatusCode::OK, layout::staff(&format!("Service #{id}: {function}"), &session, body))
}
