//! `message-queues/demo`: a simulated message broker.

use provisio_sdk::blueprints::message_queues::*;
use provisio_sdk::blueprints::{State, Units};
use provisio_sdk::formats::DbIdentifier;
use provisio_sdk::{Context, Empty, ProviderError, UserMessage};
use serde_json::json;

use crate::{Effect, demo_provider, generate_password, key_of, typed};

demo_provider!(
    DemoBroker,
    "message-queues",
    "Demo message broker",
    "A simulated message broker: virtual hosts, owner users and permissions, kept in a local file."
);

fn missing(vhost: &DbIdentifier) -> String {
    format!("Virtual host {vhost} does not exist on this broker")
}

fn limits(package: Option<&str>) -> (Option<u32>, Option<u32>) {
    match package {
        Some("basic") => (Some(10), Some(50)),
        Some("standard") => (Some(50), Some(500)),
        Some("premium") => (Some(200), Some(5000)),
        _ => (None, None),
    }
}

impl MessageQueues for DemoBroker {
    async fn create(&self, cx: &Context, params: CreateBrokerParams) -> Result<BrokerInfo, ProviderError> {
        let demo = &self.0;
        demo.around(cx, Effect::Changes, async {
            if let Some(package) = &params.package_name {
                demo.check_package(package)?;
            }
            let username = params.username.clone().unwrap_or_else(|| params.vhost.clone());
            if demo.state.field_taken("username", username.as_str(), params.vhost.as_str()).await? {
                return Err(ProviderError::conflict(UserMessage::new(format!(
                    "User {username} already exists on this broker"
                ))));
            }
            let (connections, queues) = limits(params.package_name.as_deref());
            let info = BrokerInfo {
                vhost: params.vhost.clone(),
                username: username.clone(),
                host: demo.hostname(),
                port: 5672,
                state: State::Active,
                package_name: params.package_name.clone(),
                max_connections: params.max_connections.or(connections),
                max_queues: params.max_queues.or(queues),
                password: None,
            };
            let keys: Vec<&str> = key_of(cx).into_iter().collect();
            let created = demo
                .state
                .create(
                    cx,
                    params.vhost.as_str(),
                    json!(info),
                    &keys,
                    |existing| existing["username"] == json!(username),
                    &format!("Virtual host {} already exists on this broker with another owner", params.vhost),
                )
                .await?;
            match created {
                crate::state::Created::New(data) => {
                    let mut info: BrokerInfo = typed(data)?;
                    info.password = params.password.is_none().then(generate_password);
                    Ok(info)
                }
                crate::state::Created::Adopted(data) => typed(data),
            }
        })
        .await
    }

    async fn list(
        &self,
        cx: &Context,
        params: provisio_sdk::blueprints::ListParams,
    ) -> Result<provisio_sdk::blueprints::Listing, ProviderError> {
        self.0.list(cx, params).await
    }

    async fn adopt(&self, cx: &Context, params: VhostRef) -> Result<BrokerInfo, ProviderError> {
        self.0.adopt(cx, params.vhost.as_str(), &missing(&params.vhost)).await
    }

    async fn get_info(&self, cx: &Context, params: VhostRef) -> Result<BrokerInfo, ProviderError> {
        self.0.read(cx, params.vhost.as_str(), &missing(&params.vhost)).await
    }

    async fn suspend(&self, cx: &Context, params: SuspendBrokerParams) -> Result<BrokerInfo, ProviderError> {
        self.set_state(cx, &params.vhost, State::Suspended).await
    }

    async fn unsuspend(&self, cx: &Context, params: VhostRef) -> Result<BrokerInfo, ProviderError> {
        self.set_state(cx, &params.vhost, State::Active).await
    }

    async fn terminate(&self, cx: &Context, params: VhostRef) -> Result<Empty, ProviderError> {
        self.0.remove(cx, params.vhost.as_str(), &missing(&params.vhost)).await
    }

    async fn get_usage(&self, cx: &Context, params: VhostRef) -> Result<BrokerUsage, ProviderError> {
        let info: BrokerInfo = self.0.read(cx, params.vhost.as_str(), &missing(&params.vhost)).await?;
        Ok(BrokerUsage {
            queues: Units { used: f64::from(fastrand::u32(0..5)), limit: info.max_queues.map(f64::from) },
            connections: Units { used: f64::from(fastrand::u32(0..3)), limit: info.max_connections.map(f64::from) },
            messages: Units { used: f64::from(fastrand::u32(0..100)), limit: None },
        })
    }

    async fn change_password(
        &self,
        cx: &Context,
        params: ChangeBrokerPasswordParams,
    ) -> Result<BrokerCredentials, ProviderError> {
        let info: BrokerInfo = self.0.read(cx, params.vhost.as_str(), &missing(&params.vhost)).await?;
        let password = params.password.as_ref().map(|p| p.expose().to_owned()).unwrap_or_else(generate_password);
        Ok(BrokerCredentials { username: info.username, password })
    }
}

impl DemoBroker {
    async fn set_state(&self, cx: &Context, vhost: &DbIdentifier, state: State) -> Result<BrokerInfo, ProviderError> {
        self.0
            .change(cx, vhost.as_str(), &missing(vhost), |data, _| {
                data["state"] = json!(state);
                Ok(())
            })
            .await
    }
}
