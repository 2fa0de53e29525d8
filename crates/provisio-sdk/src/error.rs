//! The error a provider function answers, and its kinds.
//!
//! The split between what a client may read and what only staff may read is
//! made by types: [`UserMessage`] is the only text shown to a client, and it
//! can only be built from text a provider author wrote on purpose. Foreign
//! errors (HTTP, SQL, I/O) can only enter a [`ProviderError`] through
//! [`ProviderError::internal`] or [`ProviderError::with_debug`], which put
//! their text in [`StaffDebug`].

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What went wrong, in terms of what the caller should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The configuration or the params broke the schema; `data.errors` names each field.
    InvalidInput,
    /// The third party refused the request; the message says why, safe for clients.
    ProviderError,
    /// The service the call names does not exist at the third party.
    NotFound,
    /// The service already exists at the third party and differs from what was asked.
    Conflict,
    /// Nothing was done (rate limited, 5xx, connection refused): safe to retry later.
    Transient,
    /// The request may have taken effect (timed out after it left): reconcile before any retry.
    OutcomeUnknown,
    /// The provider does not implement this optional function.
    Unsupported,
    /// A bug: the message is generic, details are in debug.
    Internal,
}

impl ErrorKind {
    /// Every kind, in documentation order.
    pub const ALL: [ErrorKind; 8] = [
        ErrorKind::InvalidInput,
        ErrorKind::ProviderError,
        ErrorKind::NotFound,
        ErrorKind::Conflict,
        ErrorKind::Transient,
        ErrorKind::OutcomeUnknown,
        ErrorKind::Unsupported,
        ErrorKind::Internal,
    ];

    /// The snake_case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::ProviderError => "provider_error",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Transient => "transient",
            ErrorKind::OutcomeUnknown => "outcome_unknown",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Internal => "internal",
        }
    }

    /// Whether the same call may simply be repeated later.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Transient)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Text that is safe to show a client: no credentials, no internals.
///
/// Built only from text the provider author wrote for that purpose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct UserMessage(String);

impl UserMessage {
    /// A message written for clients.
    pub fn new(text: impl Into<String>) -> Self {
        UserMessage(text.into())
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn map(&mut self, f: impl FnOnce(&str) -> String) {
        self.0 = f(&self.0);
    }
}

impl From<&'static str> for UserMessage {
    fn from(text: &'static str) -> Self {
        UserMessage(text.to_owned())
    }
}

impl fmt::Display for UserMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Diagnostics for staff only (raw vendor answers, internal error chains).
///
/// Never shown to clients; redacted like everything else before it is stored
/// or printed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct StaffDebug(Map<String, Value>);

impl StaffDebug {
    /// Adds or replaces one entry.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Value>) {
        self.0.insert(key.into(), value.into());
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    pub(crate) fn as_map_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.0
    }
}

/// Where a field error was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldLocation {
    /// The provision configuration.
    Config,
    /// The function's params.
    Params,
    /// The function's result (a provider bug).
    Result,
}

/// One field that broke its schema, named by a JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FieldError {
    /// Which document the path points into.
    #[serde(rename = "in")]
    pub location: FieldLocation,
    /// JSON pointer to the field, e.g. `/contacts/registrant/email`.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

/// The error a provider function answers.
///
/// Boxed, so `Result<T, ProviderError>` stays one pointer wide on the error side.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {}", .0.kind, .0.message)]
pub struct ProviderError(Box<ErrorInner>);

#[derive(Debug, Clone, PartialEq)]
struct ErrorInner {
    kind: ErrorKind,
    message: UserMessage,
    field_errors: Vec<FieldError>,
    debug: StaffDebug,
}

impl ProviderError {
    /// An error of any kind with a client-safe message.
    pub fn new(kind: ErrorKind, message: impl Into<UserMessage>) -> Self {
        ProviderError(Box::new(ErrorInner {
            kind,
            message: message.into(),
            field_errors: Vec::new(),
            debug: StaffDebug::default(),
        }))
    }

    /// The third party said no; the message says why.
    pub fn provider(message: impl Into<UserMessage>) -> Self {
        ProviderError::new(ErrorKind::ProviderError, message)
    }

    /// The named service does not exist.
    pub fn not_found(message: impl Into<UserMessage>) -> Self {
        ProviderError::new(ErrorKind::NotFound, message)
    }

    /// The service exists and differs from what was asked.
    pub fn conflict(message: impl Into<UserMessage>) -> Self {
        ProviderError::new(ErrorKind::Conflict, message)
    }

    /// Nothing happened; try again later.
    pub fn transient(message: impl Into<UserMessage>) -> Self {
        ProviderError::new(ErrorKind::Transient, message)
    }

    /// The request may have taken effect.
    pub fn outcome_unknown(message: impl Into<UserMessage>) -> Self {
        ProviderError::new(ErrorKind::OutcomeUnknown, message)
    }

    /// The provider lacks this optional function.
    pub fn unsupported(function: &str) -> Self {
        ProviderError::new(
            ErrorKind::Unsupported,
            UserMessage::new(format!("This provider does not support `{function}`")),
        )
    }

    /// A bug or an unexpected failure: the client sees a generic message and
    /// the cause goes to staff-only debug.
    pub fn internal(cause: impl fmt::Display) -> Self {
        ProviderError::new(ErrorKind::Internal, "Internal provider error").with_debug("cause", cause.to_string())
    }

    /// `invalid_input` for one field: where it is, its JSON pointer
    /// (`/username`) and what is wrong with it.
    pub fn invalid_field(location: FieldLocation, path: &str, message: impl Into<String>) -> Self {
        Self::invalid_input(vec![FieldError { location, path: path.to_owned(), message: message.into() }])
    }

    /// Bad configuration or params, one entry per field.
    pub fn invalid_input(field_errors: Vec<FieldError>) -> Self {
        let message = match field_errors.as_slice() {
            [one] => UserMessage::new(format!("Invalid {}: {} {}", location_name(one.location), one.path, one.message)),
            _ => UserMessage::new(format!("{} fields are invalid", field_errors.len())),
        };
        ProviderError(Box::new(ErrorInner {
            kind: ErrorKind::InvalidInput,
            message,
            field_errors,
            debug: StaffDebug::default(),
        }))
    }

    /// Adds a staff-only diagnostic.
    pub fn with_debug(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.0.debug.insert(key, value);
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The client-safe message.
    pub fn message(&self) -> &UserMessage {
        &self.0.message
    }

    /// The fields that broke their schema (for `invalid_input`).
    pub fn field_errors(&self) -> &[FieldError] {
        &self.0.field_errors
    }

    /// The staff-only diagnostics.
    pub fn debug(&self) -> &StaffDebug {
        &self.0.debug
    }

    pub(crate) fn into_parts(self) -> (ErrorKind, UserMessage, Vec<FieldError>, StaffDebug) {
        let inner = *self.0;
        (inner.kind, inner.message, inner.field_errors, inner.debug)
    }
}

fn location_name(location: FieldLocation) -> &'static str {
    match location {
        FieldLocation::Config => "configuration",
        FieldLocation::Params => "params",
        FieldLocation::Result => "result",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_keep_their_cause_out_of_the_message() {
        let err = ProviderError::internal("connection to 10.0.0.1 failed: password=hunter2");
        assert_eq!(err.kind(), ErrorKind::Internal);
        assert_eq!(err.message().as_str(), "Internal provider error");
        assert!(err.debug().as_map()["cause"].as_str().unwrap().contains("hunter2"));
    }

    #[test]
    fn invalid_input_message_names_the_field() {
        let err = ProviderError::invalid_input(vec![FieldError {
            location: FieldLocation::Params,
            path: "/domain".into(),
            message: "must be a domain name".into(),
        }]);
        assert_eq!(err.message().as_str(), "Invalid params: /domain must be a domain name");
    }

    #[test]
    fn wire_names_match_serde() {
        for kind in ErrorKind::ALL {
            assert_eq!(serde_json::to_value(kind).unwrap(), Value::String(kind.as_str().into()));
        }
    }
}
