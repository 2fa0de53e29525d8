//! What a provider function receives besides its params: an HTTP client that
//! records and redacts, a deadline, a tracing span, an idempotency key and the
//! service's stored provision data.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::error::{ProviderError, UserMessage};
use crate::http::{HttpClient, HttpExchange, HttpLog};
use crate::invoke::CallReport;
use crate::provider::BoxFuture;
use crate::redact::Redactor;

/// Other provision configurations a provider may use, through whoever runs
/// it (the engine): an ACME provider writes its DNS-01 records through a
/// `dns-hosting` configuration without knowing that provider's code. The
/// engine decides what is allowed (the calling service's client's own
/// services, no lifecycle functions).
pub trait Peers: Send + Sync {
    /// Runs `function` of the configuration named `configuration`; answers
    /// its report (envelope and redacted exchanges), or why it may not run.
    fn call<'a>(
        &'a self,
        configuration: &'a str,
        function: &'a str,
        params: Value,
    ) -> BoxFuture<'a, Result<CallReport, ProviderError>>;
}

/// [`Peers`], shareable in [`CallOptions`].
#[derive(Clone)]
pub struct PeerAccess(pub Arc<dyn Peers>);

impl std::fmt::Debug for PeerAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerAccess")
    }
}

/// How one call is run.
#[derive(Debug, Clone)]
pub struct CallOptions {
    /// Time allowed for the whole call, provider work included.
    pub timeout: Duration,
    /// A key that stays the same across retries of one logical operation;
    /// providers pass it on to vendors that accept one, and demo providers
    /// use it to answer a repeated create with the same service.
    pub idempotency_key: Option<String>,
    /// The service's stored provision data (fields and earlier results).
    pub provision_data: Map<String, Value>,
    /// Accept TLS certificates that do not verify (for panels with
    /// self-signed certificates; set from a configuration's own flag).
    pub accept_invalid_certs: bool,
    /// A CA (PEM) whose certificates HTTPS servers of this call may present,
    /// instead of the system's roots (a panel with its own CA; set from a
    /// configuration's `ca_cert_pem`). Verification stays on.
    pub ca_cert_pem: Option<String>,
    /// Other configurations the provider may call (given by the engine).
    pub peers: Option<PeerAccess>,
    /// The owner mark of the service the call acts for (see
    /// [`Context::owner`]); `None` when an operator calls by hand.
    pub owner: Option<String>,
}

impl Default for CallOptions {
    fn default() -> Self {
        CallOptions {
            timeout: Duration::from_secs(30),
            idempotency_key: None,
            provision_data: Map::new(),
            accept_invalid_certs: false,
            ca_cert_pem: None,
            peers: None,
            owner: None,
        }
    }
}

/// The context of one provider call.
#[derive(Debug)]
pub struct Context {
    http: HttpClient,
    log: HttpLog,
    deadline: Instant,
    idempotency_key: Option<String>,
    provision_data: Map<String, Value>,
    span: tracing::Span,
    redactor: Arc<Redactor>,
    peers: Option<PeerAccess>,
    owner: Option<String>,
    function: String,
    /// Secrets the provider made or was given during the call.
    learnt: Arc<Mutex<Vec<String>>>,
}

impl Context {
    /// A context for one call.
    pub fn new(options: &CallOptions, redactor: Arc<Redactor>, span: tracing::Span) -> Self {
        let deadline = Instant::now() + options.timeout;
        let log: HttpLog = Arc::new(Mutex::new(Vec::new()));
        Context {
            http: HttpClient::new(
                redactor.clone(),
                log.clone(),
                deadline,
                options.accept_invalid_certs,
                options.ca_cert_pem.as_deref(),
            ),
            log,
            deadline,
            idempotency_key: options.idempotency_key.clone(),
            provision_data: options.provision_data.clone(),
            span,
            redactor,
            peers: options.peers.clone(),
            owner: options.owner.clone(),
            function: String::new(),
            learnt: Arc::default(),
        }
    }

    /// The same context, for a call of `function`.
    pub(crate) fn for_function(mut self, function: &str) -> Self {
        self.function = function.to_owned();
        self
    }

    /// The function being called (empty for a connection test).
    pub fn function(&self) -> &str {
        &self.function
    }

    /// The owner mark of the service this call acts for: a stable reference
    /// the engine gives each service. Providers record it at the vendor
    /// where the vendor has a place for it (a comment, an account field, a
    /// description) when they create a resource, and act on an existing
    /// resource only if it carries the same mark: see [`Context::check_owner`].
    /// `None` when an operator runs a function by hand (the workbench).
    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// Whether this call may act on a resource that carries `found` as its
    /// owner mark (`None`: it carries none). With an owner set, only the same
    /// mark passes; anything else is `conflict`, so a service never adopts,
    /// changes or removes another service's resource (or one made outside
    /// Provisio). Without an owner (an operator by hand) everything passes.
    pub fn check_owner(&self, what: &str, found: Option<&str>) -> Result<(), ProviderError> {
        match (self.owner(), found) {
            (None, _) => Ok(()),
            (Some(owner), Some(found)) if owner == found => Ok(()),
            (Some(_), _) => Err(ProviderError::conflict(UserMessage::new(format!(
                "{what} exists but belongs to another service (or was not made by Provisio)"
            )))
            .with_debug("owner_mark_found", found.unwrap_or("(none)").to_owned())),
        }
    }

    /// For an import's `adopt` of a resource that carries `found` as its
    /// owner mark: `Ok(None)` when it is this service's already, `Ok(Some(mark))`
    /// when it carries none and `mark` (this service's) is to be written, and
    /// `conflict` when it carries another. Only a service adopts: a call
    /// without an owner is refused.
    pub fn adoption(&self, what: &str, found: Option<&str>) -> Result<Option<&str>, ProviderError> {
        let Some(owner) = self.owner() else {
            return Err(ProviderError::provider("Only a service adopts a resource (through an import)"));
        };
        match found {
            None => Ok(Some(owner)),
            Some(found) if found == owner => Ok(None),
            Some(_) => self.check_owner(what, found).map(|()| None),
        }
    }

    /// Runs `function` of another provision configuration (by name) and
    /// answers its result data. Its exchanges join this call's log; its
    /// failure becomes this call's, with the same kind and client-safe
    /// message (its staff-only details stay with it).
    pub async fn call_peer(&self, configuration: &str, function: &str, params: Value) -> Result<Value, ProviderError> {
        let Some(peers) = &self.peers else {
            return Err(ProviderError::provider(UserMessage::new(format!(
                "This needs the provision configuration {configuration}, which only a Provisio server can reach"
            ))));
        };
        let report = peers.0.call(configuration, function, params).await?;
        for exchange in report.http_log {
            self.record(exchange);
        }
        let envelope = report.envelope;
        match envelope.error_kind {
            None => Ok(envelope.data.unwrap_or(Value::Null)),
            Some(kind) => Err(ProviderError::new(kind, envelope.message).with_debug("peer", configuration.to_owned())),
        }
    }

    /// The recording HTTP client.
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// When the call must be done.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Time left before the deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// The idempotency key of this operation, if the caller gave one.
    pub fn idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }

    /// The service's stored provision data.
    pub fn provision_data(&self) -> &Map<String, Value> {
        &self.provision_data
    }

    /// The tracing span of this call.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Declares a secret the provider made or received during the call (a
    /// password it generated, a session token a vendor answered): the call's
    /// log, message and debug are redacted of it when the call ends.
    pub fn add_secret(&self, secret: &str) {
        if !secret.is_empty() {
            self.learnt.lock().expect("learnt secrets lock").push(secret.to_owned());
        }
    }

    /// The secrets declared with [`Context::add_secret`].
    pub(crate) fn learnt_secrets(&self) -> Vec<String> {
        self.learnt.lock().expect("learnt secrets lock").clone()
    }

    /// The redactor for this call's secrets, for providers that log other traffic (SQL, MQTT).
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// The HTTP exchanges made so far, redacted.
    pub fn http_log(&self) -> Vec<HttpExchange> {
        self.log.lock().expect("http log lock").clone()
    }

    /// Records a non-HTTP exchange (an SQL statement, an MQTT message) in the
    /// same log, redacted.
    pub fn record(&self, mut exchange: HttpExchange) {
        exchange.url = self.redactor.text(&exchange.url);
        exchange.request_body = exchange.request_body.map(|b| self.redactor.text(&b));
        exchange.response_body = exchange.response_body.map(|b| self.redactor.text(&b));
        exchange.error = exchange.error.map(|b| self.redactor.text(&b));
        self.log.lock().expect("http log lock").push(exchange);
    }
}
