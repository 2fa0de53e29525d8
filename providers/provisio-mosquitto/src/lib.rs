//! `mqtt-hosting/mosquitto`: broker accounts on Mosquitto 2, through its
//! dynamic security plugin, which is itself driven over MQTT: commands are
//! published to `$CONTROL/dynamic-security/v1` and answered on
//! `…/response` (matched by `correlationData`).
//!
//! - create: a role `pv_USER` with publish and subscribe ACLs on
//!   `PREFIX/#`, and a client `USER` holding it (its description records the
//!   prefix, its `textname` the service's owner mark);
//! - suspend: `disableClient` (the broker drops and refuses its
//!   connections); unsuspend: `enableClient`;
//! - terminate: `deleteClient`, `deleteRole`.
//!
//! Every function acts only on a client whose `textname` is the caller's owner mark.

use std::sync::Arc;
use std::time::{Duration, Instant};

use provisio_sdk::blueprints::mqtt_hosting::*;
use provisio_sdk::blueprints::{ListParams, Listed, Listing, State};
use provisio_sdk::formats::{DbIdentifier, generate_password};
use provisio_sdk::http::HttpExchange;
use provisio_sdk::tls::TlsMode;
use provisio_sdk::{ConnectionTest, Context, Empty, Provider, ProviderAbout, ProviderError, UserMessage};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The registry entry.
pub fn entry() -> provisio_sdk::ProviderEntry {
    provisio_sdk::blueprints::mqtt_hosting::entry::<Mosquitto>()
}

/// MQTT over TLS.
fn default_port() -> u16 {
    8883
}

/// How to reach the broker, as an account with the dynamic security admin role.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MosquittoConfig {
    /// Broker host name or address.
    #[schemars(length(min = 1, max = 253), extend("x-endpoint" = true))]
    pub host: String,
    /// Broker port (8883, MQTT over TLS; 1883 is the usual plain port).
    #[serde(default = "default_port")]
    #[schemars(extend("x-endpoint" = true))]
    pub port: u16,
    /// TLS to the broker: `verify` (required; the certificate and host name are
    /// checked against `ca_cert_pem`, or the system's roots when absent) or
    /// `disabled` (passwords cross the network in clear).
    #[serde(default)]
    #[schemars(extend("x-endpoint" = true))]
    pub tls: TlsMode,
    /// The certificate (PEM) of the CA that signed the broker's certificate.
    #[serde(default)]
    #[schemars(length(min = 1, max = 65536), extend("x-endpoint" = true))]
    pub ca_cert_pem: Option<String>,
    /// Account with the dynamic security admin role.
    #[schemars(length(min = 1, max = 255))]
    pub username: String,
    /// Its password.
    #[schemars(extend("x-secret" = true, "writeOnly" = true))]
    pub password: String,
    /// Host name devices connect to (defaults to `host`).
    #[serde(default)]
    pub client_host: Option<String>,
    /// Topic prefixes no account may overlap (the coffee machines' `coffee/...`
    /// when they share the broker).
    #[serde(default = "default_reserved_prefixes")]
    pub reserved_prefixes: Vec<String>,
}

fn default_reserved_prefixes() -> Vec<String> {
    RESERVED_PREFIXES.iter().map(|p| (*p).to_owned()).collect()
}

/// The Mosquitto provider for one broker.
#[derive(Debug)]
pub struct Mosquitto {
    config: MosquittoConfig,
    /// The verifying TLS configuration, unless TLS is disabled.
    tls: Option<Arc<rumqttc::tokio_rustls::rustls::ClientConfig>>,
}

const CONTROL: &str = "$CONTROL/dynamic-security/v1";

/// What a TLS failure tells the client.
const TLS_FAILED: &str = "TLS to the broker failed: it offers no TLS there, or its certificate is not trusted or names another host \
     (see tls and ca_cert_pem)";
const PREFIX_MARK: &str = "provisio prefix=";

fn role_of(username: &str) -> String {
    format!("pv_{username}")
}

impl Mosquitto {
    /// Sends one dynamic security command and answers its response's data,
    /// or its error text.
    async fn command(&self, cx: &Context, command: Value) -> Result<Result<Value, String>, ProviderError> {
        let correlation = format!("pv-{}", generate_password(12));
        let mut command = command;
        command["correlationData"] = json!(correlation);
        let body = json!({"commands": [command.clone()]});
        let started = Instant::now();
        let outcome = tokio::time::timeout(cx.remaining(), self.exchange(&body, &correlation)).await;
        // The log shows the command with its password fields masked.
        let mut shown = body.clone();
        provisio_sdk::redact::redact_keys(&mut shown);
        let (response, error) = match &outcome {
            Ok(Ok(response)) => (Some(response.to_string()), None),
            Ok(Err(err)) => (None, Some(err.to_string())),
            Err(_) => (None, Some("deadline exceeded".to_owned())),
        };
        cx.record(HttpExchange {
            request_body: Some(shown.to_string()),
            response_body: response,
            error,
            ..HttpExchange::other(
                "MQTT PUBLISH",
                &format!("mqtt://{}:{}/{CONTROL}", self.config.host, self.config.port),
                started,
            )
        });
        let reads = matches!(command["command"].as_str(), Some("getClient" | "listClients" | "getRole"));
        let response = match outcome {
            Ok(result) => result.map_err(|err| self.classify(err, reads))?,
            Err(_) if reads => return Err(ProviderError::transient("The broker did not answer in time")),
            Err(_) => {
                return Err(ProviderError::outcome_unknown(
                    "The broker did not answer in time; the change may have been made",
                ));
            }
        };
        Ok(match response["error"].as_str() {
            Some(error) => Err(error.to_owned()),
            None => Ok(response["data"].clone()),
        })
    }

    fn classify(&self, err: ConnectionError, reads: bool) -> ProviderError {
        let debug = err.to_string();
        let error = match &err {
            ConnectionError::ConnectionRefused(
                ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized,
            ) => ProviderError::provider("The broker rejected the administrative credentials"),
            // Nothing was sent: a setting to fix, not a fault to retry.
            ConnectionError::Tls(_) => ProviderError::provider(TLS_FAILED),
            ConnectionError::Io(io) if provisio_sdk::tls::is_tls_failure(io) => ProviderError::provider(TLS_FAILED),
            ConnectionError::Io(_) | ConnectionError::NetworkTimeout => {
                ProviderError::transient("The broker could not be reached")
            }
            _ if reads => ProviderError::transient("The connection to the broker failed"),
            _ => ProviderError::outcome_unknown("The connection to the broker failed; the change may have been made"),
        };
        error.with_debug("mqtt", debug)
    }

    /// Connects, subscribes to the responses, publishes the command and
    /// waits for the response with the same correlation data.
    async fn exchange(&self, body: &Value, correlation: &str) -> Result<Value, ConnectionError> {
        let mut options = MqttOptions::new(format!("provisio-{correlation}"), &self.config.host, self.config.port);
        options.set_credentials(&self.config.username, &self.config.password);
        if let Some(tls) = &self.tls {
            options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls.clone())));
        }
        options.set_keep_alive(Duration::from_secs(10));
        options.set_clean_session(true);
        let (client, mut events) = AsyncClient::new(options, 10);
        let response_topic = format!("{CONTROL}/response");
        let mut sent = false;
        loop {
            match events.poll().await? {
                Event::Incoming(Packet::ConnAck(_)) => {
                    client
                        .subscribe(&response_topic, QoS::AtLeastOnce)
                        .await
                        .map_err(|_| ConnectionError::RequestsDone)?;
                }
                Event::Incoming(Packet::SubAck(_)) if !sent => {
                    client
                        .publish(CONTROL, QoS::AtLeastOnce, false, body.to_string())
                        .await
                        .map_err(|_| ConnectionError::RequestsDone)?;
                    sent = true;
                }
                Event::Incoming(Packet::Publish(publish)) if publish.topic == response_topic => {
                    let answer: Value = serde_json::from_slice(&publish.payload).unwrap_or(Value::Null);
                    let found = answer["responses"]
                        .as_array()
                        .and_then(|all| all.iter().find(|r| r["correlationData"] == json!(correlation)).cloned());
                    if let Some(found) = found {
                        let _ = client.disconnect().await;
                        return Ok(found);
                    }
                }
                _ => {}
            }
        }
    }

    /// The account, if it exists and this call may act on it: one whose
    /// `textname` is another owner mark (or none) is `conflict`.
    async fn info(&self, cx: &Context, username: &DbIdentifier) -> Result<Option<MqttInfo>, ProviderError> {
        let data = match self.command(cx, json!({"command": "getClient", "username": username.as_str()})).await? {
            Ok(data) => data,
            Err(error) if error.contains("not found") => return Ok(None),
            Err(error) => {
                return Err(ProviderError::provider(UserMessage::new(format!("The broker refused: {error}"))));
            }
        };
        let client = &data["client"];
        let description = client["textdescription"].as_str().unwrap_or_default();
        let Some(prefix) = description.strip_prefix(PREFIX_MARK) else {
            return Err(ProviderError::conflict(UserMessage::new(format!(
                "Account {username} exists on this broker but was not made by Provisio"
            ))));
        };
        let mark = client["textname"].as_str().filter(|m| !m.is_empty());
        cx.check_owner(&format!("Account {username}"), mark)?;
        Ok(Some(MqttInfo {
            username: username.clone(),
            topic_prefix: prefix.to_owned(),
            host: self.config.client_host.clone().unwrap_or_else(|| self.config.host.clone()),
            port: self.config.port,
            state: if client["disabled"].as_bool().unwrap_or(false) { State::Suspended } else { State::Active },
            password: None,
        }))
    }

    async fn require(&self, cx: &Context, username: &DbIdentifier) -> Result<MqttInfo, ProviderError> {
        self.info(cx, username).await?.ok_or_else(|| {
            ProviderError::not_found(UserMessage::new(format!("Account {username} does not exist on this broker")))
        })
    }

    /// Every client of the broker, with its roles and groups.
    async fn clients(&self, cx: &Context) -> Result<Vec<Value>, ProviderError> {
        let listed = match self.command(cx, json!({"command": "listClients", "verbose": true, "count": -1})).await? {
            Ok(data) => data,
            Err(error) => {
                return Err(ProviderError::provider(UserMessage::new(format!("The broker refused: {error}"))));
            }
        };
        let mut clients: Vec<Value> = listed["clients"].as_array().cloned().unwrap_or_default();
        clients.retain(|c| c["username"].is_string());
        Ok(clients)
    }

    /// Whether an unmarked client may become a service, or why not: it must
    /// be shaped as `create` makes them (its description records its topic
    /// prefix; its only role is its own, granting that prefix and nothing
    /// else; no group), and its prefix may overlap no other account's and no
    /// reserved one, so the client reaches its own topics alone.
    async fn adoptable(
        &self,
        cx: &Context,
        client: &Value,
        all: &[Value],
    ) -> Result<Result<(), String>, ProviderError> {
        let username = client["username"].as_str().unwrap_or_default();
        if username == self.config.username {
            return Ok(Err("it is the administrative account".into()));
        }
        if DbIdentifier::parse(username).is_err() {
            return Ok(Err("its name is not one Provisio manages".into()));
        }
        let Some(prefix) = client["textdescription"].as_str().and_then(|d| d.strip_prefix(PREFIX_MARK)) else {
            return Ok(Err("it was not made with a topic prefix of its own".into()));
        };
        let role = role_of(username);
        let roles: Vec<&str> =
            client["roles"].as_array().into_iter().flatten().filter_map(|r| r["rolename"].as_str()).collect();
        let groups = client["groups"].as_array().is_some_and(|g| !g.is_empty());
        if roles != [role.as_str()] || groups {
            return Ok(Err(format!("it holds roles or groups beyond its own role {role}")));
        }
        let granted = match self.command(cx, json!({"command": "getRole", "rolename": role})).await? {
            Ok(data) => data,
            Err(error) => return Ok(Err(format!("its role {role} cannot be read: {error}"))),
        };
        let topic = format!("{prefix}/#");
        let Some(acls) = granted["role"]["acls"].as_array() else {
            return Ok(Err(format!("its role {role} answered no ACLs")));
        };
        if acls.iter().any(|acl| acl["topic"].as_str() != Some(topic.as_str())) {
            return Ok(Err(format!("its role {role} grants topics beyond {topic}")));
        }
        let taken = all.iter().filter_map(|other| {
            let account = other["username"].as_str()?;
            let theirs = other["textdescription"].as_str()?.strip_prefix(PREFIX_MARK)?;
            (account != username).then_some((account, theirs))
        });
        if let Some(refused) = prefix_refusal(prefix, &self.config.reserved_prefixes, taken) {
            return Ok(Err(refused.message().as_str().to_owned()));
        }
        Ok(Ok(()))
    }

    /// Runs a changing command; its error text becomes a provider error.
    async fn change(&self, cx: &Context, command: Value) -> Result<(), ProviderError> {
        self.command(cx, command)
            .await?
            .map(|_| ())
            .map_err(|error| ProviderError::provider(UserMessage::new(format!("The broker refused: {error}"))))
    }
}

impl Provider for Mosquitto {
    type Config = MosquittoConfig;

    fn about() -> ProviderAbout {
        ProviderAbout {
            id: "mosquitto".into(),
            name: "Eclipse Mosquitto".into(),
            description: "Accounts limited to a topic prefix, through Mosquitto's dynamic security plugin.".into(),
            logo_url: Some("https://mosquitto.org/images/mosquitto-text-side-28.png".into()),
        }
    }

    async fn new(config: MosquittoConfig) -> Result<Self, ProviderError> {
        let tls = match config.tls {
            TlsMode::Verify => Some(Arc::new(provisio_sdk::tls::client_config(config.ca_cert_pem.as_deref())?)),
            TlsMode::Disabled => None,
        };
        Ok(Mosquitto { config, tls })
    }

    async fn test_connection(&self, cx: &Context) -> Result<ConnectionTest, ProviderError> {
        let listed = self.command(cx, json!({"command": "listClients", "count": -1})).await.map_err(|err| {
            if err.kind() == provisio_sdk::ErrorKind::Transient && err.message().as_str().contains("in time") {
                // Connected, but nobody answered on the control topic.
                ProviderError::provider(
                    "Connected, but the dynamic security plugin did not answer: is it loaded, and does the account have its admin role?",
                )
            } else {
                err
            }
        })?;
        let data = listed
            .map_err(|error| ProviderError::provider(UserMessage::new(format!("The broker refused: {error}"))))?;
        Ok(ConnectionTest {
            message: format!(
                "Connected to the broker as {} with dynamic security administration",
                self.config.username
            ),
            details: json!({"clients": data["totalCount"]}),
        })
    }
}

impl MqttHosting for Mosquitto {
    async fn create(&self, cx: &Context, params: CreateMqttParams) -> Result<MqttInfo, ProviderError> {
        let username = &params.username;
        let prefix = params.topic_prefix.clone().unwrap_or_else(|| username.to_string());
        // An existing account is answered only if it carries this call's
        // owner mark (`info` checks it), and adopted only if it matches.
        if let Some(existing) = self.info(cx, username).await? {
            if existing.topic_prefix == prefix {
                return Ok(existing);
            }
            return Err(ProviderError::conflict(UserMessage::new(format!(
                "Account {username} already exists on this broker with another prefix"
            ))));
        }
        // Another account's prefix inside (or around) this one would share its messages.
        let listed = match self.command(cx, json!({"command": "listClients", "verbose": true})).await? {
            Ok(data) => data,
            Err(error) => {
                return Err(ProviderError::provider(UserMessage::new(format!("The broker refused: {error}"))));
            }
        };
        let clients = listed["clients"].as_array().cloned().unwrap_or_default();
        let taken = clients.iter().filter_map(|client| {
            let account = client["username"].as_str()?;
            let theirs = client["textdescription"].as_str()?.strip_prefix(PREFIX_MARK)?;
            (account != username.as_str()).then_some((account, theirs))
        });
        if let Some(refused) = prefix_refusal(&prefix, &self.config.reserved_prefixes, taken) {
            return Err(refused);
        }
        let role = role_of(username.as_str());
        let topic = format!("{prefix}/#");
        let acls: Vec<Value> = ["publishClientSend", "publishClientReceive", "subscribePattern", "unsubscribePattern"]
            .iter()
            .map(|acltype| json!({"acltype": acltype, "topic": topic, "priority": 0, "allow": true}))
            .collect();
        // A role left over from an interrupted create is reused.
        let _ = self.command(cx, json!({"command": "createRole", "rolename": role, "acls": acls})).await?;
        let generated = params.password.is_none().then(|| generate_password(24));
        let password =
            params.password.as_ref().map(|p| p.expose().to_owned()).or(generated.clone()).expect("one is set");
        let mut create = json!({"command": "createClient", "username": username.as_str(), "password": password,
                                "textdescription": format!("{PREFIX_MARK}{prefix}"), "roles": [{"rolename": role}]});
        if let Some(owner) = cx.owner() {
            create["textname"] = json!(owner);
        }
        self.change(cx, create).await?;
        let mut info = self.require(cx, username).await?;
        info.password = generated;
        Ok(info)
    }

    /// Every client of the broker by username, each with its `textname` as
    /// the owner mark. Only one shaped as Provisio makes them can be
    /// adopted (see `adoptable`): for any other the prefix is unknown.
    async fn list(&self, cx: &Context, params: ListParams) -> Result<Listing, ProviderError> {
        let clients = self.clients(cx).await?;
        let (page, next_cursor, total) = params.page(clients.clone(), |c| c["username"].as_str().unwrap_or_default());
        let mut resources = Vec::with_capacity(page.len());
        for client in &page {
            let username = client["username"].as_str().unwrap_or_default().to_owned();
            let owner_mark = client["textname"].as_str().filter(|m| !m.is_empty()).map(str::to_owned);
            let prefix = client["textdescription"].as_str().and_then(|d| d.strip_prefix(PREFIX_MARK));
            let refused = match owner_mark {
                Some(_) => None,
                None => self.adoptable(cx, client, &clients).await?.err(),
            };
            let mut data = serde_json::Map::new();
            if let Some(prefix) = prefix {
                data.insert("topic_prefix".into(), json!(prefix));
            }
            resources.push(Listed {
                state: if client["disabled"].as_bool().unwrap_or(false) { State::Suspended } else { State::Active },
                owner_mark,
                refused,
                email: None,
                data,
                identifier: username,
            });
        }
        Ok(Listing { resources, next_cursor, total: Some(total) })
    }

    /// Writes the service's mark as the client's `textname`, after the
    /// checks of `adoptable`. Mosquitto has no conditional change: of two
    /// imports racing through two configurations, both may write, and the
    /// one whose mark is overwritten finds every later call `conflict`.
    async fn adopt(&self, cx: &Context, params: MqttRef) -> Result<MqttInfo, ProviderError> {
        let username = &params.username;
        let what = format!("Account {username}");
        let clients = self.clients(cx).await?;
        let Some(client) = clients.iter().find(|c| c["username"].as_str() == Some(username.as_str())) else {
            return Err(ProviderError::not_found(UserMessage::new(format!(
                "Account {username} does not exist on this broker"
            ))));
        };
        let marked = client["textname"].as_str().filter(|m| !m.is_empty());
        if let Some(mark) = cx.adoption(&what, marked)? {
            if let Err(why) = self.adoptable(cx, client, &clients).await? {
                return Err(ProviderError::conflict(UserMessage::new(format!("{what} cannot be adopted: {why}"))));
            }
            let modify = json!({"command": "modifyClient", "username": username.as_str(), "textname": mark});
            self.change(cx, modify).await?;
        }
        self.require(cx, username).await
    }

    async fn get_info(&self, cx: &Context, params: MqttRef) -> Result<MqttInfo, ProviderError> {
        self.require(cx, &params.username).await
    }

    async fn suspend(&self, cx: &Context, params: SuspendMqttParams) -> Result<MqttInfo, ProviderError> {
        self.require(cx, &params.username).await?;
        self.change(cx, json!({"command": "disableClient", "username": params.username.as_str()})).await?;
        self.require(cx, &params.username).await
    }

    async fn unsuspend(&self, cx: &Context, params: MqttRef) -> Result<MqttInfo, ProviderError> {
        self.require(cx, &params.username).await?;
        self.change(cx, json!({"command": "enableClient", "username": params.username.as_str()})).await?;
        self.require(cx, &params.username).await
    }

    async fn terminate(&self, cx: &Context, params: MqttRef) -> Result<Empty, ProviderError> {
        self.require(cx, &params.username).await?;
        self.change(cx, json!({"command": "deleteClient", "username": params.username.as_str()})).await?;
        let _ =
            self.command(cx, json!({"command": "deleteRole", "rolename": role_of(params.username.as_str())})).await?;
        Ok(Empty {})
    }

    async fn change_password(
        &self,
        cx: &Context,
        params: ChangeMqttPasswordParams,
    ) -> Result<MqttCredentials, ProviderError> {
        self.require(cx, &params.username).await?;
        let password = match &params.password {
            Some(password) => password.expose().to_owned(),
            None => generate_password(24),
        };
        self.change(
            cx,
            json!({"command": "setClientPassword", "username": params.username.as_str(), "password": password}),
        )
        .await?;
        Ok(MqttCredentials { username: params.username, password })
    }
}
