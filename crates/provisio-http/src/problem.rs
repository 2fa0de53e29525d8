//! RFC 9457 problem documents: every error the API answers.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use provisio_engine::{EngineError, Violation};
use serde::Serialize;

/// An error answer: `application/problem+json` with `type`, `title`,
/// `status`, `detail`, and for invalid input the `errors` by JSON pointer.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    #[serde(serialize_with = "status_code")]
    status: StatusCode,
    detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<Violation>,
    /// Seconds to wait, for `Retry-After` (1 when not set).
    #[serde(skip)]
    retry_after: Option<u64>,
}

fn status_code<S: serde::Serializer>(status: &StatusCode, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u16(status.as_u16())
}

impl Problem {
    /// A problem with a status and a detail.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    /// `429`: the caller must wait `wait` before trying again.
    pub fn too_many(detail: impl Into<String>, wait: std::time::Duration) -> Self {
        let mut problem = Problem::new(StatusCode::TOO_MANY_REQUESTS, detail);
        problem.retry_after = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
        problem
    }
}

impl From<EngineError> for Problem {
    fn from(err: EngineError) -> Self {
        match err {
            EngineError::Invalid(errors) => Problem {
                kind: "https://provisio.dev/problems/invalid-input",
                title: "Invalid input",
                status: StatusCode::UNPROCESSABLE_ENTITY,
                detail: match errors.as_slice() {
                    [one] => format!("{} {}", one.path, one.message),
                    _ => format!("{} fields are invalid", errors.len()),
                },
                errors,
                retry_after: None,
            },
            EngineError::Taken(violation) => Problem {
                kind: "https://provisio.dev/problems/taken",
                title: "Already taken",
                status: StatusCode::CONFLICT,
                detail: format!("{} {}", violation.path, violation.message),
                errors: vec![violation],
                retry_after: None,
            },
            EngineError::NotFound(detail) => Problem::new(StatusCode::NOT_FOUND, detail),
            EngineError::Conflict(detail) => Problem::new(StatusCode::CONFLICT, detail),
            EngineError::Busy(detail) => Problem::new(StatusCode::SERVICE_UNAVAILABLE, detail),
            EngineError::TooMany(detail, wait) => Problem::too_many(detail, wait),
            EngineError::Unauthorized(detail) => Problem::new(StatusCode::UNAUTHORIZED, detail),
            EngineError::Forbidden(detail) => Problem::new(StatusCode::FORBIDDEN, detail),
            other => {
                // Internal causes go to the log, never to the client.
                tracing::error!(error = %other, "request failed");
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal error; see the server log")
            }
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let (status, retry_after) = (self.status, self.retry_after);
        let mut response = (status, Json(self)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/problem+json"));
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
            headers.insert(header::RETRY_AFTER, header::HeaderValue::from(retry_after.unwrap_or(1)));
        }
        response
    }
}
