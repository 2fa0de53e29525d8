//! `coffee`: the seed's own example. A coffee machine brews a cup to order.
//!
//! Every `brew` is a new cup; a repeated call with the same idempotency key
//! answers the cup already ordered instead of brewing another. The service
//! identifier is the cup's `order_id`.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Cup size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Size {
    /// 120 ml.
    Small,
    /// 240 ml.
    Medium,
    /// 360 ml.
    Large,
}

/// Milk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Milk {
    /// Black.
    #[default]
    None,
    /// Cow's milk.
    Dairy,
    /// Oat drink.
    Oat,
    /// Soy drink.
    Soy,
}

/// Params of `brew`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BrewParams {
    /// Whose coffee, written on the cup ("Joe's coffee").
    #[schemars(length(min = 1, max = 64))]
    pub name: String,
    /// Cup size.
    pub size: Size,
    /// Spoons of sugar.
    #[serde(default)]
    #[schemars(range(min = 0, max = 5))]
    pub sugar: u8,
    /// Milk.
    #[serde(default)]
    pub milk: Milk,
}

/// Names a cup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CupRef {
    /// The order id `brew` returned.
    #[schemars(length(min = 1, max = 64))]
    pub order_id: String,
}

/// Where a cup stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CupStatus {
    /// Waiting for the machine.
    Queued,
    /// Being brewed.
    Brewing,
    /// Ready to collect.
    Ready,
}

/// A cup of coffee.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Cup {
    /// The order id (the service identifier).
    pub order_id: String,
    /// Whose coffee.
    pub name: String,
    /// Cup size.
    pub size: Size,
    /// Spoons of sugar.
    pub sugar: u8,
    /// Milk.
    pub milk: Milk,
    /// Where it stands.
    pub status: CupStatus,
    /// When it is (or was) ready.
    pub ready_at: DateTime<Utc>,
}

/// How far a cup has got: queued or brewing is pending until its
/// `ready_at`; ready is done.
pub fn progress(result: &serde_json::Value) -> crate::Progress {
    let status = result.get("status").cloned().map(serde_json::from_value::<CupStatus>);
    let ready_at = result.get("ready_at").cloned().and_then(|r| serde_json::from_value::<DateTime<Utc>>(r).ok());
    match status {
        Some(Ok(CupStatus::Queued | CupStatus::Brewing)) => crate::Progress::Pending(ready_at),
        _ => crate::Progress::Done,
    }
}

crate::blueprint! {
    /// Coffee machines.
    pub trait Coffee {
        id: "coffee", name: "Coffee", icon: "coffee", identifier: "order_id", setup: brew,
        description: "A cup of coffee brewed by a coffee machine, identified by its order id.",
        identifiers: Flat,
        ownership: "A cup is its order's: the order id derives from the idempotency key, so a retried brew is the same cup, never a second one; another order's cup is never reported as this one.",
        follow: get_info, progress: progress, within_secs: 3600,
    }
    required {
        /// Brews a cup. The same idempotency key answers the same cup.
        fn brew(BrewParams) -> Cup { kind: Lifecycle, callers: [Client, Staff], statuses: [Pending, Provisioning, Failed, Active] }
        /// Reads the cup's status; `not_found` for an unknown order.
        fn get_info(CupRef) -> Cup { kind: Query, callers: [Client, Staff], statuses: [Active, Provisioning, Failed] }
    }
    optional {}
}
