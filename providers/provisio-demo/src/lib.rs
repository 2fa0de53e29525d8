//! Demo providers: one self-contained simulator per blueprint
//! (`shared-hosting/demo`, `domain-names/demo`, ...).
//!
//! They behave like real systems: state persists in a SQLite file between
//! calls, duplicates are rejected or adopted as the blueprint documents,
//! unknown identifiers answer `not_found`, usage moves, login links expire.
//! Every configuration field has a default, and the configuration can inject
//! latency and failures (`transient`, `outcome_unknown`) for tests and
//! benchmarks.

mod brokers;
mod certificates;
mod coffee;
mod databases;
mod dns;
mod domains;
mod goods;
mod hosting;
mod licenses;
mod mqtt;
pub mod state;

use std::time::Duration;

use provisio_sdk::blueprints::{ListParams, Listed, Listing, State as BlueprintState};
use provisio_sdk::{ConnectionTest, Context, ProviderEntry, ProviderError, UserMessage};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub use brokers::DemoBroker;
pub use certificates::DemoCertificates;
pub use coffee::DemoCoffee;
pub use databases::DemoDatabases;
pub use dns::DemoDns;
pub use domains::DemoDomains;
pub use goods::DemoGoods;
pub use hosting::{DemoHosting, LoginRefused, redeem_login};
pub use licenses::DemoLicenses;
pub use mqtt::DemoMqtt;

/// Every demo provider's registry entry.
pub fn entries() -> Vec<ProviderEntry> {
    use provisio_sdk::blueprints::*;
    vec![
        shared_hosting::entry::<DemoHosting>(),
        domain_names::entry::<DemoDomains>(),
        dns_hosting::entry::<DemoDns>(),
        databases::entry::<DemoDatabases>(),
        software_licenses::entry::<DemoLicenses>(),
        coffee::entry::<DemoCoffee>(),
        message_queues::entry::<DemoBroker>(),
        mqtt_hosting::entry::<DemoMqtt>(),
        ssl_certificates::entry::<DemoCertificates>(),
        physical_goods::entry::<DemoGoods>(),
    ]
}

/// The configuration of every demo provider. Every field has a default, so
/// `{}` is a working configuration.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DemoConfig {
    /// The SQLite file that holds the simulated servers' state.
    #[schemars(length(min = 1), extend("x-endpoint" = true))]
    pub state_path: String,
    /// The simulated server's name: configurations with different names are
    /// different servers with separate services.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9][a-z0-9-]*$"), extend("x-endpoint" = true))]
    pub server: String,
    /// API key. When set, the simulated server requires it: the first key a
    /// fresh server sees becomes its key.
    #[schemars(extend("x-secret" = true, "writeOnly" = true))]
    pub api_key: Option<String>,
    /// Simulated latency of every call, milliseconds (half before the
    /// change is made, half after).
    #[schemars(range(max = 600000))]
    pub latency_ms: u64,
    /// Share of calls that fail `transient` before doing anything (0 to 1).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub transient_rate: f64,
    /// Share of changing calls that answer `outcome_unknown` (0 to 1); half
    /// of those did make the change.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub outcome_unknown_rate: f64,
    /// Packages the simulated server offers.
    #[schemars(length(min = 1))]
    pub packages: Vec<String>,
    /// The simulated panel's login page: login links are
    /// `<panel_url>?server=…&session=…`, and [`redeem_login`] is what that
    /// page does. Default: `https://<server>.demo.provisio.invalid:2083/login/`.
    #[serde(default)]
    #[schemars(extend("x-endpoint" = true, "format" = "uri"))]
    pub panel_url: Option<String>,
    /// How long login links stay valid, seconds.
    #[schemars(range(min = 1, max = 86400))]
    pub login_ttl_secs: u32,
    /// How long a domain transfer or a brew takes, seconds.
    #[schemars(range(max = 86400))]
    pub operation_secs: u32,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            state_path: "provisio-demo.sqlite".into(),
            server: "demo1".into(),
            api_key: None,
            latency_ms: 0,
            transient_rate: 0.0,
            outcome_unknown_rate: 0.0,
            packages: vec!["basic".into(), "standard".into(), "premium".into()],
            panel_url: None,
            login_ttl_secs: 300,
            operation_secs: 5,
        }
    }
}

/// What every demo provider shares: its configuration and state.
#[derive(Debug, Clone)]
struct Demo {
    config: DemoConfig,
    state: state::State,
}

/// Whether a call changes anything (decides which failures it can see).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Reads,
    Changes,
}

impl Demo {
    async fn open(config: DemoConfig, blueprint: &'static str) -> Result<Demo, ProviderError> {
        let state = state::State::open(&config.state_path, blueprint, &config.server).await?;
        Ok(Demo { config, state })
    }

    fn hostname(&self) -> String {
        format!("{}.demo.provisio.invalid", self.config.server)
    }

    /// Runs one simulated API call: authentication, latency and injected
    /// failures around the real work.
    async fn around<T>(
        &self,
        cx: &Context,
        effect: Effect,
        work: impl Future<Output = Result<T, ProviderError>>,
    ) -> Result<T, ProviderError> {
        self.authenticate().await?;
        // What the server was asked, whatever it then did: tests count
        // these to prove nothing was sent twice.
        if effect == Effect::Changes {
            self.state.count_call(cx.function()).await?;
        }
        let half = Duration::from_millis(self.config.latency_ms / 2);
        tokio::time::sleep(half).await;
        if fastrand::f64() < self.config.transient_rate {
            return Err(ProviderError::transient("The server is busy; try again later")
                .with_debug("simulated", "transient failure before the request was handled"));
        }
        let unknown = effect == Effect::Changes && fastrand::f64() < self.config.outcome_unknown_rate;
        if unknown && fastrand::bool() {
            return Err(ProviderError::outcome_unknown("The connection to the server was lost")
                .with_debug("simulated", "outcome_unknown; the change was NOT made"));
        }
        let result = work.await;
        tokio::time::sleep(half).await;
        if unknown {
            return Err(ProviderError::outcome_unknown("The connection to the server was lost")
                .with_debug("simulated", "outcome_unknown; the change WAS made"));
        }
        result
    }

    async fn authenticate(&self) -> Result<(), ProviderError> {
        if self.state.check_api_key(self.config.api_key.as_deref()).await? {
            return Ok(());
        }
        // Like many vendors, the simulator echoes what it received; the SDK
        // must redact it before anyone sees it.
        Err(ProviderError::provider("Authentication failed: the API key was rejected").with_debug(
            "response",
            json!({
                "error": "invalid_api_key",
                "received_authorization": format!("Bearer {}", self.config.api_key.as_deref().unwrap_or("")),
            }),
        ))
    }

    async fn test_connection(&self) -> Result<ConnectionTest, ProviderError> {
        self.authenticate().await?;
        Ok(ConnectionTest {
            message: format!("Connected to simulated server {} and authenticated", self.config.server),
            details: json!({ "server": self.config.server, "services": self.state.count().await?,
                             "state_path": self.config.state_path }),
        })
    }

    /// Reads a service (`not_found` with `missing` if absent, `conflict` if
    /// another service's).
    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        cx: &Context,
        identifier: &str,
        missing: &str,
    ) -> Result<T, ProviderError> {
        self.around(cx, Effect::Reads, async {
            match self.state.get_owned(cx, identifier).await? {
                Some(record) => typed(record.data),
                None => Err(ProviderError::not_found(UserMessage::new(missing))),
            }
        })
        .await
    }

    /// Changes a service's document (`not_found` with `missing` if absent).
    async fn change<T: serde::de::DeserializeOwned>(
        &self,
        cx: &Context,
        identifier: &str,
        missing: &str,
        change: impl FnOnce(&mut serde_json::Value, &state::Record) -> Result<(), ProviderError>,
    ) -> Result<T, ProviderError> {
        self.around(cx, Effect::Changes, async { typed(self.state.update(cx, identifier, missing, change).await?) })
            .await
    }

    /// Removes a service (`not_found` with `missing` if absent).
    async fn remove(
        &self,
        cx: &Context,
        identifier: &str,
        missing: &str,
    ) -> Result<provisio_sdk::Empty, ProviderError> {
        self.around(cx, Effect::Changes, async {
            self.state.delete(cx, identifier, missing).await?;
            Ok(provisio_sdk::Empty {})
        })
        .await
    }

    /// One page of what the simulated server holds, for import (its e-mail
    /// from the document's `email`, where it has one).
    async fn list(&self, cx: &Context, params: ListParams) -> Result<Listing, ProviderError> {
        self.around(cx, Effect::Reads, async {
            let fetched = self.state.page(params.cursor.as_deref(), params.fetch()).await?;
            let (page, next_cursor) = params.cut(fetched, |(identifier, _)| identifier.as_str());
            let resources = page
                .into_iter()
                .map(|(identifier, record)| {
                    let state = record.data.get("state").cloned().and_then(|s| serde_json::from_value(s).ok());
                    let email = record.data.get("email").and_then(|e| e.as_str()).map(str::to_owned);
                    let mut data = Listed::data_of(&record.data);
                    data.remove("login_session");
                    Listed {
                        identifier,
                        state: state.unwrap_or(BlueprintState::Active),
                        owner_mark: record.owner,
                        refused: None,
                        email,
                        data,
                    }
                })
                .collect();
            Ok(Listing { resources, next_cursor, total: Some(self.state.count().await?.max(0) as u64) })
        })
        .await
    }

    /// Marks a service made outside Provisio as the caller's (see [`state::State::adopt`]).
    async fn adopt<T: serde::de::DeserializeOwned>(
        &self,
        cx: &Context,
        identifier: &str,
        missing: &str,
    ) -> Result<T, ProviderError> {
        self.around(cx, Effect::Changes, async { typed(self.state.adopt(cx, identifier, missing).await?) }).await
    }

    fn check_package(&self, package: &str) -> Result<(), ProviderError> {
        if self.config.packages.iter().any(|p| p == package) {
            return Ok(());
        }
        Err(ProviderError::provider(UserMessage::new(format!(
            "Package {package} does not exist on this server (available: {})",
            self.config.packages.join(", ")
        ))))
    }
}

/// A random token of lowercase letters and digits.
fn token(len: usize) -> String {
    std::iter::repeat_with(fastrand::alphanumeric).take(len).collect::<String>().to_ascii_lowercase()
}

/// A random password that satisfies the SDK's password rules.
fn generate_password() -> String {
    provisio_sdk::formats::generate_password(20)
}

/// Converts a stored document into a typed result.
fn typed<T: serde::de::DeserializeOwned>(data: serde_json::Value) -> Result<T, ProviderError> {
    serde_json::from_value(data).map_err(|err| ProviderError::internal(format!("demo state does not decode: {err}")))
}

/// Implements [`provisio_sdk::Provider`] for a demo provider.
macro_rules! demo_provider {
    ($ty:ident, $blueprint:literal, $name:literal, $description:literal) => {
        #[doc = $description]
        #[derive(Debug, Clone)]
        pub struct $ty(crate::Demo);

        impl provisio_sdk::Provider for $ty {
            type Config = crate::DemoConfig;

            fn about() -> provisio_sdk::ProviderAbout {
                provisio_sdk::ProviderAbout {
                    id: "demo".into(),
                    name: $name.into(),
                    description: $description.into(),
                    logo_url: None,
                }
            }

            async fn new(config: crate::DemoConfig) -> Result<Self, provisio_sdk::ProviderError> {
                Ok($ty(crate::Demo::open(config, $blueprint).await?))
            }

            async fn test_connection(
                &self,
                _cx: &provisio_sdk::Context,
            ) -> Result<provisio_sdk::ConnectionTest, provisio_sdk::ProviderError> {
                self.0.test_connection().await
            }
        }
    };
}
pub(crate) use demo_provider;

/// The caller's idempotency key, bound to what a create makes so a retry finds it.
fn key_of(cx: &Context) -> Option<&str> {
    cx.idempotency_key()
}
