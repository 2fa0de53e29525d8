//! Reports as pages (a table, a chart where one helps) and as CSV downloads,
//! over the last N days; the audit log, paged.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::html;
use provisio_engine::reports::ReportKind;

use crate::session::StaffSession;
use crate::staff::dashboard::table;
use crate::staff::{cell, when};
use crate::{Console, layout};

const DAY_MS: i64 = 86_400_000;

fn days_of(query: &BTreeMap<String, String>) -> i64 {
    query.get("days").and_then(|d| d.parse::<i64>().ok()).unwrap_or(30).clamp(1, 366)
}

/// `GET /reports`.
pub async fn list(session: StaffSession) -> Response {
    let body = html! {
        ul { @for kind in ReportKind::ALL {
            li { a href=(format!("/reports/{}", kind.name())) { (kind.name().replace('-', " ")) } }
        } }
    };
    layout::respond(StatusCode::OK, layout::staff("Reports", &session, body))
}

/// `GET /reports/{name}[.csv]?days=N`.
pub async fn show(
    State(console): State<Console>,
    session: StaffSession,
    Path(name): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let (name, csv) = match name.strip_suffix(".csv") {
        Some(name) => (name.to_owned(), true),
        None => (name, false),
    };
    let Some(kind) = ReportKind::parse(&name) else {
        return layout::error_page(StatusCode::NOT_FOUND, "There is no such report.");
    };
    let days = days_of(&query);
    let now = provisio_store::now_ms();
    let report = match console.engine.queries().report(kind, now - days * DAY_MS, now).await {
        Ok(report) => report,
        Err(err) => return crate::failure(err),
    };
    if csv {
        let disposition = format!("attachment; filename=\"provisio-{}-{days}d.csv\"", kind.name());
        return (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()), (header::CONTENT_DISPOSITION, disposition)],
            report.to_csv(),
        )
            .into_response();
    }
    let body = html! {
        form.filters method="get" action=(format!("/reports/{}", kind.name())) {
            label for="days" { "Days" }
            input type="number" id="days" name="days" min="1" max="366" value=(days);
            button type="submit" { "Show" }
            a.button href=(format!("/reports/{}.csv?days={days}", kind.name())) download { "Download CSV" }
        }
        @match kind {
            ReportKind::Jobs => (crate::staff::dashboard::jobs_per_day_chart(&report)),
            ReportKind::Activation => (crate::staff::dashboard::activation_chart(&report)),
            _ => {}
        }
        (table(&report))
    };
    layout::respond(
        StatusCode::OK,
        layout::staff(&format!("Report: {}", kind.name().replace('-', " ")), &session, body),
    )
}

/// `GET /audit[?before=ID]`: who did what, newest first, 50 a page.
pub async fn audit(
    State(console): State<Console>,
    session: StaffSession,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let before = query.get("before").and_then(|b| b.parse::<i64>().ok());
    let entries = match console.engine.queries().audit(51, before).await {
        Ok(entries) => entries,
        Err(err) => return crate::failure(err),
    };
    let more = entries.len() > 50;
    let body = html! {
        div.scroll { table {
            thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "What" } th scope="col" { "Subject" } th scope="col" { "Details" } } }
            tbody { @for e in entries.iter().take(50) { tr {
                td { (when(e.at)) } td { (e.actor) } td { (e.action) } td { (e.subject) } td { (cell(&e.details)) }
            } } }
        } }
        @if more { @if let Some(last) = entries.get(49) { p { a href=(format!("/audit?before={}", last.id)) { "Older entries" } } } }
    };
    layout::respond(StatusCode::OK, layout::staff("Audit log", &session, body))
}

/// `GET /events[?before=ID]`: every service's events, newest first, 50 a
/// page (payloads are on the API, a page at a time per service).
pub async fn events(
    State(console): State<Console>,
    session: StaffSession,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let before = query.get("before").and_then(|b| b.parse::<i64>().ok());
    let events = match console.engine.queries().recent_events(51, before).await {
        Ok(events) => events,
        Err(err) => return crate::failure(err),
    };
    let body = html! {
        @if events.is_empty() { p.muted { "No events yet." } } @else {
            div.scroll { table {
                thead { tr { th scope="col" { "Event" } th scope="col" { "Type" } th scope="col" { "Service" } th scope="col" { "Received" } } }
                tbody { @for e in events.iter().take(50) { tr {
                    td { (cell(&e["external_id"])) } td { (cell(&e["type"])) }
                    td { a href=(format!("/services/{}", e["service_id"])) { "#" (e["service_id"]) } }
                    td { (e["received_at"].as_i64().map(when).unwrap_or_default()) }
                } } }
            } }
            @if events.len() > 50 { @if let Some(last) = events.get(49) { p { a href=(format!("/events?before={}", last["id"])) { "Older events" } } } }
        }
    };
    layout::respond(StatusCode::OK, layout::staff("Events", &session, body))
}
