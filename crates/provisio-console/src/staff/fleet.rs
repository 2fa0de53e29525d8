//! The fleet: a blueprint's configurations as servers (the Host Control
//! idea): capacity used against the most it may hold, attributes such as
//! location, enabled or draining, and its services.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use crate::session::StaffSession;
use crate::staff::cell;
use crate::{Console, layout};

/// `GET /fleet[?blueprint=B]` (shared hosting when not given).
pub async fn page(
    State(console): State<Console>,
    session: StaffSession,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let registry = console.engine.registry();
    let wanted = query.get("blueprint").map(String::as_str).unwrap_or("shared-hosting");
    let Ok(blueprint) = registry.blueprint(wanted) else {
        return layout::error_page(StatusCode::NOT_FOUND, "There is no such blueprint.");
    };
    let servers = match console.engine.queries().configurations(Some(blueprint.id.to_owned())).await {
        Ok(servers) => servers,
        Err(err) => return crate::failure(err),
    };
    let body = html! {
        form.filters method="get" action="/fleet" {
            label for="blueprint" { "Blueprint" }
            select id="blueprint" name="blueprint" {
                @for b in registry.blueprints() { option value=(b.id) selected[b.id == blueprint.id] { (b.name) } }
            }
            button type="submit" { "Show" }
        }
        @if servers.is_empty() { p.muted { "No configurations of this blueprint." } }
        ul.cards { @for server in &servers {
            @let c = &server.configuration;
            li.card {
                h2 { a href=(format!("/configurations/{}", c.id)) { (c.name) } }
                p { (server.address) " · " (if c.enabled { "enabled" } else { "draining" }) }
                @match c.max_services {
                    Some(max) if max > 0 => {
                        label for=(format!("cap-{}", c.id)) { (server.services) " of " (max) " services" }
                        meter id=(format!("cap-{}", c.id)) min="0" max=(max) value=(server.services) high=(max * 9 / 10) {}
                    }
                    _ => { p { (server.services) " services (no limit)" } }
                }
                dl.summary { @for (key, value) in c.attributes.as_object().into_iter().flatten() { dt { (key) } dd { (cell(value)) } } }
                p { a href=(format!("/services?configuration={}", c.id)) { "Its services" } }
            }
        } }
    };
    layout::respond(StatusCode::OK, layout::staff("Fleet", &session, body))
}
