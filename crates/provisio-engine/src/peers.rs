//! What providers may call of other configurations: the engine runs the
//! function of the named configuration, with its own secrets, and answers
//! the report (an ACME provider writes DNS-01 records this way).
//!
//! A provider acts for one service, so it may reach only what that
//! service's client owns: a live service of the same client on the named
//! configuration, named by the blueprint's identifier field in the params.
//! Lifecycle functions (create, suspend, terminate) are never run this way,
//! and peer calls do not chain.

use std::sync::Arc;

use provisio_sdk::blueprint::FunctionKind;
use provisio_sdk::invoke::CallReport;
use provisio_sdk::{BoxFuture, CallOptions, PeerAccess, Peers, ProviderError, UserMessage, invoke};
use provisio_store::{configurations, services};
use serde_json::Value;

use crate::Engine;

struct EnginePeers {
    engine: Engine,
    client_id: i64,
}

fn refused(text: String) -> ProviderError {
    ProviderError::provider(UserMessage::new(text))
}

impl Peers for EnginePeers {
    fn call<'a>(
        &'a self,
        configuration: &'a str,
        function: &'a str,
        params: Value,
    ) -> BoxFuture<'a, Result<CallReport, ProviderError>> {
        Box::pin(async move {
            let engine = &self.engine;
            let internal = |err: crate::EngineError| ProviderError::internal(err);
            let name = configuration.to_owned();
            let found = engine
                .store()
                .read(move |conn| {
                    Box::pin(
                        async move { Ok::<_, crate::EngineError>(configurations::get_by_name(conn, &name).await?) },
                    )
                })
                .await
                .map_err(internal)?;
            let Some(found) = found else {
                return Err(refused(format!(
                    "The configuration {configuration} cannot be used: no configuration has this name"
                )));
            };
            if !found.enabled {
                return Err(refused(format!("The configuration {configuration} cannot be used: it is disabled")));
            }
            let address = format!("{}/{}", found.blueprint, found.provider);
            let entry = engine.registry().provider(&address).map_err(ProviderError::internal)?;
            let blueprint = entry.blueprint();
            let Some(descriptor) = blueprint.function(function) else {
                return Err(ProviderError::unsupported(function));
            };
            if descriptor.kind == FunctionKind::Lifecycle {
                return Err(refused(format!("{function} of {configuration} runs only from billing events")));
            }
            let identifier = params
                .get(blueprint.service_identifier)
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
                .ok_or_else(|| {
                    refused(format!("{function} of {configuration} needs {}", blueprint.service_identifier))
                })?;
            let (configuration_id, client_id) = (found.id, self.client_id);
            let lookup = identifier.clone();
            let owned = engine
                .store()
                .read(move |conn| {
                    Box::pin(async move {
                        Ok::<_, crate::EngineError>(
                            services::owned_on_configuration(conn, configuration_id, client_id, &lookup).await?,
                        )
                    })
                })
                .await
                .map_err(internal)?;
            let Some(owned) = owned else {
                // not_found: "not one of yours" and "does not exist" look the same to the caller.
                return Err(ProviderError::not_found(UserMessage::new(format!(
                    "{identifier} is not a live service of this client on {configuration}"
                ))));
            };
            let values = engine.configuration_values(&found).map_err(internal)?;
            // The peer acts for the service it found: only its own resource.
            let options = CallOptions {
                timeout: engine.settings().call_timeout,
                owner: Some(owned.owner_mark.clone()),
                ..CallOptions::default()
            };
            tracing::info!(configuration, function, identifier, "a provider calls another configuration");
            Ok(invoke::call(entry, &values, function, &params, &options).await)
        })
    }
}

impl Engine {
    /// Access to the other configurations, for a provider acting for a
    /// service of `client_id`.
    pub(crate) fn peers_for(&self, client_id: i64) -> PeerAccess {
        PeerAccess(Arc::new(EnginePeers { engine: self.clone(), client_id }))
    }
}
