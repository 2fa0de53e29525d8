//! The HTTP client every provider uses: it records each exchange for the job
//! log, redacted, and classifies failures into error kinds.

use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ProviderError, UserMessage};
use crate::redact::{self, REDACTED, Redactor};

/// Bodies longer than this are cut in the log.
const MAX_LOGGED_BODY: usize = 16 * 1024;

/// One request and its response (or failure), redacted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HttpExchange {
    /// HTTP method.
    pub method: String,
    /// URL with secret query parameters redacted.
    pub url: String,
    /// Request headers, credentials redacted.
    pub request_headers: Vec<(String, String)>,
    /// Request body (JSON re-serialised with secrets redacted; text cut at 16 KiB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    /// Response status, if a response came back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Response headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_headers: Vec<(String, String)>,
    /// Response body, redacted like the request body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
    /// Why no response came back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Time from send to the end of the response body.
    pub duration_ms: u64,
}

impl HttpExchange {
    /// Replaces more secret values (learnt after the exchange, such as a
    /// password the vendor generated and answered).
    pub fn redact(&mut self, redactor: &Redactor) {
        self.url = redactor.text(&self.url);
        for (_, value) in self.request_headers.iter_mut().chain(self.response_headers.iter_mut()) {
            *value = redactor.text(value);
        }
        for body in [&mut self.request_body, &mut self.response_body, &mut self.error].into_iter().flatten() {
            *body = redactor.text(body);
        }
    }

    /// An exchange over another protocol (SQL, MQTT) for the same log:
    /// `method` says what (`SQL`, `MQTT PUBLISH`), `target` where or what,
    /// `started` when it began. Record it with [`crate::Context::record`],
    /// which redacts it.
    pub fn other(method: &str, target: &str, started: Instant) -> Self {
        HttpExchange {
            method: method.into(),
            url: target.into(),
            request_headers: Vec::new(),
            request_body: None,
            status: None,
            response_headers: Vec::new(),
            response_body: None,
            error: None,
            duration_ms: started.elapsed().as_millis() as u64,
        }
    }
}

/// The shared, append-only list of exchanges made during one call.
pub type HttpLog = Arc<Mutex<Vec<HttpExchange>>>;

/// A response whose body has been read in full.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: reqwest::StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ProviderError> {
        serde_json::from_slice(&self.body).map_err(|err| {
            ProviderError::internal(format!("unexpected response body: {err}"))
                .with_debug("status", self.status.as_u16())
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A 5xx (including gateways' 502, 503, 504 and 524): the system behind
    /// it may or may not have done the work. After a request that `changes`
    /// something that is `outcome_unknown` (reconcile, never resend blindly);
    /// after a read, `transient`. `None` for any other status.
    pub fn server_error(&self, changes: bool) -> Option<ProviderError> {
        if !self.status.is_server_error() {
            return None;
        }
        let status = self.status.as_u16();
        let err = if changes {
            ProviderError::outcome_unknown(crate::UserMessage::new(format!(
                "The provider answered HTTP {status}; the request may have taken effect"
            )))
        } else {
            ProviderError::transient(crate::UserMessage::new(format!(
                "The provider answered HTTP {status}; try again later"
            )))
        };
        Some(err.with_debug("status", status).with_debug("response_body", truncate(&self.text())))
    }

    /// Maps the usual failure statuses to error kinds: 408, 429 and 5xx are
    /// transient, any other non-2xx a provider error with `message`.
    pub fn error_for_status(self, message: &str) -> Result<Self, ProviderError> {
        let status = self.status;
        if status.is_success() {
            return Ok(self);
        }
        let text = self.text();
        let err = if status.as_u16() == 408 || status.as_u16() == 429 || status.is_server_error() {
            ProviderError::transient("The provider is busy or unavailable; try again later")
        } else if status.as_u16() == 404 {
            ProviderError::not_found(crate::UserMessage::new(message.to_owned()))
        } else {
            ProviderError::provider(crate::UserMessage::new(message.to_owned()))
        };
        Err(err.with_debug("status", status.as_u16()).with_debug("response_body", truncate(&text)))
    }
}

/// The HTTP client handed to providers through the call context.
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    /// Why no client could be built for this call (a CA that does not
    /// parse): every send answers it, nothing is sent.
    broken: Option<ProviderError>,
    redactor: Arc<Redactor>,
    log: HttpLog,
    deadline: Instant,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").finish_non_exhaustive()
    }
}

static INSTALL_CRYPTO: Once = Once::new();

/// Installs the process-wide rustls crypto provider (ring) once. Every
/// reqwest client in the process needs it; the SDK's own client calls it,
/// other HTTP clients (the CLI's, tests') call it before they build.
pub fn install_crypto_provider() {
    INSTALL_CRYPTO.call_once(|| {
        // Fails harmlessly if another part of the process installed one.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The most of one answer a provider call reads (16 MiB).
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// A shared reqwest client (connection pools are reused across calls).
pub(crate) fn shared_client(accept_invalid_certs: bool) -> reqwest::Client {
    static STRICT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    static LENIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    install_crypto_provider();
    let cell = if accept_invalid_certs { &LENIENT } else { &STRICT };
    cell.get_or_init(|| {
        reqwest::Client::builder()
            .user_agent(concat!("provisio/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            // A redirect must never carry a credential elsewhere: none are
            // followed unless a provider asks, per request, for same-origin
            // ones (`send_following_redirects`).
            .redirect(reqwest::redirect::Policy::none())
            .tls_danger_accept_invalid_certs(accept_invalid_certs)
            .build()
            .expect("the HTTP client builds")
    })
    .clone()
}

/// A client that trusts only the CA in `pem` (kept per CA, so calls to one
/// panel share a connection pool).
fn client_trusting(pem: &str) -> Result<reqwest::Client, ProviderError> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static CLIENTS: std::sync::OnceLock<Mutex<HashMap<String, reqwest::Client>>> = std::sync::OnceLock::new();
    install_crypto_provider();
    let cache = CLIENTS.get_or_init(Mutex::default);
    if let Some(client) = cache.lock().expect("client cache lock").get(pem) {
        return Ok(client.clone());
    }
    let tls = crate::tls::client_config(Some(pem))?;
    let client = reqwest::Client::builder()
        .user_agent(concat!("provisio/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(ProviderError::internal)?;
    let mut cache = cache.lock().expect("client cache lock");
    // Configurations are few; a flood of distinct CAs must not grow this forever.
    if cache.len() >= 64 {
        cache.clear();
    }
    cache.insert(pem.to_owned(), client.clone());
    Ok(client)
}

impl HttpClient {
    pub(crate) fn new(
        redactor: Arc<Redactor>,
        log: HttpLog,
        deadline: Instant,
        accept_invalid_certs: bool,
        ca_cert_pem: Option<&str>,
    ) -> Self {
        let (client, broken) = match ca_cert_pem {
            Some(pem) if !accept_invalid_certs => match client_trusting(pem) {
                Ok(client) => (client, None),
                Err(err) => (shared_client(false), Some(err)),
            },
            _ => (shared_client(accept_invalid_certs), None),
        };
        HttpClient { client, broken, redactor, log, deadline }
    }

    /// Starts a request; send it with [`HttpClient::send`].
    pub fn request(&self, method: Method, url: &str) -> RequestBuilder {
        self.client.request(method, url)
    }

    /// Sends a request within the call's deadline, records the exchange and
    /// reads the whole body.
    ///
    /// Failures are classified: a refused connection is `transient`; a
    /// timeout or a broken response after a non-idempotent request left is
    /// `outcome_unknown` (after an idempotent one, `transient`).
    pub async fn send(&self, request: RequestBuilder) -> Result<HttpResponse, ProviderError> {
        if let Some(err) = &self.broken {
            return Err(err.clone());
        }
        let request = request.build().map_err(ProviderError::internal)?;
        let mut exchange = self.describe_request(&request);
        let idempotent =
            matches!(*request.method(), Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS);
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let started = Instant::now();
        let result = tokio::time::timeout(remaining, async {
            let mut response = self.client.execute(request).await?;
            let status = response.status();
            let headers = response.headers().clone();
            // Read in chunks up to a cap: a system that answers without end
            // must not take the process's memory with it.
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Ok(None);
                }
                body.extend_from_slice(&chunk);
            }
            Ok::<_, reqwest::Error>(Some((status, headers, body)))
        })
        .await;
        exchange.duration_ms = started.elapsed().as_millis() as u64;
        let outcome = match result {
            Ok(Ok(None)) => {
                exchange.error = Some(format!("the answer exceeded {MAX_RESPONSE_BYTES} bytes"));
                Err(ProviderError::provider(UserMessage::new(format!(
                    "The provider's answer was larger than {} MiB; it was not read",
                    MAX_RESPONSE_BYTES / (1024 * 1024)
                ))))
            }
            Ok(Ok(Some((status, headers, body)))) => {
                exchange.status = Some(status.as_u16());
                exchange.response_headers = self.headers(&headers);
                exchange.response_body = self.body(&body, headers.get(reqwest::header::CONTENT_TYPE));
                Ok(HttpResponse { status, headers, body })
            }
            Ok(Err(err)) => {
                exchange.error = Some(self.redactor.text(&error_chain(&err)));
                Err(classify(&err, idempotent))
            }
            Err(_) => {
                exchange.error = Some("deadline exceeded".into());
                Err(if idempotent {
                    ProviderError::transient("The provider did not answer in time")
                } else {
                    ProviderError::outcome_unknown(
                        "The provider did not answer in time; the request may have taken effect",
                    )
                })
            }
        };
        let url = exchange.url.clone();
        self.log.lock().expect("http log lock").push(exchange);
        outcome.map_err(|err| err.with_debug("url", url))
    }

    /// Like [`HttpClient::send`], following up to `max` redirects of a GET
    /// or HEAD, but only to the same origin (scheme, host and port: never to
    /// another host, never from HTTPS to HTTP), so the request's credentials
    /// go nowhere else. A redirect elsewhere is answered as it came (a 3xx).
    pub async fn send_following_redirects(
        &self,
        request: RequestBuilder,
        max: usize,
    ) -> Result<HttpResponse, ProviderError> {
        let mut request = request.build().map_err(ProviderError::internal)?;
        for _ in 0..=max {
            let next = request.try_clone();
            let url = request.url().clone();
            let response = self.send(RequestBuilder::from_parts(self.client.clone(), request)).await?;
            let Some(mut next) = next.filter(|_| response.status.is_redirection()) else {
                return Ok(response);
            };
            let location = response
                .headers
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|location| url.join(location).ok());
            match location {
                Some(target)
                    if matches!(*next.method(), Method::GET | Method::HEAD) && target.origin() == url.origin() =>
                {
                    *next.url_mut() = target;
                    request = next;
                }
                _ => return Ok(response),
            }
        }
        Err(ProviderError::provider("The provider redirected too many times"))
    }

    fn describe_request(&self, request: &reqwest::Request) -> HttpExchange {
        let body = request.body().and_then(|body| body.as_bytes());
        HttpExchange {
            method: request.method().to_string(),
            url: redact_url(&self.redactor, request.url().to_string()),
            request_headers: self.headers(request.headers()),
            request_body: body.and_then(|bytes| self.body(bytes, request.headers().get(reqwest::header::CONTENT_TYPE))),
            status: None,
            response_headers: Vec::new(),
            response_body: None,
            error: None,
            duration_ms: 0,
        }
    }

    fn headers(&self, headers: &HeaderMap) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|(name, value)| {
                let value = if redact::is_secret_key(name.as_str()) {
                    REDACTED.to_owned()
                } else {
                    self.redactor.text(&String::from_utf8_lossy(value.as_bytes()))
                };
                (name.as_str().to_owned(), value)
            })
            .collect()
    }

    fn body(&self, bytes: &[u8], content_type: Option<&reqwest::header::HeaderValue>) -> Option<String> {
        if bytes.is_empty() {
            return None;
        }
        let content_type = content_type.and_then(|v| v.to_str().ok()).unwrap_or_default();
        if let Ok(mut json) = serde_json::from_slice::<Value>(bytes) {
            self.redactor.value_and_keys(&mut json);
            return Some(truncate(&json.to_string()));
        }
        let text = String::from_utf8_lossy(bytes);
        let text = if content_type.starts_with("application/x-www-form-urlencoded") {
            redact::redact_form(&text)
        } else {
            text.into_owned()
        };
        Some(truncate(&self.redactor.text(&text)))
    }
}

fn redact_url(redactor: &Redactor, url: String) -> String {
    let url = match url.split_once('?') {
        Some((base, query)) => format!("{base}?{}", redact::redact_form(query)),
        None => url,
    };
    let url = match url::Url::parse(&url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some(REDACTED));
            parsed.to_string()
        }
        _ => url,
    };
    redactor.text(&url)
}

fn truncate(text: &str) -> String {
    if text.len() <= MAX_LOGGED_BODY {
        return text.to_owned();
    }
    let mut end = MAX_LOGGED_BODY;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... [{} bytes cut]", &text[..end], text.len() - end)
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Whether a TLS check (the certificate, the host name) failed somewhere
/// in the error's chain.
fn is_tls_failure(err: &reqwest::Error) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(error) = next {
        if error.downcast_ref::<rustls::Error>().is_some()
            || error.downcast_ref::<std::io::Error>().is_some_and(crate::tls::is_tls_failure)
        {
            return true;
        }
        next = error.source();
    }
    false
}

fn classify(err: &reqwest::Error, idempotent: bool) -> ProviderError {
    let detail = error_chain(err);
    // Only a failure while connecting: after the request went, the outcome
    // is what matters, whatever broke.
    let kind = if err.is_connect() && is_tls_failure(err) {
        // An untrusted or mismatched certificate is a setting to fix:
        // retrying cannot help, and nothing was sent.
        ProviderError::provider(
            "TLS to the provider failed: its certificate is not trusted or names another host (see ca_cert_pem)",
        )
    } else if err.is_connect() || err.is_builder() {
        ProviderError::transient("The provider could not be reached; try again later")
    } else if idempotent {
        ProviderError::transient("The connection to the provider failed; try again later")
    } else {
        ProviderError::outcome_unknown("The connection to the provider failed after the request was sent")
    };
    kind.with_debug("cause", detail)
}

#[cfg(test)]
mod status_tests {
    use super::*;

    fn answer(status: u16) -> HttpResponse {
        HttpResponse {
            status: reqwest::StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: b"gateway".to_vec(),
        }
    }

    #[test]
    fn a_server_error_after_a_change_is_outcome_unknown_and_after_a_read_transient() {
        for status in [500, 502, 503, 504, 524] {
            assert_eq!(answer(status).server_error(true).unwrap().kind(), crate::ErrorKind::OutcomeUnknown);
            assert_eq!(answer(status).server_error(false).unwrap().kind(), crate::ErrorKind::Transient);
        }
        assert!(answer(200).server_error(true).is_none());
        assert!(answer(404).server_error(true).is_none());
    }
}

#[cfg(test)]
mod ca_tests {
    use std::sync::Arc;

    use super::*;

    /// An HTTPS server on loopback with a certificate for `localhost` signed
    /// by a CA of its own; answers its address and the CA's PEM.
    async fn https_server() -> (String, String) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf =
            rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap().signed_by(&key, &issuer).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let Ok(mut tls) = acceptor.accept(socket).await else { return };
                    let mut buffer = [0u8; 4096];
                    let _ = tls.read(&mut buffer).await;
                    let _ = tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        (format!("https://localhost:{port}/"), ca.pem())
    }

    fn client(ca: Option<&str>) -> (HttpClient, HttpLog) {
        let log: HttpLog = Arc::default();
        let deadline = Instant::now() + Duration::from_secs(10);
        (HttpClient::new(Arc::new(Redactor::new(Vec::<String>::new())), log.clone(), deadline, false, ca), log)
    }

    #[tokio::test]
    async fn a_server_with_its_own_ca_is_refused_until_that_ca_is_trusted() {
        let (url, ca) = https_server().await;
        let (strict, _) = client(None);
        let refused = strict.send(strict.request(Method::GET, &url)).await.expect_err("verification is on by default");
        // A setting to fix, not a fault to retry.
        assert_eq!(refused.kind(), crate::ErrorKind::ProviderError, "{refused:?}");
        let (trusting, _) = client(Some(&ca));
        let answer = trusting.send(trusting.request(Method::GET, &url)).await.unwrap();
        assert_eq!(answer.status, 200);
        // Another CA is not this one: still refused.
        let (_, other_ca) = https_server().await;
        let (wrong, _) = client(Some(&other_ca));
        assert!(wrong.send(wrong.request(Method::GET, &url)).await.is_err());
    }

    #[tokio::test]
    async fn a_ca_that_does_not_parse_sends_nothing() {
        let (url, _) = https_server().await;
        let (broken, log) = client(Some("not a certificate"));
        let err = broken.send(broken.request(Method::GET, &url)).await.unwrap_err();
        assert!(err.to_string().contains("ca_cert_pem"), "{err}");
        assert!(log.lock().unwrap().is_empty(), "nothing was sent");
    }
}
