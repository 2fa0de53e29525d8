//! The dashboard: what needs staff now, and how full each configuration is.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use provisio_engine::reports::{Report, ReportKind};

use crate::session::StaffSession;
use crate::staff::cell;
use crate::{Console, layout};

const DAY_MS: i64 = 86_400_000;

/// `GET /`.
pub async fn page(State(console): State<Console>, session: StaffSession) -> Response {
    let now = provisio_store::now_ms();
    let queries = console.engine.queries();
    let mut sections = Vec::new();
    for (kind, title) in [(ReportKind::Attention, "Needs attention"), (ReportKind::Capacity, "Capacity")] {
        match queries.report(kind, now - 30 * DAY_MS, now).await {
            Ok(report) => sections.push((title, report)),
            Err(err) => return crate::failure(err),
        }
    }
    let body = html! {
        @for (title, report) in &sections {
            section aria-labelledby=(format!("{}-title", report.kind.name())) {
                h2 id=(format!("{}-title", report.kind.name())) { (title) }
                (table(report))
            }
        }
    };
    layout::respond(StatusCode::OK, layout::staff("Dashboard", &session, body))
}

/// A report as a table.
pub(crate) fn table(report: &Report) -> maud::Markup {
    html! {
        @if report.rows.is_empty() {
            p.muted { "Nothing to show." }
        } @else {
            div.scroll {
                table {
                    thead { tr { @for column in &report.columns { th scope="col" { (column.replace('_', " ")) } } } }
                    tbody {
                        @for row in &report.rows { tr { @for value in row { td { (cell(value)) } } } }
                    }
                }
            }
        }
    }
}
