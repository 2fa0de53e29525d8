//! The staff API, `/api/v1`. Each handler names the scope it needs in its
//! signature (`Staff<Read>`, `Staff<Operate>`, `Staff<Admin>`); the table
//! below is the whole of it, and `tests/api/matrix.rs` checks every row.

mod access;
mod catalog;
mod operations;
mod views;

use axum::Router;
use axum::routing::{delete, get, post};

use crate::AppState;

/// The staff routes (every one behind [`crate::auth::identify_staff`]).
pub fn routes() -> Router<AppState> {
    use access::*;
    use catalog::*;
    use operations::*;
    Router::new()
        // read | admin
        .route("/blueprints", get(blueprints))
        .route("/blueprints/{id}", get(blueprint))
        .route("/providers", get(providers))
        .route("/providers/{blueprint}/{provider}", get(provider))
        .route("/configurations", get(configurations).post(create_configuration))
        .route("/configurations/{id}", get(configuration).patch(update_configuration).delete(delete_configuration))
        .route("/configurations/{id}/test", post(test_configuration))
        .route("/configurations/{id}/import", post(import_configuration))
        .route("/products", get(list_products).post(create_product))
        .route("/products/{key}", get(product).patch(update_product))
        // read | operate
        .route("/clients", get(clients).post(create_client))
        .route("/clients/{id}", get(client))
        .route("/clients/{id}/sessions", post(open_client_session).delete(end_client_sessions))
        .route("/services", get(list_services))
        .route("/services/{id}", get(service))
        .route("/services/{id}/events", get(service_events))
        .route("/services/{id}/history", get(service_history))
        .route("/services/{id}/actions/{function}", post(action))
        .route("/services/{id}/credentials", post(reveal_credentials))
        .route("/services/{id}/summary", get(service_summary))
        .route("/reports/{name}", get(report))
        .route("/jobs", get(list_jobs))
        .route("/drift", get(list_drift))
        .route("/jobs/{id}", get(job))
        .route("/jobs/{id}/retry", post(retry_job))
        .route("/audit", get(audit))
        // admin
        .route("/tokens", get(list_tokens).post(create_token))
        .route("/tokens/{id}", delete(revoke_token))
        .route("/sources", get(list_sources).post(create_source))
        .route("/sources/{id}", get(source).patch(update_source).delete(delete_source))
        .route("/users", get(list_users).post(create_user))
        .route("/users/{id}", axum::routing::patch(update_user))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/webhooks", get(list_webhooks).post(create_webhook))
        .route("/webhooks/{id}", get(webhook).patch(update_webhook).delete(delete_webhook))
        .route("/webhooks/{id}/deliveries", get(webhook_deliveries))
}
