//! Deployment: which configuration a new service goes to.
//!
//! Static products name one configuration. Dynamic products pick, at setup
//! time, among enabled configurations of the blueprint (and provider, if the
//! product names one) whose attributes include the product's filters and
//! that have room, by the product's strategy.

use std::collections::HashMap;

use provisio_store::models::{Configuration, Product};
use serde_json::Value;

/// Why no configuration could be picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoCapacity(pub String);

/// Whether a configuration can take one more service.
pub fn has_room(configuration: &Configuration, counts: &HashMap<i64, i64>) -> bool {
    let used = counts.get(&configuration.id).copied().unwrap_or(0);
    configuration.max_services.is_none_or(|max| used < max)
}

fn matches(configuration: &Configuration, product: &Product) -> bool {
    configuration.enabled
        && configuration.blueprint == product.blueprint
        && product.provider.as_ref().is_none_or(|p| *p == configuration.provider)
        && match &product.attribute_filters {
            Value::Object(filters) => filters.iter().all(|(k, v)| configuration.attributes.get(k) == Some(v)),
            _ => true,
        }
}

/// Whether `product`'s services may live on `configuration`: the one it
/// names (static), or one its dynamic deployment could pick (capacity aside).
pub fn serves(product: &Product, configuration: &Configuration) -> bool {
    match product.configuration_id.filter(|_| product.deployment == "static") {
        Some(id) => id == configuration.id,
        None => product.deployment != "static" && matches(configuration, product),
    }
}

/// Picks the configuration for a new service of `product`.
///
/// `round_robin_cursor` is the product's next turn (used by `round_robin`).
pub fn pick(
    product: &Product,
    configurations: &[Configuration],
    counts: &HashMap<i64, i64>,
    round_robin_cursor: i64,
) -> Result<i64, NoCapacity> {
    if let Some(id) = product.configuration_id.filter(|_| product.deployment == "static") {
        let configuration = configurations.iter().find(|c| c.id == id);
        return match configuration {
            Some(c) if !c.enabled => Err(NoCapacity(format!("configuration {} ({}) is disabled", c.id, c.name))),
            Some(c) if !has_room(c, counts) => Err(NoCapacity(format!(
                "configuration {} ({}) is full ({} services)",
                c.id,
                c.name,
                c.max_services.unwrap_or(0)
            ))),
            Some(c) => Ok(c.id),
            None => Err(NoCapacity(format!("configuration {id} no longer exists"))),
        };
    }
    let mut candidates: Vec<&Configuration> =
        configurations.iter().filter(|c| matches(c, product) && has_room(c, counts)).collect();
    candidates.sort_by_key(|c| c.id);
    let used = |c: &&Configuration| counts.get(&c.id).copied().unwrap_or(0);
    let chosen = match product.strategy.as_deref().unwrap_or("least_used") {
        "round_robin" if !candidates.is_empty() => {
            Some(candidates[round_robin_cursor.rem_euclid(candidates.len() as i64) as usize])
        }
        "fill" => candidates.first().copied(),
        _ => candidates.iter().min_by_key(|c| (used(c), c.id)).copied(),
    };
    chosen.map(|c| c.id).ok_or_else(|| {
        NoCapacity(format!(
            "no enabled {} configuration{} matching {} has room for product {}",
            product.blueprint,
            product.provider.as_ref().map(|p| format!(" of provider {p}")).unwrap_or_default(),
            product.attribute_filters,
            product.slug
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn configuration(id: i64, location: &str, max: Option<i64>) -> Configuration {
        Configuration {
            id,
            blueprint: "shared-hosting".into(),
            provider: "demo".into(),
            name: format!("c{id}"),
            config_values: json!({}),
            secrets: None,
            attributes: json!({"location": location}),
            max_services: max,
            max_concurrency: 8,
            rate_per_minute: None,
            enabled: true,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn product(strategy: &str, location: Option<&str>) -> Product {
        Product {
            id: 1,
            slug: "p".into(),
            name: "p".into(),
            blueprint: "shared-hosting".into(),
            provider: None,
            deployment: "dynamic".into(),
            configuration_id: None,
            strategy: Some(strategy.into()),
            attribute_filters: location.map(|l| json!({"location": l})).unwrap_or(json!({})),
            setup_function: "create".into(),
            provision_fields: json!({}),
            rules: json!([]),
            drift_response: "report".into(),
            round_robin_cursor: 0,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn strategies() {
        let configs = [configuration(1, "eu", Some(2)), configuration(2, "eu", None), configuration(3, "us", None)];
        let counts = HashMap::from([(1, 1), (2, 5)]);
        assert_eq!(pick(&product("least_used", Some("eu")), &configs, &counts, 0), Ok(1));
        assert_eq!(pick(&product("fill", Some("eu")), &configs, &counts, 0), Ok(1));
        assert_eq!(pick(&product("round_robin", Some("eu")), &configs, &counts, 1), Ok(2));
        assert_eq!(pick(&product("least_used", None), &configs, &counts, 0), Ok(3));
        let full = HashMap::from([(1, 2), (2, 5)]);
        assert_eq!(pick(&product("fill", Some("eu")), &configs, &full, 0), Ok(2));
        assert!(pick(&product("least_used", Some("asia")), &configs, &counts, 0).is_err());
    }
}
