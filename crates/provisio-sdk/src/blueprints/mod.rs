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
pub mod physical_goods;
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
        physical_goods::descriptor(),
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

/// Params of `list`: one page of what a configuration holds, for import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Where the previous page ended (its `next_cursor`); absent for the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1000))]
    pub cursor: Option<String>,
    /// At most this many resources.
    #[serde(default = "default_list_limit")]
    #[schemars(range(min = 1, max = 1000))]
    pub limit: u32,
}

fn default_list_limit() -> u32 {
    200
}

impl ListParams {
    /// One page of everything a system answered at once (most APIs list all
    /// in one answer): sorted by `name`, those after the cursor, at most the
    /// limit; with the next page's cursor (none on the last) and how many
    /// there are in all.
    pub fn page<T>(&self, mut all: Vec<T>, name: impl Fn(&T) -> &str) -> (Vec<T>, Option<String>, u64) {
        all.sort_by(|a, b| name(a).cmp(name(b)));
        let total = all.len() as u64;
        let start = match &self.cursor {
            Some(cursor) => all.partition_point(|item| name(item) <= cursor.as_str()),
            None => 0,
        };
        let (page, next) = self.cut(all.split_off(start), name);
        (page, next, total)
    }

    /// A page of what a system answered after the cursor, in order, asked
    /// for one more than the limit (`fetch`): at most the limit, with the
    /// next page's cursor when there was more.
    pub fn cut<T>(&self, mut fetched: Vec<T>, name: impl Fn(&T) -> &str) -> (Vec<T>, Option<String>) {
        let limit = self.limit as usize;
        let more = fetched.len() > limit;
        fetched.truncate(limit);
        let next = if more { fetched.last().map(|item| name(item).to_owned()) } else { None };
        (fetched, next)
    }

    /// How many to ask a system for: one more than the limit, so [`cut`](Self::cut)
    /// knows whether another page follows.
    pub fn fetch(&self) -> u32 {
        self.limit + 1
    }
}

impl Default for ListParams {
    fn default() -> Self {
        ListParams { cursor: None, limit: default_list_limit() }
    }
}

/// One resource a configuration holds, as `list` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Listed {
    /// Its service identifier (the blueprint's identifier field: a database
    /// name, a zone, a username).
    #[schemars(length(min = 1, max = 255))]
    pub identifier: String,
    /// In use or blocked.
    pub state: State,
    /// The owner mark it carries: a Provisio service's, or none (made
    /// outside Provisio).
    #[serde(default)]
    pub owner_mark: Option<String>,
    /// Why it cannot become a service even though it carries no mark (a
    /// system database, a login that owns other databases too).
    #[serde(default)]
    pub refused: Option<String>,
    /// A contact e-mail the system holds for it (to find its client).
    #[serde(default)]
    pub email: Option<String>,
    /// What a service of it starts with as provision data: the fields
    /// `get_info` answers that the listing knows (the identifier, the
    /// owner login, the package).
    #[serde(default)]
    pub data: serde_json::Map<String, serde_json::Value>,
}

impl Listed {
    /// The provision data a listing carries for a resource read as `info`
    /// (the blueprint's `get_info` result): its fields, without what is the
    /// system's to say at adoption (its state, a suspension's reason, when
    /// it was made) or secret, and without empty values.
    pub fn data_of<T: Serialize>(info: &T) -> serde_json::Map<String, serde_json::Value> {
        let mut data = serde_json::to_value(info).ok().and_then(|v| v.as_object().cloned()).unwrap_or_default();
        data.retain(|key, value| {
            !matches!(key.as_str(), "state" | "suspend_reason" | "created_at" | "password") && !value.is_null()
        });
        data
    }
}

/// One page of what a configuration holds, in a stable order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Listing {
    /// The resources of this page.
    pub resources: Vec<Listed>,
    /// Where the next page starts; absent on the last page.
    #[serde(default)]
    pub next_cursor: Option<String>,
    /// How many there are in all, when the system says (for progress).
    #[serde(default)]
    pub total: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_everything_once_in_order() {
        let all: Vec<String> = ["d", "a", "c", "b", "e"].into_iter().map(String::from).collect();
        let mut seen = Vec::new();
        let mut params = ListParams { cursor: None, limit: 2 };
        loop {
            let (page, next, total) = params.page(all.clone(), |s| s.as_str());
            assert_eq!(total, 5);
            assert!(page.len() <= 2);
            seen.extend(page);
            match next {
                Some(next) => params.cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, ["a", "b", "c", "d", "e"]);
        let after_all = ListParams { cursor: Some("z".into()), limit: 2 }.page(all, |s| s.as_str());
        assert_eq!((after_all.0.len(), after_all.1), (0, None));
    }
}
