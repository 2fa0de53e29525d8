//! Services: the list by status, and one service's page (status, provision
//! data with secrets masked, history, jobs), which refreshes itself while a
//! job is still running.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use provisio_sdk::ServiceStatus;
use provisio_store::services::ServiceFilter;

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
    let filter = ServiceFilter { status: wanted.clone(), limit: 200, ..Default::default() };
    let services = match console.engine.queries().services(filter).await {
        Ok(services) => services,
        Err(err) => return crate::failure(err),
    };
    let body = html! {
        form.filters method="get" action="/services" {
            label for="status" { "Status" }
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
                    td { (s.client_id) }
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
                    td { (job.id) } td { (job.function) } td { (status(&job.state)) }
                    td { (job.attempts) " / " (job.max_attempts) } td { (job.message.as_deref().unwrap_or("")) }
                } } }
            } }
        }
        h2 { "Provision data" }
        p.help { "Secret fields are masked." }
        dl.summary { @for (key, value) in service.provision_data.as_object().into_iter().flatten() { dt { (key) } dd { (cell(value)) } } }
        h2 { "History" }
        ol.history { @for entry in &detail.history {
            li { (when(entry.at)) ": " (entry.from_status.as_deref().unwrap_or("new")) " → " (status(&entry.to_status)) " " span.muted { (entry.note) } }
        } }
    };
    layout::respond(StatusCode::OK, layout::staff(&format!("Service #{id}"), &session, body))
}
