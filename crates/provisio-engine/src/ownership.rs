//! Who holds what on a configuration.
//!
//! At most one live (not terminated) service holds an identifier on a
//! configuration. The reservation is made inside the write transaction that
//! records the order (when the identifier and the configuration are known at
//! ingest) or that claims the setup job (dynamic deployment, or an
//! identifier that came later), or that makes a service of an imported
//! resource (`import.rs`), and a partial UNIQUE index backs it, so two
//! concurrent orders of one name cannot both win. For blueprints whose names
//! nest (DNS zones), a name inside or around another client's live name is
//! refused too. Providers add the second half: each service carries an
//! owner mark they record at the vendor, and they act only on resources
//! bearing it (`Context::check_owner`).

use provisio_sdk::{BlueprintDescriptor, IdentifierScope};
use provisio_store::models::Service;
use provisio_store::{Conn, services};
use serde_json::Value;

use crate::EngineError;

/// A new service's owner mark: short enough for every vendor's field
/// (PowerDNS keeps 40 characters of `account`), unguessable.
pub fn new_owner_mark() -> String {
    format!("prv-{}", &crate::vault::random_token("")[..24])
}

/// The identifier a service will hold, from its provision data, in the form
/// it is reserved under (nesting names in lower case, without a final dot).
pub fn identifier_in(blueprint: &BlueprintDescriptor, provision_data: &Value) -> Option<String> {
    let raw = provision_data.get(blueprint.service_identifier)?.as_str()?.trim();
    let name = match blueprint.identifiers {
        IdentifierScope::Flat => raw.to_owned(),
        IdentifierScope::Hierarchical => raw.trim_end_matches('.').to_ascii_lowercase(),
    };
    (!name.is_empty()).then_some(name)
}

/// The names `name` lies inside: `a.b.c` → `b.c`, `c`.
fn parents(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = name;
    while let Some((_, parent)) = rest.split_once('.') {
        out.push(parent.to_owned());
        rest = parent;
    }
    out
}

/// Why service `service_id` of client `client_id` (0: a service not made
/// yet) may not hold `identifier` on the configuration, if it may not.
pub async fn refusal(
    conn: &mut Conn,
    blueprint: &BlueprintDescriptor,
    (service_id, client_id): (i64, i64),
    configuration_id: i64,
    identifier: &str,
) -> Result<Option<String>, EngineError> {
    if services::holder(conn, configuration_id, identifier, service_id).await?.is_some() {
        return Ok(Some(format!(
            "{} {identifier} is already in use on this configuration by another service",
            blueprint.service_identifier
        )));
    }
    if blueprint.identifiers == IdentifierScope::Hierarchical
        && let Some(other) =
            services::nested_of_other_client(conn, configuration_id, identifier, &parents(identifier), client_id)
                .await?
    {
        let theirs = other.identifier.unwrap_or_default();
        return Ok(Some(format!(
            "{} {identifier} overlaps {theirs}, which belongs to another client on this configuration",
            blueprint.service_identifier
        )));
    }
    Ok(None)
}

/// Reserves `identifier` on the configuration for `service`, or answers
/// `conflict` saying who holds it (nothing is changed then).
pub async fn reserve(
    conn: &mut Conn,
    blueprint: &BlueprintDescriptor,
    service: &Service,
    configuration_id: i64,
    identifier: &str,
) -> Result<(), EngineError> {
    // Nested names have no unique index behind them: their check and
    // reserve must not interleave with another's (a no-op on one writer,
    // and taken already by claims and imports). A flat name's unique index
    // refuses the second holder by itself.
    if blueprint.identifiers == IdentifierScope::Hierarchical {
        conn.lock_admissions().await?;
    }
    if let Some(why) = refusal(conn, blueprint, (service.id, service.client_id), configuration_id, identifier).await? {
        return Err(EngineError::Conflict(why));
    }
    services::reserve(conn, service.id, configuration_id, identifier).await.map_err(|err| {
        if err.is_unique_violation() {
            EngineError::Conflict(format!("{identifier} was just taken on this configuration by another service"))
        } else {
            EngineError::Store(err)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_of_a_name() {
        assert_eq!(parents("www.victim.example"), ["victim.example", "example"]);
        assert!(parents("localhost").is_empty());
    }

    #[test]
    fn nesting_names_are_reserved_in_one_form() {
        let dns = provisio_sdk::blueprints::dns_hosting::descriptor();
        assert_eq!(
            identifier_in(dns, &serde_json::json!({"zone": "Victim.Example."})).as_deref(),
            Some("victim.example")
        );
        let databases = provisio_sdk::blueprints::databases::descriptor();
        assert_eq!(identifier_in(databases, &serde_json::json!({"database": "Shop"})).as_deref(), Some("Shop"));
        assert_eq!(identifier_in(databases, &serde_json::json!({"database": 3})), None);
    }
}
