//! The blueprints Provisio ships, one module each.
//!
//! They share one verb set: `create` sets a service up, `get_info` reads it,
//! `suspend`/`unsuspend` block and restore access, `change_package` moves it
//! to another plan, `terminate` removes it, `get_usage` reads consumption.
//! Domains and coffee have their own verbs where the trade has them
//! (`register`, `transfer`, `renew`; `brew`).

pub mod coffee;
pub mod databases;
pub mod dns_hosting;
pub mod domain_names;
pub mod message_queues;
pub mod mqtt_hosting;
pub mod shared_hosting;
pub mod software_licenses;
pub mod ssl_certificates;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::blueprint::BlueprintDescriptor;

/// Every blueprint, in listing order.
pub fn all() -> Vec<&'static BlueprintDescriptor> {
    vec![
        shared_hosting::descriptor(),
        domain_names::descriptor(),
        dns_hosting::descriptor(),
        databases::descriptor(),
        software_licenses::descriptor(),
        coffee::descriptor(),
        message_queues::descriptor(),
        mqtt_hosting::descriptor(),
        ssl_certificates::descriptor(),
    ]
}

/// An amount consumed against a limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Units {
    /// Amount used.
    #[schemars(range(min = 0.0))]
    pub used: f64,
    /// The limit; null means unlimited.
    pub limit: Option<f64>,
}

/// Whether a service can be used right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// In use.
    Active,
    /// Access blocked.
    Suspended,
}
