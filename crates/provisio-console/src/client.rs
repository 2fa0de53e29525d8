//! The client area, `/client`: a client's own services, opened by the
//! billing system's hand-off link (`/client/handoff`, which sets the client
//! cookie on `/client`). Another client's service is "not found", exactly
//! like one that does not exist. What is shown is the engine's client view
//! (`ClientService`): never a secret, never staff diagnostics.

use axum::Form;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use provisio_engine::principal::Principal;
use provisio_engine::queries::ClientService;

use crate::Console;
use crate::layout::{self, Refusal};
use crate::session::cookie;
use crate::staff::{cell, status};

/// The client session cookie (set by the API's hand-off route).
pub const CLIENT_COOKIE: &str = "provisio_client";

/// A client, through one of its sessions.
#[derive(Debug, Clone)]
pub struct ClientSession {
    pub client_id: i64,
    principal: Principal,
    /// The token every form of this session carries.
    csrf: String,
}

impl ClientSession {
    /// Refuses a form without this session's CSRF token.
    fn check(&self, console: &Console, pairs: &[(String, String)]) -> Result<(), Refusal> {
        if crate::session::carries_token(console, pairs, &self.csrf) {
            Ok(())
        } else {
            Err(Refusal::new(StatusCode::FORBIDDEN, "This form has expired; reload the page and try again."))
        }
    }
}

impl FromRequestParts<Console> for ClientSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Self::Rejection> {
        let expired = || {
            layout::error_page(
                StatusCode::UNAUTHORIZED,
                "Your session has ended. Open your services again from your billing account.",
            )
        };
        let Some(token) = cookie(&parts.headers, CLIENT_COOKIE).filter(|t| t.starts_with("pcs_")) else {
            return Err(expired());
        };
        match console.engine.access().identify(token).await {
            Ok(Some(principal @ Principal::Client { .. })) => {
                let Principal::Client { client_id, .. } = principal else { unreachable!() };
                let csrf = console.engine.vault().digest(&format!("console-client-csrf:{token}"));
                Ok(ClientSession { client_id, principal, csrf })
            }
            Ok(_) => Err(expired()),
            Err(err) => Err(crate::failure(err)),
        }
    }
}

/// The blueprints' usage function (what `/client/v1/services/{id}/usage` runs).
const USAGE: &str = "get_usage";

/// `GET /client`.
pub async fn home(State(console): State<Console>, client: ClientSession) -> Response {
    let registry = console.engine.registry();
    let services = match console.engine.queries().client_services(client.client_id, 200, None).await {
        Ok(found) => found.into_iter().map(|(s, p)| ClientService::of(registry, s, p)).collect::<Vec<_>>(),
        Err(err) => return crate::failure(err),
    };
    let body = html! {
        @if services.is_empty() { p.muted { "You have no services yet." } }
        ul.cards { @for service in &services {
            li.card {
                h2 { a href=(format!("/client/services/{}", service.id)) { (service.product.name) } }
                p { (service.identifier.as_deref().unwrap_or("being set up")) " " (status(&service.status)) }
            }
        } }
    };
    layout::respond(StatusCode::OK, layout::client("My services", body))
}

/// `GET /client/services/{id}`.
pub async fn service(State(console): State<Console>, client: ClientSession, Path(id): Path<i64>) -> Response {
    let service = match console.engine.queries().client_service(client.client_id, id).await {
        Ok((service, product)) => ClientService::of(console.engine.registry(), service, product),
        Err(err) => return crate::failure(err),
    };
    let busy = matches!(service.status.as_str(), "pending" | "provisioning");
    let body = html! {
        div id="live" data-live=(if busy { "true" } else { "false" }) aria-live="polite" {
            p { (status(&service.status)) " " (service.identifier.as_deref().unwrap_or("")) }
            @if let Some(problem) = &service.problem {
                div.notice.bad role="alert" { p { "Setting this service up did not work: " (problem) " Our team has been told and will look at it." } }
            }
            (actions(&service, &client))
        }
        h2 { "Details" }
        dl.summary { @for (key, value) in &service.details { dt { (key) } dd { (cell(value)) } } }
    };
    layout::respond(StatusCode::OK, layout::client(&service.product.name, body))
}

fn actions(service: &ClientService, client: &ClientSession) -> Markup {
    let login_allowed = service.functions.iter().any(|f| f.available && Some(f.name) == service.login_function);
    html! {
        @if service.login {
            @if login_allowed {
                p { a.button.primary href=(format!("/client/v1/services/{}/login", service.id)) { "Log in to the control panel" } }
            } @else {
                p.notice role="status" { "Logging in is not available while this service is " (service.status) "." }
            }
        }
        @if service.functions.iter().any(|f| f.name == USAGE && f.available) {
            // A POST with the form's token: reading usage calls the provider.
            form method="post" action=(format!("/client/services/{}/usage", service.id)) {
                input type="hidden" name="_csrf" value=(client.csrf);
                button type="submit" { "Show usage against your limits" }
            }
        }
        @if service.password && service.status == "active" {
            details {
                summary { "Change the password" }
                form method="post" action=(format!("/client/services/{}/password", service.id)) {
                    input type="hidden" name="_csrf" value=(client.csrf);
                    div.field {
                        label for="password" { "New password" }
                        input type="password" id="password" name="password" autocomplete="new-password" aria-describedby="password-help";
                        p.help id="password-help" { "Leave empty to have one made for you; it is shown once." }
                    }
                    button.primary type="submit" { "Change password" }
                }
            }
        }
    }
}

/// `POST /client/services/{id}/password`: the password given, or one made
/// and shown this once; never stored, never shown back when given.
pub async fn password(
    State(console): State<Console>,
    client: ClientSession,
    Path(id): Path<i64>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(refused) = client.check(&console, &pairs) {
        return refused.into_response();
    }
    let given = Some(crate::form::field(&pairs, "password").to_owned()).filter(|p| !p.is_empty());
    let change = match console.engine.actions().change_password(&client.principal, id, given).await {
        Ok(change) => change,
        Err(provisio_engine::EngineError::Invalid(violations)) => {
            let text = violations.iter().map(|v| v.message.clone()).collect::<Vec<_>>().join("; ");
            return layout::error_page(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("The password was not accepted: {text}."),
            );
        }
        Err(err) => return crate::failure(err),
    };
    let ok = change.outcome.envelope.as_ref().is_some_and(|e| e.for_client().status == provisio_sdk::Status::Ok);
    let message = change.outcome.envelope.as_ref().map(|e| e.for_client().message.to_string()).unwrap_or_default();
    let body = html! {
        @if ok {
            div.notice.good role="status" {
                p { "The password was changed." }
                @if let Some(generated) = &change.generated_password { p { "Your new password, shown this once: " code { (generated) } } }
            }
        } @else {
            div.notice.bad role="alert" { p { "The password was not changed. " (message) } }
        }
        p { a href=(format!("/client/services/{id}")) { "Back to the service" } }
    };
    layout::respond(StatusCode::OK, layout::client("Password", body))
}

/// `POST /client/services/{id}/usage`: live usage from the provider, each
/// metric as a bar against its limit (a POST with the form's token: it
/// costs a provider call, so no page elsewhere can make a browser spend it).
pub async fn usage(
    State(console): State<Console>,
    client: ClientSession,
    Path(id): Path<i64>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(refused) = client.check(&console, &pairs) {
        return refused.into_response();
    }
    let outcome = match console.engine.actions().run_action(&client.principal, id, USAGE, serde_json::json!({})).await {
        Ok(outcome) => outcome,
        Err(err) => return crate::failure(err),
    };
    let Some(envelope) = outcome.envelope.map(|e| e.for_client()) else {
        return layout::error_page(StatusCode::BAD_GATEWAY, "The usage could not be read; try again shortly.");
    };
    let metrics: Vec<(String, f64, Option<f64>)> = envelope
        .data
        .as_ref()
        .and_then(|d| d.as_object())
        .into_iter()
        .flatten()
        .filter_map(|(name, value)| {
            let used = value.get("used")?.as_f64()?;
            Some((name.replace('_', " "), used, value.get("limit").and_then(|l| l.as_f64())))
        })
        .collect();
    let body = html! {
        @if envelope.status != provisio_sdk::Status::Ok {
            div.notice.bad role="alert" { p { (envelope.message.to_string()) } }
        }
        @if metrics.is_empty() { p.muted { "No usage to show." } }
        dl.usage { @for (name, used, limit) in &metrics {
            dt { label for=(format!("u-{name}")) { (name) } }
            dd {
                @match limit {
                    Some(limit) if *limit > 0.0 => {
                        meter id=(format!("u-{name}")) min="0" max=(limit) value=(used) high=(limit * 0.9) {}
                        " " (used) " of " (limit)
                    }
                    _ => { span id=(format!("u-{name}")) { (used) " (no limit)" } }
                }
            }
        } }
        p { a href=(format!("/client/services/{id}")) { "Back to the service" } }
    };
    layout::respond(StatusCode::OK, layout::client("Usage", body))
}
