//! Billing systems and others out: webhook subscribers are told what
//! happens to services and jobs.
//!
//! A delivery is recorded in the same transaction as the change it tells of
//! (an outbox), then sent by [`Worker::deliver_webhooks`](crate::Worker::deliver_webhooks), apart from the
//! worker: a subscriber that is down only grows its own queue. Each POST is
//! signed as signed events are (`Provisio-Signature: t=…,v1=…`, HMAC-SHA256
//! of `"<t>.<body>"` under the subscriber's secret) and retried with
//! backoff up to `Settings::webhook_attempts` times; delivery is at least once (the body's
//! `id` tells repeats apart). The URL's host is resolved before each send
//! and refused when it points at a private, loopback or link-local address,
//! unless an admin allowed that for the subscriber; the request goes to the
//! address that was checked.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use provisio_sdk::SchemaDoc;
use provisio_store::models::{Service, WebhookDelivery, WebhookSubscriber};
use provisio_store::{Conn, StoreError, audit, now_ms, services, webhooks};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::catalog::decode;
use crate::{Catalog, EngineError, Worker};

/// Deliveries sent at once by one process.
const CONCURRENCY: usize = 16;
/// How long one delivery may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// What subscribers can be told of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum WebhookEvent {
    /// Set up and in use (after `order.paid`, or back from `failed`).
    #[serde(rename = "service.activated")]
    ServiceActivated,
    #[serde(rename = "service.suspended")]
    ServiceSuspended,
    #[serde(rename = "service.unsuspended")]
    ServiceUnsuspended,
    #[serde(rename = "service.terminated")]
    ServiceTerminated,
    /// Its setup failed; staff must look.
    #[serde(rename = "service.failed")]
    ServiceFailed,
    #[serde(rename = "job.succeeded")]
    JobSucceeded,
    /// A job failed for good (its retries are spent).
    #[serde(rename = "job.failed")]
    JobFailed,
    /// Sync found the service's system differing from its record.
    #[serde(rename = "drift.detected")]
    DriftDetected,
}

impl WebhookEvent {
    /// Every event subscribers can ask for.
    pub const ALL: [WebhookEvent; 8] = [
        WebhookEvent::ServiceActivated,
        WebhookEvent::ServiceSuspended,
        WebhookEvent::ServiceUnsuspended,
        WebhookEvent::ServiceTerminated,
        WebhookEvent::ServiceFailed,
        WebhookEvent::JobSucceeded,
        WebhookEvent::JobFailed,
        WebhookEvent::DriftDetected,
    ];

    /// Its name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvent::ServiceActivated => "service.activated",
            WebhookEvent::ServiceSuspended => "service.suspended",
            WebhookEvent::ServiceUnsuspended => "service.unsuspended",
            WebhookEvent::ServiceTerminated => "service.terminated",
            WebhookEvent::ServiceFailed => "service.failed",
            WebhookEvent::JobSucceeded => "job.succeeded",
            WebhookEvent::JobFailed => "job.failed",
            WebhookEvent::DriftDetected => "drift.detected",
        }
    }

    /// What a service's move from `from` to `to` tells subscribers.
    pub fn for_status_change(from: &str, to: &str) -> Option<WebhookEvent> {
        match (from, to) {
            (from, to) if from == to => None,
            ("suspended", "active") => Some(WebhookEvent::ServiceUnsuspended),
            (_, "active") => Some(WebhookEvent::ServiceActivated),
            (_, "suspended") => Some(WebhookEvent::ServiceSuspended),
            (_, "terminated") => Some(WebhookEvent::ServiceTerminated),
            (_, "failed") => Some(WebhookEvent::ServiceFailed),
            _ => None,
        }
    }
}

/// A subscriber as an admin describes it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// Its name, e.g. `billing`.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-z0-9][a-z0-9._-]*$"))]
    pub name: String,
    /// Where deliveries are POSTed (http or https, no credentials in it).
    #[schemars(length(min = 1, max = 2048), extend("format" = "uri"))]
    pub url: String,
    /// What it wants to be told.
    #[schemars(length(min = 1), extend("uniqueItems" = true))]
    pub event_types: Vec<WebhookEvent>,
    /// The signing secret; generated and shown once when absent.
    #[serde(default)]
    #[schemars(length(min = 16, max = 256), extend("writeOnly" = true))]
    pub secret: Option<String>,
    /// Whether `service.activated` carries the credentials answered at
    /// setup (a generated password, a private key) for billing to pass on.
    #[serde(default)]
    pub include_credentials: bool,
    /// Whether the URL may point at a private or loopback address (a
    /// billing system on the same network).
    #[serde(default)]
    pub allow_private: bool,
}

/// A change to a subscriber.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    #[serde(default)]
    #[schemars(length(min = 1, max = 2048), extend("format" = "uri"))]
    pub url: Option<String>,
    #[serde(default)]
    #[schemars(length(min = 1), extend("uniqueItems" = true))]
    pub event_types: Option<Vec<WebhookEvent>>,
    #[serde(default)]
    #[schemars(length(min = 16, max = 256), extend("writeOnly" = true))]
    pub secret: Option<String>,
    #[serde(default)]
    pub include_credentials: Option<bool>,
    #[serde(default)]
    pub allow_private: Option<bool>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A subscriber just made; a generated secret is shown this once.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub subscriber: WebhookSubscriber,
    pub secret: Option<String>,
}

fn secret_aad(id: i64) -> String {
    format!("webhook:{id}")
}

/// Checks a subscriber URL's form: http(s), a host, no credentials.
fn check_url(text: &str, path: &str) -> Result<url::Url, EngineError> {
    let url = url::Url::parse(text).map_err(|err| EngineError::invalid(path, format!("is not a URL ({err})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(EngineError::invalid(path, "must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(EngineError::invalid(path, "must name a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(EngineError::invalid(path, "must not carry credentials (the signature proves who sends)"));
    }
    Ok(url)
}

/// Whether an address is one anybody on the internet could reach (not
/// private, loopback, link-local, shared, documentation, multicast or
/// reserved). `IpAddr::is_global` is not stable yet, so the ranges are here.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (18..20).contains(&b))
                || a >= 240
                || (a == 192 && b == 0 && v4.octets()[2] == 0))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            let carried = |hi: u16, lo: u16| {
                let [a, b] = hi.to_be_bytes();
                let [c, d] = lo.to_be_bytes();
                IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d))
            };
            // NAT64 (64:ff9b::/96) reaches the IPv4 address it carries; so
            // does 6to4 (2002::/16) in its second and third groups.
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return is_public(carried(s[6], s[7]));
            }
            if s[0] == 0x2002 {
                return is_public(carried(s[1], s[2]));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || s[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible (deprecated)
                || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) // local-use NAT64
                || (s[0] == 0x2001 && s[1] == 0) // Teredo
                || (s[0] == 0x2001 && s[1] == 0xdb8)
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xffc0) == 0xfec0
                || s[..4] == [0x100, 0, 0, 0])
        }
    }
}

/// Resolves a subscriber's host; refuses a private address unless allowed.
/// Answers the address to connect to (the one checked, so a second lookup
/// cannot point the request elsewhere).
pub async fn resolve_target(url: &url::Url, allow_private: bool) -> Result<SocketAddr, String> {
    let host = url.host_str().ok_or("the URL names no host")?;
    let port = url.port_or_known_default().ok_or("the URL names no port")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<SocketAddr> =
        tokio::net::lookup_host((host, port)).await.map_err(|err| format!("cannot resolve {host}: {err}"))?.collect();
    let first = *addresses.first().ok_or_else(|| format!("{host} has no address"))?;
    if !allow_private && let Some(private) = addresses.iter().find(|a| !is_public(a.ip())) {
        return Err(format!(
            "{host} resolves to {}, a private or loopback address (an admin may allow it for this subscriber)",
            private.ip()
        ));
    }
    Ok(first)
}

/// Records what `event` tells subscribers about `service` (and `job`), in
/// the caller's transaction.
pub(crate) async fn outbox(
    conn: &mut Conn,
    event: WebhookEvent,
    service: &Service,
    job: Option<(i64, &str, &str, &str)>,
) -> Result<(), StoreError> {
    if !webhooks::wanted(conn, event.as_str()).await? {
        return Ok(());
    }
    let mut payload = json!({
        "type": event.as_str(),
        "occurred_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "service": {
            "id": service.id, "external_id": service.external_id, "client_id": service.client_id,
            "product_id": service.product_id, "identifier": service.identifier,
        },
    });
    if let Some((id, function, state, message)) = job {
        payload["job"] = json!({"id": id, "function": function, "state": state, "message": message});
    }
    // The status as it is after the change, read in this transaction.
    if let Some(current) = services::get(conn, service.id).await? {
        payload["service"]["status"] = json!(current.status);
        payload["service"]["identifier"] = json!(current.identifier);
    }
    webhooks::enqueue(conn, event.as_str(), Some(service.id), &payload).await?;
    Ok(())
}

impl Catalog {
    /// Adds a webhook subscriber.
    pub async fn create_webhook(&self, actor: &str, body: &Value) -> Result<NewWebhook, EngineError> {
        static SCHEMA: OnceLock<SchemaDoc> = OnceLock::new();
        let input: WebhookInput = decode(body, &SCHEMA)?;
        check_url(&input.url, "/url")?;
        let generated = input.secret.is_none().then(|| crate::vault::random_token("pws_"));
        let secret = input.secret.clone().or_else(|| generated.clone()).expect("one of them");
        let event_types = serde_json::to_value(&input.event_types).expect("events serialise");
        let (engine, actor) = (self.engine.clone(), actor.to_owned());
        let subscriber = self.engine
            .store()
            .write(move |conn| {
                Box::pin(async move {
                    let id = webhooks::next_id(conn).await?;
                    let sealed = engine.vault().seal(&secret_aad(id), secret.as_bytes());
                    let new = webhooks::NewSubscriber {
                        name: &input.name,
                        url: &input.url,
                        secrets: &sealed,
                        event_types: &event_types,
                        include_credentials: input.include_credentials,
                        allow_private: input.allow_private,
                    };
                    let subscriber = webhooks::insert(conn, id, &new)
                        .await
                        .map_err(|err| crate::catalog::unique(err, "/name", "is taken by another subscriber"))?;
                    audit::record(
                        conn,
                        &actor,
                        "webhook.create",
                        &format!("webhook:{}", subscriber.id),
                        &json!({"name": subscriber.name, "url": subscriber.url, "event_types": subscriber.event_types,
                                "include_credentials": subscriber.include_credentials, "allow_private": subscriber.allow_private}),
                    )
                    .await?;
                    Ok::<_, EngineError>(subscriber)
                })
            })
            .await?;
        Ok(NewWebhook { subscriber, secret: generated })
    }

    /// Changes a subscriber.
    pub async fn update_webhook(&self, actor: &str, id: i64, body: &Value) -> Result<WebhookSubscriber, EngineError> {
        static SCHEMA: OnceLock<SchemaDoc> = OnceLock::new();
        let patch: WebhookPatch = decode(body, &SCHEMA)?;
        if let Some(url) = &patch.url {
            check_url(url, "/url")?;
        }
        let sealed = patch.secret.as_ref().map(|s| self.engine.vault().seal(&secret_aad(id), s.as_bytes()));
        let event_types = patch.event_types.as_ref().map(|e| serde_json::to_value(e).expect("events serialise"));
        let actor = actor.to_owned();
        self.engine
            .store()
            .write(move |conn| {
                Box::pin(async move {
                    let change = webhooks::SubscriberChange {
                        url: patch.url.as_deref(),
                        secrets: sealed.as_deref(),
                        event_types: event_types.as_ref(),
                        include_credentials: patch.include_credentials,
                        allow_private: patch.allow_private,
                        enabled: patch.enabled,
                    };
                    let subscriber = webhooks::update(conn, id, &change)
                        .await?
                        .ok_or_else(|| EngineError::NotFound(format!("no webhook {id}")))?;
                    audit::record(
                        conn,
                        &actor,
                        "webhook.update",
                        &format!("webhook:{id}"),
                        &json!({"url": patch.url, "event_types": event_types, "secret_changed": patch.secret.is_some(),
                                "include_credentials": patch.include_credentials, "allow_private": patch.allow_private,
                                "enabled": patch.enabled}),
                    )
                    .await?;
                    Ok(subscriber)
                })
            })
            .await
    }

    /// Deletes a subscriber and its delivery log.
    pub async fn delete_webhook(&self, actor: &str, id: i64) -> Result<(), EngineError> {
        let actor = actor.to_owned();
        self.engine
            .store()
            .write(move |conn| {
                Box::pin(async move {
                    if !webhooks::delete(conn, id).await? {
                        return Err(EngineError::NotFound(format!("no webhook {id}")));
                    }
                    audit::record(conn, &actor, "webhook.delete", &format!("webhook:{id}"), &json!({})).await?;
                    Ok(())
                })
            })
            .await
    }
}

/// Why a delivery was not sent.
enum Refusal {
    /// Try again later.
    Retry(String),
    /// Never again.
    Final(String),
}

impl Worker {
    /// Sends due deliveries until `shutdown`; runs beside the worker, never in its way.
    pub async fn deliver_webhooks(&self, shutdown: impl Future<Output = ()>) {
        let permits = Arc::new(Semaphore::new(CONCURRENCY));
        tokio::pin!(shutdown);
        loop {
            let free = permits.available_permits() as i64;
            let lease_until = now_ms() + (SEND_TIMEOUT.as_millis() as i64) * 3;
            let pending = self
                .engine
                .store()
                .read(|conn| Box::pin(async move { webhooks::pending(conn).await }))
                .await
                .unwrap_or(true);
            let claimed = if free == 0 || !pending {
                Vec::new()
            } else {
                match self
                    .engine
                    .store()
                    .write(move |conn| Box::pin(async move { webhooks::claim(conn, free, lease_until).await }))
                    .await
                {
                    Ok(claimed) => claimed,
                    Err(err) => {
                        tracing::error!(error = %err, "claiming webhook deliveries failed");
                        Vec::new()
                    }
                }
            };
            let idle = claimed.is_empty();
            for delivery in claimed {
                let permit = permits.clone().try_acquire_owned().expect("claimed no more than the free permits");
                let engine = self.clone();
                tokio::spawn(async move {
                    engine.deliver(delivery).await;
                    drop(permit);
                });
            }
            let pause = if idle { self.engine.settings().poll_interval } else { Duration::ZERO };
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    async fn deliver(&self, delivery: WebhookDelivery) {
        let (state, status, error) = match self.send(&delivery).await {
            Ok(status) if (200..300).contains(&status) => ("delivered", Some(status), None),
            Ok(status) => ("queued", Some(status), Some(format!("the subscriber answered {status}"))),
            Err(Refusal::Final(why)) => ("failed", None, Some(why)),
            Err(Refusal::Retry(why)) => ("queued", None, Some(why)),
        };
        let state = if state == "queued" && delivery.attempts >= self.engine.settings().webhook_attempts {
            "failed"
        } else {
            state
        };
        self.engine.metrics().delivery(if state == "queued" { "retrying" } else { state });
        if state != "delivered" {
            tracing::warn!(delivery = delivery.id, attempts = delivery.attempts, error = ?error, "webhook delivery not done");
        }
        let retry_at = now_ms() + self.backoff(delivery.attempts);
        let id = delivery.id;
        let result = self
            .engine
            .store()
            .write(move |conn| {
                Box::pin(async move { webhooks::finish(conn, id, state, status, error.as_deref(), retry_at).await })
            })
            .await;
        if let Err(err) = result {
            tracing::error!(error = %err, delivery = id, "recording a webhook delivery failed");
        }
    }

    /// Sends one delivery; answers the subscriber's HTTP status.
    async fn send(&self, delivery: &WebhookDelivery) -> Result<u16, Refusal> {
        let subscriber_id = delivery.subscriber_id;
        let subscriber = self
            .engine
            .store()
            .read(move |conn| Box::pin(async move { webhooks::get(conn, subscriber_id).await }))
            .await
            .map_err(|err| Refusal::Retry(err.to_string()))?
            .ok_or_else(|| Refusal::Final("the subscriber was deleted".into()))?;
        if !subscriber.enabled {
            return Err(Refusal::Final("the subscriber is disabled".into()));
        }
        let secret = self
            .engine
            .vault()
            .open(&secret_aad(subscriber.id), &subscriber.secrets)
            .map_err(|err| Refusal::Final(format!("the subscriber's secret cannot be opened: {err}")))?;
        let url = url::Url::parse(&subscriber.url).map_err(|err| Refusal::Final(err.to_string()))?;
        let address = resolve_target(&url, subscriber.allow_private).await.map_err(Refusal::Retry)?;
        let mut body = delivery.payload.clone();
        body["id"] = json!(format!("whd_{}", delivery.id));
        let with_credentials =
            subscriber.include_credentials && delivery.event_type == WebhookEvent::ServiceActivated.as_str();
        if with_credentials && let Some(service_id) = delivery.service_id {
            // Credentials cross the network only encrypted, but for a
            // subscriber an admin placed on a private network.
            if url.scheme() != "https" && !subscriber.allow_private {
                return Err(Refusal::Final("credentials are only sent over https".into()));
            }
            body["credentials"] =
                json!(self.credentials_of(service_id).await.map_err(|e| Refusal::Retry(e.to_string()))?);
            // Every attempt that carries them is audited before it is sent.
            self.engine
                .record_audit(
                    format!("webhook:{}", subscriber.name),
                    "service.credentials_sent",
                    format!("service:{service_id}"),
                    json!({"attempt": delivery.attempts}),
                )
                .await
                .map_err(|err| Refusal::Retry(format!("cannot audit the credentials' delivery: {err}")))?;
        }
        let bytes = serde_json::to_vec(&body).expect("JSON serialises");
        let timestamp = now_ms() / 1000;
        let signature = format!("t={timestamp},v1={}", crate::sources::sign(&secret, timestamp, &bytes));
        provisio_sdk::http::install_crypto_provider();
        let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
        let client = reqwest::Client::builder()
            .user_agent(concat!("provisio-webhooks/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would look the name up again, past the address checked.
            .no_proxy()
            .timeout(SEND_TIMEOUT)
            .resolve(&host, address)
            .build()
            .map_err(|err| Refusal::Retry(err.to_string()))?;
        let response = client
            .post(url)
            .header("content-type", "application/json")
            .header("provisio-event", delivery.event_type.as_str())
            .header("provisio-delivery", format!("whd_{}", delivery.id))
            .header("provisio-signature", signature)
            .body(bytes)
            .send()
            .await
            .map_err(|err| Refusal::Retry(format!("cannot reach the subscriber: {}", err.without_url())))?;
        let status = response.status().as_u16();
        Ok(status)
    }

    /// The credentials a service's setup answered, by JSON pointer.
    async fn credentials_of(&self, service_id: i64) -> Result<serde_json::Map<String, Value>, EngineError> {
        let service = self
            .engine
            .store()
            .read(move |conn| Box::pin(async move { services::get(conn, service_id).await }))
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("no service {service_id}")))?;
        self.engine.setup_credentials(&service)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_reserved_addresses_are_not_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "255.255.255.255",
            "198.18.0.1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "2002:a00:1::",
            "2001:0:1::1",
            "::10.0.0.1",
            "fec0::1",
            "100::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::5db8:d822"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn status_changes_name_their_event() {
        use WebhookEvent::*;
        assert_eq!(WebhookEvent::for_status_change("provisioning", "active"), Some(ServiceActivated));
        assert_eq!(WebhookEvent::for_status_change("suspended", "active"), Some(ServiceUnsuspended));
        assert_eq!(WebhookEvent::for_status_change("active", "suspended"), Some(ServiceSuspended));
        assert_eq!(WebhookEvent::for_status_change("active", "active"), None);
    }
}
