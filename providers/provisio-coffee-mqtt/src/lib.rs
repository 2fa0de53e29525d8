//! `coffee/mqtt`: the seed's coffee machine made real. The machine is a
//! device on an MQTT broker; Provisio sends it signed orders and waits, with
//! a deadline, for its acknowledgement.
//!
//! The wire protocol (what a machine implements), under `coffee/MACHINE/`:
//!
//! - `orders`: `{"order_id", "name", "size", "sugar", "milk", "issued_at",
//!   "signature"}`; the signature is hex HMAC-SHA256, with the machine's
//!   shared key, of the same object without `signature`, serialised with
//!   its keys sorted. A machine drops orders whose signature does not verify.
//! - `acks`: the machine answers `{"order_id", "accepted", "status",
//!   "ready_at", "reason"}`. An order id seen before is answered with the
//!   same cup, so a retried brew is never brewed twice.
//! - `status/request` `{"request_id", "order_id"}` is answered on
//!   `status/response` with `{"request_id", "found", ...cup}`.
//!
//! Order ids derive from the call's idempotency key, so a retry after an
//! unknown outcome sends the very same order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use provisio_sdk::blueprints::coffee::*;
use provisio_sdk::formats::generate_password;
use provisio_sdk::http::HttpExchange;
use provisio_sdk::tls::TlsMode;
use provisio_sdk::{ConnectionTest, Context, Provider, ProviderAbout, ProviderError, UserMessage};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The registry entry.
pub fn entry() -> provisio_sdk::ProviderEntry {
    provisio_sdk::blueprints::coffee::entry::<MqttCoffee>()
}

/// MQTT over TLS.
fn default_port() -> u16 {
    8883
}

fn default_ack_timeout() -> u32 {
    10
}

/// The broker, Provisio's account on it, and the machine.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MqttCoffeeConfig {
    /// Broker host name or address.
    #[schemars(length(min = 1, max = 253), extend("x-endpoint" = true))]
    pub host: String,
    /// Broker port (8883, MQTT over TLS; 1883 is the usual plain port).
    #[serde(default = "default_port")]
    #[schemars(extend("x-endpoint" = true))]
    pub port: u16,
    /// TLS to the broker: `verify` (required; the certificate and host name are
    /// checked against `ca_cert_pem`, or the system's roots when absent) or
    /// `disabled` (passwords cross the network in clear).
    #[serde(default)]
    #[schemars(extend("x-endpoint" = true))]
    pub tls: TlsMode,
    /// The certificate (PEM) of the CA that signed the broker's certificate.
    #[serde(default)]
    #[schemars(length(min = 1, max = 65536), extend("x-endpoint" = true))]
    pub ca_cert_pem: Option<String>,
    /// Provisio's account on the broker (may publish and subscribe under `coffee/MACHINE/#`).
    #[schemars(length(min = 1, max = 255))]
    pub username: String,
    /// Its password.
    #[schemars(extend("x-secret" = true, "writeOnly" = true))]
    pub password: String,
    /// The machine's id: its topics are `coffee/MACHINE/…`.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-z0-9_-]+$"))]
    pub machine: String,
    /// The key shared with the machine to sign orders.
    #[schemars(length(min = 16), extend("x-secret" = true, "writeOnly" = true))]
    pub signing_key: String,
    /// Seconds to wait for the machine's acknowledgement.
    #[serde(default = "default_ack_timeout")]
    #[schemars(range(min = 1, max = 300))]
    pub ack_timeout_secs: u32,
}

/// The provider for one coffee machine.
#[derive(Debug)]
pub struct MqttCoffee {
    config: MqttCoffeeConfig,
    /// The verifying TLS configuration, unless TLS is disabled.
    tls: Option<Arc<rumqttc::tokio_rustls::rustls::ClientConfig>>,
}

/// Signs an order: hex HMAC-SHA256 of the object (keys sorted) without `signature`.
pub fn sign(key: &str, order: &Value) -> String {
    let mut unsigned = order.clone();
    if let Value::Object(map) = &mut unsigned {
        map.remove("signature");
    }
    // serde_json keeps insertion order here (preserve_order), so sort explicitly.
    let canonical = canonical(&unsigned);
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(canonical.as_bytes());
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> =
                keys.iter().map(|k| format!("{}:{}", Value::String((*k).clone()), canonical(&map[*k]))).collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(canonical).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

/// What the machine says about a cup (`accepted`, `found` and `reason` are read from the raw reply).
#[derive(Debug, Clone, Deserialize)]
struct MachineCup {
    order_id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    size: Option<Size>,
    #[serde(default)]
    sugar: Option<u8>,
    #[serde(default)]
    milk: Option<Milk>,
    #[serde(default)]
    status: Option<CupStatus>,
    #[serde(default)]
    ready_at: Option<DateTime<Utc>>,
}

impl MqttCoffee {
    fn topic(&self, leaf: &str) -> String {
        format!("coffee/{}/{leaf}", self.config.machine)
    }

    /// Publishes `message` to `topic` and waits for the first message on
    /// `reply_topic` whose `key` field equals `value`.
    async fn request(
        &self,
        cx: &Context,
        topic: &str,
        message: &Value,
        reply_topic: &str,
        (key, value): (&str, &str),
        changes: bool,
    ) -> Result<Value, ProviderError> {
        let wait = Duration::from_secs(u64::from(self.config.ack_timeout_secs)).min(cx.remaining());
        let started = Instant::now();
        let outcome = tokio::time::timeout(wait, self.exchange(topic, message, reply_topic, (key, value))).await;
        let (response, error) = match &outcome {
            Ok(Ok(reply)) => (Some(reply.to_string()), None),
            Ok(Err(err)) => (None, Some(err.to_string())),
            Err(_) => (None, Some("no answer before the deadline".to_owned())),
        };
        cx.record(HttpExchange {
            request_body: Some(message.to_string()),
            response_body: response,
            error,
            ..HttpExchange::other(
                "MQTT PUBLISH",
                &format!("mqtt://{}:{}/{topic}", self.config.host, self.config.port),
                started,
            )
        });
        match outcome {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(ConnectionError::ConnectionRefused(
                ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized,
            ))) => Err(ProviderError::provider("The broker rejected Provisio's credentials")),
            // Nothing was sent: a setting to fix, not a fault to retry.
            Ok(Err(err))
                if matches!(&err, ConnectionError::Tls(_))
                    || matches!(&err, ConnectionError::Io(io) if provisio_sdk::tls::is_tls_failure(io)) =>
            {
                Err(ProviderError::provider(
                    "TLS to the broker failed: it offers no TLS there, or its certificate is not trusted or names \
                     another host (see tls and ca_cert_pem)",
                )
                .with_debug("mqtt", err.to_string()))
            }
            Ok(Err(err)) if !changes || matches!(err, ConnectionError::Io(_)) => {
                Err(ProviderError::transient("The broker could not be reached").with_debug("mqtt", err.to_string()))
            }
            Ok(Err(err)) => {
                Err(ProviderError::outcome_unknown("The connection to the broker failed after the order was sent")
                    .with_debug("mqtt", err.to_string()))
            }
            Err(_) if changes => Err(ProviderError::outcome_unknown(
                "The coffee machine did not acknowledge the order in time; it may still brew it",
            )),
            Err(_) => Err(ProviderError::transient("The coffee machine did not answer in time")),
        }
    }

    async fn exchange(
        &self,
        topic: &str,
        message: &Value,
        reply_topic: &str,
        (key, value): (&str, &str),
    ) -> Result<Value, ConnectionError> {
        let mut options =
            MqttOptions::new(format!("provisio-{}", generate_password(12)), &self.config.host, self.config.port);
        options.set_credentials(&self.config.username, &self.config.password);
        if let Some(tls) = &self.tls {
            options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls.clone())));
        }
        options.set_keep_alive(Duration::from_secs(10));
        let (client, mut events) = AsyncClient::new(options, 10);
        let mut sent = false;
        loop {
            match events.poll().await? {
                Event::Incoming(Packet::ConnAck(_)) => {
                    client.subscribe(reply_topic, QoS::AtLeastOnce).await.map_err(|_| ConnectionError::RequestsDone)?;
                }
                Event::Incoming(Packet::SubAck(_)) if !sent => {
                    client
                        .publish(topic, QoS::AtLeastOnce, false, message.to_string())
                        .await
                        .map_err(|_| ConnectionError::RequestsDone)?;
                    sent = true;
                }
                Event::Incoming(Packet::Publish(publish)) if publish.topic == reply_topic => {
                    let reply: Value = serde_json::from_slice(&publish.payload).unwrap_or(Value::Null);
                    if reply[key] == json!(value) {
                        let _ = client.disconnect().await;
                        return Ok(reply);
                    }
                }
                _ => {}
            }
        }
    }

    fn cup(&self, reply: Value, fallback: Option<&BrewParams>) -> Result<Cup, ProviderError> {
        let machine: MachineCup = serde_json::from_value(reply)
            .map_err(|err| ProviderError::internal(format!("the machine's answer does not decode: {err}")))?;
        Ok(Cup {
            order_id: machine.order_id,
            name: machine.name.or_else(|| fallback.map(|p| p.name.clone())).unwrap_or_default(),
            size: machine.size.or(fallback.map(|p| p.size)).unwrap_or(Size::Medium),
            sugar: machine.sugar.or(fallback.map(|p| p.sugar)).unwrap_or(0),
            milk: machine.milk.or(fallback.map(|p| p.milk)).unwrap_or_default(),
            status: machine.status.unwrap_or(CupStatus::Queued),
            ready_at: machine.ready_at.unwrap_or_else(Utc::now),
        })
    }
}

impl Provider for MqttCoffee {
    type Config = MqttCoffeeConfig;

    fn about() -> ProviderAbout {
        ProviderAbout {
            id: "mqtt".into(),
            name: "MQTT coffee machine".into(),
            description: "A coffee machine on an MQTT broker: signed orders, acknowledged by the machine.".into(),
            logo_url: None,
        }
    }

    async fn new(config: MqttCoffeeConfig) -> Result<Self, ProviderError> {
        let tls = match config.tls {
            TlsMode::Verify => Some(Arc::new(provisio_sdk::tls::client_config(config.ca_cert_pem.as_deref())?)),
            TlsMode::Disabled => None,
        };
        Ok(MqttCoffee { config, tls })
    }

    async fn test_connection(&self, cx: &Context) -> Result<ConnectionTest, ProviderError> {
        let request_id = generate_password(12);
        let probe = json!({"request_id": request_id, "order_id": "probe"});
        self.request(
            cx,
            &self.topic("status/request"),
            &probe,
            &self.topic("status/response"),
            ("request_id", &request_id),
            false,
        )
        .await
        .map_err(|err| match err.kind() {
            provisio_sdk::ErrorKind::Transient if err.message().as_str().contains("did not answer") => {
                ProviderError::provider(UserMessage::new(format!(
                    "Connected to the broker, but machine {} did not answer",
                    self.config.machine
                )))
            }
            _ => err,
        })?;
        Ok(ConnectionTest {
            message: format!("Machine {} answered over the broker at {}", self.config.machine, self.config.host),
            details: json!({"machine": self.config.machine}),
        })
    }
}

impl Coffee for MqttCoffee {
    async fn brew(&self, cx: &Context, params: BrewParams) -> Result<Cup, ProviderError> {
        // The same operation always sends the same order id.
        let order_id = match cx.idempotency_key() {
            Some(key) => {
                let digest = Sha256::digest(format!("{}:{key}", self.config.machine).as_bytes());
                format!("cup_{}", digest.iter().take(8).map(|b| format!("{b:02x}")).collect::<String>())
            }
            None => format!("cup_{}", generate_password(16).to_ascii_lowercase()),
        };
        let mut order = json!({
            "order_id": order_id, "name": params.name, "size": params.size, "sugar": params.sugar,
            "milk": params.milk, "issued_at": Utc::now(),
        });
        order["signature"] = json!(sign(&self.config.signing_key, &order));
        let reply =
            self.request(cx, &self.topic("orders"), &order, &self.topic("acks"), ("order_id", &order_id), true).await?;
        if reply["accepted"] == json!(false) {
            let reason = reply["reason"].as_str().unwrap_or("no reason given");
            return Err(ProviderError::provider(UserMessage::new(format!(
                "The coffee machine refused the order: {reason}"
            ))));
        }
        self.cup(reply, Some(&params))
    }

    async fn get_info(&self, cx: &Context, params: CupRef) -> Result<Cup, ProviderError> {
        let request_id = generate_password(12);
        let question = json!({"request_id": request_id, "order_id": params.order_id});
        let reply = self
            .request(
                cx,
                &self.topic("status/request"),
                &question,
                &self.topic("status/response"),
                ("request_id", &request_id),
                false,
            )
            .await?;
        if reply["found"] == json!(false) {
            return Err(ProviderError::not_found(UserMessage::new(format!(
                "No order {} on this machine",
                params.order_id
            ))));
        }
        self.cup(reply, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_cover_every_field_in_a_fixed_order() {
        let a = json!({"order_id": "cup_1", "name": "Joe", "sugar": 1});
        let b = json!({"sugar": 1, "name": "Joe", "order_id": "cup_1"});
        assert_eq!(sign("k".repeat(16).as_str(), &a), sign("k".repeat(16).as_str(), &b));
        let mut signed = a.clone();
        signed["signature"] = json!(sign("k".repeat(16).as_str(), &a));
        assert_eq!(sign("k".repeat(16).as_str(), &signed), signed["signature"].as_str().unwrap());
        let tampered = json!({"order_id": "cup_1", "name": "Joe", "sugar": 5});
        assert_ne!(sign("k".repeat(16).as_str(), &tampered), signed["signature"].as_str().unwrap());
    }
}
