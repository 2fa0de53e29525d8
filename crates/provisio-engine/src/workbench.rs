//! The workbench: one provider function run by hand for a provider's
//! developer (the console's workbench page, like `provisio call`), with its
//! envelope and redacted HTTP log. Against values given with the call it
//! may run anything (it is the developer's own system); against a stored
//! configuration only reads (`query` functions), because that system's
//! resources belong to services and a hand-made call carries no owner mark.

use provisio_sdk::invoke::CallReport;
use provisio_sdk::{CallOptions, FunctionKind};
use serde_json::{Value, json};

use crate::{Catalog, EngineError};

/// Where a workbench call gets its configuration.
#[derive(Debug, Clone)]
pub enum WorkbenchTarget {
    /// A stored configuration (its secrets opened for the call): reads only.
    Stored(i64),
    /// Values given with the call.
    AdHoc(Value),
}

impl Catalog {
    /// Runs `function` of `provider` with `params`; audited (never the values).
    pub async fn workbench_call(
        &self,
        actor: &str,
        provider: &str,
        target: WorkbenchTarget,
        function: &str,
        params: &Value,
    ) -> Result<CallReport, EngineError> {
        let entry = self
            .engine
            .registry()
            .provider(provider)
            .map_err(|err| EngineError::invalid("/provider", err.to_string()))?;
        let descriptor = entry.blueprint().function(function).ok_or_else(|| {
            EngineError::invalid("/function", format!("{} has no function {function}", entry.address()))
        })?;
        if !params.is_object() {
            return Err(EngineError::invalid("/params", "must be a JSON object"));
        }
        let (values, target_name) = match target {
            WorkbenchTarget::AdHoc(values) => (values, "ad hoc".to_owned()),
            WorkbenchTarget::Stored(id) => {
                let configuration = self.engine.queries().configuration(id).await?;
                if format!("{}/{}", configuration.blueprint, configuration.provider) != entry.address() {
                    return Err(EngineError::invalid("/configuration", "is not a configuration of this provider"));
                }
                if descriptor.kind != FunctionKind::Query {
                    return Err(EngineError::Forbidden(format!(
                        "on a stored configuration the workbench runs only reads; {function} changes things \
                         (run it with values given here, or through a service)"
                    )));
                }
                (self.engine.configuration_values(&configuration)?, format!("configuration:{id}"))
            }
        };
        let options = CallOptions { timeout: self.engine.settings().call_timeout, ..Default::default() };
        let report = provisio_sdk::invoke::call(entry, &values, function, params, &options).await;
        let outcome = report.envelope.error_kind.map(|k| k.to_string()).unwrap_or_else(|| "ok".into());
        self.engine
            .record_audit(
                actor.to_owned(),
                "workbench.call",
                target_name,
                json!({"provider": entry.address(), "function": function, "outcome": outcome}),
            )
            .await?;
        Ok(report)
    }
}
