//! `physical-goods`: goods a drop shipper sends to the client (the seed's
//! "connect to a drop shipper and transparently place an order").
//!
//! An order has no natural name: the shipper issues its `order_id` (the
//! service identifier). A retried `place_order` must not ship twice, so
//! providers send the call's idempotency key with it and the shipper answers
//! the order already placed under that key. Cancelling is `terminate`: it
//! stops an order that has not shipped; a shipped one cannot be, and answers
//! `conflict`.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where an order goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShippingAddress {
    /// Recipient's name.
    #[schemars(length(min = 1, max = 100))]
    pub name: String,
    /// Street and number.
    #[schemars(length(min = 1, max = 200))]
    pub line1: String,
    /// Town or city.
    #[schemars(length(min = 1, max = 100))]
    pub city: String,
    /// Postal code.
    #[schemars(length(min = 1, max = 20))]
    pub postcode: String,
    /// ISO 3166-1 alpha-2 country code, upper case (`GB`, `DE`).
    #[schemars(regex(pattern = r"^[A-Z]{2}$"))]
    pub country: String,
}

fn one() -> u32 {
    1
}

/// Params of `place_order`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrderParams {
    /// The billing system's reference for this service (how an order is
    /// found at the shipper by people).
    #[schemars(length(min = 1, max = 64))]
    pub reference: String,
    /// The shipper's stock-keeping unit.
    #[schemars(length(min = 1, max = 64))]
    pub sku: String,
    /// How many.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 100))]
    pub quantity: u32,
    /// Where it goes.
    pub ship_to: ShippingAddress,
}

/// Names an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderRef {
    /// The shipper's order id.
    #[schemars(length(min = 1, max = 64))]
    pub order_id: String,
}

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Taken, not shipped yet (can still be cancelled).
    Accepted,
    /// On its way (`tracking` says where).
    Shipped,
    /// Cancelled before it shipped.
    Cancelled,
}

/// An order, as the shipper reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Order {
    /// The shipper's order id (the service identifier).
    #[schemars(length(min = 1, max = 64))]
    pub order_id: String,
    /// Where it stands.
    pub status: OrderStatus,
    /// The stock-keeping unit.
    #[schemars(length(min = 1, max = 64))]
    pub sku: String,
    /// How many.
    #[schemars(range(min = 1))]
    pub quantity: u32,
    /// The billing reference it was placed with, when the shipper reports it.
    #[serde(default)]
    pub reference: Option<String>,
    /// The carrier's tracking number, once shipped.
    #[serde(default)]
    pub tracking: Option<String>,
    /// When it was placed, when the shipper says.
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
}

crate::blueprint! {
    /// Drop shippers: goods sent to the client by a third party.
    pub trait PhysicalGoods {
        id: "physical-goods", name: "Physical Goods", icon: "package", identifier: "order_id", setup: place_order,
        description: "Goods a drop shipper sends to the client, identified by the shipper's order id.",
        identifiers: Flat,
        ownership: "An order is its service's: the shipper issues the order id, and a retried place_order carries the same idempotency key, so the shipper answers the order already placed instead of shipping a second one; no service can name another's order at setup.",
    }
    required {
        /// Places the order. The same idempotency key answers the order already placed.
        fn place_order(PlaceOrderParams) -> Order { kind: Lifecycle, callers: [Staff], statuses: [Pending, Provisioning, Failed] }
        /// Reads the order: its status and, once shipped, its tracking number; `not_found` if unknown.
        fn get_info(OrderRef) -> Order { kind: Query, callers: [Client, Staff], statuses: [Active, Provisioning, Failed] }
        /// Cancels the order; `conflict` once it has shipped, `not_found` if unknown. Cancelling a cancelled order answers it again.
        fn terminate(OrderRef) -> Order { kind: Lifecycle, callers: [Staff], statuses: [Active, Failed] }
    }
    optional {}
}
