//! The params a job's function receives, built at run time so each job sees
//! the results of the jobs before it.
//!
//! Lowest to highest precedence: facts about the client and service
//! (`email`, `customer_name`, `reference`...), the service's provision data
//! (preset fields, customer fields, earlier results), then the job's own
//! args (rule params and event data), and last the service identifier, which
//! nothing overrides. Only keys the function's params schema knows are kept.

use std::collections::BTreeSet;

use provisio_sdk::{BlueprintDescriptor, FunctionDescriptor};
use provisio_store::models::{Client, Service};
use serde_json::{Map, Value, json};

/// The names [`base`] gives every function.
pub const BASE_FIELDS: [&str; 6] = ["email", "customer_email", "customer_name", "name", "reference", "customer_id"];

/// Facts every function may use.
pub fn base(service: &Service, client: &Client) -> Map<String, Value> {
    let reference = service.external_id.clone().unwrap_or_else(|| format!("service-{}", service.id));
    let customer_id = client.external_id.clone().unwrap_or_else(|| format!("client-{}", client.id));
    let Value::Object(map) = json!({
        "email": client.email,
        "customer_email": client.email,
        "customer_name": client.name,
        "name": client.name,
        "reference": reference,
        "customer_id": customer_id,
    }) else {
        unreachable!("a JSON object literal")
    };
    map
}

/// The params of `function` for a service. `secret_fields` are the
/// customer's secret fields (kept sealed, apart from provision data).
pub fn build(
    function: &FunctionDescriptor,
    identifier_field: &str,
    service: &Service,
    client: &Client,
    secret_fields: &Map<String, Value>,
    args: &Value,
) -> Value {
    let mut merged = base(service, client);
    if let Value::Object(data) = &service.provision_data {
        merged.extend(data.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    merged.extend(secret_fields.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Value::Object(args) = args {
        merged.extend(args.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    // Once a service has its identifier nothing overrides it: an event's data
    // must not point a suspend or a terminate at somebody else's account.
    if let Some(identifier) = &service.identifier {
        merged.insert(identifier_field.to_owned(), json!(identifier));
    }
    let known = function.params.property_names();
    Value::Object(merged.into_iter().filter(|(key, value)| known.contains(&key.as_str()) && !value.is_null()).collect())
}

/// Result data to keep in provision data: secret fields (returned once,
/// e.g. a generated password) are left out and answered separately.
pub fn split_secrets(function: &FunctionDescriptor, data: &Value) -> (Map<String, Value>, Map<String, Value>) {
    let secrets: Map<String, Value> = function.result.secret_entries(data).into_iter().collect();
    let mut kept = data.as_object().cloned().unwrap_or_default();
    for pointer in secrets.keys() {
        if let Some(key) = pointer.strip_prefix('/').filter(|k| !k.contains('/')) {
            kept.remove(key);
        }
    }
    (kept, secrets)
}

/// Names of params some function of the blueprint marks secret (`password`,
/// `epp_code`...): such values from events and actions are sealed, never
/// stored in clear.
pub fn secret_keys(blueprint: &BlueprintDescriptor) -> BTreeSet<String> {
    blueprint
        .functions
        .iter()
        .flat_map(|f| f.params.secret_paths())
        .filter_map(|path| path.strip_prefix('/').filter(|p| !p.contains('/')).map(str::to_owned))
        .collect()
}

/// Splits values into (public, secret) by key.
pub fn split_keys(values: &Map<String, Value>, keys: &BTreeSet<String>) -> (Map<String, Value>, Map<String, Value>) {
    values.iter().map(|(k, v)| (k.clone(), v.clone())).partition(|(k, _)| !keys.contains(k))
}

/// A copy with the values of `keys` (at the top level) masked.
pub fn mask_keys(values: &Value, keys: &BTreeSet<String>) -> Value {
    let mut masked = values.clone();
    if let Value::Object(map) = &mut masked {
        for (key, value) in map.iter_mut() {
            if keys.contains(key) && !value.is_null() {
                *value = Value::String(provisio_sdk::redact::REDACTED.to_owned());
            }
        }
    }
    masked
}

/// Prefix of the customer's secret fields among a service's sealed secrets
/// (result secrets are keyed by JSON pointer, `/password`).
pub const FIELD: &str = "field:";

/// The customer's secret fields among a service's opened secrets.
pub fn fields_of(secrets: &Map<String, Value>) -> Map<String, Value> {
    secrets.iter().filter_map(|(k, v)| k.strip_prefix(FIELD).map(|k| (k.to_owned(), v.clone()))).collect()
}
