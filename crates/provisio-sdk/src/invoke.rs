//! Running one provider function: validate configuration and params, build
//! the provider, call it within the deadline, validate the result, and wrap
//! everything in a redacted [`Envelope`].

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::Instrument;

use crate::blueprint::FunctionKind;
use crate::context::{CallOptions, Context};
use crate::error::{ErrorKind, FieldError, FieldLocation, ProviderError, StaffDebug, UserMessage};
use crate::http::HttpExchange;
use crate::provider::{ConnectionTest, ProviderEntry};
use crate::redact::Redactor;

/// `ok` or `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The function did what was asked.
    Ok,
    /// It did not; `error_kind` says why.
    Error,
}

/// The result of every provider call.
///
/// `message` is safe to show a client; `debug` is for staff only and is
/// dropped by [`Envelope::for_client`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Envelope {
    /// `ok` or `error`.
    pub status: Status,
    /// Why it failed (null when ok).
    pub error_kind: Option<ErrorKind>,
    /// A sentence safe to show the client.
    pub message: UserMessage,
    /// The function's result when ok; `{"errors": [...]}` for `invalid_input`.
    pub data: Option<Value>,
    /// Staff-only diagnostics.
    pub debug: Option<StaffDebug>,
}

/// What a client may see of an envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClientEnvelope {
    /// `ok` or `error`.
    pub status: Status,
    /// Why it failed.
    pub error_kind: Option<ErrorKind>,
    /// The client-safe message.
    pub message: UserMessage,
    /// The result data.
    pub data: Option<Value>,
}

impl Envelope {
    /// A success.
    pub fn ok(data: Value, message: UserMessage) -> Self {
        Envelope { status: Status::Ok, error_kind: None, message, data: Some(data), debug: None }
    }

    /// A failure.
    pub fn from_error(err: ProviderError) -> Self {
        let (kind, message, field_errors, debug) = err.into_parts();
        let data = (!field_errors.is_empty()).then(|| json!({ "errors": field_errors }));
        Envelope {
            status: Status::Error,
            error_kind: Some(kind),
            message,
            data,
            debug: (!debug.is_empty()).then_some(debug),
        }
    }

    /// Whether the call succeeded.
    pub fn is_ok(&self) -> bool {
        self.status == Status::Ok
    }

    /// The field errors of an `invalid_input` envelope.
    pub fn field_errors(&self) -> Vec<FieldError> {
        self.data
            .as_ref()
            .and_then(|data| data.get("errors"))
            .and_then(|errors| serde_json::from_value(errors.clone()).ok())
            .unwrap_or_default()
    }

    /// The envelope without staff-only debug.
    pub fn for_client(&self) -> ClientEnvelope {
        ClientEnvelope {
            status: self.status,
            error_kind: self.error_kind,
            message: self.message.clone(),
            data: self.data.clone(),
        }
    }

    /// Replaces secrets in what people read: values in the message, in an
    /// error's field messages (a vendor may echo what it refused) and in
    /// debug, and secret-looking keys in debug. Result data is left as it
    /// is: the engine acts on it (see [`CallReport::logged_envelope`] for
    /// the form kept in logs).
    pub fn redact(&mut self, redactor: &Redactor) {
        self.message.map(|text| redactor.text(text));
        if self.status == Status::Error
            && let Some(errors) = self.data.as_mut().and_then(|d| d.get_mut("errors")).and_then(Value::as_array_mut)
        {
            for error in errors {
                if let Some(message) = error.get_mut("message").and_then(|m| m.as_str().map(|t| redactor.text(t))) {
                    error["message"] = Value::String(message);
                }
            }
        }
        if let Some(debug) = &mut self.debug {
            let mut value = Value::Object(std::mem::take(debug.as_map_mut()));
            redactor.value_and_keys(&mut value);
            if let Value::Object(map) = value {
                *debug.as_map_mut() = map;
            }
        }
    }

    fn add_debug(&mut self, key: &str, value: Value) {
        self.debug.get_or_insert_with(StaffDebug::default).insert(key, value);
    }
}

/// An envelope and the redacted traffic behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallReport {
    /// The result: message and debug redacted, result data as the provider
    /// answered it (secret result fields included, for the caller only).
    pub envelope: Envelope,
    /// Every HTTP (or other) exchange the provider made, redacted.
    pub http_log: Vec<HttpExchange>,
    /// Wall time of the whole call.
    pub duration_ms: u64,
    /// When the call started (Unix milliseconds).
    #[serde(default)]
    pub started_at_ms: i64,
    /// The call's secrets, to redact what is kept of the result.
    #[serde(skip)]
    pub redactor: Arc<Redactor>,
}

impl CallReport {
    /// The envelope as logs and attempt records keep it: secret result
    /// fields (by the function's result schema) masked, and configured
    /// secret values redacted from the data too.
    pub fn logged_envelope(&self, function: Option<&crate::FunctionDescriptor>) -> Envelope {
        let mut envelope = self.envelope.clone();
        if let Some(data) = envelope.data.as_mut() {
            if let Some(function) = function
                && envelope.status == Status::Ok
            {
                *data = function.result.mask_secrets(data);
            }
            self.redactor.value(data);
        }
        envelope
    }
}

/// Runs `function` of the provider `entry` with `config` and `params`.
///
/// Never panics and never returns an error: every failure, a provider panic
/// included, becomes an error envelope. Secrets of the configuration (and
/// secret params) are redacted from the envelope and the log.
pub async fn call(
    entry: &ProviderEntry,
    config: &Value,
    function: &str,
    params: &Value,
    options: &CallOptions,
) -> CallReport {
    let started = Instant::now();
    let started_at_ms = unix_ms();
    let redactor = Arc::new(redactor_for(entry, config, function, params));
    let span = tracing::info_span!("provider_call", provider = %entry.address(), function);
    let cx = Context::new(&options_for(config, options), redactor.clone(), span.clone()).for_function(function);
    let outcome = AssertUnwindSafe(run(entry, config, function, params, &cx).instrument(span))
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| Err(ProviderError::internal(format!("provider panicked: {}", panic_text(&panic)))));
    let mut envelope = match outcome {
        Ok(data) => Envelope::ok(data, UserMessage::new(format!("{} succeeded", humanize(function)))),
        Err(err) => Envelope::from_error(err),
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    envelope.add_debug("execution_time_ms", json!(duration_ms));
    envelope.redact(&redactor);
    let mut http_log = cx.http_log();
    // Secret result fields (a password the vendor generated) are the
    // caller's to see in the result, never in the log; so are the secrets
    // the provider declared on the way.
    let mut learnt = cx.learnt_secrets();
    if let (Some(descriptor), Some(data)) = (entry.blueprint().function(function), envelope.data.as_ref())
        && envelope.is_ok()
    {
        learnt.extend(descriptor.result.secret_values(data));
    }
    if !learnt.is_empty() {
        let learnt = Redactor::new(learnt);
        http_log.iter_mut().for_each(|exchange| exchange.redact(&learnt));
        envelope.redact(&learnt);
    }
    CallReport { envelope, http_log, duration_ms, started_at_ms, redactor }
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The options of one call: a configuration with a `ca_cert_pem` gets an
/// HTTP client that trusts that CA (and only it); one with a true
/// `accept_invalid_certs` field (a test ACME authority) gets one that
/// accepts any certificate.
fn options_for(config: &Value, options: &CallOptions) -> CallOptions {
    let mut options = options.clone();
    options.accept_invalid_certs |= config.get("accept_invalid_certs") == Some(&Value::Bool(true));
    if let Some(pem) = config.get("ca_cert_pem").and_then(Value::as_str).filter(|p| !p.trim().is_empty()) {
        options.ca_cert_pem = Some(pem.to_owned());
    }
    options
}

/// Runs a provider's `test_connection` with a validated configuration.
pub async fn test_connection(entry: &ProviderEntry, config: &Value, options: &CallOptions) -> CallReport {
    let started = Instant::now();
    let started_at_ms = unix_ms();
    let redactor = Arc::new(Redactor::new(entry.config_schema().secret_values(config)));
    let span = tracing::info_span!("provider_test_connection", provider = %entry.address());
    let cx = Context::new(&options_for(config, options), redactor.clone(), span.clone());
    let run = async {
        validate_config(entry, config)?;
        let instance = build_within(entry, config, &cx).await?;
        let test: ConnectionTest = tokio::time::timeout(cx.remaining(), instance.test_connection(&cx))
            .await
            .map_err(|_| ProviderError::transient("The provider did not answer in time"))??;
        encode_result(&test)
    };
    let outcome = AssertUnwindSafe(run.instrument(span))
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| Err(ProviderError::internal(format!("provider panicked: {}", panic_text(&panic)))));
    let mut envelope = match outcome {
        Ok(data) => Envelope::ok(data, "Connection test succeeded".into()),
        Err(err) => Envelope::from_error(err),
    };
    envelope.redact(&redactor);
    // A connection test's data is only ever read by people.
    if let Some(data) = envelope.data.as_mut() {
        redactor.value(data);
    }
    let mut http_log = cx.http_log();
    let learnt = Redactor::new(cx.learnt_secrets());
    http_log.iter_mut().for_each(|exchange| exchange.redact(&learnt));
    envelope.redact(&learnt);
    let duration_ms = started.elapsed().as_millis() as u64;
    CallReport { envelope, http_log, duration_ms, started_at_ms, redactor }
}

/// Reads the oldest notice of a configuration's system (`data`: the
/// [`crate::Notice`], or null when there is none), or, with `acknowledge`,
/// removes the notice with that id. Redacted like any call.
pub async fn notice(
    entry: &ProviderEntry,
    config: &Value,
    acknowledge: Option<&str>,
    options: &CallOptions,
) -> CallReport {
    let started = Instant::now();
    let started_at_ms = unix_ms();
    let redactor = Arc::new(Redactor::new(entry.config_schema().secret_values(config)));
    let span = tracing::info_span!("provider_notice", provider = %entry.address());
    let cx = Context::new(&options_for(config, options), redactor.clone(), span.clone());
    let run = async {
        validate_config(entry, config)?;
        let instance = build_within(entry, config, &cx).await?;
        match acknowledge {
            Some(id) => {
                tokio::time::timeout(cx.remaining(), instance.acknowledge(&cx, id))
                    .await
                    .map_err(|_| ProviderError::transient("The provider did not answer in time"))??;
                Ok(Value::Null)
            }
            None => {
                let notice = tokio::time::timeout(cx.remaining(), instance.next_notice(&cx))
                    .await
                    .map_err(|_| ProviderError::transient("The provider did not answer in time"))??;
                Ok(serde_json::to_value(notice).unwrap_or(Value::Null))
            }
        }
    };
    let outcome = AssertUnwindSafe(run.instrument(span))
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| Err(ProviderError::internal(format!("provider panicked: {}", panic_text(&panic)))));
    let mut envelope = match outcome {
        Ok(data) => Envelope::ok(data, "Notice read".into()),
        Err(err) => Envelope::from_error(err),
    };
    envelope.redact(&redactor);
    let mut http_log = cx.http_log();
    let learnt = Redactor::new(cx.learnt_secrets());
    http_log.iter_mut().for_each(|exchange| exchange.redact(&learnt));
    envelope.redact(&learnt);
    let duration_ms = started.elapsed().as_millis() as u64;
    CallReport { envelope, http_log, duration_ms, started_at_ms, redactor }
}

/// A redactor for the configuration's secret values and the params' secret fields.
pub fn redactor_for(entry: &ProviderEntry, config: &Value, function: &str, params: &Value) -> Redactor {
    let mut redactor = Redactor::new(entry.config_schema().secret_values(config));
    if let Some(descriptor) = entry.blueprint().function(function) {
        for secret in descriptor.params.secret_values(params) {
            redactor.add(&secret);
        }
    }
    redactor
}

/// Checks configuration values against the provider's schema.
pub fn validate_config(entry: &ProviderEntry, config: &Value) -> Result<(), ProviderError> {
    entry.validate_config(config).map_err(ProviderError::invalid_input)
}

async fn run(
    entry: &ProviderEntry,
    config: &Value,
    function: &str,
    params: &Value,
    cx: &Context,
) -> Result<Value, ProviderError> {
    let blueprint = entry.blueprint();
    let descriptor = blueprint.function(function).ok_or_else(|| {
        let known: Vec<&str> = blueprint.functions.iter().map(|f| f.name).collect();
        ProviderError::new(
            ErrorKind::InvalidInput,
            UserMessage::new(format!(
                "Unknown function `{function}` of blueprint {}; expected one of: {}",
                blueprint.id,
                known.join(", ")
            )),
        )
    })?;
    validate_config(entry, config)?;
    descriptor.params.validate(params, FieldLocation::Params).map_err(ProviderError::invalid_input)?;
    if !entry.implements(function) {
        return Err(ProviderError::unsupported(function));
    }
    let instance = build_within(entry, config, cx).await?;
    let data = match tokio::time::timeout(cx.remaining(), instance.call(cx, function, params.clone())).await {
        Ok(result) => result?,
        // A query changed nothing, so running out of time there is only transient.
        Err(_) if descriptor.kind == FunctionKind::Query => {
            return Err(ProviderError::transient("The provider did not answer in time"));
        }
        Err(_) => {
            return Err(ProviderError::outcome_unknown(
                "The provider did not answer in time; the operation may have taken effect",
            ));
        }
    };
    if let Err(errors) = descriptor.result.validate(&data, FieldLocation::Result) {
        return Err(ProviderError::internal("the provider returned data outside the blueprint's result schema")
            .with_debug("result_errors", json!(errors)));
    }
    Ok(data)
}

/// Builds the provider within the call's deadline (a provider may connect
/// while it is built); nothing was sent yet, so running out of time is transient.
async fn build_within(
    entry: &ProviderEntry,
    config: &Value,
    cx: &Context,
) -> Result<std::sync::Arc<dyn crate::ProviderInstance>, ProviderError> {
    tokio::time::timeout(cx.remaining(), entry.build(config.clone()))
        .await
        .map_err(|_| ProviderError::transient("The provider could not be prepared in time"))?
}

/// Decodes JSON params into the function's typed params (already schema-checked).
pub fn decode_params<T: DeserializeOwned>(params: Value) -> Result<T, ProviderError> {
    serde_json::from_value(params).map_err(|err| {
        ProviderError::invalid_input(vec![FieldError {
            location: FieldLocation::Params,
            path: "/".into(),
            message: err.to_string(),
        }])
    })
}

/// Encodes a typed result as JSON.
pub fn encode_result<T: Serialize>(result: &T) -> Result<Value, ProviderError> {
    serde_json::to_value(result).map_err(ProviderError::internal)
}

fn humanize(function: &str) -> String {
    let text = function.replace('_', " ");
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => text,
    }
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_message_that_echoes_a_secret_is_redacted() {
        let err = ProviderError::invalid_field(FieldLocation::Params, "/ip", "the vendor refused sk_secret_123 here");
        let mut envelope = Envelope::from_error(err);
        envelope.redact(&Redactor::new(["sk_secret_123"]));
        let text = serde_json::to_string(&envelope).unwrap();
        assert!(!text.contains("sk_secret_123"), "{text}");
        assert_eq!(envelope.field_errors()[0].path, "/ip");
    }
}
