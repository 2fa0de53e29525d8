//! `message-queues/rabbitmq`: virtual hosts and their owner users on a
//! RabbitMQ server, through the management plugin's HTTP API.
//!
//! - create: `PUT /api/vhosts/{v}` (its description records the owner user,
//!   the service's owner mark and the package), `PUT /api/users/{u}`, `PUT /api/permissions/{v}/{u}` (all),
//!   `PUT /api/vhost-limits/{v}/max-connections|max-queues`;
//! - suspend: `DELETE /api/permissions/{v}/{u}` and the user's connections
//!   are closed; unsuspend grants again;
//! - terminate: `DELETE /api/users/{u}`, `DELETE /api/vhosts/{v}`.
//!
//! Every function acts only on a virtual host whose description carries the
//! caller's owner mark (`provisio owner=USER mark=MARK package=P`).

use provisio_sdk::blueprints::message_queues::*;
use provisio_sdk::blueprints::{ListParams, Listed, Listing, State, Units};
use provisio_sdk::formats::{DbIdentifier, generate_password};
use provisio_sdk::http::HttpResponse;
use provisio_sdk::{ConnectionTest, Context, Empty, Provider, ProviderAbout, ProviderError, UserMessage};
use reqwest::Method;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The registry entry.
pub fn entry() -> provisio_sdk::ProviderEntry {
    provisio_sdk::blueprints::message_queues::entry::<RabbitMq>()
}

fn default_amqp_port() -> u16 {
    5672
}

/// How to reach the management API, and what customers are told.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RabbitMqConfig {
    /// Base address of the management API, e.g. `http://127.0.0.1:15672`.
    #[schemars(length(min = 1), extend("format" = "url", "x-endpoint" = true))]
    pub api_url: String,
    /// Administrative user (tag `administrator`).
    #[schemars(length(min = 1, max = 255))]
    pub username: String,
    /// Its password.
    #[schemars(extend("x-secret" = true, "writeOnly" = true))]
    pub password: String,
    /// Host name customers connect to over AMQP.
    #[schemars(length(min = 1, max = 253))]
    pub amqp_host: String,
    /// AMQP port customers connect to.
    #[serde(default = "default_amqp_port")]
    pub amqp_port: u16,
}

/// The RabbitMQ provider for one server.
#[derive(Debug)]
pub struct RabbitMq {
    config: RabbitMqConfig,
}

const OWNER: &str = "provisio owner=";

/// A virtual host's description: its owner user, the service's owner mark
/// (if any) and the package (the rest, possibly empty).
fn description(user: &str, mark: Option<&str>, package: Option<&str>) -> String {
    let mark = mark.map(|m| format!(" mark={m}")).unwrap_or_default();
    format!("{OWNER}{user}{mark} package={}", package.unwrap_or_default())
}

/// The owner user, owner mark and package of a description Provisio wrote
/// (also one from before owner marks, without `mark=`); `None` for others.
fn parse_description(text: &str) -> Option<(&str, Option<&str>, Option<&str>)> {
    let rest = text.strip_prefix(OWNER)?;
    let (head, package) = rest.split_once(" package=").unwrap_or((rest, ""));
    let (user, mark) = match head.split_once(" mark=") {
        Some((user, mark)) => (user, Some(mark).filter(|m| !m.is_empty())),
        None => (head, None),
    };
    Some((user, mark, Some(package).filter(|p| !p.is_empty())))
}

/// Tags as the management API writes them: a list, or (older versions) one
/// comma-separated string.
fn tags_of(value: &Value) -> Vec<String> {
    match value {
        Value::Array(tags) => tags.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Value::String(tags) => tags.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

fn limits(package: Option<&str>) -> (Option<u32>, Option<u32>) {
    match package {
        Some("basic") => (Some(10), Some(50)),
        Some("standard") => (Some(50), Some(500)),
        Some("premium") => (Some(200), Some(5000)),
        _ => (None, None),
    }
}

impl RabbitMq {
    fn url(&self, path: &str) -> String {
        format!("{}/api{path}", self.config.api_url.trim_end_matches('/'))
    }

    async fn send(
        &self,
        cx: &Context,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<HttpResponse, ProviderError> {
        let mut request =
            cx.http().request(method, &self.url(path)).basic_auth(&self.config.username, Some(&self.config.password));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = cx.http().send(request).await?;
        match response.status.as_u16() {
            401 => Err(ProviderError::provider("The message broker rejected the administrative credentials")),
            403 => Err(ProviderError::provider("The administrative user lacks the administrator tag")),
            _ => Ok(response),
        }
    }

    async fn ok(
        &self,
        cx: &Context,
        method: Method,
        path: &str,
        body: Option<Value>,
        what: &str,
    ) -> Result<HttpResponse, ProviderError> {
        let response = self.send(cx, method, path, body).await?;
        response.error_for_status(&format!("The message broker could not {what}"))
    }

    /// The virtual host's owner, package and limits, if it exists and this
    /// call may act on it: one carrying another owner mark (or none) is `conflict`.
    async fn info(&self, cx: &Context, vhost: &DbIdentifier) -> Result<Option<BrokerInfo>, ProviderError> {
        let response = self.send(cx, Method::GET, &format!("/vhosts/{vhost}"), None).await?;
        if response.status.as_u16() == 404 {
            return Ok(None);
        }
        let found: Value = response.error_for_status("The message broker could not read the virtual host")?.json()?;
        // Top level in most versions, under `metadata` in some.
        let description =
            found["description"].as_str().or_else(|| found["metadata"]["description"].as_str()).unwrap_or_default();
        let Some((owner, mark, package)) = parse_description(description) else {
            return Err(ProviderError::conflict(UserMessage::new(format!(
                "Virtual host {vhost} exists on this broker but was not made by Provisio"
            ))));
        };
        cx.check_owner(&format!("Virtual host {vhost}"), mark)?;
        let package = package.map(str::to_owned);
        let username = DbIdentifier::parse(owner).map_err(ProviderError::internal)?;
        let permissions = self.send(cx, Method::GET, &format!("/permissions/{vhost}/{owner}"), None).await?;
        let state = if permissions.status.is_success() { State::Active } else { State::Suspended };
        let limits: Value =
            self.ok(cx, Method::GET, &format!("/vhost-limits/{vhost}"), None, "read the limits").await?.json()?;
        let limit = |name: &str| {
            limits
                .as_array()
                .and_then(|l| l.first())
                .and_then(|l| l["value"][name].as_u64())
                .and_then(|v| u32::try_from(v).ok())
        };
        Ok(Some(BrokerInfo {
            vhost: vhost.clone(),
            username,
            host: self.config.amqp_host.clone(),
            port: self.config.amqp_port,
            state,
            package_name: package,
            max_connections: limit("max-connections"),
            max_queues: limit("max-queues"),
            password: None,
        }))
    }

    async fn require(&self, cx: &Context, vhost: &DbIdentifier) -> Result<BrokerInfo, ProviderError> {
        self.info(cx, vhost).await?.ok_or_else(|| {
            ProviderError::not_found(UserMessage::new(format!("Virtual host {vhost} does not exist on this broker")))
        })
    }

    /// Who owns a virtual host that carries no mark (made by hand, or by
    /// Provisio before owner marks), and its package; or why no service may
    /// take it. Its owner is the user its description names, or else the one
    /// user (besides the administrative one) with permissions on it; that
    /// user must reach nothing else: no other virtual host, no tags
    /// (`administrator`, `management`…), no other user beside it here.
    async fn adoptable(
        &self,
        cx: &Context,
        vhost: &DbIdentifier,
        description: &str,
    ) -> Result<Result<(String, Option<String>), String>, ProviderError> {
        let described = parse_description(description);
        if described.is_none() && !description.trim().is_empty() {
            return Ok(Err("it has a description of its own, where Provisio would keep its owner mark".into()));
        }
        let permissions: Vec<Value> = self
            .ok(cx, Method::GET, &format!("/vhosts/{vhost}/permissions"), None, "read the permissions")
            .await?
            .json()?;
        let mut users: Vec<String> = permissions
            .iter()
            .filter_map(|p| p["user"].as_str())
            .filter(|user| *user != self.config.username)
            .map(str::to_owned)
            .collect();
        let (user, package) = match described {
            Some((user, _, package)) => {
                users.retain(|u| u != user);
                (user.to_owned(), package.map(str::to_owned))
            }
            None => match users.pop() {
                Some(user) => (user, None),
                None => return Ok(Err("no user has permissions on it".into())),
            },
        };
        if !users.is_empty() {
            return Ok(
                Err("other users have permissions on it; a service is one virtual host and its own user".into()),
            );
        }
        if DbIdentifier::parse(&user).is_err() {
            return Ok(Err(format!("its user {user} is not one Provisio manages")));
        }
        let response = self.send(cx, Method::GET, &format!("/users/{user}"), None).await?;
        if response.status.as_u16() == 404 {
            return Ok(Err(format!("its user {user} does not exist")));
        }
        let found: Value = response.error_for_status("The message broker could not read the user")?.json()?;
        let tags = tags_of(&found["tags"]);
        if !tags.is_empty() {
            return Ok(Err(format!(
                "its user {user} has the tags {}, which reach beyond one virtual host",
                tags.join(", ")
            )));
        }
        let reach: Vec<Value> = self
            .ok(cx, Method::GET, &format!("/users/{user}/permissions"), None, "read the user's permissions")
            .await?
            .json()?;
        if reach.iter().any(|p| p["vhost"].as_str() != Some(vhost.as_str())) {
            return Ok(Err(format!("its user {user} also has permissions on other virtual hosts")));
        }
        Ok(Ok((user, package)))
    }

    async fn grant(&self, cx: &Context, vhost: &DbIdentifier, user: &DbIdentifier) -> Result<(), ProviderError> {
        let all = json!({"configure": ".*", "write": ".*", "read": ".*"});
        self.ok(cx, Method::PUT, &format!("/permissions/{vhost}/{user}"), Some(all), "grant the permissions").await?;
        Ok(())
    }
}

impl Provider for RabbitMq {
    type Config = RabbitMqConfig;

    fn about() -> ProviderAbout {
        ProviderAbout {
            id: "rabbitmq".into(),
            name: "RabbitMQ".into(),
            description: "Virtual hosts and their owner users on RabbitMQ, through the management API.".into(),
            logo_url: Some("https://www.rabbitmq.com/img/rabbitmq-logo.svg".into()),
        }
    }

    async fn new(config: RabbitMqConfig) -> Result<Self, ProviderError> {
        Ok(RabbitMq { config })
    }

    async fn test_connection(&self, cx: &Context) -> Result<ConnectionTest, ProviderError> {
        let whoami: Value = self.ok(cx, Method::GET, "/whoami", None, "say who we are").await?.json()?;
        let tags = match &whoami["tags"] {
            Value::Array(tags) => tags.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","),
            Value::String(tags) => tags.clone(),
            _ => String::new(),
        };
        if !tags.contains("administrator") {
            return Err(ProviderError::provider(UserMessage::new(format!(
                "Connected as {}, but the user lacks the administrator tag",
                self.config.username
            ))));
        }
        let overview: Value = self.ok(cx, Method::GET, "/overview", None, "describe itself").await?.json()?;
        let version = overview["rabbitmq_version"].as_str().unwrap_or("unknown").to_owned();
        Ok(ConnectionTest {
            message: format!("Connected to RabbitMQ {version} as administrator {}", self.config.username),
            details: json!({"version": version}),
        })
    }
}

impl MessageQueues for RabbitMq {
    async fn create(&self, cx: &Context, params: CreateBrokerParams) -> Result<BrokerInfo, ProviderError> {
        let vhost = &params.vhost;
        let username = params.username.clone().unwrap_or_else(|| vhost.clone());
        // An existing virtual host is answered only if it carries this call's
        // owner mark (`info` checks it), and adopted only if it matches.
        if let Some(existing) = self.info(cx, vhost).await? {
            if existing.username == username {
                return Ok(existing);
            }
            return Err(ProviderError::conflict(UserMessage::new(format!(
                "Virtual host {vhost} already exists on this broker with another owner"
            ))));
        }
        if self.send(cx, Method::GET, &format!("/users/{username}"), None).await?.status.is_success() {
            return Err(ProviderError::conflict(UserMessage::new(format!(
                "User {username} already exists on this broker"
            ))));
        }
        let description = description(username.as_str(), cx.owner(), params.package_name.as_deref());
        self.ok(
            cx,
            Method::PUT,
            &format!("/vhosts/{vhost}"),
            Some(json!({"description": description, "tags": "provisio"})),
            "create the virtual host",
        )
        .await?;
        let generated = params.password.is_none().then(|| generate_password(24));
        let password =
            params.password.as_ref().map(|p| p.expose().to_owned()).or(generated.clone()).expect("one is set");
        let made = async {
            self.ok(
                cx,
                Method::PUT,
                &format!("/users/{username}"),
                Some(json!({"password": password, "tags": ""})),
                "create the user",
            )
            .await?;
            self.grant(cx, vhost, &username).await?;
            let (connections, queues) = limits(params.package_name.as_deref());
            for (name, value) in [
                ("max-connections", params.max_connections.or(connections)),
                ("max-queues", params.max_queues.or(queues)),
            ] {
                if let Some(value) = value {
                    self.ok(
                        cx,
                        Method::PUT,
                        &format!("/vhost-limits/{vhost}/{name}"),
                        Some(json!({"value": value})),
                        "set a limit",
                    )
                    .await?;
                }
            }
            Ok::<_, ProviderError>(())
        }
        .await;
        if let Err(err) = made {
            // Leave nothing half made.
            let _ = self.send(cx, Method::DELETE, &format!("/users/{username}"), None).await;
            let _ = self.send(cx, Method::DELETE, &format!("/vhosts/{vhost}"), None).await;
            return Err(err);
        }
        let mut info = self.require(cx, vhost).await?;
        info.password = generated;
        Ok(info)
    }

    /// Every virtual host by name. One Provisio made carries its mark in
    /// its description; one made by hand is adoptable when exactly one user
    /// (not the administrative one) has permissions on it: that user is its owner.
    async fn list(&self, cx: &Context, params: ListParams) -> Result<Listing, ProviderError> {
        let all: Vec<Value> = self.ok(cx, Method::GET, "/vhosts", None, "list the virtual hosts").await?.json()?;
        let named: Vec<(String, String)> = all
            .iter()
            .filter_map(|v| {
                let name = v["name"].as_str()?.to_owned();
                let description = v["description"].as_str().or_else(|| v["metadata"]["description"].as_str());
                Some((name, description.unwrap_or_default().to_owned()))
            })
            .collect();
        let (page, next_cursor, total) = params.page(named, |(name, _)| name.as_str());
        let mut resources = Vec::new();
        for (name, description) in page {
            let mut listed = Listed {
                identifier: name.clone(),
                state: State::Active,
                owner_mark: None,
                refused: None,
                email: None,
                data: Default::default(),
            };
            let Ok(vhost) = DbIdentifier::parse(&name) else {
                listed.refused = Some("its name is not one Provisio manages".into());
                resources.push(listed);
                continue;
            };
            match parse_description(&description) {
                Some((owner, Some(mark), package)) => {
                    listed.owner_mark = Some(mark.to_owned());
                    listed.data.insert("username".into(), json!(owner));
                    if let Some(package) = package {
                        listed.data.insert("package_name".into(), json!(package));
                    }
                }
                _ => match self.adoptable(cx, &vhost, &description).await? {
                    Ok((user, package)) => {
                        listed.data.insert("username".into(), json!(user));
                        if let Some(package) = package {
                            listed.data.insert("package_name".into(), json!(package));
                        }
                    }
                    Err(why) => listed.refused = Some(why),
                },
            }
            resources.push(listed);
        }
        Ok(Listing { resources, next_cursor, total: Some(total) })
    }

    /// Writes the service's mark (and the owner user) into the virtual
    /// host's description, then reads it back: of two imports racing through
    /// two configurations, the one whose mark is not there is `conflict`.
    async fn adopt(&self, cx: &Context, params: VhostRef) -> Result<BrokerInfo, ProviderError> {
        let vhost = &params.vhost;
        let what = format!("Virtual host {vhost}");
        let response = self.send(cx, Method::GET, &format!("/vhosts/{vhost}"), None).await?;
        if response.status.as_u16() == 404 {
            return Err(ProviderError::not_found(UserMessage::new(format!(
                "Virtual host {vhost} does not exist on this broker"
            ))));
        }
        let found: Value = response.error_for_status("The message broker could not read the virtual host")?.json()?;
        let text =
            found["description"].as_str().or_else(|| found["metadata"]["description"].as_str()).unwrap_or_default();
        let marked = parse_description(text).and_then(|(_, mark, _)| mark);
        let Some(mark) = cx.adoption(&what, marked)? else { return self.require(cx, vhost).await };
        let (user, package) = match self.adoptable(cx, vhost, text).await? {
            Ok(owner) => owner,
            Err(why) => {
                return Err(ProviderError::conflict(UserMessage::new(format!("{what} cannot be adopted: {why}"))));
            }
        };
        // Its own tags are kept beside ours.
        let mut tags = tags_of(found.get("tags").unwrap_or(&found["metadata"]["tags"]));
        if !tags.iter().any(|t| t == "provisio") {
            tags.push("provisio".into());
        }
        let body = json!({"description": description(&user, Some(mark), package.as_deref()), "tags": tags.join(",")});
        self.ok(cx, Method::PUT, &format!("/vhosts/{vhost}"), Some(body), "mark the virtual host").await?;
        self.require(cx, vhost).await
    }

    async fn get_info(&self, cx: &Context, params: VhostRef) -> Result<BrokerInfo, ProviderError> {
        self.require(cx, &params.vhost).await
    }

    async fn suspend(&self, cx: &Context, params: SuspendBrokerParams) -> Result<BrokerInfo, ProviderError> {
        let info = self.require(cx, &params.vhost).await?;
        let response =
            self.send(cx, Method::DELETE, &format!("/permissions/{}/{}", params.vhost, info.username), None).await?;
        if response.status.as_u16() != 404 {
            response.error_for_status("The message broker could not revoke the permissions")?;
        }
        // Connections already open would outlive the suspension.
        let connections: Value = self
            .ok(cx, Method::GET, &format!("/vhosts/{}/connections", params.vhost), None, "list the connections")
            .await?
            .json()?;
        for connection in connections.as_array().into_iter().flatten() {
            if connection["user"] == json!(info.username)
                && let Some(name) = connection["name"].as_str()
            {
                let name = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
                let path = format!("/connections/{name}");
                let _ = self.send(cx, Method::DELETE, &path, None).await;
            }
        }
        self.require(cx, &params.vhost).await
    }

    async fn unsuspend(&self, cx: &Context, params: VhostRef) -> Result<BrokerInfo, ProviderError> {
        let info = self.require(cx, &params.vhost).await?;
        self.grant(cx, &params.vhost, &info.username).await?;
        self.require(cx, &params.vhost).await
    }

    async fn terminate(&self, cx: &Context, params: VhostRef) -> Result<Empty, ProviderError> {
        let info = self.require(cx, &params.vhost).await?;
        let user = self.send(cx, Method::DELETE, &format!("/users/{}", info.username), None).await?;
        if user.status.as_u16() != 404 {
            user.error_for_status("The message broker could not delete the user")?;
        }
        self.ok(cx, Method::DELETE, &format!("/vhosts/{}", params.vhost), None, "delete the virtual host").await?;
        Ok(Empty {})
    }

    async fn get_usage(&self, cx: &Context, params: VhostRef) -> Result<BrokerUsage, ProviderError> {
        let info = self.require(cx, &params.vhost).await?;
        let queues: Value =
            self.ok(cx, Method::GET, &format!("/queues/{}", params.vhost), None, "list the queues").await?.json()?;
        let connections: Value = self
            .ok(cx, Method::GET, &format!("/vhosts/{}/connections", params.vhost), None, "list the connections")
            .await?
            .json()?;
        let queues = queues.as_array().cloned().unwrap_or_default();
        let messages: u64 = queues.iter().filter_map(|q| q["messages"].as_u64()).sum();
        Ok(BrokerUsage {
            queues: Units { used: queues.len() as f64, limit: info.max_queues.map(f64::from) },
            connections: Units {
                used: connections.as_array().map(Vec::len).unwrap_or(0) as f64,
                limit: info.max_connections.map(f64::from),
            },
            messages: Units { used: messages as f64, limit: None },
        })
    }

    async fn change_password(
        &self,
        cx: &Context,
        params: ChangeBrokerPasswordParams,
    ) -> Result<BrokerCredentials, ProviderError> {
        let info = self.require(cx, &params.vhost).await?;
        let password = match &params.password {
            Some(password) => password.expose().to_owned(),
            None => generate_password(24),
        };
        self.ok(
            cx,
            Method::PUT,
            &format!("/users/{}", info.username),
            Some(json!({"password": password, "tags": ""})),
            "change the password",
        )
        .await?;
        Ok(BrokerCredentials { username: info.username, password })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_carry_the_owner_user_mark_and_package() {
        for (mark, package) in
            [(Some("prv-0123abcd"), Some("basic")), (None, Some("a package=b")), (Some("prv-1"), None)]
        {
            let text = description("shop", mark, package);
            assert_eq!(parse_description(&text), Some(("shop", mark, package)), "{text}");
        }
        assert_eq!(description("shop", Some("prv-1"), Some("basic")), "provisio owner=shop mark=prv-1 package=basic");
        // Virtual hosts made before owner marks, and ones Provisio did not make.
        assert_eq!(parse_description("provisio owner=shop package=basic"), Some(("shop", None, Some("basic"))));
        assert_eq!(parse_description("provisio owner=shop package="), Some(("shop", None, None)));
        assert_eq!(parse_description("Default virtual host"), None);
    }
}
