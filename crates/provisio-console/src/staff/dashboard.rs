//! The dashboard: the queue, jobs per day by outcome, time from paid to
//! active, what needs staff now, and how full each configuration is.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use provisio_engine::reports::{Report, ReportKind};
use serde_json::Value;

use crate::chart::{self, Bar, Series};
use crate::session::StaffSession;
use crate::staff::cell;
use crate::{Console, layout};

const DAY_MS: i64 = 86_400_000;

/// `GET /`.
pub async fn page(State(console): State<Console>, session: StaffSession) -> Response {
    let now = provisio_store::now_ms();
    let queries = console.engine.queries();
    let mut reports = BTreeMap::new();
    for kind in [ReportKind::Activation, ReportKind::Attention, ReportKind::Capacity] {
        match queries.report(kind, now - 14 * DAY_MS, now).await {
            Ok(report) => reports.insert(kind.name(), report),
            Err(err) => return crate::failure(err),
        };
    }
    let counts = match queries.job_counts().await {
        Ok(counts) => counts.into_iter().collect::<BTreeMap<_, _>>(),
        Err(err) => return crate::failure(err),
    };
    let hours = match queries.jobs_per_hour(now - DAY_MS, now + 1).await {
        Ok(hours) => hours,
        Err(err) => return crate::failure(err),
    };
    let count = |state: &str| counts.get(state).copied().unwrap_or(0);
    let body = html! {
        ul.tiles {
            li { span.big { (count("queued") + count("retrying")) } " jobs waiting" }
            li { span.big { (count("running")) } " running" }
            li { a href="/jobs?state=failed" { span.big { (count("failed")) } " failed" } }
        }
        div.charts {
            (jobs_chart(&hours))
            (activation_chart(&reports["activation"]))
        }
        section aria-labelledby="attention-title" {
            h2 id="attention-title" { "Needs attention" }
            (table(&reports["attention"]))
        }
        section aria-labelledby="capacity-title" {
            h2 id="capacity-title" { "Capacity" }
            (table(&reports["capacity"]))
        }
    };
    layout::respond(StatusCode::OK, layout::staff("Dashboard", &session, body))
}

fn column(report: &Report, name: &str) -> usize {
    report.columns.iter().position(|c| *c == name).expect("a report column")
}

fn number(value: &Value) -> f64 {
    value.as_f64().unwrap_or(0.0)
}

/// Jobs per hour over the last day, succeeded and failed.
fn jobs_chart(hours: &[(String, i64, i64)]) -> maud::Markup {
    let bars: Vec<Bar> = hours
        .iter()
        .map(|(hour, ok, failed)| Bar {
            label: hour.get(11..).unwrap_or(hour).to_owned(),
            parts: vec![*ok as f64, *failed as f64],
        })
        .collect();
    let series = [Series { name: "succeeded", class: "good" }, Series { name: "failed", class: "bad" }];
    chart::stacked("Jobs per hour (UTC, last 24 hours)", "jobs", &series, &bars)
}

/// Jobs per day (the jobs report), succeeded and failed, over every
/// blueprint and configuration.
pub(crate) fn jobs_per_day_chart(report: &Report) -> maud::Markup {
    let (day, ok, failed) = (column(report, "day"), column(report, "succeeded"), column(report, "failed"));
    let mut days: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for row in &report.rows {
        let entry = days.entry(row[day].as_str().unwrap_or_default().to_owned()).or_default();
        entry.0 += number(&row[ok]);
        entry.1 += number(&row[failed]);
    }
    let bars: Vec<Bar> = days.into_iter().map(|(label, (s, f))| Bar { label, parts: vec![s, f] }).collect();
    let series = [Series { name: "succeeded", class: "good" }, Series { name: "failed", class: "bad" }];
    chart::stacked("Jobs per day", "jobs", &series, &bars)
}

/// Time from paid to active per product, p50 and p95 (seconds).
pub(crate) fn activation_chart(report: &Report) -> maud::Markup {
    let (product, p50, p95) = (column(report, "product"), column(report, "p50_seconds"), column(report, "p95_seconds"));
    let bars: Vec<Bar> = report
        .rows
        .iter()
        .map(|row| {
            let (low, high) = (number(&row[p50]), number(&row[p95]));
            Bar { label: row[product].as_str().unwrap_or_default().to_owned(), parts: vec![low, (high - low).max(0.0)] }
        })
        .collect();
    let series = [Series { name: "p50", class: "accent" }, Series { name: "p95 above p50", class: "soft" }];
    chart::stacked("Time from paid to active", "seconds", &series, &bars)
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
