//! Billing systems in: events from a staff token with the `operate` scope,
//! or signed by a named event source (no token), and Stripe webhooks.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use provisio_engine::sources::StripeOutcome;

use crate::auth::{Operate, Staff, unauthorized};
use crate::{ApiResult, AppState, Params, body, ok};

/// The header that names a signing event source.
pub const SOURCE_HEADER: &str = "provisio-source";
/// The header that carries its signature (`t=…,v1=…`).
pub const SIGNATURE_HEADER: &str = "provisio-signature";
/// Stripe's signature header.
pub const STRIPE_SIGNATURE_HEADER: &str = "stripe-signature";

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `POST /api/v1/events`; with `?dry_run=true`, what the event would do
/// (a staff token only; nothing is written).
pub async fn ingest(
    staff: Result<Staff<Operate>, Response>,
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let dry_run =
        Params::new(query, &["dry_run"])?.text("dry_run", Some(&["true", "false"]))?.as_deref() == Some("true");
    if dry_run {
        if let Err(rejection) = staff {
            return Ok(rejection);
        }
        let plan = state.engine.ingest().plan_event(&body(&bytes, &headers)?).await?;
        return ok(StatusCode::OK, plan);
    }
    if let Some(signature) = header(&headers, SIGNATURE_HEADER) {
        let Some(source) = header(&headers, SOURCE_HEADER) else {
            return Ok(unauthorized("A signed event names its source in the Provisio-Source header"));
        };
        // The body is checked as JSON only once its signature holds.
        let accepted = state.engine.ingest().signed(source, signature, &bytes).await?;
        return ok(StatusCode::ACCEPTED, accepted);
    }
    if let Err(rejection) = staff {
        return Ok(rejection);
    }
    let accepted = state.engine.ingest().event(&body(&bytes, &headers)?).await?;
    ok(StatusCode::ACCEPTED, accepted)
}

/// `POST /api/v1/sources/{name}/stripe`: a Stripe webhook endpoint.
pub async fn stripe(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let Some(signature) = header(&headers, STRIPE_SIGNATURE_HEADER) else {
        return Ok(unauthorized("A Stripe delivery carries a Stripe-Signature header"));
    };
    match state.engine.ingest().stripe(&name, signature, &bytes).await? {
        StripeOutcome::Accepted(accepted) => ok(StatusCode::ACCEPTED, accepted),
        ignored @ StripeOutcome::Ignored { .. } => ok(StatusCode::OK, ignored),
    }
}
