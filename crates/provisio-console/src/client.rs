//! The client area, `/client`: a client's own services, opened by the
//! billing system's hand-off link (`/client/handoff`, which sets the client
//! cookie on `/client`). Another client's service is "not found", exactly
//! like one that does not exist. What is shown is the engine's client view
//! (`ClientService`): never a secret, never staff diagnostics.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use maud::{Markup, html};
use provisio_engine::principal::Principal;
use provisio_engine::queries::ClientService;

use crate::session::cookie;
use crate::staff::{cell, status};
use crate::{Console, layout};

/// The client session cookie (set by the API's hand-off route).
pub const CLIENT_COOKIE: &str = "provisio_client";

/// A client, through one of its sessions.
#[derive(Debug, Clone, Copy)]
pub struct ClientSession {
    pub client_id: i64,
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
            Ok(Some(Principal::Client { client_id, .. })) => Ok(ClientSession { client_id }),
            Ok(_) => Err(expired()),
            Err(err) => Err(crate::failure(err)),
        }
    }
}

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
            (actions(&service))
        }
        h2 { "Details" }
        dl.summary { @for (key, value) in &service.details { dt { (key) } dd { (cell(value)) } } }
    };
    layout::respond(StatusCode::OK, layout::client(&service.product.name, body))
}

fn actions(service: &ClientService) -> Markup {
    let login_allowed = service.functions.iter().any(|f| f.available && Some(f.name) == service.login_function);
    html! {
        @if service.login {
            @if login_allowed {
                p { a.button.primary href=(format!("/client/v1/services/{}/login", service.id)) { "Log in to the control panel" } }
            } @else {
                p.notice role="status" { "Logging in is not available while this service is " (service.status) "." }
            }
        }
    }
}
