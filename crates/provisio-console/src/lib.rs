//! Provisio's web console, served by `provisio serve` beside the API: staff
//! administration at `/` and the client area at `/client`. Pages are drawn
//! on the server (maud, escaped by construction) and work without
//! JavaScript; the one script (`assets/console.js`) only refreshes live
//! parts. Every asset is embedded in the binary.
//!
//! Who may do what is in the layout: [`session`] signs staff in and out
//! (cookie, CSRF, origin check), [`staff`] holds the staff pages (each
//! handler takes a [`session::StaffSession`] and says the scope it needs),
//! [`client`] the client area (a [`client::ClientSession`] from the
//! billing system's hand-off link). Pages read through the engine's
//! `queries()` and change things through `catalog()`/`actions()` only.

mod chart;
pub mod client;
pub mod form;
mod layout;
pub mod session;
pub mod staff;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use provisio_engine::Engine;

/// How the console is set up.
#[derive(Debug, Clone, Default)]
pub struct ConsoleOptions {
    /// Where people reach this server; an `https://` address makes the
    /// session cookies `Secure`.
    pub public_url: Option<String>,
}

/// What every page handler holds.
#[derive(Clone)]
pub struct Console {
    engine: Engine,
    secure_cookies: bool,
    /// The host of the public URL, also accepted as a form's origin (a proxy
    /// may rewrite `Host`).
    public_host: Option<String>,
}

/// The console's routes, to be merged beside the API's.
pub fn router(engine: Engine, options: ConsoleOptions) -> Router {
    let public_host = options
        .public_url
        .as_deref()
        .and_then(|u| u.split_once("://"))
        .map(|(_, rest)| rest.split('/').next().unwrap_or_default().to_owned());
    let console = Console {
        engine,
        secure_cookies: options.public_url.as_deref().is_some_and(|u| u.starts_with("https://")),
        public_host,
    };
    Router::new()
        .route("/", get(staff::dashboard::page))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/configurations", get(staff::configurations::list).post(staff::configurations::create))
        .route("/configurations/new", get(staff::configurations::new))
        .route("/configurations/{id}", get(staff::configurations::show).post(staff::configurations::update))
        .route("/configurations/{id}/test", post(staff::configurations::test))
        .route("/fleet", get(staff::fleet::page))
        .route("/products", get(staff::products::list).post(staff::products::create))
        .route("/products/new", get(staff::products::new))
        .route("/products/{slug}", get(staff::products::show).post(staff::products::update))
        .route("/services", get(staff::services::list))
        .route("/services/{id}", get(staff::services::show))
        .route("/services/{id}/actions/{function}", post(staff::services::action))
        .route("/jobs", get(staff::jobs::list))
        .route("/jobs/retry", post(staff::jobs::retry))
        .route("/jobs/{id}", get(staff::jobs::show))
        .route("/reports", get(staff::reports::list))
        .route("/reports/{name}", get(staff::reports::show))
        .route("/audit", get(staff::reports::audit))
        .route("/events", get(staff::reports::events))
        .route("/workbench", get(staff::workbench::page).post(staff::workbench::run))
        .route("/webhooks", get(staff::webhooks::list).post(staff::webhooks::create))
        .route("/webhooks/{id}", get(staff::webhooks::deliveries).post(staff::webhooks::switch))
        .route("/access", get(staff::access::page))
        .route("/access/users", post(staff::access::add_user))
        .route("/access/users/{id}", post(staff::access::switch_user))
        .route("/access/tokens", post(staff::access::make_token))
        .route("/access/tokens/{id}/revoke", post(staff::access::revoke_token))
        .route("/client", get(client::home))
        .route("/client/services/{id}", get(client::service))
        .route("/client/services/{id}/password", post(client::password))
        .route("/client/services/{id}/usage", post(client::usage))
        .route("/assets/console.css", get(|| asset("text/css", include_str!("../assets/console.css"))))
        .route("/assets/console.js", get(|| asset("text/javascript", include_str!("../assets/console.js"))))
        .layer(middleware::from_fn_with_state(console.clone(), same_origin_only))
        .layer(middleware::from_fn(page_headers))
        .with_state(console)
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=3600")], body).into_response()
}

/// What every page answers with: nothing may frame it, load from elsewhere
/// or run inline script; pages are never cached (they show live state and
/// carry CSRF tokens).
async fn page_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A form posted from another site is refused before anything reads it
/// (browsers send `Origin` with every POST); the CSRF token is checked too.
async fn same_origin_only(State(console): State<Console>, request: Request, next: Next) -> Response {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let host = request.headers().get(header::HOST).and_then(|v| v.to_str().ok());
        let origin = request.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok());
        if let Some(origin) = origin {
            let origin_host = origin.split_once("://").map(|(_, rest)| rest);
            let ours = origin_host.is_some() && (origin_host == host || origin_host == console.public_host.as_deref());
            if origin == "null" || !ours {
                return layout::error_page(StatusCode::FORBIDDEN, "This form was sent from another site.");
            }
        }
    }
    next.run(request).await
}

/// An engine refusal of the request's fields as sentences by JSON pointer,
/// for a form to show beside its fields; `None` when it is about no field.
pub(crate) fn field_messages(err: &provisio_engine::EngineError) -> Option<std::collections::BTreeMap<String, String>> {
    use provisio_engine::EngineError;
    let violations = match err {
        EngineError::Invalid(violations) => violations.clone(),
        EngineError::Taken(violation) => vec![violation.clone()],
        _ => return None,
    };
    Some(
        violations
            .into_iter()
            .map(|v| (v.path.clone(), format!("{} {}", v.path.trim_start_matches('/'), v.message)))
            .collect(),
    )
}

/// An engine error as a page: field errors are shown on their forms by the
/// handlers; what reaches here is shown plainly, internals only in the log.
fn failure(err: provisio_engine::EngineError) -> Response {
    use provisio_engine::EngineError;
    match err {
        EngineError::NotFound(_) => layout::error_page(StatusCode::NOT_FOUND, "There is nothing here."),
        EngineError::Forbidden(detail) => layout::error_page(StatusCode::FORBIDDEN, &detail),
        EngineError::Conflict(detail) => layout::error_page(StatusCode::CONFLICT, &detail),
        EngineError::Busy(detail) => layout::error_page(StatusCode::SERVICE_UNAVAILABLE, &detail),
        EngineError::Invalid(_) | EngineError::Taken(_) => {
            layout::error_page(StatusCode::UNPROCESSABLE_ENTITY, &err.to_string())
        }
        other => {
            tracing::error!(error = %other, "console page failed");
            layout::error_page(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong; see the server log.")
        }
    }
}
