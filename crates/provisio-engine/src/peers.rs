//! What providers may call of other configurations: the engine runs the
//! function of the named configuration, with its own secrets, and answers
//! the envelope (an ACME provider writes DNS-01 records this way).

use std::sync::Arc;

use provisio_sdk::{BoxFuture, CallOptions, Envelope, PeerAccess, Peers, invoke};
use serde_json::Value;

use crate::Engine;

struct EnginePeers(Engine);

impl Peers for EnginePeers {
    fn call<'a>(
        &'a self,
        configuration: &'a str,
        function: &'a str,
        params: Value,
    ) -> BoxFuture<'a, Result<Envelope, String>> {
        Box::pin(async move {
            let engine = &self.0;
            let views = engine.configurations(None).await.map_err(|e| e.to_string())?;
            let view = views
                .into_iter()
                .find(|v| v.configuration.name == configuration)
                .ok_or_else(|| "no provision configuration has this name".to_owned())?;
            if !view.configuration.enabled {
                return Err("it is disabled".into());
            }
            let entry = engine.registry().provider(&view.address).map_err(|e| e.to_string())?;
            let values = engine.configuration_values(&view.configuration).map_err(|e| e.to_string())?;
            // No peers for the peer: calls do not chain.
            let options = CallOptions { timeout: engine.settings().call_timeout, ..CallOptions::default() };
            tracing::info!(configuration, function, "a provider calls another configuration");
            Ok(invoke::call(entry, &values, function, &params, &options).await.envelope)
        })
    }
}

impl Engine {
    /// Access to the other configurations, for the providers this engine runs.
    pub fn peers(&self) -> PeerAccess {
        PeerAccess(Arc::new(EnginePeers(self.clone())))
    }
}
