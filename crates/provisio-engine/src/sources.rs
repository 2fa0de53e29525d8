//! Event sources: billing systems that sign what they send instead of
//! holding a staff token.
//!
//! Both formats use one signature scheme, Stripe's: a header
//! `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`, with
//! more than one `v1` while a secret is being rolled. A timestamp more than
//! [`TOLERANCE_SECS`] from now is refused, and so is a signature already
//! accepted (kept as a receipt in the same transaction as the event).
//!
//! - `provisio` sources send our own event format to `POST /api/v1/events`
//!   with `Provisio-Source` and `Provisio-Signature` headers;
//! - `stripe` sources are Stripe webhook endpoints
//!   (`POST /api/v1/sources/{name}/stripe`, `Stripe-Signature`); their events
//!   become ours through the source's [`StripeMapping`] (see [`stripe_event`]).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use hmac::Mac;
use provisio_sdk::SchemaDoc;
use provisio_store::models::EventSource;
use provisio_store::{Conn, audit, now_ms, sources};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::catalog::decode;
use crate::events::Accepted;
use crate::{Catalog, EngineError, Ingest};

/// How far a signature's timestamp may be from now, seconds (Stripe's default).
pub const TOLERANCE_SECS: i64 = 300;
/// Receipts are kept this long; older signatures fail on their timestamp
/// (a minute to spare: timestamps are seconds, receipts milliseconds).
const RECEIPT_KEEP_MS: i64 = 2 * TOLERANCE_SECS * 1000 + 60_000;
/// The most `v1` values one header may carry.
const MAX_SIGNATURES: usize = 8;

/// The format a source speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// Provisio's event format, signed.
    Provisio,
    /// Stripe webhook events.
    Stripe,
}

impl SourceKind {
    fn as_str(self) -> &'static str {
        match self {
            SourceKind::Provisio => "provisio",
            SourceKind::Stripe => "stripe",
        }
    }
}

/// How Stripe's objects name our products, services, clients and fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StripeMapping {
    /// Stripe price id → product slug, e.g. `{"price_1Pq...": "hosting-basic"}`.
    #[serde(default)]
    pub prices: BTreeMap<String, String>,
    /// Subscription metadata key that names the product slug when the price
    /// is not in `prices` (default `provisio_product`).
    #[serde(default)]
    #[schemars(length(min = 1, max = 64))]
    pub product_key: Option<String>,
    /// Subscription metadata keys with this prefix become provision fields
    /// without it, e.g. `provisio_domain` → `domain` (default `provisio_`).
    #[serde(default)]
    #[schemars(length(min = 1, max = 64))]
    pub field_prefix: Option<String>,
}

/// A source as an admin describes it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
// A mapping belongs to Stripe sources only; said in the schema, so the
// OpenAPI document and the check are one.
#[schemars(extend(
    "if" = {"properties": {"kind": {"const": "provisio"}}, "required": ["kind"]},
    "then" = {"properties": {"mapping": {"type": "null"}}}
))]
pub struct SourceInput {
    /// Its name, e.g. `whmcs` or `stripe-live`.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-z0-9][a-z0-9._-]*$"))]
    pub name: String,
    /// The format it speaks.
    pub kind: SourceKind,
    /// The signing secret (for Stripe, the endpoint's `whsec_…`); generated
    /// and shown once when absent.
    #[serde(default)]
    #[schemars(length(min = 16, max = 256), extend("writeOnly" = true))]
    pub secret: Option<String>,
    /// For Stripe sources: how its objects map to ours.
    #[serde(default)]
    pub mapping: Option<StripeMapping>,
}

/// A change to a source.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourcePatch {
    /// A new signing secret (after rolling it at the sender).
    #[serde(default)]
    #[schemars(length(min = 16, max = 256), extend("writeOnly" = true))]
    pub secret: Option<String>,
    /// A new mapping.
    #[serde(default)]
    pub mapping: Option<StripeMapping>,
    /// Whether it is accepted.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A source just made; a generated secret is shown this once.
#[derive(Debug, Clone)]
pub struct NewSource {
    pub source: EventSource,
    pub secret: Option<String>,
}

/// A signature accepted and to be recorded with what it carried.
#[derive(Debug, Clone)]
pub struct Receipt {
    source_id: i64,
    signature_digest: String,
}

impl Receipt {
    /// Records the receipt; a signature seen before is refused.
    pub(crate) async fn record(&self, conn: &mut Conn) -> Result<(), EngineError> {
        if fastrand::u8(..) == 0 {
            sources::prune_receipts(conn, RECEIPT_KEEP_MS).await?;
        }
        if !sources::receipt(conn, self.source_id, &self.signature_digest).await? {
            return Err(EngineError::Unauthorized(
                "this signed request was already received (sign each delivery anew)".into(),
            ));
        }
        Ok(())
    }
}

/// A parsed signature header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    pub timestamp: i64,
    pub v1: Vec<String>,
}

/// Parses `t=…,v1=…[,v1=…]`; other schemes (`v0`) are ignored, as Stripe documents.
pub fn parse_signature(header: &str) -> Result<SignatureHeader, EngineError> {
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for item in header.split(',') {
        let Some((key, value)) = item.trim().split_once('=') else { continue };
        match key {
            "t" => timestamp = value.parse::<i64>().ok(),
            "v1" if v1.len() < MAX_SIGNATURES => v1.push(value.to_owned()),
            _ => {}
        }
    }
    match (timestamp, v1.is_empty()) {
        (Some(timestamp), false) => Ok(SignatureHeader { timestamp, v1 }),
        _ => Err(EngineError::Unauthorized(
            "the signature header must be t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<body>\">".into(),
        )),
    }
}

/// The `v1` signature of `body` at `timestamp` under `secret`, in hex.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> hmac::Hmac<sha2::Sha256> {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Checks a header against a body at `now` (Unix seconds); answers the
/// matching signature.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: i64) -> Result<String, EngineError> {
    let parsed = parse_signature(header)?;
    // Saturating: a hostile `t=-9223372036854775808` must not overflow.
    if now.saturating_sub(parsed.timestamp).saturating_abs() > TOLERANCE_SECS {
        return Err(EngineError::Unauthorized(format!(
            "the signature's timestamp is more than {TOLERANCE_SECS} seconds from now"
        )));
    }
    let expected = mac(secret, parsed.timestamp, body);
    parsed
        .v1
        .into_iter()
        .find(|candidate| hex::decode(candidate).is_ok_and(|bytes| expected.clone().verify_slice(&bytes).is_ok()))
        // Hex in any case decodes alike: the receipt is of one spelling.
        .map(|matched| format!("{}:{}", parsed.timestamp, matched.to_ascii_lowercase()))
        .ok_or_else(|| EngineError::Unauthorized("the signature does not match the body".into()))
}

/// What a Stripe delivery did.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum StripeOutcome {
    /// It became one of our events.
    Accepted(Accepted),
    /// It asks nothing of us (answered 200 so Stripe stops sending it).
    Ignored { ignored: bool, stripe_event: String, reason: String },
}

fn secret_aad(id: i64) -> String {
    format!("event_source:{id}")
}

impl Catalog {
    /// Adds an event source.
    pub async fn create_source(&self, actor: &str, body: &Value) -> Result<NewSource, EngineError> {
        static SCHEMA: OnceLock<SchemaDoc> = OnceLock::new();
        let input: SourceInput = decode(body, &SCHEMA)?;
        let generated = input.secret.is_none().then(|| crate::vault::random_token("pss_"));
        let secret = input.secret.clone().or_else(|| generated.clone()).expect("one of them");
        let mapping = serde_json::to_value(input.mapping.clone().unwrap_or_default()).expect("mappings serialise");
        let (engine, actor) = (self.engine.clone(), actor.to_owned());
        let source = self
            .engine
            .store()
            .write(move |conn| {
                Box::pin(async move {
                    let id = sources::next_id(conn).await?;
                    let sealed = engine.vault().seal(&secret_aad(id), secret.as_bytes());
                    let source = sources::insert(conn, id, &input.name, input.kind.as_str(), &mapping, &sealed)
                        .await
                        .map_err(|err| crate::catalog::unique(err, "/name", "is taken by another source"))?;
                    debug_assert_eq!(source.id, id);
                    audit::record(
                        conn,
                        &actor,
                        "source.create",
                        &format!("source:{}", source.id),
                        &json!({"name": source.name, "kind": source.kind}),
                    )
                    .await?;
                    Ok::<_, EngineError>(source)
                })
            })
            .await?;
        Ok(NewSource { source, secret: generated })
    }

    /// Changes an event source.
    pub async fn update_source(&self, actor: &str, id: i64, body: &Value) -> Result<EventSource, EngineError> {
        static SCHEMA: OnceLock<SchemaDoc> = OnceLock::new();
        let patch: SourcePatch = decode(body, &SCHEMA)?;
        let current = self.engine.queries().source(id).await?;
        if patch.mapping.is_some() && current.kind != SourceKind::Stripe.as_str() {
            return Err(EngineError::Conflict(format!(
                "source {} speaks {}: a mapping is only for stripe sources",
                current.name, current.kind
            )));
        }
        let sealed = patch.secret.as_ref().map(|s| self.engine.vault().seal(&secret_aad(id), s.as_bytes()));
        let mapping = patch.mapping.as_ref().map(|m| serde_json::to_value(m).expect("mappings serialise"));
        let actor = actor.to_owned();
        self.engine.store()
            .write(move |conn| {
                Box::pin(async move {
                    let source = sources::update(conn, id, sealed.as_deref(), mapping.as_ref(), patch.enabled)
                        .await?
                        .ok_or_else(|| EngineError::NotFound(format!("no event source {id}")))?;
                    audit::record(
                        conn,
                        &actor,
                        "source.update",
                        &format!("source:{id}"),
                        &json!({"secret_changed": patch.secret.is_some(), "mapping": mapping, "enabled": patch.enabled}),
                    )
                    .await?;
                    Ok(source)
                })
            })
            .await
    }

    /// Deletes an event source; its signatures stop working at once.
    pub async fn delete_source(&self, actor: &str, id: i64) -> Result<(), EngineError> {
        let actor = actor.to_owned();
        self.engine
            .store()
            .write(move |conn| {
                Box::pin(async move {
                    if !sources::delete(conn, id).await? {
                        return Err(EngineError::NotFound(format!("no event source {id}")));
                    }
                    audit::record(conn, &actor, "source.delete", &format!("source:{id}"), &json!({})).await?;
                    Ok(())
                })
            })
            .await
    }
}

/// What a Stripe event means to us.
#[derive(Debug, Clone, PartialEq)]
pub enum StripeMapped {
    /// One of our events (our event format).
    Event(Value),
    /// Nothing to do, and why.
    Ignored(String),
}

/// The first non-null string at any of these JSON pointers.
fn first_str<'a>(value: &'a Value, pointers: &[&str]) -> Option<&'a str> {
    pointers.iter().find_map(|p| value.pointer(p).and_then(Value::as_str))
}

/// Maps a Stripe event to ours (see the README's "Stripe" section):
///
/// | Stripe | ours |
/// | --- | --- |
/// | `invoice.paid`, `billing_reason` `subscription_create` | `order.paid` (setup) |
/// | `invoice.paid`, other subscription reasons | `contract.renewed` |
/// | `invoice.payment_failed` with no retry left (`next_payment_attempt` null) | `contract.overdue` |
/// | `customer.subscription.updated` to `unpaid` or `paused` | `contract.overdue` |
/// | `customer.subscription.updated` back to `active` from those or `past_due` | `contract.unsuspended` |
/// | `customer.subscription.deleted` | `contract.cancelled` |
///
/// The subscription id is the service's `external_id` (`stripe:sub_…`), the
/// customer the client's (`stripe:cus_…`), the Stripe event id ours
/// (`stripe:evt_…`). Both the current invoice shape
/// (`parent.subscription_details`, `pricing.price_details`) and the one
/// before API version 2025-03-31 (`subscription`, `price`) are read.
pub fn stripe_event(mapping: &StripeMapping, event: &Value) -> Result<StripeMapped, EngineError> {
    let event_id = event["id"]
        .as_str()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| EngineError::invalid("/id", "is missing (not a Stripe event)"))?;
    let event_type = event["type"].as_str().ok_or_else(|| EngineError::invalid("/type", "is missing"))?;
    let object = &event["data"]["object"];
    if !object.is_object() {
        return Err(EngineError::invalid("/data/object", "is missing"));
    }
    let ignored = |why: &str| Ok(StripeMapped::Ignored(why.to_owned()));
    let (ours, subscription, metadata) = match event_type {
        "invoice.paid" | "invoice.payment_failed" => {
            let subscription =
                first_str(object, &["/parent/subscription_details/subscription", "/subscription", "/subscription/id"]);
            let Some(subscription) = subscription else {
                return ignored("the invoice is not for a subscription");
            };
            let metadata = object
                .pointer("/parent/subscription_details/metadata")
                .or_else(|| object.pointer("/subscription_details/metadata"))
                .or_else(|| object.pointer("/lines/data/0/metadata"))
                .cloned()
                .unwrap_or(json!({}));
            let ours = if event_type == "invoice.paid" {
                match object["billing_reason"].as_str() {
                    Some("subscription_create") => "order.paid",
                    Some("subscription_cycle" | "subscription_update" | "subscription") => "contract.renewed",
                    _ => return ignored("the invoice's billing_reason does not change a service"),
                }
            } else if object["next_payment_attempt"].is_null() {
                "contract.overdue"
            } else {
                return ignored("Stripe will retry the payment; nothing changes until it gives up");
            };
            (ours, subscription, metadata)
        }
        "customer.subscription.updated" | "customer.subscription.deleted" => {
            let subscription =
                object["id"].as_str().ok_or_else(|| EngineError::invalid("/data/object/id", "is missing"))?;
            let ours = if event_type == "customer.subscription.deleted" {
                "contract.cancelled"
            } else {
                let before = event.pointer("/data/previous_attributes/status").and_then(Value::as_str);
                match (object["status"].as_str(), before) {
                    (Some("unpaid" | "paused"), Some(b)) if b != "unpaid" && b != "paused" => "contract.overdue",
                    (Some("active"), Some("unpaid" | "paused" | "past_due")) => "contract.unsuspended",
                    _ => return ignored("the subscription's status change does not change a service"),
                }
            };
            (ours, subscription, object["metadata"].clone())
        }
        _ => return ignored("this event type is not mapped"),
    };
    let customer = first_str(object, &["/customer", "/customer/id"]);
    let mut service = json!({ "external_id": format!("stripe:{subscription}") });
    if ours == "order.paid" {
        let price = first_str(
            object,
            &["/lines/data/0/pricing/price_details/price", "/lines/data/0/price/id", "/lines/data/0/plan/id"],
        );
        let product_key = mapping.product_key.as_deref().unwrap_or("provisio_product");
        let product = price
            .and_then(|p| mapping.prices.get(p).cloned())
            .or_else(|| metadata.get(product_key).and_then(Value::as_str).map(str::to_owned))
            .ok_or_else(|| {
                EngineError::invalid(
                    "/data/object/lines/data/0",
                    format!(
                        "price {} is not in the source's mapping and the subscription has no {product_key} metadata",
                        price.unwrap_or("(none)")
                    ),
                )
            })?;
        let customer = customer.ok_or_else(|| EngineError::invalid("/data/object/customer", "is missing"))?;
        let email = object["customer_email"]
            .as_str()
            .ok_or_else(|| EngineError::invalid("/data/object/customer_email", "is missing"))?;
        let name = object["customer_name"].as_str().filter(|n| !n.is_empty()).unwrap_or(email);
        let prefix = mapping.field_prefix.as_deref().unwrap_or("provisio_");
        let fields: serde_json::Map<String, Value> = metadata
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| {
                let field = k.strip_prefix(prefix)?;
                (k != product_key && !field.is_empty()).then(|| (field.to_owned(), v.clone()))
            })
            .collect();
        service["product"] = json!(product);
        service["client"] = json!({"external_id": format!("stripe:{customer}"), "name": name, "email": email});
        service["fields"] = Value::Object(fields);
    }
    let occurred_at = event["created"]
        .as_i64()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let mut ours = json!({"id": format!("stripe:{event_id}"), "type": ours, "service": service});
    if let Some(at) = occurred_at {
        ours["occurred_at"] = json!(at);
    }
    Ok(StripeMapped::Event(ours))
}

impl Ingest {
    /// The source named `name` of `kind` when `header` signs `body` for it now.
    /// Unknown, disabled and other-kind sources get the same answer.
    async fn verified(
        &self,
        name: &str,
        kind: SourceKind,
        header: &str,
        body: &[u8],
    ) -> Result<(EventSource, Receipt), EngineError> {
        let owned = name.to_owned();
        let source = self
            .engine
            .store()
            .read(move |conn| Box::pin(async move { sources::by_name(conn, &owned).await }))
            .await?
            .filter(|s| s.enabled && s.kind == kind.as_str())
            .ok_or_else(|| {
                EngineError::Unauthorized(format!("no enabled {} event source named {name}", kind.as_str()))
            })?;
        let secret = self.engine.vault().open(&secret_aad(source.id), &source.secrets)?;
        let matched = verify(&secret, header, body, now_ms() / 1000)?;
        let receipt = Receipt { source_id: source.id, signature_digest: self.engine.vault().digest(&matched) };
        Ok((source, receipt))
    }

    /// Ingests our event format signed by a `provisio` source.
    pub async fn signed(&self, name: &str, header: &str, body: &[u8]) -> Result<Accepted, EngineError> {
        let (_, receipt) = self.verified(name, SourceKind::Provisio, header, body).await?;
        let value: Value = serde_json::from_slice(body)
            .map_err(|err| EngineError::invalid("/", format!("is not valid JSON ({err})")))?;
        self.ingest_with_receipt(&value, Some(receipt)).await
    }

    /// Handles a Stripe webhook delivery to a `stripe` source.
    pub async fn stripe(&self, name: &str, header: &str, body: &[u8]) -> Result<StripeOutcome, EngineError> {
        let (source, receipt) = self.verified(name, SourceKind::Stripe, header, body).await?;
        let value: Value = serde_json::from_slice(body)
            .map_err(|err| EngineError::invalid("/", format!("is not valid JSON ({err})")))?;
        let mapping: StripeMapping = serde_json::from_value(source.mapping.clone()).unwrap_or_default();
        match stripe_event(&mapping, &value)? {
            StripeMapped::Event(event) => {
                Ok(StripeOutcome::Accepted(self.ingest_with_receipt(&event, Some(receipt)).await?))
            }
            StripeMapped::Ignored(reason) => {
                // Recorded all the same, so the same delivery is not taken twice.
                self.engine.store().write(move |conn| Box::pin(async move { receipt.record(conn).await })).await?;
                Ok(StripeOutcome::Ignored {
                    ignored: true,
                    stripe_event: value["id"].as_str().unwrap_or_default().to_owned(),
                    reason,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_once_within_tolerance_and_any_v1_may_match() {
        let body = br#"{"id":"evt_1"}"#;
        let good = sign(b"whsec_test", 1_000, body);
        let header = format!("t=1000,v1={},v1={good},v0=ignored", "0".repeat(64));
        assert_eq!(verify(b"whsec_test", &header, body, 1_100).unwrap(), format!("1000:{good}"));
        // The same signature in capitals is the same receipt.
        let upper = format!("t=1000,v1={}", good.to_ascii_uppercase());
        assert_eq!(verify(b"whsec_test", &upper, body, 1_100).unwrap(), format!("1000:{good}"));
        // Stale, future, wrong secret, wrong body, no v1, bad hex.
        assert!(verify(b"whsec_test", &header, body, 1_301).is_err());
        assert!(verify(b"whsec_test", &header, body, 699).is_err());
        assert!(verify(b"whsec_other", &header, body, 1_000).is_err());
        assert!(verify(b"whsec_test", &header, br#"{"id":"evt_2"}"#, 1_000).is_err());
        assert!(verify(b"whsec_test", "t=1000", body, 1_000).is_err());
        assert!(verify(b"whsec_test", "t=1000,v1=zz", body, 1_000).is_err());
        assert!(verify(b"whsec_test", "", body, 1_000).is_err());
        assert!(verify(b"whsec_test", &format!("t={},v1={good}", i64::MIN), body, 1_000).is_err());
        assert!(verify(b"whsec_test", &format!("t={},v1={good}", i64::MAX), body, -1_000).is_err());
    }

    #[test]
    fn stripe_subscription_statuses_map_to_suspend_and_unsuspend() {
        let event = |status: &str, before: &str| {
            json!({"id": "evt_9", "type": "customer.subscription.updated",
                   "data": {"object": {"id": "sub_1", "status": status, "customer": "cus_1", "metadata": {}},
                            "previous_attributes": {"status": before}}})
        };
        let map = |e| match stripe_event(&StripeMapping::default(), &e).unwrap() {
            StripeMapped::Event(v) => v["type"].as_str().unwrap().to_owned(),
            StripeMapped::Ignored(_) => "ignored".into(),
        };
        assert_eq!(map(event("unpaid", "past_due")), "contract.overdue");
        assert_eq!(map(event("active", "unpaid")), "contract.unsuspended");
        assert_eq!(map(event("past_due", "active")), "ignored");
    }
}
