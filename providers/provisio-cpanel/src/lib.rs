//! `shared-hosting/cpanel`: cPanel accounts on a cPanel & WHM server,
//! through WHM API 1 (`/json-api/<function>?api.version=1`,
//! `Authorization: whm USER:TOKEN`).
//!
//! - create: `listpkgs` (the package as the server names it; a reseller's
//!   own `<reseller>_<name>` too), `accountsummary` (an existing account is
//!   adopted only with this service's mark and the same domain, package and
//!   email), `verify_new_username`,
//!   then `createacct` (POST: a timeout is `outcome_unknown`, never a blind
//!   retry). Without a username, names made from the domain are tried in a
//!   fixed order, so a retry finds the account its first attempt made;
//! - get_info / get_usage: `accountsummary` (+ `showbw` for traffic);
//! - suspend / unsuspend: `suspendacct` (with the reason) / `unsuspendacct`;
//! - change_package: `changepackage`; terminate: `removeacct`;
//! - change_password: `passwd`; get_login_url: `create_user_session`
//!   (`cpaneld`, or `webmaild` for the webmail area);
//! - test_connection: `version`, `myprivs` (the privileges the functions
//!   need) and `listaccts` (how many accounts the panel holds).
//!
//! **Ownership mark.** WHM keeps no free-text note on an account; the mark
//! rides in the account's contact email as a sub-address
//! (`ann+prv-…@example.com`), which `accountsummary` reads back as `email`.
//! Mail still reaches the customer wherever sub-addressing works (most
//! providers); answers show the address without the mark. An account whose
//! contact email lost its mark, or carries another (the customer may edit
//! it), stays its service's when it is the very account the service made:
//! the same domain and creation time (`unix_startdate`, which only WHM sets)
//! as the service's stored result. Otherwise it is no service's: `conflict`.
//!
//! **Errors.** WHM answers failures as HTTP 200 with `metadata.result = 0`
//! and free text: known texts map to error kinds, anything else is a
//! provider error whose text only staff see. Bad credentials are an HTTP
//! 403 before the API runs.
//!
//! **TLS.** Verified by default. A self-signed server is trusted through
//! `ca_cert_pem`, or (explicitly) `accept_invalid_certs`.

use chrono::{DateTime, Utc};
use provisio_sdk::blueprints::shared_hosting::*;
use provisio_sdk::blueprints::{ListParams, Listed, Listing, State, Units};
use provisio_sdk::formats::{DomainName, Email, IpAddress, Url, Username, generate_password};
use provisio_sdk::{
    ConnectionTest, Context, Empty, FieldLocation, Provider, ProviderAbout, ProviderError, UserMessage,
};
use reqwest::Method;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The registry entry.
pub fn entry() -> provisio_sdk::ProviderEntry {
    provisio_sdk::blueprints::shared_hosting::entry::<Cpanel>()
}

fn default_user() -> String {
    "root".into()
}

/// How to reach one WHM server.
#[derive(Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CpanelConfig {
    /// WHM's address, e.g. `https://server.example.com:2087`.
    #[schemars(length(min = 1), extend("format" = "url", "x-endpoint" = true))]
    pub api_url: String,
    /// The WHM user the token belongs to: `root`, or a reseller (who sees
    /// and acts on only the accounts it owns).
    #[serde(default = "default_user")]
    #[schemars(length(min = 1, max = 64))]
    pub username: String,
    /// The API token (WHM » Manage API Tokens).
    #[schemars(length(min = 1), extend("x-secret" = true, "writeOnly" = true))]
    pub api_token: String,
    /// The certificate (PEM) of the CA that signed WHM's certificate, for a
    /// server with a certificate of its own making.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 65536), extend("x-endpoint" = true))]
    pub ca_cert_pem: Option<String>,
    /// Accept WHM's certificate without verifying it. Anyone on the network
    /// path can then read the token: prefer `ca_cert_pem`.
    #[serde(default)]
    #[schemars(extend("x-endpoint" = true))]
    pub accept_invalid_certs: bool,
    /// The reseller that owns new accounts, when the token is root's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub account_owner: Option<String>,
}

impl std::fmt::Debug for CpanelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpanelConfig")
            .field("api_url", &self.api_url)
            .field("username", &self.username)
            .field("api_token", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// The cPanel provider for one WHM server.
#[derive(Debug)]
pub struct Cpanel {
    config: CpanelConfig,
}

/// What WHM answered: `data` and `metadata.reason` of an API 1 envelope.
#[derive(Debug)]
struct Answer {
    ok: bool,
    reason: String,
    data: Value,
}

/// The privileges the provider's functions need (WHM ACL names).
const NEEDED_PRIVILEGES: &[&str] = &[
    "acct-summary",
    "create-acct",
    "create-user-session",
    "kill-acct",
    "list-accts",
    "list-pkgs",
    "passwd",
    "show-bandwidth",
    "suspend-acct",
    "upgrade-account",
];

/// A reason without WHM's decorations: `API failure: (XID abc123) ` in
/// front and Perl's ` at /usr/local/cpanel/… line N.` behind.
fn plain_reason(reason: &str) -> &str {
    let mut text = reason.trim();
    text = text.strip_prefix("API failure: ").unwrap_or(text);
    if let Some(rest) = text.strip_prefix("(XID ")
        && let Some((_, after)) = rest.split_once(") ")
    {
        text = after;
    }
    match text.find(" at /usr/local/cpanel/") {
        Some(at) => &text[..at],
        None => text,
    }
}

fn invalid(path: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::invalid_field(FieldLocation::Params, path, message)
}

/// The error kind of a failure WHM describes in `reason` (§3 of
/// docs/research/whm-api-1.md lists the texts).
fn classify(function: &str, reason: &str) -> ProviderError {
    let text = plain_reason(reason);
    let has = |needle: &str| text.contains(needle);
    let error = if has("already has an account named")
        || has("has the same initial")
        || has("already has a group named")
        || has("already has a database owner named")
        || has("a group for that username already exists")
    {
        ProviderError::conflict(UserMessage::new("The username is taken on this server by another account"))
    } else if has("already exists in the Apache configuration") {
        ProviderError::conflict(UserMessage::new("The domain is already hosted on this server by another account"))
    } else if has("is not a valid username") || has("is a reserved username") {
        invalid("/username", format!("is not accepted by this server: {text}"))
    } else if has("is not a valid pacakge name") || has("is not a valid package name") || has("Specified package") {
        invalid("/package_name", "is not a package this server offers")
    } else if has("Account does not exist")
        || has("You do not have a user named")
        || has("You do not have access to an account named")
        || has("because they do not exist")
        || has("does not exist!")
    {
        ProviderError::not_found(UserMessage::new("The account does not exist on this server"))
    } else if has("currently suspended") {
        ProviderError::provider(UserMessage::new("The account is suspended, so the panel refuses to sign in to it"))
    } else {
        ProviderError::provider(UserMessage::new(format!("The cPanel server refused {function}")))
    };
    error.with_debug("whm_reason", reason.to_owned())
}

/// The mark a contact email carries as its sub-address, and the address
/// without it.
fn split_mark(email: &str) -> (String, Option<String>) {
    let Some((local, domain)) = email.rsplit_once('@') else { return (email.to_owned(), None) };
    match local.rsplit_once("+prv-") {
        Some((bare, mark)) => (format!("{bare}@{domain}"), Some(format!("prv-{mark}"))),
        None => (email.to_owned(), None),
    }
}

/// The mark an account carries: in its first contact address (WHM joins a
/// second one with ", ").
fn mark_of(summary: &Value) -> Option<String> {
    let contact = summary["email"].as_str().unwrap_or_default();
    split_mark(contact.split(',').next().unwrap_or_default().trim()).1
}

/// The first contact address an account really has, without the mark.
fn contact_of(summary: &Value) -> Option<String> {
    let contact = summary["email"].as_str().unwrap_or_default();
    let (bare, _) = split_mark(contact.split(',').next().unwrap_or_default().trim());
    Email::parse(&bare).ok().map(|email| email.as_str().to_owned())
}

/// The contact email with this call's mark as its sub-address.
fn with_mark(email: &Email, owner: Option<&str>) -> String {
    match (owner, email.as_str().rsplit_once('@')) {
        (Some(mark), Some((local, domain))) => format!("{local}+{mark}@{domain}"),
        _ => email.as_str().to_owned(),
    }
}

/// Whether `summary` is the account this service made: the service's
/// stored result names the same domain and the same creation time.
fn made_by_this_service(cx: &Context, summary: &Value) -> bool {
    let stored = cx.provision_data();
    let created = stored.get("created_at").and_then(Value::as_str).and_then(|t| DateTime::parse_from_rfc3339(t).ok());
    cx.owner().is_some()
        && stored.get("domain").and_then(Value::as_str).is_some_and(|d| Some(d) == summary["domain"].as_str())
        && created.is_some_and(|at| Some(at.timestamp()) == summary["unix_startdate"].as_i64())
}

/// A number as WHM writes sizes and counts: `14M`, `none` (0),
/// `unlimited` (no number), or a plain number.
fn quantity(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) if s == "none" => Some(0.0),
        Value::String(s) => s.trim_end_matches(['M', 'm']).parse().ok(),
        _ => None,
    }
}

impl Cpanel {
    fn url(&self, function: &str) -> String {
        format!("{}/json-api/{function}", self.config.api_url.trim_end_matches('/'))
    }

    fn hostname(&self) -> String {
        url::Url::parse(&self.config.api_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| self.config.api_url.clone())
    }

    /// Calls a WHM API 1 function. Changes go as POST, so that a timeout
    /// after sending is `outcome_unknown`; reads as GET.
    async fn call(
        &self,
        cx: &Context,
        function: &str,
        changes: bool,
        params: &[(&str, &str)],
    ) -> Result<Answer, ProviderError> {
        let mut query: Vec<(&str, &str)> = vec![("api.version", "1")];
        let method = if changes { Method::POST } else { Method::GET };
        let mut request = cx
            .http()
            .request(method, &self.url(function))
            .header(reqwest::header::AUTHORIZATION, format!("whm {}:{}", self.config.username, self.config.api_token));
        if changes {
            // The body keeps passwords out of URLs (and so out of access logs).
            request = request.query(&query).form(params);
        } else {
            query.extend_from_slice(params);
            request = request.query(&query);
        }
        let response = cx.http().send(request).await?;
        if let Some(err) = response.server_error(changes) {
            return Err(err);
        }
        match response.status.as_u16() {
            200 => {}
            401 | 403 => {
                return Err(ProviderError::provider(UserMessage::new(
                    "WHM refused the credentials (403 Access denied): check username and api_token, and that the \
                     token is not restricted from this function",
                ))
                .with_debug("status", response.status.as_u16()));
            }
            status => {
                return Err(ProviderError::provider(UserMessage::new(format!(
                    "WHM answered HTTP {status}; is api_url the WHM address (port 2087)?"
                )))
                .with_debug("body", response.text()));
            }
        }
        let body: Value = response.json().map_err(|_| {
            ProviderError::provider(UserMessage::new("WHM answered something that is not WHM API 1 JSON"))
        })?;
        let metadata = &body["metadata"];
        let Some(result) = metadata["result"].as_i64() else {
            return Err(ProviderError::provider(UserMessage::new("WHM's answer has no metadata.result"))
                .with_debug("body", body.to_string()));
        };
        Ok(Answer {
            ok: result == 1,
            reason: metadata["reason"].as_str().unwrap_or_default().to_owned(),
            data: body.get("data").cloned().unwrap_or(Value::Null),
        })
    }

    /// Calls a function that must succeed; a failure is classified.
    async fn must(
        &self,
        cx: &Context,
        function: &str,
        changes: bool,
        params: &[(&str, &str)],
    ) -> Result<Value, ProviderError> {
        let answer = self.call(cx, function, changes, params).await?;
        if !answer.ok {
            return Err(classify(function, &answer.reason));
        }
        Ok(answer.data)
    }

    /// The account's summary, if it exists (whatever its mark).
    async fn summary(&self, cx: &Context, username: &str) -> Result<Option<Value>, ProviderError> {
        let answer = self.call(cx, "accountsummary", false, &[("user", username)]).await?;
        if !answer.ok {
            return match classify("accountsummary", &answer.reason) {
                err if err.kind() == provisio_sdk::ErrorKind::NotFound => Ok(None),
                err => Err(err),
            };
        }
        Ok(answer.data["acct"].as_array().and_then(|a| a.first()).cloned())
    }

    /// The account this call may act on: `not_found` if absent, `conflict`
    /// if it carries another mark (or none).
    async fn owned(&self, cx: &Context, username: &Username) -> Result<Value, ProviderError> {
        let summary = self.summary(cx, username.as_str()).await?.ok_or_else(|| {
            ProviderError::not_found(UserMessage::new(format!("Account {username} does not exist on this server")))
        })?;
        // The contact email is the customer's to edit (dropping the mark, or
        // writing another): the account the service made is known by what
        // only WHM sets, its domain and creation time, against the service's
        // stored result. The mark decides only before there is one.
        if made_by_this_service(cx, &summary) {
            return Ok(summary);
        }
        cx.check_owner(&format!("Account {username}"), mark_of(&summary).as_deref())?;
        Ok(summary)
    }

    /// Every account the token sees.
    async fn accounts(&self, cx: &Context) -> Result<Vec<Value>, ProviderError> {
        let listed = self.must(cx, "listaccts", false, &[]).await?;
        let mut accounts: Vec<Value> = listed["acct"].as_array().cloned().unwrap_or_default();
        accounts.retain(|a| a["user"].is_string());
        Ok(accounts)
    }

    /// Why an unmarked account may not become a service of this
    /// configuration: a reseller (its WHM reaches the accounts it owns), or
    /// an account of another owner than the one this configuration makes
    /// accounts for.
    fn refusal(&self, summary: &Value, all: &[Value]) -> Option<String> {
        let user = summary["user"].as_str().unwrap_or_default();
        let owns = all.iter().filter(|a| a["owner"].as_str() == Some(user) && a["user"].as_str() != Some(user)).count();
        if owns > 0 {
            return Some(format!("it is a reseller owning {owns} accounts, which its WHM login reaches"));
        }
        let ours = self.config.account_owner.as_deref().unwrap_or(&self.config.username);
        match summary["owner"].as_str() {
            Some(owner) if owner != ours => {
                Some(format!("it belongs to {owner}, not to {ours}, for whom this configuration makes accounts"))
            }
            _ => None,
        }
    }

    fn info(&self, summary: &Value) -> Result<AccountInfo, ProviderError> {
        let text = |key: &str| summary[key].as_str().unwrap_or_default().to_owned();
        let username = Username::parse(&text("user"))
            .map_err(|_| ProviderError::provider("WHM answered an account whose username Provisio cannot use"))?;
        let domain = DomainName::parse(&text("domain"))
            .map_err(|_| ProviderError::provider("WHM answered an account without a valid domain"))?;
        // The first contact address, without the mark; an account without
        // one (made by hand) is shown with its own mailbox's address.
        let contact = text("email");
        let first = contact.split(',').next().unwrap_or_default().trim();
        let (bare, _) = split_mark(first);
        let email = Email::parse(&bare)
            .or_else(|_| Email::parse(&format!("{username}@{domain}")))
            .map_err(|_| ProviderError::provider("WHM answered an account without a usable contact email"))?;
        let suspended = summary["suspended"].as_i64() == Some(1);
        let created_at = summary["unix_startdate"]
            .as_i64()
            .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0))
            .unwrap_or_else(Utc::now);
        Ok(AccountInfo {
            username,
            domain,
            package_name: text("plan"),
            email,
            state: if suspended { State::Suspended } else { State::Active },
            suspend_reason: suspended.then(|| text("suspendreason")).filter(|r| !r.is_empty() && r != "*unknown*"),
            server_hostname: self.hostname(),
            ip: IpAddress::parse(&text("ip")).ok(),
            created_at,
        })
    }

    /// The package as the server lists it: `wanted`, or a reseller's
    /// `<user>_<wanted>`.
    async fn package(&self, cx: &Context, wanted: &str) -> Result<String, ProviderError> {
        let data = self.must(cx, "listpkgs", false, &[]).await?;
        let names: Vec<&str> =
            data["pkg"].as_array().into_iter().flatten().filter_map(|p| p["name"].as_str()).collect();
        // A reseller's own packages are named `<reseller>_<name>`.
        let reseller = self.config.account_owner.as_deref().unwrap_or(&self.config.username);
        let prefixed = format!("{reseller}_{wanted}");
        if let Some(found) = names.iter().find(|n| **n == wanted || **n == prefixed) {
            return Ok((*found).to_owned());
        }
        Err(invalid("/package_name", format!("is not a package on this server (it offers: {})", names.join(", "))))
    }

    /// The username for a create: the given one, or the first name made
    /// from the domain that is free or already this service's account for
    /// the domain. Answers the name and, when one exists, its summary.
    async fn username_for(
        &self,
        cx: &Context,
        params: &CreateParams,
    ) -> Result<(Username, Option<Value>), ProviderError> {
        if let Some(username) = &params.username {
            let existing = self.summary(cx, username.as_str()).await?;
            if existing.is_none() {
                self.must(cx, "verify_new_username", false, &[("user", username.as_str())]).await?;
            }
            return Ok((username.clone(), existing));
        }
        for candidate in username_candidates(&params.domain, 8) {
            match self.summary(cx, candidate.as_str()).await? {
                Some(existing) => {
                    let mark = mark_of(&existing);
                    if existing["domain"].as_str() == Some(params.domain.as_str()) && mark.as_deref() == cx.owner() {
                        return Ok((candidate, Some(existing)));
                    }
                }
                None => {
                    let answer = self.call(cx, "verify_new_username", false, &[("user", candidate.as_str())]).await?;
                    if answer.ok {
                        return Ok((candidate, None));
                    }
                }
            }
        }
        Err(ProviderError::conflict(UserMessage::new(format!(
            "Every username made from {} is taken on this server; give one",
            params.domain
        ))))
    }

    /// An existing account is adopted when it carries this call's mark and
    /// the same domain and package; otherwise `conflict`.
    fn existing_if_same(
        &self,
        cx: &Context,
        params: &CreateParams,
        package: &str,
        existing: &Value,
    ) -> Result<AccountInfo, ProviderError> {
        let info = self.info(existing)?;
        cx.check_owner(&format!("Account {}", info.username), mark_of(existing).as_deref())?;
        let asked = CreateParams { package_name: package.to_owned(), ..params.clone() };
        if !info.is_what_create_asks(&asked) {
            return Err(ProviderError::conflict(UserMessage::new(format!(
                "Account {} exists on this server with another domain, package or email",
                info.username
            ))));
        }
        Ok(info)
    }
}

impl Provider for Cpanel {
    type Config = CpanelConfig;

    fn about() -> ProviderAbout {
        ProviderAbout {
            id: "cpanel".into(),
            name: "cPanel & WHM".into(),
            description: "cPanel accounts on a cPanel & WHM server, through WHM API 1 with an API token.".into(),
            logo_url: Some("https://cpanel.net/wp-content/themes/cPbase/assets/img/logos/cp-logo.svg".into()),
        }
    }

    async fn new(config: CpanelConfig) -> Result<Self, ProviderError> {
        let parsed = url::Url::parse(&config.api_url)
            .map_err(|_| ProviderError::invalid_field(FieldLocation::Config, "/api_url", "is not a URL"))?;
        if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() {
            return Err(ProviderError::invalid_field(
                FieldLocation::Config,
                "/api_url",
                "must be an https:// address with a host",
            ));
        }
        Ok(Cpanel { config })
    }

    async fn test_connection(&self, cx: &Context) -> Result<ConnectionTest, ProviderError> {
        let version = self.must(cx, "version", false, &[]).await?["version"].as_str().unwrap_or("unknown").to_owned();
        let privileges = self.must(cx, "myprivs", false, &[]).await?;
        let granted = &privileges["privileges"][0];
        let missing: Vec<&str> = if granted["all"].as_i64() == Some(1) {
            Vec::new()
        } else {
            NEEDED_PRIVILEGES.iter().copied().filter(|p| granted[*p].as_i64() != Some(1)).collect()
        };
        if !missing.is_empty() {
            return Err(ProviderError::provider(UserMessage::new(format!(
                "The token lacks privileges the provider needs: {}",
                missing.join(", ")
            ))));
        }
        let accounts = self.must(cx, "listaccts", false, &[("want", "user")]).await?;
        let count = accounts["acct"].as_array().map_or(0, Vec::len);
        Ok(ConnectionTest {
            message: format!(
                "Connected to cPanel & WHM {version} as {}; {count} accounts visible",
                self.config.username
            ),
            details: json!({"version": version, "user": self.config.username, "accounts": count,
                            "root": granted["all"].as_i64() == Some(1)}),
        })
    }
}

impl SharedHosting for Cpanel {
    async fn create(&self, cx: &Context, params: CreateParams) -> Result<AccountInfo, ProviderError> {
        let package = self.package(cx, &params.package_name).await?;
        let (username, existing) = self.username_for(cx, &params).await?;
        if let Some(existing) = existing {
            return self.existing_if_same(cx, &params, &package, &existing);
        }
        let password = match &params.password {
            Some(password) => password.expose().to_owned(),
            None => generate_password(20),
        };
        cx.add_secret(&password);
        let contact = with_mark(&params.email, cx.owner());
        let mut form: Vec<(&str, &str)> = vec![
            ("username", username.as_str()),
            ("domain", params.domain.as_str()),
            ("plan", &package),
            ("contactemail", &contact),
            ("password", &password),
        ];
        if let Some(owner) = &self.config.account_owner {
            form.push(("owner", owner));
        }
        let answer = self.call(cx, "createacct", true, &form).await?;
        if !answer.ok {
            // Made meanwhile (another attempt of this job, or someone else):
            // adopted only if it is this service's.
            if plain_reason(&answer.reason).contains("already has an account named")
                && let Some(existing) = self.summary(cx, username.as_str()).await?
            {
                return self.existing_if_same(cx, &params, &package, &existing);
            }
            return Err(classify("createacct", &answer.reason));
        }
        let summary = self
            .summary(cx, username.as_str())
            .await?
            .ok_or_else(|| ProviderError::outcome_unknown("WHM said the account was made, but does not show it yet"))?;
        self.info(&summary)
    }

    /// Every account the token sees (`listaccts`), by username, each with
    /// the mark its contact email carries and that email without it (to find
    /// its client). WHM answers them all at once; pages are cut here.
    async fn list(&self, cx: &Context, params: ListParams) -> Result<Listing, ProviderError> {
        let accounts = self.accounts(cx).await?;
        let (page, next_cursor, total) = params.page(accounts.clone(), |a| a["user"].as_str().unwrap_or_default());
        let resources: Vec<Listed> = page
            .iter()
            .map(|summary| {
                let identifier = summary["user"].as_str().unwrap_or_default().to_owned();
                let owner_mark = mark_of(summary);
                let refused = self.refusal(summary, &accounts);
                match self.info(summary) {
                    // Only an address the panel holds finds a client (not one made up).
                    Ok(info) => Listed {
                        identifier,
                        state: info.state,
                        owner_mark,
                        refused,
                        email: contact_of(summary),
                        data: Listed::data_of(&info),
                    },
                    Err(err) => Listed {
                        identifier,
                        state: State::Active,
                        owner_mark,
                        refused: Some(err.message().as_str().to_owned()),
                        email: None,
                        data: Default::default(),
                    },
                }
            })
            .collect();
        Ok(Listing { resources, next_cursor, total: Some(total) })
    }

    /// Writes the service's mark into the account's contact email
    /// (`modifyacct contactemail`), as `create` does, after the checks of
    /// `refusal`. WHM has no conditional change: of two imports racing
    /// through two configurations, both may write, and the one whose mark is
    /// overwritten finds every later call `conflict`.
    async fn adopt(&self, cx: &Context, params: AccountRef) -> Result<AccountInfo, ProviderError> {
        let username = &params.username;
        let what = format!("Account {username}");
        let accounts = self.accounts(cx).await?;
        let Some(summary) = accounts.iter().find(|a| a["user"].as_str() == Some(username.as_str())) else {
            return Err(ProviderError::not_found(UserMessage::new(format!(
                "Account {username} does not exist on this server"
            ))));
        };
        if let Some(mark) = cx.adoption(&what, mark_of(summary).as_deref())? {
            if let Some(why) = self.refusal(summary, &accounts) {
                return Err(ProviderError::conflict(UserMessage::new(format!("{what} cannot be adopted: {why}"))));
            }
            let info = self.info(summary)?;
            let contact = with_mark(&info.email, Some(mark));
            self.must(cx, "modifyacct", true, &[("user", username.as_str()), ("contactemail", &contact)]).await?;
        }
        let summary = self.owned(cx, username).await?;
        self.info(&summary)
    }

    async fn get_info(&self, cx: &Context, params: AccountRef) -> Result<AccountInfo, ProviderError> {
        let summary = self.owned(cx, &params.username).await?;
        self.info(&summary)
    }

    async fn suspend(&self, cx: &Context, params: SuspendParams) -> Result<AccountInfo, ProviderError> {
        let summary = self.owned(cx, &params.username).await?;
        if summary["suspended"].as_i64() != Some(1) {
            let reason = params.reason.as_deref().unwrap_or("Suspended by Provisio");
            self.must(cx, "suspendacct", true, &[("user", params.username.as_str()), ("reason", reason)]).await?;
        }
        self.get_info(cx, AccountRef { username: params.username }).await
    }

    async fn unsuspend(&self, cx: &Context, params: AccountRef) -> Result<AccountInfo, ProviderError> {
        let summary = self.owned(cx, &params.username).await?;
        if summary["suspended"].as_i64() == Some(1) {
            self.must(cx, "unsuspendacct", true, &[("user", params.username.as_str())]).await?;
        }
        self.get_info(cx, params).await
    }

    async fn change_package(&self, cx: &Context, params: ChangePackageParams) -> Result<AccountInfo, ProviderError> {
        let summary = self.owned(cx, &params.username).await?;
        let package = self.package(cx, &params.package_name).await?;
        if summary["plan"].as_str() != Some(package.as_str()) {
            self.must(cx, "changepackage", true, &[("user", params.username.as_str()), ("pkg", &package)]).await?;
        }
        self.get_info(cx, AccountRef { username: params.username }).await
    }

    async fn terminate(&self, cx: &Context, params: AccountRef) -> Result<Empty, ProviderError> {
        self.owned(cx, &params.username).await?;
        self.must(cx, "removeacct", true, &[("username", params.username.as_str())]).await?;
        Ok(Empty {})
    }

    async fn get_usage(&self, cx: &Context, params: AccountRef) -> Result<AccountUsage, ProviderError> {
        let summary = self.owned(cx, &params.username).await?;
        let exact = format!("^{}$", params.username);
        let traffic = self.must(cx, "showbw", false, &[("searchtype", "user"), ("search", &exact)]).await?;
        let row = traffic["acct"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|row| row["user"].as_str() == Some(params.username.as_str()));
        const MIB: f64 = 1024.0 * 1024.0;
        let bandwidth_used = row.and_then(|r| r["totalbytes"].as_f64()).unwrap_or(0.0) / MIB;
        let bandwidth_limit = row.and_then(|r| r["limit"].as_f64()).filter(|l| *l > 0.0).map(|l| l / MIB);
        Ok(AccountUsage {
            disk_mb: Units {
                used: quantity(&summary["diskused"]).unwrap_or(0.0),
                limit: quantity(&summary["disklimit"]),
            },
            bandwidth_mb: Units { used: bandwidth_used, limit: bandwidth_limit },
            inodes: Some(Units {
                used: quantity(&summary["inodesused"]).unwrap_or(0.0),
                limit: quantity(&summary["inodeslimit"]),
            }),
            mailboxes: None,
            databases: None,
        })
    }

    async fn get_login_url(&self, cx: &Context, params: GetLoginUrlParams) -> Result<LoginUrl, ProviderError> {
        self.owned(cx, &params.username).await?;
        let service = match params.area.unwrap_or_default() {
            LoginArea::ControlPanel => "cpaneld",
            LoginArea::Webmail => "webmaild",
        };
        let session = self
            .must(cx, "create_user_session", true, &[("user", params.username.as_str()), ("service", service)])
            .await?;
        for secret in ["session", "url"] {
            cx.add_secret(session[secret].as_str().unwrap_or_default());
        }
        let login_url = session["url"]
            .as_str()
            .and_then(|u| Url::parse(u).ok())
            .ok_or_else(|| ProviderError::provider("WHM made a session without a usable URL"))?;
        let expires_at = session["expires"]
            .as_i64()
            .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0))
            .unwrap_or_else(|| Utc::now() + chrono::Duration::minutes(5));
        Ok(LoginUrl { login_url, expires_at, for_ip: None, post_fields: None })
    }

    async fn change_password(&self, cx: &Context, params: ChangePasswordParams) -> Result<Empty, ProviderError> {
        self.owned(cx, &params.username).await?;
        self.must(cx, "passwd", true, &[("user", params.username.as_str()), ("password", params.password.expose())])
            .await?;
        Ok(Empty {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_lose_their_decorations() {
        assert_eq!(
            plain_reason(
                "(XID 5wsj8e) This system already has an account named “gtxoo”. at /usr/local/cpanel/Whostmgr/Accounts/Create.pm line 601."
            ),
            "This system already has an account named “gtxoo”."
        );
        assert_eq!(
            plain_reason("API failure: (XID abc234) “Bob” is not a valid username on this system."),
            "“Bob” is not a valid username on this system."
        );
        assert_eq!(plain_reason("Account does not exist."), "Account does not exist.");
    }

    #[test]
    fn documented_reasons_map_to_kinds() {
        use provisio_sdk::ErrorKind;
        let kind = |reason: &str| classify("f", reason).kind();
        assert_eq!(kind("(XID 5wsj8e) This system already has an account named “gtxoo”."), ErrorKind::Conflict);
        assert_eq!(kind("API failure: (XID a) “1x” is not a valid username on this system."), ErrorKind::InvalidInput);
        assert_eq!(kind("API failure: (XID a) You do not have a user named “bob”."), ErrorKind::NotFound);
        assert_eq!(kind("Account does not exist."), ErrorKind::NotFound);
        assert_eq!(kind("Sorry, \"gold\" is not a valid pacakge name."), ErrorKind::InvalidInput);
        assert_eq!(kind("Something new"), ErrorKind::ProviderError);
    }

    #[test]
    fn the_mark_rides_in_the_contact_email() {
        let email = Email::parse("ann@example.com").unwrap();
        let marked = with_mark(&email, Some("prv-abc_123"));
        assert_eq!(marked, "ann+prv-abc_123@example.com");
        assert_eq!(split_mark(&marked), ("ann@example.com".to_owned(), Some("prv-abc_123".to_owned())));
        assert_eq!(split_mark("ann+news@example.com"), ("ann+news@example.com".to_owned(), None));
        assert_eq!(with_mark(&email, None), "ann@example.com");
    }

    #[test]
    fn quantities_read_like_whm_writes_them() {
        assert_eq!(quantity(&json!("14M")), Some(14.0));
        assert_eq!(quantity(&json!("none")), Some(0.0));
        assert_eq!(quantity(&json!("unlimited")), None);
        assert_eq!(quantity(&json!(7)), Some(7.0));
    }
}
