//! Webhook subscribers (`admin`): the list, adding one (its signing secret
//! generated and shown once), switching one off or on, and its deliveries.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use provisio_engine::webhooks::WebhookEvent;
use provisio_store::models::Scope;
use serde_json::{Value, json};

use crate::session::StaffSession;
use crate::staff::{cell, status, when};
use crate::{Console, layout};

type Pairs = Vec<(String, String)>;

/// `GET /webhooks`.
pub async fn list(State(console): State<Console>, session: StaffSession) -> Response {
    if let Err(refused) = session.require(Scope::Admin) {
        return refused.into_response();
    }
    render(&console, &session, None, StatusCode::OK).await
}

async fn render(
    console: &Console,
    session: &StaffSession,
    notice: Option<(bool, String)>,
    code: StatusCode,
) -> Response {
    let subscribers = match console.engine.queries().webhooks().await {
        Ok(list) => list,
        Err(err) => return crate::failure(err),
    };
    let body = html! {
        @if let Some((good, text)) = &notice { div.notice.good[*good].bad[!*good] role="status" { p { (text) } } }
        @if subscribers.is_empty() { p.muted { "No subscribers." } } @else {
            div.scroll { table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "URL" } th scope="col" { "Events" } th scope="col" { "State" } th scope="col" { "" } } }
                tbody { @for s in &subscribers { tr {
                    td { a href=(format!("/webhooks/{}", s.id)) { (s.name) } }
                    td { code { (s.url) } }
                    td { (cell(&s.event_types)) }
                    td { (if s.enabled { "enabled" } else { "switched off" }) }
                    td { form method="post" action=(format!("/webhooks/{}", s.id)) {
                        input type="hidden" name="_csrf" value=(session.csrf);
                        input type="hidden" name="enabled" value=(if s.enabled { "false" } else { "true" });
                        button type="submit" aria-label=(format!("{} {}", if s.enabled { "Switch off" } else { "Switch on" }, s.name)) {
                            (if s.enabled { "Switch off" } else { "Switch on" })
                        }
                    } }
                } } }
            } }
        }
        form method="post" action="/webhooks" {
            input type="hidden" name="_csrf" value=(session.csrf);
            fieldset { legend { "Add a subscriber" }
                div.field { label for="name" { "Name" } input type="text" id="name" name="name" required; }
                div.field { label for="url" { "URL" } input type="text" id="url" name="url" required placeholder="https://billing.example.com/provisio"; }
                fieldset.group { legend { "Events" }
                    @for e in WebhookEvent::ALL { label.check { input type="checkbox" name="event_types" value=(e.as_str()); " " (e.as_str()) } }
                }
                label.check { input type="checkbox" name="include_credentials" value="true"; " Include setup credentials in service.activated (https only)" }
                label.check { input type="checkbox" name="allow_private" value="true"; " Allow a private or loopback address" }
                button.primary type="submit" { "Add subscriber" }
            }
        }
    };
    layout::respond(code, layout::staff("Webhooks", session, body))
}

/// `POST /webhooks`.
pub async fn create(State(console): State<Console>, session: StaffSession, Form(pairs): Form<Pairs>) -> Response {
    if let Err(refused) = session.check(&console, &pairs).and_then(|()| session.require(Scope::Admin)) {
        return refused.into_response();
    }
    let field = |name: &str| crate::form::field(&pairs, name).to_owned();
    let events: Vec<Value> = pairs
        .iter()
        .filter(|(k, _)| k == "event_types")
        .take(WebhookEvent::ALL.len() * 2)
        .map(|(_, v)| Value::from(v.clone()))
        .collect();
    let body = json!({
        "name": field("name"), "url": field("url"), "event_types": events,
        "include_credentials": field("include_credentials") == "true", "allow_private": field("allow_private") == "true",
    });
    match console.engine.catalog().create_webhook(&session.actor(), &body).await {
        Ok(made) => {
            let secret = made.secret.unwrap_or_default();
            let text = format!("{} was added. Its signing secret, shown this once: {secret}", made.subscriber.name);
            render(&console, &session, Some((true, text)), StatusCode::OK).await
        }
        Err(err) => match crate::field_messages(&err) {
            Some(messages) => {
                let text = messages.into_values().collect::<Vec<_>>().join("; ");
                render(&console, &session, Some((false, text)), StatusCode::UNPROCESSABLE_ENTITY).await
            }
            None => crate::failure(err),
        },
    }
}

/// `POST /webhooks/{id}`: switches it off or on.
pub async fn switch(
    State(console): State<Console>,
    session: StaffSession,
    Path(id): Path<i64>,
    Form(pairs): Form<Pairs>,
) -> Response {
    if let Err(refused) = session.check(&console, &pairs).and_then(|()| session.require(Scope::Admin)) {
        return refused.into_response();
    }
    let enabled = pairs.iter().any(|(k, v)| k == "enabled" && v == "true");
    match console.engine.catalog().update_webhook(&session.actor(), id, &json!({"enabled": enabled})).await {
        Ok(_) => Redirect::to("/webhooks").into_response(),
        Err(err) => crate::failure(err),
    }
}

/// `GET /webhooks/{id}`: its latest deliveries.
pub async fn deliveries(State(console): State<Console>, session: StaffSession, Path(id): Path<i64>) -> Response {
    if let Err(refused) = session.require(Scope::Admin) {
        return refused.into_response();
    }
    let queries = console.engine.queries();
    let (subscriber, deliveries) = match (queries.webhook(id).await, queries.webhook_deliveries(id, 100, None).await) {
        (Ok(s), Ok(d)) => (s, d),
        (Err(err), _) | (_, Err(err)) => return crate::failure(err),
    };
    let body = html! {
        p { code { (subscriber.url) } }
        @if deliveries.is_empty() { p.muted { "Nothing sent yet." } } @else {
            div.scroll { table {
                thead { tr { th scope="col" { "Delivery" } th scope="col" { "Event" } th scope="col" { "Service" } th scope="col" { "State" } th scope="col" { "Attempts" } th scope="col" { "Last answer" } th scope="col" { "Made" } } }
                tbody { @for d in &deliveries { tr {
                    td { (d.id) } td { (d.event_type) }
                    td { @if let Some(s) = d.service_id { a href=(format!("/services/{s}")) { "#" (s) } } }
                    td { (status(&d.state)) } td { (d.attempts) }
                    td { (d.last_status.map(|s| s.to_string()).unwrap_or_default()) " " (d.last_error.as_deref().unwrap_or("")) }
                    td { (when(d.created_at)) }
                } } }
            } }
        }
    };
    layout::respond(StatusCode::OK, layout::staff(&format!("Webhook {}", subscriber.name), &session, body))
}
