//! `shared-hosting/plesk`: hosting accounts on a Plesk server, through its
//! XML API (`POST /enterprise/control/agent.php`, a `KEY` header or
//! `HTTP_AUTH_LOGIN` and `HTTP_AUTH_PASSWD`).
//!
//! An account is a Plesk **customer** whose login is the username, with one
//! **subscription** (webspace) for the domain on a **service plan**:
//!
//! - create: `service-plan/get` (the package by name), `ip/get` (the first
//!   shared IP unless one is configured), `customer/add`, then `webspace/add`
//!   with the FTP login and password. A customer made by an earlier attempt
//!   (this service's) is reused, so a retry finishes the job instead of
//!   failing on it; without a username, names made from the domain are tried
//!   in a fixed order;
//! - get_info / get_usage: `customer/get` and `webspace/get` (gen_info,
//!   stat, subscriptions: the plan by GUID);
//! - suspend / unsuspend: the subscription's status 16 / 0;
//! - change_package: `webspace/switch-subscription` to the plan's GUID;
//! - terminate: `customer/del` (its subscription goes with it);
//! - change_password: the customer's and the FTP user's, in one packet;
//! - get_login_url: `server/create_session`, opened at
//!   `/enterprise/rsession_init.php?PLESKSESSID=…` (once);
//! - test_connection: `server/get` (name, version, how many subscriptions).
//!
//! **Ownership mark**: the customer's `external-id`, which `customer/get`
//! reads back and customers cannot edit.
//!
//! **Errors** come as `errcode`: 1001 and 11003 (credentials) and 1006
//! (API access) stop the whole packet; per operation 1007 is `conflict`,
//! 1013 `not_found`, 1019 `invalid_input`; anything else is a provider error
//! whose text only staff see.
//!
//! **TLS** is verified, and every call has a deadline (Plesk's own PHP
//! client has neither).

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, Utc};
use provisio_sdk::blueprints::shared_hosting::*;
use provisio_sdk::blueprints::{ListParams, Listed, Listing, State, Units};
use provisio_sdk::formats::{DomainName, Email, IpAddress, Url, Username, generate_password};
use provisio_sdk::{
    ConnectionTest, Context, Empty, ErrorKind, FieldLocation, Provider, ProviderAbout, ProviderError, UserMessage,
};
use reqwest::Method;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The registry entry.
pub fn entry() -> provisio_sdk::ProviderEntry {
    provisio_sdk::blueprints::shared_hosting::entry::<Plesk>()
}

/// A subscription's status bit for "suspended by the administrator".
const ADMIN_SUSPENDED: u32 = 16;

/// The protocol version this provider writes.
const PROTOCOL: &str = "1.6.9.1";

/// How to reach one Plesk server.
#[derive(Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PleskConfig {
    /// Plesk's address, e.g. `https://plesk.example.com:8443`.
    #[schemars(length(min = 1), extend("format" = "url", "x-endpoint" = true))]
    pub api_url: String,
    /// A secret key (`plesk bin secret_key -c -ip-address <Provisio's IP>`);
    /// preferred over a password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), extend("x-secret" = true, "writeOnly" = true))]
    pub secret_key: Option<String>,
    /// The administrator's login, when no secret key is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub login: Option<String>,
    /// The administrator's password, when no secret key is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), extend("x-secret" = true, "writeOnly" = true))]
    pub password: Option<String>,
    /// The certificate (PEM) of the CA that signed Plesk's certificate, for
    /// a server with a certificate of its own making.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 65536), extend("x-endpoint" = true))]
    pub ca_cert_pem: Option<String>,
    /// Accept Plesk's certificate without verifying it. Anyone on the network
    /// path can then read the key: prefer `ca_cert_pem`.
    #[serde(default)]
    #[schemars(extend("x-endpoint" = true))]
    pub accept_invalid_certs: bool,
    /// The IP address new subscriptions get; the server's first shared one
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<IpAddress>,
}

impl std::fmt::Debug for PleskConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PleskConfig")
            .field("api_url", &self.api_url)
            .field("login", &self.login)
            .finish_non_exhaustive()
    }
}

/// The Plesk provider for one server.
#[derive(Debug)]
pub struct Plesk {
    config: PleskConfig,
}

use provisio_sdk::xml::{Xml, esc};

/// One operation's `<result>`: ok, or Plesk's code and text.
#[derive(Debug)]
struct Outcome {
    result: Xml,
}

impl Outcome {
    fn ok(&self) -> bool {
        self.result.at(&["status"]) == "ok"
    }
    fn code(&self) -> u32 {
        self.result.at(&["errcode"]).parse().unwrap_or(0)
    }
    fn text(&self) -> &str {
        self.result.at(&["errtext"])
    }
}

/// Why a customer with `count` subscriptions is no service (a service is
/// one customer and its one subscription: terminate deletes the customer).
fn one_subscription(count: usize) -> Option<String> {
    match count {
        1 => None,
        0 => Some("it has no subscription".into()),
        n => Some(format!("it has {n} subscriptions; a service is one customer and its one subscription")),
    }
}

fn invalid(path: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::invalid_field(FieldLocation::Params, path, message)
}

fn invalid_config(path: &str, message: &str) -> ProviderError {
    ProviderError::invalid_field(FieldLocation::Config, path, message)
}

/// The error of a failed operation: by `errcode` (§3 of
/// docs/research/plesk-xml-api.md); `field` names the param a 1019 is about.
fn classify(what: &str, outcome: &Outcome, field: &str) -> ProviderError {
    let error = match outcome.code() {
        1007 => ProviderError::conflict(UserMessage::new(format!("{what}: it already exists on this server"))),
        1013 => ProviderError::not_found(UserMessage::new(format!("{what}: it does not exist on this server"))),
        1019 => invalid(field, "is not accepted by the Plesk server"),
        1015 | 1018 => ProviderError::provider(UserMessage::new(format!(
            "{what}: the Plesk server lacks the owner or IP address it needs (see ip_address)"
        ))),
        _ => ProviderError::provider(UserMessage::new(format!("{what}: the Plesk server refused it"))),
    };
    error.with_debug("plesk_errcode", outcome.code()).with_debug("plesk_errtext", outcome.text().to_owned())
}

/// `<property><name>…</name><value>…</value></property>`.
fn property(name: &str, value: &str) -> String {
    format!("<property><name>{}</name><value>{}</value></property>", esc(name), esc(value))
}

/// A customer as `customer/get` shows it.
#[derive(Debug)]
struct Customer {
    email: String,
    external_id: String,
}

/// A subscription as `webspace/get` shows it.
#[derive(Debug)]
struct Webspace {
    id: String,
    data: Xml,
}

impl Webspace {
    fn name(&self) -> &str {
        self.data.at(&["gen_info", "name"])
    }
    /// The status: 0 active, or a sum of reasons (16 by the administrator,
    /// 64 by the customer, 256 expired...).
    fn status(&self) -> u32 {
        self.data.at(&["gen_info", "status"]).parse().unwrap_or(0)
    }
    /// Not served, for whatever reason.
    fn suspended(&self) -> bool {
        self.status() != 0
    }
    /// Suspended by the administrator (what `suspend` sets and `unsuspend` lifts).
    fn suspended_by_admin(&self) -> bool {
        self.status() & ADMIN_SUSPENDED != 0
    }
    fn plan_guid(&self) -> &str {
        self.data.at(&["subscriptions", "subscription", "plan", "plan-guid"])
    }
}

impl Plesk {
    fn origin(&self) -> String {
        self.config.api_url.trim_end_matches('/').to_owned()
    }

    /// Sends one packet (`body` is what goes inside `<packet>`) and answers
    /// the parsed response; a `<system>` error fails the whole call. Reads
    /// (`changes` false) that time out are `transient`, since nothing changed.
    async fn packet(&self, cx: &Context, body: &str, changes: bool) -> Result<Xml, ProviderError> {
        let xml = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><packet version=\"{PROTOCOL}\">{body}</packet>");
        let mut request = cx
            .http()
            .request(Method::POST, &format!("{}/enterprise/control/agent.php", self.origin()))
            .header(reqwest::header::CONTENT_TYPE, "text/xml")
            .body(xml);
        request = match (&self.config.secret_key, &self.config.login, &self.config.password) {
            (Some(key), _, _) => request.header("KEY", key),
            (None, Some(login), Some(password)) => {
                request.header("HTTP_AUTH_LOGIN", login).header("HTTP_AUTH_PASSWD", password)
            }
            _ => return Err(invalid_config("/secret_key", "is required unless login and password are set")),
        };
        let response = match cx.http().send(request).await {
            Err(err) if !changes && err.kind() == ErrorKind::OutcomeUnknown => {
                return Err(ProviderError::transient("The Plesk server did not answer in time"));
            }
            other => other?,
        };
        if let Some(err) = response.server_error(changes) {
            return Err(err);
        }
        if !response.status.is_success() {
            return Err(ProviderError::provider(UserMessage::new(format!(
                "Plesk answered HTTP {}; is api_url the Plesk address (port 8443)?",
                response.status.as_u16()
            )))
            .with_debug("body", response.text()));
        }
        let text = response.text();
        let packet = Xml::parse(&text).map_err(|_| {
            ProviderError::provider("The Plesk server answered something that is not an XML API packet")
                .with_debug("body", text.clone())
        })?;
        if let Some(system) = packet.child("system") {
            let (code, errtext) = (system.at(&["errcode"]), system.at(&["errtext"]));
            let message = match code {
                "1001" | "11003" => {
                    "Plesk refused the credentials: check secret_key (or login and password), and that the key \
                     was made for Provisio's IP address"
                }
                "1006" => {
                    "Plesk refuses API access from this address (Tools & Settings » Restrict Administrative Access)"
                }
                "1005" => "The Plesk server speaks an older XML API protocol than this provider needs",
                _ => "The Plesk server refused the request",
            };
            return Err(ProviderError::provider(message)
                .with_debug("plesk_errcode", code.to_owned())
                .with_debug("plesk_errtext", errtext.to_owned()));
        }
        Ok(packet)
    }

    /// The results of `operator/operation` in a response.
    fn outcomes(packet: &Xml, operator: &str, operation: &str) -> Vec<Outcome> {
        packet
            .child(operator)
            .and_then(|o| o.child(operation))
            .map(|op| op.all("result").cloned().map(|result| Outcome { result }).collect())
            .unwrap_or_default()
    }

    /// Runs one operation that answers one result.
    async fn one(
        &self,
        cx: &Context,
        operator: &str,
        operation: &str,
        inner: &str,
        changes: bool,
    ) -> Result<Outcome, ProviderError> {
        let packet =
            self.packet(cx, &format!("<{operator}><{operation}>{inner}</{operation}></{operator}>"), changes).await?;
        Self::outcomes(&packet, operator, operation).into_iter().next().ok_or_else(|| {
            ProviderError::provider(UserMessage::new(format!("Plesk answered {operator}/{operation} without a result")))
        })
    }

    /// The customer with login `username`, if any.
    async fn customer(&self, cx: &Context, username: &str) -> Result<Option<Customer>, ProviderError> {
        let inner = format!("<filter><login>{}</login></filter><dataset><gen_info/></dataset>", esc(username));
        let outcome = self.one(cx, "customer", "get", &inner, false).await?;
        if !outcome.ok() {
            return if outcome.code() == 1013 {
                Ok(None)
            } else {
                Err(classify("Reading the customer", &outcome, "/username"))
            };
        }
        Ok(Some(Customer {
            email: outcome.result.at(&["data", "gen_info", "email"]).to_owned(),
            external_id: outcome.result.at(&["data", "gen_info", "external-id"]).to_owned(),
        }))
    }

    /// The subscription the customer `username` owns, if any.
    async fn webspace(&self, cx: &Context, username: &str) -> Result<Option<Webspace>, ProviderError> {
        self.webspace_by(cx, "owner-login", username).await
    }

    /// The first subscription whose `key` (a filter key) is `value`, if any:
    /// an error 1013, or no result at all, is none.
    async fn webspace_by(&self, cx: &Context, key: &str, value: &str) -> Result<Option<Webspace>, ProviderError> {
        let inner = format!(
            "<filter><{key}>{}</{key}></filter><dataset><gen_info/><stat/><subscriptions/></dataset>",
            esc(value)
        );
        let packet = self.packet(cx, &format!("<webspace><get>{inner}</get></webspace>"), false).await?;
        let Some(outcome) = Self::outcomes(&packet, "webspace", "get").into_iter().next() else {
            return Ok(None);
        };
        if !outcome.ok() {
            return if outcome.code() == 1013 {
                Ok(None)
            } else {
                Err(classify("Reading the subscription", &outcome, "/username"))
            };
        }
        Ok(Some(Webspace {
            id: outcome.result.at(&["id"]).to_owned(),
            data: outcome.result.child("data").cloned().unwrap_or_default(),
        }))
    }

    /// How many subscriptions each customer (by login) owns.
    async fn subscriptions_by_owner(
        &self,
        cx: &Context,
    ) -> Result<std::collections::HashMap<String, usize>, ProviderError> {
        let packet =
            self.packet(cx, "<webspace><get><filter/><dataset><gen_info/></dataset></get></webspace>", false).await?;
        let mut counts = std::collections::HashMap::new();
        for outcome in Self::outcomes(&packet, "webspace", "get").into_iter().filter(Outcome::ok) {
            *counts.entry(outcome.result.at(&["data", "gen_info", "owner-login"]).to_owned()).or_insert(0) += 1;
        }
        Ok(counts)
    }

    /// Every service plan: name and GUID.
    async fn plans(&self, cx: &Context) -> Result<Vec<(String, String)>, ProviderError> {
        let packet = self.packet(cx, "<service-plan><get><filter/></get></service-plan>", false).await?;
        Ok(Self::outcomes(&packet, "service-plan", "get")
            .into_iter()
            .filter(Outcome::ok)
            .map(|o| (o.result.at(&["name"]).to_owned(), o.result.at(&["guid"]).to_owned()))
            .collect())
    }

    async fn plan_guid(&self, cx: &Context, name: &str) -> Result<String, ProviderError> {
        let plans = self.plans(cx).await?;
        if let Some((_, guid)) = plans.iter().find(|(n, _)| n == name) {
            return Ok(guid.clone());
        }
        let names: Vec<&str> = plans.iter().map(|(n, _)| n.as_str()).collect();
        Err(invalid("/package_name", format!("is not a service plan on this server (it offers: {})", names.join(", "))))
    }

    async fn shared_ip(&self, cx: &Context) -> Result<String, ProviderError> {
        if let Some(ip) = &self.config.ip_address {
            return Ok(ip.to_string());
        }
        let outcome = self.one(cx, "ip", "get", "", false).await?;
        outcome
            .result
            .child("addresses")
            .into_iter()
            .flat_map(|a| a.all("ip_info"))
            .find(|info| info.at(&["type"]) == "shared")
            .map(|info| info.at(&["ip_address"]).to_owned())
            .ok_or_else(|| ProviderError::provider("The Plesk server has no shared IP address; set ip_address"))
    }

    /// The customer and subscription this call may act on.
    async fn owned(&self, cx: &Context, username: &Username) -> Result<(Customer, Webspace), ProviderError> {
        let customer = self.customer(cx, username.as_str()).await?.ok_or_else(|| {
            ProviderError::not_found(UserMessage::new(format!("Account {username} does not exist on this server")))
        })?;
        cx.check_owner(&format!("Account {username}"), Some(customer.external_id.as_str()).filter(|m| !m.is_empty()))?;
        let webspace = self.webspace(cx, username.as_str()).await?.ok_or_else(|| {
            ProviderError::not_found(UserMessage::new(format!("Account {username} has no subscription on this server")))
        })?;
        Ok((customer, webspace))
    }

    async fn info(
        &self,
        cx: &Context,
        username: &Username,
        customer: &Customer,
        webspace: &Webspace,
    ) -> Result<AccountInfo, ProviderError> {
        let plans = self.plans(cx).await?;
        let package_name = plans
            .iter()
            .find(|(_, guid)| guid.eq_ignore_ascii_case(webspace.plan_guid()))
            .map(|(n, _)| n.clone())
            .unwrap_or_default();
        let domain = DomainName::parse(webspace.name())
            .map_err(|_| ProviderError::provider("Plesk answered a subscription without a valid domain"))?;
        let email = Email::parse(&customer.email)
            .or_else(|_| Email::parse(&format!("{username}@{domain}")))
            .map_err(|_| ProviderError::provider("Plesk answered a customer without a usable email"))?;
        let created_at = NaiveDate::parse_from_str(webspace.data.at(&["gen_info", "cr_date"]), "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|d| DateTime::<Utc>::from_naive_utc_and_offset(d, Utc))
            .unwrap_or_else(Utc::now);
        Ok(AccountInfo {
            username: username.clone(),
            domain,
            package_name,
            email,
            state: if webspace.suspended() { State::Suspended } else { State::Active },
            suspend_reason: None,
            server_hostname: url::Url::parse(&self.config.api_url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default(),
            ip: IpAddress::parse(webspace.data.at(&["gen_info", "dns_ip_address"])).ok(),
            created_at,
        })
    }

    async fn read(&self, cx: &Context, username: &Username) -> Result<AccountInfo, ProviderError> {
        let (customer, webspace) = self.owned(cx, username).await?;
        self.info(cx, username, &customer, &webspace).await
    }

    /// The username for a create: the given one, or the first name made from
    /// the domain that is free or this service's own customer.
    async fn username_for(&self, cx: &Context, params: &CreateParams) -> Result<Username, ProviderError> {
        if let Some(username) = &params.username {
            return Ok(username.clone());
        }
        for candidate in username_candidates(&params.domain, 8) {
            match self.customer(cx, candidate.as_str()).await? {
                None => return Ok(candidate),
                Some(found) if cx.owner().is_some_and(|mark| mark == found.external_id) => {
                    let theirs = self.webspace(cx, candidate.as_str()).await?;
                    if theirs.as_ref().is_none_or(|w| w.name() == params.domain.as_str()) {
                        return Ok(candidate);
                    }
                }
                Some(_) => {}
            }
        }
        Err(ProviderError::conflict(UserMessage::new(format!(
            "Every username made from {} is taken on this server; give one",
            params.domain
        ))))
    }

    async fn set_status(&self, cx: &Context, webspace: &Webspace, status: u32) -> Result<(), ProviderError> {
        let inner = format!(
            "<filter><id>{}</id></filter><values><gen_setup><status>{status}</status></gen_setup></values>",
            esc(&webspace.id)
        );
        let outcome = self.one(cx, "webspace", "set", &inner, true).await?;
        if !outcome.ok() {
            return Err(classify("Changing the subscription's status", &outcome, "/username"));
        }
        Ok(())
    }
}

impl Provider for Plesk {
    type Config = PleskConfig;

    fn about() -> ProviderAbout {
        ProviderAbout {
            id: "plesk".into(),
            name: "Plesk".into(),
            description: "Hosting accounts (a customer with one subscription) on a Plesk server, through its XML API."
                .into(),
            logo_url: Some("https://www.plesk.com/wp-content/uploads/2017/08/logo-plesk.svg".into()),
        }
    }

    async fn new(config: PleskConfig) -> Result<Self, ProviderError> {
        let parsed = url::Url::parse(&config.api_url).map_err(|_| invalid_config("/api_url", "is not a URL"))?;
        if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() {
            return Err(invalid_config("/api_url", "must be an https:// address with a host"));
        }
        if config.secret_key.is_none() && (config.login.is_none() || config.password.is_none()) {
            return Err(invalid_config("/secret_key", "is required unless login and password are set"));
        }
        Ok(Plesk { config })
    }

    async fn test_connection(&self, cx: &Context) -> Result<ConnectionTest, ProviderError> {
        let outcome = self.one(cx, "server", "get", "<gen_info/><stat/>", false).await?;
        if !outcome.ok() {
            return Err(classify("Reading the server", &outcome, "/api_url"));
        }
        let result = &outcome.result;
        let (name, version) =
            (result.at(&["gen_info", "server_name"]), result.at(&["stat", "version", "plesk_version"]));
        let subscriptions: u64 = result.at(&["stat", "objects", "domains"]).parse().unwrap_or(0);
        Ok(ConnectionTest {
            message: format!("Connected to Plesk {version} on {name}; {subscriptions} subscriptions"),
            details: json!({"version": version, "server_name": name, "accounts": subscriptions}),
        })
    }
}

impl SharedHosting for Plesk {
    async fn create(&self, cx: &Context, params: CreateParams) -> Result<AccountInfo, ProviderError> {
        let plan_guid = self.plan_guid(cx, &params.package_name).await?;
        let username = self.username_for(cx, &params).await?;
        let password = match &params.password {
            Some(password) => password.expose().to_owned(),
            None => generate_password(20),
        };
        cx.add_secret(&password);
        // A domain another customer hosts is refused before anything is made.
        if let Some(hosted) = self.webspace_by(cx, "name", params.domain.as_str()).await?
            && hosted.data.at(&["gen_info", "owner-login"]) != username.as_str()
        {
            return Err(ProviderError::conflict(UserMessage::new(format!(
                "The domain {} is already hosted on this server by another account",
                params.domain
            ))));
        }
        let mark = cx.owner().unwrap_or_default();
        let customer = match self.customer(cx, username.as_str()).await? {
            Some(existing) => {
                // Only this service's customer (an earlier attempt) is reused.
                cx.check_owner(
                    &format!("Account {username}"),
                    Some(existing.external_id.as_str()).filter(|m| !m.is_empty()),
                )?;
                existing
            }
            None => {
                let pname = params.customer_name.clone().unwrap_or_else(|| username.to_string());
                let inner = format!(
                    "<gen_info><pname>{}</pname><login>{}</login><passwd>{}</passwd><email>{}</email><external-id>{}</external-id></gen_info>",
                    esc(&pname),
                    esc(username.as_str()),
                    esc(&password),
                    esc(params.email.as_str()),
                    esc(mark)
                );
                let outcome = self.one(cx, "customer", "add", &inner, true).await?;
                if !outcome.ok() {
                    // 1019 names what Plesk refused: the login or the password.
                    let field = if outcome.text().contains("login") { "/username" } else { "/password" };
                    return Err(classify(&format!("Creating customer {username}"), &outcome, field));
                }
                Customer { email: params.email.to_string(), external_id: mark.to_owned() }
            }
        };
        if let Some(existing) = self.webspace(cx, username.as_str()).await? {
            let info = self.info(cx, &username, &customer, &existing).await?;
            if !info.is_what_create_asks(&params) {
                return Err(ProviderError::conflict(UserMessage::new(format!(
                    "Account {username} exists on this server with another domain, package or email"
                ))));
            }
            return Ok(info);
        }
        let ip = self.shared_ip(cx).await?;
        let inner = format!(
            "<gen_setup><name>{}</name><owner-login>{}</owner-login><htype>vrt_hst</htype><ip_address>{}</ip_address></gen_setup><hosting><vrt_hst>{}{}<ip_address>{}</ip_address></vrt_hst></hosting><plan-guid>{}</plan-guid>",
            esc(params.domain.as_str()),
            esc(username.as_str()),
            esc(&ip),
            property("ftp_login", username.as_str()),
            property("ftp_password", &password),
            esc(&ip),
            esc(&plan_guid)
        );
        let outcome = self.one(cx, "webspace", "add", &inner, true).await?;
        if !outcome.ok() {
            // Made meanwhile by this account (another attempt still running)?
            if outcome.code() == 1007
                && let Some(made) = self.webspace_by(cx, "name", params.domain.as_str()).await?
                && made.data.at(&["gen_info", "owner-login"]) == username.as_str()
            {
                return self.read(cx, &username).await;
            }
            let error = if outcome.code() == 1007 {
                ProviderError::conflict(UserMessage::new(format!(
                    "The domain {} is already hosted on this server by another account",
                    params.domain
                )))
                .with_debug("plesk_errtext", outcome.text().to_owned())
            } else {
                classify(&format!("Creating the subscription for {}", params.domain), &outcome, "/domain")
            };
            return Err(error);
        }
        self.read(cx, &username).await
    }

    /// Every customer (`customer/get` with an empty filter), by login, with
    /// its `external-id` as the owner mark and its e-mail (to find its
    /// client). The listing reads no subscription: `adopt` answers the
    /// account whole, its state included. Pages are cut here.
    async fn list(&self, cx: &Context, params: ListParams) -> Result<Listing, ProviderError> {
        let inner = "<filter/><dataset><gen_info/></dataset>";
        let packet = self.packet(cx, &format!("<customer><get>{inner}</get></customer>"), false).await?;
        let customers: Vec<(String, String, String)> = Self::outcomes(&packet, "customer", "get")
            .into_iter()
            .filter(Outcome::ok)
            .map(|o| {
                let info = |key: &str| o.result.at(&["data", "gen_info", key]).to_owned();
                (info("login"), info("email"), info("external-id"))
            })
            .filter(|(login, _, _)| !login.is_empty())
            .collect();
        let subscriptions = self.subscriptions_by_owner(cx).await?;
        let (page, next_cursor, total) = params.page(customers, |(login, _, _)| login.as_str());
        let resources: Vec<Listed> = page
            .into_iter()
            .map(|(login, email, mark)| {
                let usable = Username::parse(&login).is_ok();
                let mut data = serde_json::Map::new();
                if Email::parse(&email).is_ok() {
                    data.insert("email".into(), json!(email));
                }
                let refused = if usable {
                    one_subscription(subscriptions.get(&login).copied().unwrap_or(0))
                } else {
                    Some("its login is not a username Provisio manages".to_owned())
                };
                Listed {
                    state: State::Active,
                    owner_mark: Some(mark).filter(|m| !m.is_empty()),
                    refused,
                    email: Some(email).filter(|e| !e.is_empty()),
                    data,
                    identifier: login,
                }
            })
            .collect();
        Ok(Listing { resources, next_cursor, total: Some(total) })
    }

    /// Writes the service's mark as the customer's `external-id` (which
    /// customers cannot edit), then reads the account back: of two imports
    /// racing through two configurations, the one whose mark is not there is
    /// `conflict`.
    async fn adopt(&self, cx: &Context, params: AccountRef) -> Result<AccountInfo, ProviderError> {
        let username = &params.username;
        let what = format!("Account {username}");
        let customer = self.customer(cx, username.as_str()).await?.ok_or_else(|| {
            ProviderError::not_found(UserMessage::new(format!("Account {username} does not exist on this server")))
        })?;
        if let Some(mark) = cx.adoption(&what, Some(customer.external_id.as_str()).filter(|m| !m.is_empty()))? {
            // Checked before the mark is written: terminate deletes the
            // customer with every subscription it has.
            let count = self.subscriptions_by_owner(cx).await?.get(username.as_str()).copied().unwrap_or(0);
            if let Some(why) = one_subscription(count) {
                return Err(ProviderError::conflict(UserMessage::new(format!("{what} cannot be adopted: {why}"))));
            }
            let inner = format!(
                "<filter><login>{}</login></filter><values><gen_info><external-id>{}</external-id></gen_info></values>",
                esc(username.as_str()),
                esc(mark)
            );
            let outcome = self.one(cx, "customer", "set", &inner, true).await?;
            if !outcome.ok() {
                return Err(classify("Marking the customer", &outcome, "/username"));
            }
        }
        self.read(cx, username).await
    }

    async fn get_info(&self, cx: &Context, params: AccountRef) -> Result<AccountInfo, ProviderError> {
        self.read(cx, &params.username).await
    }

    async fn suspend(&self, cx: &Context, params: SuspendParams) -> Result<AccountInfo, ProviderError> {
        let (_, webspace) = self.owned(cx, &params.username).await?;
        if !webspace.suspended_by_admin() {
            self.set_status(cx, &webspace, ADMIN_SUSPENDED).await?;
        }
        self.read(cx, &params.username).await
    }

    async fn unsuspend(&self, cx: &Context, params: AccountRef) -> Result<AccountInfo, ProviderError> {
        let (_, webspace) = self.owned(cx, &params.username).await?;
        if webspace.suspended_by_admin() {
            // Lifts only the administrator's suspension: the customer's own
            // (64) stays; the others Plesk derives (expiry) itself.
            let rest = webspace.status() & !ADMIN_SUSPENDED;
            self.set_status(cx, &webspace, if rest & 64 != 0 { 64 } else { 0 }).await?;
        }
        self.read(cx, &params.username).await
    }

    async fn change_package(&self, cx: &Context, params: ChangePackageParams) -> Result<AccountInfo, ProviderError> {
        let (_, webspace) = self.owned(cx, &params.username).await?;
        let guid = self.plan_guid(cx, &params.package_name).await?;
        if !guid.eq_ignore_ascii_case(webspace.plan_guid()) {
            let inner = format!("<filter><id>{}</id></filter><plan-guid>{}</plan-guid>", esc(&webspace.id), esc(&guid));
            let outcome = self.one(cx, "webspace", "switch-subscription", &inner, true).await?;
            if !outcome.ok() {
                return Err(classify("Switching the service plan", &outcome, "/package_name"));
            }
        }
        self.read(cx, &params.username).await
    }

    async fn terminate(&self, cx: &Context, params: AccountRef) -> Result<Empty, ProviderError> {
        self.owned(cx, &params.username).await?;
        let inner = format!("<filter><login>{}</login></filter>", esc(params.username.as_str()));
        let outcome = self.one(cx, "customer", "del", &inner, true).await?;
        if !outcome.ok() {
            return Err(classify("Deleting the account", &outcome, "/username"));
        }
        Ok(Empty {})
    }

    async fn get_usage(&self, cx: &Context, params: AccountRef) -> Result<AccountUsage, ProviderError> {
        let (_, webspace) = self.owned(cx, &params.username).await?;
        const MIB: f64 = 1024.0 * 1024.0;
        let number = |path: &[&str]| webspace.data.at(path).parse::<f64>().ok();
        let count = |path: &[&str]| number(path).map(|used| Units { used, limit: None });
        Ok(AccountUsage {
            disk_mb: Units { used: number(&["gen_info", "real_size"]).unwrap_or(0.0) / MIB, limit: None },
            bandwidth_mb: Units { used: number(&["stat", "traffic"]).unwrap_or(0.0) / MIB, limit: None },
            inodes: None,
            mailboxes: count(&["stat", "box"]),
            databases: count(&["stat", "db"]),
        })
    }

    async fn get_login_url(&self, cx: &Context, params: GetLoginUrlParams) -> Result<LoginUrl, ProviderError> {
        if params.area == Some(LoginArea::Webmail) {
            return Err(invalid("/area", "Plesk has no sign-on into webmail; open the control panel instead"));
        }
        self.owned(cx, &params.username).await?;
        let user_ip = params
            .client_ip
            .as_ref()
            .map(|ip| base64::engine::general_purpose::STANDARD.encode(ip.to_string()))
            .unwrap_or_default();
        let inner = format!(
            "<login>{}</login><data><user_ip>{user_ip}</user_ip><source_server></source_server></data>",
            esc(params.username.as_str())
        );
        let outcome = self.one(cx, "server", "create_session", &inner, true).await?;
        if !outcome.ok() {
            return Err(classify("Opening a session", &outcome, "/username"));
        }
        let id = outcome.result.at(&["id"]);
        cx.add_secret(id);
        let login_url = Url::parse(&format!(
            "{}/enterprise/rsession_init.php?PLESKSESSID={id}&success_redirect_url=%2F",
            self.origin()
        ))
        .map_err(|_| ProviderError::provider("Plesk answered a session Provisio cannot make a link of"))?;
        // Plesk does not say how long the token lives; five minutes is what
        // the link is promised for.
        Ok(LoginUrl {
            login_url,
            expires_at: Utc::now() + chrono::Duration::minutes(5),
            // Plesk records the address; it does not promise to bind the session to it.
            for_ip: None,
            post_fields: None,
        })
    }

    async fn change_password(&self, cx: &Context, params: ChangePasswordParams) -> Result<Empty, ProviderError> {
        let (_, webspace) = self.owned(cx, &params.username).await?;
        let password = esc(params.password.expose()).into_owned();
        let body = format!(
            "<customer><set><filter><login>{}</login></filter><values><gen_info><passwd>{password}</passwd></gen_info></values></set></customer><webspace><set><filter><id>{}</id></filter><values><hosting><vrt_hst>{}</vrt_hst></hosting></values></set></webspace>",
            esc(params.username.as_str()),
            esc(&webspace.id),
            property("ftp_password", params.password.expose())
        );
        let packet = self.packet(cx, &body, true).await?;
        for (operator, what) in [("customer", "Changing the panel password"), ("webspace", "Changing the FTP password")]
        {
            let outcome = Self::outcomes(&packet, operator, "set").into_iter().next().ok_or_else(|| {
                ProviderError::provider(UserMessage::new(format!("{what}: Plesk answered without a result")))
            })?;
            if !outcome.ok() {
                return Err(classify(what, &outcome, "/password"));
            }
        }
        Ok(Empty {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_read_into_owned_trees() {
        let text = "<packet><customer><get><result><status>error</status><errcode>1013</errcode><errtext>client does not exist</errtext></result></get></customer></packet>";
        let packet = Xml::parse(text).unwrap();
        let outcomes = Plesk::outcomes(&packet, "customer", "get");
        assert_eq!(outcomes.len(), 1);
        assert!(!outcomes[0].ok());
        assert_eq!(outcomes[0].code(), 1013);
        assert_eq!(classify("x", &outcomes[0], "/username").kind(), ErrorKind::NotFound);
    }

    #[test]
    fn values_are_escaped_in_packets() {
        assert_eq!(
            property("ftp_password", "a<b&c"),
            "<property><name>ftp_password</name><value>a&lt;b&amp;c</value></property>"
        );
    }
}
