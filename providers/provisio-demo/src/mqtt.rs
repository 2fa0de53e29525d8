//! `mqtt-hosting/demo`: a simulated MQTT broker's accounts.

use provisio_sdk::blueprints::State;
use provisio_sdk::blueprints::mqtt_hosting::*;
use provisio_sdk::formats::DbIdentifier;
use provisio_sdk::{Context, Empty, ProviderError};
use serde_json::json;

use crate::{Effect, demo_provider, generate_password, key_of, typed};

demo_provider!(
    DemoMqtt,
    "mqtt-hosting",
    "Demo MQTT broker",
    "A simulated MQTT broker: accounts limited to a topic prefix, kept in a local file."
);

fn missing(username: &DbIdentifier) -> String {
    format!("Account {username} does not exist on this broker")
}

impl MqttHosting for DemoMqtt {
    async fn create(&self, cx: &Context, params: CreateMqttParams) -> Result<MqttInfo, ProviderError> {
        let demo = &self.0;
        demo.around(cx, Effect::Changes, async {
            let prefix = params.topic_prefix.clone().unwrap_or_else(|| params.username.to_string());
            let others = demo.state.documents().await?;
            let taken = others
                .iter()
                .filter(|(account, _)| account != params.username.as_str())
                .filter_map(|(account, data)| Some((account.as_str(), data["topic_prefix"].as_str()?)));
            let reserved: Vec<String> = RESERVED_PREFIXES.iter().map(|p| (*p).to_owned()).collect();
            if let Some(refused) = prefix_refusal(&prefix, &reserved, taken) {
                return Err(refused);
            }
            let info = MqttInfo {
                username: params.username.clone(),
                topic_prefix: prefix.clone(),
                host: demo.hostname(),
                port: 1883,
                state: State::Active,
                password: None,
            };
            let keys: Vec<&str> = key_of(cx).into_iter().collect();
            let created = demo
                .state
                .create(
                    cx,
                    params.username.as_str(),
                    json!(info),
                    &keys,
                    |existing| existing["topic_prefix"] == json!(prefix),
                    &format!("Account {} already exists on this broker with another prefix", params.username),
                )
                .await?;
            match created {
                crate::state::Created::New(data) => {
                    let mut info: MqttInfo = typed(data)?;
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

    async fn adopt(&self, cx: &Context, params: MqttRef) -> Result<MqttInfo, ProviderError> {
        self.0.adopt(cx, params.username.as_str(), &missing(&params.username)).await
    }

    async fn get_info(&self, cx: &Context, params: MqttRef) -> Result<MqttInfo, ProviderError> {
        self.0.read(cx, params.username.as_str(), &missing(&params.username)).await
    }

    async fn suspend(&self, cx: &Context, params: SuspendMqttParams) -> Result<MqttInfo, ProviderError> {
        self.set_state(cx, &params.username, State::Suspended).await
    }

    async fn unsuspend(&self, cx: &Context, params: MqttRef) -> Result<MqttInfo, ProviderError> {
        self.set_state(cx, &params.username, State::Active).await
    }

    async fn terminate(&self, cx: &Context, params: MqttRef) -> Result<Empty, ProviderError> {
        self.0.remove(cx, params.username.as_str(), &missing(&params.username)).await
    }

    async fn change_password(
        &self,
        cx: &Context,
        params: ChangeMqttPasswordParams,
    ) -> Result<MqttCredentials, ProviderError> {
        let info: MqttInfo = self.0.read(cx, params.username.as_str(), &missing(&params.username)).await?;
        let password = params.password.as_ref().map(|p| p.expose().to_owned()).unwrap_or_else(generate_password);
        Ok(MqttCredentials { username: info.username, password })
    }
}

impl DemoMqtt {
    async fn set_state(&self, cx: &Context, username: &DbIdentifier, state: State) -> Result<MqttInfo, ProviderError> {
        self.0
            .change(cx, username.as_str(), &missing(username), |data, _| {
                data["state"] = json!(state);
                Ok(())
            })
            .await
    }
}
