//! Automation rules: which function a billing event runs.
//!
//! Every blueprint ships defaults (paid: the setup function; renewed: renew;
//! overdue: suspend; unsuspended: unsuspend; upgraded: change_package;
//! cancelled: terminate). A product's own rules replace the defaults for the
//! event types they name, and may name custom event types.

use provisio_sdk::{BlueprintDescriptor, ServiceStatus};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The billing lifecycle's event types: always accepted, for every product
/// (an event that asks nothing of a blueprint is recorded and makes no job).
/// Any other type must be named by one of the product's rules.
pub const STANDARD_EVENTS: [&str; 8] = [
    "order.placed",
    "order.paid",
    "invoice.paid",
    "contract.renewed",
    "contract.overdue",
    "contract.unsuspended",
    "contract.upgraded",
    "contract.cancelled",
];

/// `function` value that stands for the product's setup function.
pub const SETUP: &str = "setup";

/// One rule: on `event`, when the service is in one of `when_status` (any
/// status but terminated if empty), run `function` with `params` (merged
/// over the service's provision data and the event's data).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The event type, e.g. `order.paid` or a custom one.
    #[schemars(length(min = 1, max = 100))]
    pub event: String,
    /// A function of the product's blueprint, or `setup` for its setup function.
    #[schemars(length(min = 1, max = 64))]
    pub function: String,
    /// Statuses (as they will be once earlier jobs are done) in which the rule applies.
    #[serde(default)]
    pub when_status: Vec<ServiceStatus>,
    /// Fixed params for the function.
    #[serde(default)]
    pub params: Map<String, Value>,
}

impl Rule {
    fn new(event: &str, function: &str, when: &[ServiceStatus]) -> Rule {
        Rule { event: event.into(), function: function.into(), when_status: when.to_vec(), params: Map::new() }
    }

    /// Whether the rule applies to a service in `status`.
    pub fn applies(&self, status: ServiceStatus) -> bool {
        if self.when_status.is_empty() {
            status != ServiceStatus::Terminated
        } else {
            self.when_status.contains(&status)
        }
    }

    /// The function it runs, `setup` resolved.
    pub fn function_name<'a>(&'a self, setup_function: &'a str) -> &'a str {
        if self.function == SETUP { setup_function } else { &self.function }
    }
}

/// The default rules of a blueprint (functions it lacks are left out).
pub fn defaults(blueprint: &BlueprintDescriptor) -> Vec<Rule> {
    use ServiceStatus::*;
    let has = |name: &str| blueprint.function(name).is_some();
    let mut rules =
        vec![Rule::new("order.paid", SETUP, &[Pending, Failed]), Rule::new("invoice.paid", SETUP, &[Pending, Failed])];
    if has("unsuspend") {
        rules.push(Rule::new("invoice.paid", "unsuspend", &[Suspended]));
    }
    if has("renew") {
        rules.push(Rule::new("contract.renewed", "renew", &[Active, Suspended]));
    }
    if has("suspend") {
        rules.push(Rule::new("contract.overdue", "suspend", &[Active]));
    }
    if has("unsuspend") {
        rules.push(Rule::new("contract.unsuspended", "unsuspend", &[Suspended]));
    }
    if has("change_package") {
        rules.push(Rule::new("contract.upgraded", "change_package", &[Active, Suspended]));
    }
    if has("terminate") {
        rules.push(Rule::new("contract.cancelled", "terminate", &[Active, Suspended, Failed]));
    }
    rules
}

/// The rules in force for a product: its own replace the defaults for the
/// event types they name.
pub fn effective(blueprint: &BlueprintDescriptor, product_rules: &[Rule]) -> Vec<Rule> {
    let mut rules: Vec<Rule> =
        defaults(blueprint).into_iter().filter(|d| !product_rules.iter().any(|r| r.event == d.event)).collect();
    rules.extend(product_rules.iter().cloned());
    rules
}

/// What running `function` successfully does to a service's status.
pub fn effect(function: &str, setup_function: &str) -> Option<ServiceStatus> {
    if function == setup_function {
        return Some(ServiceStatus::Active);
    }
    match function {
        "suspend" => Some(ServiceStatus::Suspended),
        "unsuspend" => Some(ServiceStatus::Active),
        "terminate" => Some(ServiceStatus::Terminated),
        _ => None,
    }
}

/// Parses a status name.
pub fn parse_status(name: &str) -> ServiceStatus {
    ServiceStatus::ALL.into_iter().find(|s| s.as_str() == name).unwrap_or(ServiceStatus::Failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_blueprint() {
        let hosting = defaults(provisio_sdk::blueprints::shared_hosting::descriptor());
        let events: Vec<&str> = hosting.iter().map(|r| r.event.as_str()).collect();
        assert!(events.contains(&"contract.overdue") && !events.contains(&"contract.renewed"));
        let domains = defaults(provisio_sdk::blueprints::domain_names::descriptor());
        assert!(domains.iter().any(|r| r.event == "contract.renewed" && r.function == "renew"));
        assert!(!domains.iter().any(|r| r.event == "contract.overdue"));
        let coffee = defaults(provisio_sdk::blueprints::coffee::descriptor());
        assert_eq!(coffee.len(), 2);
    }

    #[test]
    fn product_rules_replace_defaults_per_event() {
        let blueprint = provisio_sdk::blueprints::shared_hosting::descriptor();
        let own = vec![Rule::new("contract.overdue", "terminate", &[]), Rule::new("custom.ping", "get_info", &[])];
        let rules = effective(blueprint, &own);
        let overdue: Vec<&Rule> = rules.iter().filter(|r| r.event == "contract.overdue").collect();
        assert_eq!(overdue.len(), 1);
        assert_eq!(overdue[0].function, "terminate");
        assert!(rules.iter().any(|r| r.event == "custom.ping"));
        assert!(rules.iter().any(|r| r.event == "order.paid"));
    }

    #[test]
    fn effects() {
        assert_eq!(effect("register", "register"), Some(ServiceStatus::Active));
        assert_eq!(effect("suspend", "create"), Some(ServiceStatus::Suspended));
        assert_eq!(effect("renew", "register"), None);
    }
}
