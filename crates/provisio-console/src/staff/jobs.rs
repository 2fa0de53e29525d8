//! Jobs: the failed queue by default, any state on demand, and retrying
//! one or many (`operate`).

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use provisio_store::jobs::JobFilter;
use provisio_store::models::Scope;

use crate::session::StaffSession;
use crate::staff::{status, when};
use crate::{Console, layout};

const STATES: [&str; 6] = ["queued", "running", "retrying", "succeeded", "failed", "skipped"];

/// `GET /jobs[?state=S]` (failed when not given).
pub async fn list(
    State(console): State<Console>,
    session: StaffSession,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let state = query.get("state").map(String::as_str).unwrap_or("failed");
    let state = STATES.iter().find(|s| **s == state).copied();
    let filter = JobFilter { state: state.map(str::to_owned), limit: 200, ..Default::default() };
    let jobs = match console.engine.queries().jobs(filter).await {
        Ok(jobs) => jobs,
        Err(err) => return crate::failure(err),
    };
    let can_retry = session.scope >= Scope::Operate;
    let body = html! {
        form.filters method="get" action="/jobs" {
            label for="state" { "State" }
            select id="state" name="state" {
                option value="any" selected[state.is_none()] { "any" }
                @for s in STATES { option value=(s) selected[state == Some(s)] { (s) } }
            }
            button type="submit" { "Show" }
        }
        @if jobs.is_empty() { p.muted { "No jobs." } } @else {
            form method="post" action="/jobs/retry" {
                input type="hidden" name="_csrf" value=(session.csrf);
                div.scroll { table {
                    thead { tr {
                        @if can_retry { th scope="col" { span.visually-hidden { "Select" } } }
                        th scope="col" { "Job" } th scope="col" { "Service" } th scope="col" { "Function" }
                        th scope="col" { "State" } th scope="col" { "Attempts" } th scope="col" { "Message" } th scope="col" { "Updated" }
                    } }
                    tbody { @for job in &jobs { tr {
                        @if can_retry { td { @if job.state == "failed" {
                            input type="checkbox" name="job" value=(job.id) id=(format!("job-{}", job.id)) aria-label=(format!("Select job {}", job.id));
                        } } }
                        td { a href=(format!("/jobs/{}", job.id)) { (job.id) } }
                        td { a href=(format!("/services/{}", job.service_id)) { "#" (job.service_id) } }
                        td { (job.function) } td { (status(&job.state)) }
                        td { (job.attempts) " / " (job.max_attempts) }
                        td { (job.message.as_deref().unwrap_or("")) }
                        td { (when(job.updated_at)) }
                    } } }
                } }
                @if can_retry && jobs.iter().any(|j| j.state == "failed") { button.primary type="submit" { "Retry selected" } }
            }
        }
    };
    layout::respond(StatusCode::OK, layout::staff("Jobs", &session, body))
}

/// `POST /jobs/retry`: retries each selected failed job.
pub async fn retry(
    State(console): State<Console>,
    session: StaffSession,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(refused) = session.check(&console, &pairs).and_then(|()| session.require(Scope::Operate)) {
        return refused.into_response();
    }
    let ids: Vec<i64> =
        pairs.iter().filter(|(k, _)| k == "job").filter_map(|(_, v)| v.parse().ok()).take(200).collect();
    if ids.is_empty() {
        return layout::error_page(StatusCode::UNPROCESSABLE_ENTITY, "Select the jobs to retry.");
    }
    let actions = console.engine.actions();
    for id in ids {
        if let Err(err) = actions.retry_job(&session.actor(), id).await {
            return crate::failure(err);
        }
    }
    Redirect::to("/jobs?state=any").into_response()
}

/// `GET /jobs/{id}`: a job with every attempt, its envelope and its HTTP
/// log (recorded redacted: secrets never reach the page).
pub async fn show(State(console): State<Console>, session: StaffSession, Path(id): Path<i64>) -> Response {
    let (job, attempts) = match console.engine.queries().job(id).await {
        Ok(found) => found,
        Err(err) => return crate::failure(err),
    };
    let body = html! {
        dl.summary {
            dt { "Service" } dd { a href=(format!("/services/{}", job.service_id)) { "#" (job.service_id) } }
            dt { "Function" } dd { (job.function) }
            dt { "State" } dd { (status(&job.state)) }
            dt { "Made by" } dd { (job.origin) }
            dt { "Attempts" } dd { (job.attempts) " of " (job.max_attempts) }
            @if let Some(message) = &job.message { dt { "Message" } dd { (message) } }
        }
        @if job.state == "failed" && session.scope >= Scope::Operate {
            form method="post" action="/jobs/retry" {
                input type="hidden" name="_csrf" value=(session.csrf);
                input type="hidden" name="job" value=(job.id);
                button.primary type="submit" { "Retry" }
            }
        }
        h2 { "Attempts" }
        @if attempts.is_empty() { p.muted { "Not tried yet." } }
        @for attempt in &attempts {
            details.function open[attempts.len() == 1] {
                summary { "Attempt " (attempt.number) ": " (attempt.function) " — " (attempt.outcome) ", " (attempt.duration_ms) " ms, " (when(attempt.started_at)) }
                h3 { "Envelope" }
                pre.code { (serde_json::to_string_pretty(&attempt.envelope).unwrap_or_default()) }
                h3 { "HTTP log (redacted)" }
                pre.code { (serde_json::to_string_pretty(&attempt.http_log).unwrap_or_default()) }
            }
        }
    };
    layout::respond(StatusCode::OK, layout::staff(&format!("Job {id}"), &session, body))
}
