//! What a client sees of one of its services, for every door that shows
//! clients their services (the client API, the console's client area): the
//! product's name, status and identifier, provision data without secret
//! fields, and the functions the blueprint lets clients run, with whether
//! the status allows each now. Never staff diagnostics, never a secret.

use provisio_sdk::{Caller, Registry, ServiceStatus};
use provisio_store::models::{Product, Service, timestamp};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::params;

/// A function the client may run, as the client sees it.
#[derive(Debug, Clone, Serialize)]
pub struct ClientFunction {
    pub name: &'static str,
    pub description: String,
    /// Whether the service's status allows it now.
    pub available: bool,
    /// The statuses that allow it.
    pub statuses: &'static [ServiceStatus],
}

/// A service as its client sees it.
#[derive(Debug, Clone, Serialize)]
pub struct ClientService {
    pub id: i64,
    pub product: ClientProduct,
    pub status: String,
    pub identifier: Option<String>,
    /// Provision data without secret fields.
    pub details: Map<String, Value>,
    /// Why it failed, in words safe for the client (the provider's
    /// user-safe message), while its status is `failed`.
    pub problem: Option<String>,
    /// Whether it has a single sign-on login (`GET …/login`).
    pub login: bool,
    /// The blueprint's login function, to find it among `functions`.
    #[serde(skip)]
    pub login_function: Option<&'static str>,
    /// Whether its password can be changed (`POST …/password`).
    pub password: bool,
    pub functions: Vec<ClientFunction>,
    #[serde(serialize_with = "timestamp")]
    pub created_at: i64,
    #[serde(serialize_with = "timestamp")]
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClientProduct {
    pub slug: String,
    pub name: String,
}

impl ClientService {
    /// The client's view of `service`.
    pub fn of(registry: &Registry, service: Service, product: Product) -> ClientService {
        let blueprint = registry.blueprint(&product.blueprint).ok();
        let status = crate::rules::parse_status(&service.status);
        let secret_keys = blueprint.map(params::secret_keys).unwrap_or_default();
        let details = service
            .provision_data
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(key, value)| {
                !secret_keys.contains(key.as_str()) && value.as_str() != Some(provisio_sdk::redact::REDACTED)
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let functions = blueprint
            .map(|b| {
                b.functions
                    .iter()
                    .filter(|f| f.callers.contains(&Caller::Client))
                    .map(|f| ClientFunction {
                        name: f.name,
                        description: f.description.clone(),
                        available: f.statuses.contains(&status),
                        statuses: f.statuses,
                    })
                    .collect()
            })
            .unwrap_or_default();
        ClientService {
            id: service.id,
            product: ClientProduct { slug: product.slug, name: product.name },
            status: service.status,
            identifier: service.identifier,
            details,
            problem: service.last_error.clone().filter(|_| status == ServiceStatus::Failed),
            login: blueprint.is_some_and(|b| b.login_function.is_some()),
            login_function: blueprint.and_then(|b| b.login_function),
            password: blueprint.is_some_and(|b| b.password_function.is_some()),
            functions,
            created_at: service.created_at,
            updated_at: service.updated_at,
        }
    }
}
