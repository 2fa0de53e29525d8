//! A Plesk test server: the part of the Plesk XML API that provisioning
//! uses (`POST /enterprise/control/agent.php`), as Plesk documents it
//! (<https://docs.plesk.com/en-US/obsidian/api-rpc/>), kept in memory.
//!
//! What it follows, and where each choice comes from, is in
//! `docs/research/plesk-xml-api.md` (section numbers below refer to it):
//!
//! - `KEY` or `HTTP_AUTH_LOGIN` + `HTTP_AUTH_PASSWD`; a bad key is `<system>`
//!   11003 and a bad password 1001, before any operation runs (§1);
//! - the protocol version check (1005), unparsable XML and unknown operators
//!   (1014), all as `<system>` errors (§1);
//! - one `<result>` per operation, or per object a filter matches, in
//!   request order, with `errcode`/`errtext` per result (§1, §3);
//! - customers, subscriptions (webspaces) on service plans and shared IPs,
//!   suspension by status 16, plan switches by GUID (§2);
//! - `server/create_session` tokens that open `rsession_init.php` once
//!   (`PLESKSESSID`, or `PHPSESSID` as some clients send) (§2.11);
//! - a slow `webspace/add` on demand ([`Plesk::set_add_delay`]): the
//!   subscription is made first and the answer comes late.
//!
//! Texts the docs do not give are marked UNVERIFIED where they are written.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use roxmltree::Node;

/// The protocol version this server speaks (Obsidian's).
pub const PROTOCOL: &str = "1.6.9.1";
/// The Plesk version `server/get` reports.
pub const PLESK_VERSION: &str = "18.0.61";

/// How a server starts.
#[derive(Debug, Clone)]
pub struct Options {
    /// The administrator's login (`admin`).
    pub login: String,
    /// The administrator's password.
    pub password: String,
    /// A secret key (the `KEY` header).
    pub secret_key: String,
    /// Service plans, by name.
    pub plans: Vec<String>,
    /// IP addresses, and whether each is shared.
    pub ips: Vec<(String, bool)>,
    /// The server's host name.
    pub hostname: String,
    /// How long `webspace/add` takes to answer (the subscription exists at once).
    pub add_delay: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            login: "admin".into(),
            password: provisio_test_server_kit::random_secret(16),
            secret_key: uuid(),
            plans: vec!["basic".into(), "standard".into(), "premium".into()],
            ips: vec![("192.0.2.20".into(), true), ("192.0.2.21".into(), false)],
            hostname: "plesk.example.com".into(),
            add_delay: Duration::ZERO,
        }
    }
}

/// A GUID as Plesk writes them.
fn uuid() -> String {
    let hex: String = (0..32).map(|_| char::from_digit(fastrand::u32(..16), 16).unwrap_or('0')).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

fn today() -> String {
    let days = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() / 86_400).unwrap_or_default();
    let (y, m, d) = civil(days as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The civil date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[derive(Debug, Clone)]
struct Customer {
    id: u64,
    guid: String,
    login: String,
    password: String,
    pname: String,
    cname: String,
    email: String,
    status: u32,
    external_id: String,
    description: String,
    cr_date: String,
}

#[derive(Debug, Clone)]
struct Webspace {
    id: u64,
    guid: String,
    name: String,
    owner_id: u64,
    ip: String,
    status: u32,
    plan_guid: Option<String>,
    ftp_login: String,
    external_id: String,
    description: String,
    admin_description: String,
    cr_date: String,
    real_size: u64,
    traffic: u64,
    traffic_prevday: u64,
    mailboxes: u64,
    databases: u64,
}

#[derive(Debug, Clone)]
struct Plan {
    id: u64,
    name: String,
    guid: String,
}

#[derive(Debug)]
struct Session {
    login: String,
    expires: u64,
    used: bool,
}

#[derive(Debug, Default)]
struct Server {
    next_id: u64,
    customers: BTreeMap<u64, Customer>,
    webspaces: BTreeMap<u64, Webspace>,
    plans: Vec<Plan>,
    sessions: BTreeMap<String, Session>,
    requests: u64,
}

impl Server {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

/// A handle on one server's state (for tests: usage, delays, contents).
#[derive(Debug, Clone)]
pub struct Plesk {
    options: Arc<Options>,
    server: Arc<Mutex<Server>>,
    add_delay: Arc<Mutex<Duration>>,
}

/// A subscription as tests see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Its domain.
    pub name: String,
    /// Its owner's login.
    pub owner_login: String,
    /// Its service plan's name.
    pub plan: Option<String>,
    /// 0 active, 16 suspended by the administrator...
    pub status: u32,
    /// Its owner's `external-id`.
    pub owner_external_id: String,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// Text escaped for XML.
fn esc(text: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::partial_escape(text)
}

/// `<name>text</name>`, or `<name/>` when empty.
fn el(name: &str, text: impl std::fmt::Display) -> String {
    let text = text.to_string();
    if text.is_empty() { format!("<{name}/>") } else { format!("<{name}>{}</{name}>", esc(&text)) }
}

fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|c| c.is_element() && c.has_tag_name(name))
}

fn text_of(node: Node<'_, '_>, name: &str) -> Option<String> {
    child(node, name).map(|c| c.text().unwrap_or_default().trim().to_owned())
}

fn elements<'a, 'i>(node: Node<'a, 'i>) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children().filter(Node::is_element)
}

/// A per-operation failure.
struct Failure {
    code: u32,
    text: String,
}

fn failure(code: u32, text: impl Into<String>) -> Failure {
    Failure { code, text: text.into() }
}

fn error_result(failure: &Failure, filter_id: Option<&str>) -> String {
    let mut out =
        format!("<result><status>error</status>{}{}", el("errcode", failure.code), el("errtext", &failure.text));
    if let Some(filter_id) = filter_id {
        out.push_str(&el("filter-id", filter_id));
    }
    out.push_str("</result>");
    out
}

/// 1013 for a filter value that matches nothing: an `id` filter names the
/// id (as the published sample shows), any other the value as `filter-id`.
fn not_found(text: &str, key: Option<&str>, value: Option<&str>) -> String {
    let failure = failure(1013, text);
    match (key, value) {
        (Some("id"), Some(id)) => {
            format!(
                "<result><status>error</status>{}{}{}</result>",
                el("errcode", 1013),
                el("errtext", text),
                el("id", id)
            )
        }
        _ => error_result(&failure, value),
    }
}

/// A `<filter>`: one key, repeated values; empty means everything.
struct Filter {
    key: Option<String>,
    values: Vec<String>,
}

fn filter_of(operation: Node<'_, '_>) -> Result<Filter, Failure> {
    let Some(filter) = child(operation, "filter") else {
        return Err(failure(1014, "Parsing error: the filter node is missing."));
    };
    let mut key: Option<String> = None;
    let mut values = Vec::new();
    for item in elements(filter) {
        let name = item.tag_name().name().to_owned();
        if key.as_ref().is_some_and(|k| *k != name) {
            // "uses both id and login in the same filter" is invalid (§2).
            return Err(failure(1014, "Parsing error: a filter may not mix keys."));
        }
        key = Some(name);
        values.push(item.text().unwrap_or_default().trim().to_owned());
    }
    Ok(Filter { key, values })
}

impl Plesk {
    /// A server's state.
    pub fn new(options: Options) -> Plesk {
        let mut server = Server::default();
        for name in &options.plans {
            let id = server.id();
            server.plans.push(Plan { id, name: name.clone(), guid: uuid() });
        }
        let delay = options.add_delay;
        Plesk {
            options: Arc::new(options),
            server: Arc::new(Mutex::new(server)),
            add_delay: Arc::new(Mutex::new(delay)),
        }
    }

    /// The options it runs with (credentials included).
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Makes `webspace/add` answer after `delay` (the subscription is made at once).
    pub fn set_add_delay(&self, delay: Duration) {
        *self.add_delay.lock().expect("delay lock") = delay;
    }

    /// Sets a subscription's usage: disk bytes, traffic bytes this month,
    /// mailboxes and databases.
    pub fn set_usage(&self, name: &str, disk: u64, traffic: u64, mailboxes: u64, databases: u64) -> bool {
        let mut server = self.server.lock().expect("server lock");
        let Some(webspace) = server.webspaces.values_mut().find(|w| w.name == name) else { return false };
        (webspace.real_size, webspace.traffic, webspace.mailboxes, webspace.databases) =
            (disk, traffic, mailboxes, databases);
        true
    }

    /// Every subscription.
    pub fn subscriptions(&self) -> Vec<Subscription> {
        let server = self.server.lock().expect("server lock");
        server
            .webspaces
            .values()
            .map(|w| {
                let owner = server.customers.get(&w.owner_id);
                Subscription {
                    name: w.name.clone(),
                    owner_login: owner.map(|c| c.login.clone()).unwrap_or_else(|| self.options.login.clone()),
                    plan: server.plans.iter().find(|p| Some(&p.guid) == w.plan_guid.as_ref()).map(|p| p.name.clone()),
                    status: w.status,
                    owner_external_id: owner.map(|c| c.external_id.clone()).unwrap_or_default(),
                }
            })
            .collect()
    }

    /// Logins of every customer.
    pub fn customers(&self) -> Vec<String> {
        self.server.lock().expect("server lock").customers.values().map(|c| c.login.clone()).collect()
    }

    /// A customer's password (to check a password change).
    pub fn customer_password(&self, login: &str) -> Option<String> {
        let server = self.server.lock().expect("server lock");
        server.customers.values().find(|c| c.login == login).map(|c| c.password.clone())
    }

    /// Makes a customer as an operator would by hand in Plesk (no API call).
    pub fn add_customer(&self, login: &str, email: &str) {
        let mut server = self.server.lock().expect("server lock");
        let id = server.id();
        server.customers.insert(
            id,
            Customer {
                id,
                guid: uuid(),
                login: login.into(),
                password: provisio_test_server_kit::random_secret(12),
                pname: login.into(),
                cname: String::new(),
                email: email.into(),
                status: 0,
                external_id: String::new(),
                description: String::new(),
                cr_date: today(),
            },
        );
    }

    /// How many API requests were answered (authenticated or not).
    pub fn requests(&self) -> u64 {
        self.server.lock().expect("server lock").requests
    }

    /// The HTTP routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/enterprise/control/agent.php", post(agent))
            .route("/enterprise/rsession_init.php", get(session_init))
            .with_state(self.clone())
    }
}

fn xml_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml; charset=UTF-8")], body).into_response()
}

/// A checkup error: the whole packet fails in `<system>` (§1).
fn system_error(code: u32, text: &str) -> Response {
    xml_response(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><packet version=\"{PROTOCOL}\"><system><status>error</status>{}{}</system></packet>",
        el("errcode", code),
        el("errtext", text)
    ))
}

/// Whether `requested` is a protocol this server speaks: any version up to
/// its own (absent means the latest).
fn version_supported(requested: &str) -> bool {
    let parse = |v: &str| v.split('.').map(|p| p.parse::<u32>().ok()).collect::<Option<Vec<u32>>>();
    match (parse(requested), parse(PROTOCOL)) {
        (Some(asked), Some(ours)) => !asked.is_empty() && asked <= ours,
        _ => false,
    }
}

async fn agent(State(plesk): State<Plesk>, headers: HeaderMap, body: Bytes) -> Response {
    plesk.server.lock().expect("server lock").requests += 1;
    let header_text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    // A key is checked when sent; otherwise the login pair (§1).
    if let Some(key) = header_text("KEY") {
        if key != plesk.options.secret_key {
            return system_error(11003, "PleskAPIInvalidSecretKeyException : key is not found");
        }
    } else if header_text("HTTP_AUTH_LOGIN").as_deref() != Some(plesk.options.login.as_str())
        || header_text("HTTP_AUTH_PASSWD").as_deref() != Some(plesk.options.password.as_str())
    {
        // UNVERIFIED wording: the table says "Authentication failed - wrong
        // password."; clients match "incorrect username or password".
        return system_error(1001, "Authentication failed: incorrect username or password.");
    }
    let Ok(text) = std::str::from_utf8(&body) else {
        return system_error(1014, "Parsing error: wrong format of XML request.");
    };
    let Ok(document) = roxmltree::Document::parse(text) else {
        return system_error(1014, "Parsing error: wrong format of XML request.");
    };
    let packet = document.root_element();
    if !packet.has_tag_name("packet") {
        return system_error(1014, "Parsing error: wrong format of XML request.");
    }
    if let Some(version) = packet.attribute("version")
        && !version_supported(version)
    {
        return system_error(
            1005,
            &format!("Protocol version '{version}' is not supported. Current protocol version is '{PROTOCOL}'"),
        );
    }
    // Like Plesk, the whole packet is checked against the schema before any
    // operation runs: an unknown or misplaced element fails it all.
    for operator in elements(packet) {
        for operation in elements(operator) {
            if let Err(problem) = schema::check(operator.tag_name().name(), operation) {
                return system_error(1014, &format!("Request is invalid. {problem}"));
            }
        }
    }
    let mut out = String::new();
    let mut added = false;
    for operator in elements(packet) {
        let name = operator.tag_name().name();
        if !["server", "customer", "webspace", "ip", "service-plan"].contains(&name) {
            return system_error(1014, "Parsing error: wrong format of XML request.");
        }
        let _ = write!(out, "<{name}>");
        for operation in elements(operator) {
            let op = operation.tag_name().name();
            let Some(results) = plesk.operate(name, op, operation) else {
                return system_error(1014, "Parsing error: wrong format of XML request.");
            };
            added |= name == "webspace" && op == "add";
            let _ = write!(out, "<{op}>{results}</{op}>");
        }
        let _ = write!(out, "</{name}>");
    }
    let delay = *plesk.add_delay.lock().expect("delay lock");
    if added && !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    xml_response(format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><packet version=\"{PROTOCOL}\">{out}</packet>"))
}

impl Plesk {
    /// One operation's results; `None` for an operation this operator lacks.
    fn operate(&self, operator: &str, operation: &str, node: Node<'_, '_>) -> Option<String> {
        let mut server = self.server.lock().expect("server lock");
        Some(match (operator, operation) {
            ("server", "get") => self.server_get(&server, node),
            ("server", "get_protos") => {
                let protos: String = ["1.6.9.1", "1.6.9.0", "1.6.8.0", "1.6.7.0", "1.6.6.0", "1.6.5.0", "1.6.3.0"]
                    .iter()
                    .map(|p| el("proto", p))
                    .collect();
                format!("<result><status>ok</status><protos>{protos}</protos></result>")
            }
            ("server", "create_session") => self.create_session(&mut server, node),
            ("ip", "get") => {
                let addresses: String = self
                    .options
                    .ips
                    .iter()
                    .map(|(ip, shared)| {
                        format!(
                            "<ip_info>{}<netmask>255.255.255.0</netmask>{}<interface>eth0</interface></ip_info>",
                            el("ip_address", ip),
                            el("type", if *shared { "shared" } else { "exclusive" })
                        )
                    })
                    .collect();
                format!("<result><status>ok</status><addresses>{addresses}</addresses></result>")
            }
            ("service-plan", "get") => self.plan_get(&server, node),
            ("customer", "add") => self.customer_add(&mut server, node),
            ("customer", "get") => self.each_customer(&mut server, node, Self::customer_get),
            ("customer", "set") => self.each_customer(&mut server, node, Self::customer_set),
            ("customer", "del") => self.each_customer(&mut server, node, |_, server, id, _| {
                server.customers.remove(&id);
                // Deleting a customer deletes its subscriptions (§2.3).
                server.webspaces.retain(|_, w| w.owner_id != id);
                Ok(String::new())
            }),
            ("webspace", "add") => self.webspace_add(&mut server, node),
            ("webspace", "get") => self.each_webspace(&mut server, node, Self::webspace_get),
            ("webspace", "set") => self.each_webspace(&mut server, node, Self::webspace_set),
            ("webspace", "del") => self.each_webspace(&mut server, node, |_, server, id, _| {
                server.webspaces.remove(&id);
                Ok(String::new())
            }),
            ("webspace", "switch-subscription") => self.each_webspace(&mut server, node, Self::switch_subscription),
            _ => return None,
        })
    }

    fn server_get(&self, server: &Server, node: Node<'_, '_>) -> String {
        let mut out = String::from("<result><status>ok</status>");
        if child(node, "gen_info").is_some() {
            let _ = write!(
                out,
                "<gen_info>{}{}<mode>standard</mode></gen_info>",
                el("server_name", &self.options.hostname),
                el("server_guid", "5a8d5fbe-3c3e-4d0c-8f4b-8a2c5e1f9a01")
            );
        }
        if child(node, "stat").is_some() {
            let active = server.webspaces.values().filter(|w| w.status == 0).count();
            let _ = write!(
                out,
                "<stat><objects>{}{}{}<mail_boxes>0</mail_boxes><mail_redirects>0</mail_redirects><mail_groups>0</mail_groups><mail_responders>0</mail_responders><web_users>0</web_users><databases>0</databases><database_users>0</database_users><problem_clients>0</problem_clients><problem_domains>0</problem_domains></objects><version><plesk_name>psa</plesk_name>{}<plesk_os>Debian</plesk_os><plesk_os_version>12</plesk_os_version><plesk_build>1861240528.16</plesk_build><os_release>6.1.0</os_release></version></stat>",
                el("clients", server.customers.len()),
                el("domains", server.webspaces.len()),
                el("active_domains", active),
                el("plesk_version", PLESK_VERSION),
            );
        }
        out.push_str("</result>");
        out
    }

    fn create_session(&self, server: &mut Server, node: Node<'_, '_>) -> String {
        let login = text_of(node, "login").unwrap_or_default();
        if child(node, "data").and_then(|d| child(d, "user_ip")).is_none() {
            return error_result(&failure(1014, "Parsing error: user_ip is required."), None);
        }
        let known = login == self.options.login || server.customers.values().any(|c| c.login == login);
        if !known {
            return error_result(&failure(1013, "Object not found."), None);
        }
        let id: String = (0..32).map(|_| char::from_digit(fastrand::u32(..16), 16).unwrap_or('0')).collect();
        server.sessions.insert(id.clone(), Session { login, expires: now() + 300, used: false });
        format!("<result><status>ok</status>{}</result>", el("id", id))
    }

    fn plan_get(&self, server: &Server, node: Node<'_, '_>) -> String {
        let filter = match filter_of(node) {
            Ok(filter) => filter,
            Err(failure) => return error_result(&failure, None),
        };
        let describe = |plan: &Plan, filter_id: Option<&str>| {
            format!(
                "<result><status>ok</status>{}{}{}{}<external-id/><owner-login>{}</owner-login></result>",
                filter_id.map(|f| el("filter-id", f)).unwrap_or_default(),
                el("id", plan.id),
                el("name", &plan.name),
                el("guid", &plan.guid),
                esc(&self.options.login)
            )
        };
        let Some(key) = filter.key else {
            return server.plans.iter().map(|p| describe(p, None)).collect();
        };
        filter
            .values
            .iter()
            .map(|value| {
                let found = server.plans.iter().find(|p| match key.as_str() {
                    "name" => p.name == *value,
                    "id" => p.id.to_string() == *value,
                    "guid" => p.guid.eq_ignore_ascii_case(value),
                    _ => false,
                });
                match found {
                    Some(plan) => describe(plan, Some(value)),
                    None => error_result(&failure(1013, "Object not found."), Some(value)),
                }
            })
            .collect()
    }

    fn customer_add(&self, server: &mut Server, node: Node<'_, '_>) -> String {
        let Some(info) = child(node, "gen_info") else {
            return error_result(&failure(1014, "Parsing error: gen_info is required."), None);
        };
        let get = |name: &str| text_of(info, name).unwrap_or_default();
        let (pname, login, password) = (get("pname"), get("login"), get("passwd"));
        if pname.is_empty() || login.is_empty() || password.is_empty() {
            return error_result(&failure(1014, "Parsing error: pname, login and passwd are required."), None);
        }
        // Plesk logins: letters, digits and `-_.@`, starting with a letter or digit, at most 60 (UNVERIFIED detail).
        let valid_login = login.len() <= 60
            && login.starts_with(|c: char| c.is_ascii_alphanumeric())
            && login.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c));
        if !valid_login {
            return error_result(&failure(1019, format!("Invalid value: login \"{login}\" is not valid.")), None);
        }
        if password.chars().count() < 5 {
            return error_result(&failure(1019, "Invalid value: the password is too short."), None);
        }
        if server.customers.values().any(|c| c.login == login) {
            // UNVERIFIED wording; the code is documented (§2.1).
            return error_result(&failure(1007, format!("Client with login \"{login}\" already exists.")), None);
        }
        let id = server.id();
        let guid = uuid();
        server.customers.insert(
            id,
            Customer {
                id,
                guid: guid.clone(),
                login,
                password,
                pname,
                cname: get("cname"),
                email: get("email"),
                status: get("status").parse().unwrap_or(0),
                external_id: get("external-id"),
                description: get("description"),
                cr_date: today(),
            },
        );
        format!("<result><status>ok</status>{}{}</result>", el("id", id), el("guid", guid))
    }

    /// Runs `each` for every customer the operation's filter selects.
    fn each_customer(
        &self,
        server: &mut Server,
        node: Node<'_, '_>,
        each: impl Fn(&Self, &mut Server, u64, Node<'_, '_>) -> Result<String, Failure>,
    ) -> String {
        let filter = match filter_of(node) {
            Ok(filter) => filter,
            Err(failure) => return error_result(&failure, None),
        };
        let matches = |c: &Customer, key: &str, value: &str| match key {
            "id" => c.id.to_string() == value,
            "login" => c.login == value,
            "guid" => c.guid.eq_ignore_ascii_case(value),
            "external-id" => c.external_id == value,
            _ => false,
        };
        let selected: Vec<(Option<String>, Option<u64>)> = match &filter.key {
            None => server.customers.keys().map(|id| (None, Some(*id))).collect(),
            Some(key) => filter
                .values
                .iter()
                .flat_map(|value| {
                    let ids: Vec<u64> =
                        server.customers.values().filter(|c| matches(c, key, value)).map(|c| c.id).collect();
                    if ids.is_empty() {
                        vec![(Some(value.clone()), None)]
                    } else {
                        ids.into_iter().map(|id| (Some(value.clone()), Some(id))).collect()
                    }
                })
                .collect(),
        };
        selected
            .into_iter()
            .map(|(filter_id, id)| {
                let filter_part = filter_id.as_deref().map(|f| el("filter-id", f)).unwrap_or_default();
                let Some(id) = id else {
                    return not_found("client does not exist", filter.key.as_deref(), filter_id.as_deref());
                };
                match each(self, server, id, node) {
                    Ok(extra) => format!("<result><status>ok</status>{filter_part}{}{extra}</result>", el("id", id)),
                    Err(failure) => error_result(&failure, filter_id.as_deref()),
                }
            })
            .collect()
    }

    fn customer_get(&self, server: &mut Server, id: u64, node: Node<'_, '_>) -> Result<String, Failure> {
        let c = &server.customers[&id];
        let wants = |name: &str| child(node, "dataset").is_some_and(|d| child(d, name).is_some());
        let mut data = String::from("<data>");
        if wants("gen_info") {
            let _ = write!(
                data,
                "<gen_info>{}{}{}{}{}<phone/><fax/>{}<address/><city/><state/><pcode/><country/><locale>en-US</locale>{}<owner-login>{}</owner-login>{}{}</gen_info>",
                el("cr_date", &c.cr_date),
                el("cname", &c.cname),
                el("pname", &c.pname),
                el("login", &c.login),
                el("status", c.status),
                el("email", &c.email),
                el("guid", &c.guid),
                esc(&self.options.login),
                el("external-id", &c.external_id),
                el("description", &c.description),
            );
        }
        if wants("stat") {
            let domains = server.webspaces.values().filter(|w| w.owner_id == id).count();
            let _ = write!(data, "<stat>{}</stat>", el("active_domains", domains));
        }
        data.push_str("</data>");
        Ok(data)
    }

    fn customer_set(&self, server: &mut Server, id: u64, node: Node<'_, '_>) -> Result<String, Failure> {
        let Some(info) = child(node, "values").and_then(|v| child(v, "gen_info")) else {
            return Err(failure(1014, "Parsing error: values/gen_info is required."));
        };
        let customer = server.customers.get_mut(&id).expect("selected");
        for item in elements(info) {
            let value = item.text().unwrap_or_default().trim().to_owned();
            match item.tag_name().name() {
                "passwd" if value.chars().count() < 5 => {
                    return Err(failure(1019, "Invalid value: the password is too short."));
                }
                "passwd" => customer.password = value,
                "pname" => customer.pname = value,
                "email" => customer.email = value,
                "status" => customer.status = value.parse().map_err(|_| failure(1025, "Wrong status value."))?,
                "external-id" => customer.external_id = value,
                "description" => customer.description = value,
                _ => {}
            }
        }
        Ok(String::new())
    }

    fn webspace_add(&self, server: &mut Server, node: Node<'_, '_>) -> String {
        let Some(setup) = child(node, "gen_setup") else {
            return error_result(&failure(1014, "Parsing error: gen_setup is required."), None);
        };
        let get = |name: &str| text_of(setup, name).unwrap_or_default();
        let name = get("name").to_lowercase();
        let ip = get("ip_address");
        if name.is_empty() || ip.is_empty() {
            return error_result(&failure(1014, "Parsing error: name and ip_address are required."), None);
        }
        if server.webspaces.values().any(|w| w.name == name) {
            // Seen from a live Obsidian (UNVERIFIED provenance, §2.4).
            return error_result(
                &failure(
                    1007,
                    format!(
                        "Unable to create the domain {name} because a DNS record pointing to the host {name} already exists."
                    ),
                ),
                None,
            );
        }
        if !self.options.ips.iter().any(|(known, _)| *known == ip) {
            return error_result(&failure(1018, "IP address not found."), None);
        }
        let owner = if let Some(login) = text_of(setup, "owner-login") {
            server.customers.values().find(|c| c.login == login).map(|c| c.id)
        } else if let Some(id) = text_of(setup, "owner-id") {
            id.parse().ok().filter(|id| server.customers.contains_key(id))
        } else {
            Some(0)
        };
        let Some(owner_id) = owner else {
            return error_result(&failure(1015, "Object owner not found."), None);
        };
        let plan = if let Some(plan) = text_of(node, "plan-name") {
            server.plans.iter().find(|p| p.name == plan).map(|p| Some(p.guid.clone()))
        } else if let Some(guid) = text_of(node, "plan-guid") {
            server.plans.iter().find(|p| p.guid.eq_ignore_ascii_case(&guid)).map(|p| Some(p.guid.clone()))
        } else {
            Some(None)
        };
        let Some(plan_guid) = plan else {
            return error_result(&failure(1013, "Service plan does not exist."), None);
        };
        let properties = properties(child(node, "hosting").and_then(|h| child(h, "vrt_hst")));
        let ftp_login = properties.get("ftp_login").cloned().unwrap_or_default();
        if !ftp_login.is_empty() && server.webspaces.values().any(|w| w.ftp_login == ftp_login) {
            return error_result(&failure(1007, format!("The system user \"{ftp_login}\" already exists.")), None);
        }
        let id = server.id();
        let guid = uuid();
        server.webspaces.insert(
            id,
            Webspace {
                id,
                guid: guid.clone(),
                name,
                owner_id,
                ip,
                status: get("status").parse().unwrap_or(0),
                plan_guid,
                ftp_login,
                external_id: get("external-id"),
                description: get("description"),
                admin_description: get("admin-description"),
                cr_date: today(),
                real_size: 0,
                traffic: 0,
                traffic_prevday: 0,
                mailboxes: 0,
                databases: 0,
            },
        );
        format!("<result><status>ok</status>{}{}</result>", el("id", id), el("guid", guid))
    }

    /// Runs `each` for every subscription the operation's filter selects.
    fn each_webspace(
        &self,
        server: &mut Server,
        node: Node<'_, '_>,
        each: impl Fn(&Self, &mut Server, u64, Node<'_, '_>) -> Result<String, Failure>,
    ) -> String {
        let filter = match filter_of(node) {
            Ok(filter) => filter,
            Err(failure) => return error_result(&failure, None),
        };
        let login_of = |server: &Server, owner: u64| {
            server.customers.get(&owner).map(|c| c.login.clone()).unwrap_or_else(|| self.options.login.clone())
        };
        let selected: Vec<(Option<String>, Option<u64>)> = match &filter.key {
            None => server.webspaces.keys().map(|id| (None, Some(*id))).collect(),
            Some(key) => filter
                .values
                .iter()
                .flat_map(|value| {
                    let ids: Vec<u64> = server
                        .webspaces
                        .values()
                        .filter(|w| match key.as_str() {
                            "id" => w.id.to_string() == *value,
                            "name" => w.name.eq_ignore_ascii_case(value),
                            "guid" => w.guid.eq_ignore_ascii_case(value),
                            "owner-id" => w.owner_id.to_string() == *value,
                            "owner-login" => login_of(server, w.owner_id) == *value,
                            "external-id" => w.external_id == *value,
                            _ => false,
                        })
                        .map(|w| w.id)
                        .collect();
                    if ids.is_empty() {
                        vec![(Some(value.clone()), None)]
                    } else {
                        ids.into_iter().map(|id| (Some(value.clone()), Some(id))).collect()
                    }
                })
                .collect(),
        };
        selected
            .into_iter()
            .map(|(filter_id, id)| {
                let filter_part = filter_id.as_deref().map(|f| el("filter-id", f)).unwrap_or_default();
                let Some(id) = id else {
                    return not_found("Object not found.", filter.key.as_deref(), filter_id.as_deref());
                };
                match each(self, server, id, node) {
                    Ok(extra) => format!("<result><status>ok</status>{filter_part}{}{extra}</result>", el("id", id)),
                    Err(failure) => error_result(&failure, filter_id.as_deref()),
                }
            })
            .collect()
    }

    fn webspace_get(&self, server: &mut Server, id: u64, node: Node<'_, '_>) -> Result<String, Failure> {
        let w = &server.webspaces[&id];
        let wants = |name: &str| child(node, "dataset").is_some_and(|d| child(d, name).is_some());
        let owner_login =
            server.customers.get(&w.owner_id).map(|c| c.login.clone()).unwrap_or_else(|| self.options.login.clone());
        // Datasets come back in the schema's order (§2.5).
        let mut data = String::from("<data>");
        if wants("gen_info") {
            let _ = write!(
                data,
                "<gen_info>{}{}{}{}{}{}{}{}<htype>vrt_hst</htype>{}{}{}{}{}</gen_info>",
                el("cr_date", &w.cr_date),
                el("name", &w.name),
                el("ascii-name", &w.name),
                el("status", w.status),
                el("real_size", w.real_size),
                el("owner-id", w.owner_id),
                el("owner-login", &owner_login),
                el("dns_ip_address", &w.ip),
                el("guid", &w.guid),
                el("vendor-guid", "00000000-0000-0000-0000-000000000000"),
                el("external-id", &w.external_id),
                el("description", &w.description),
                el("admin-description", &w.admin_description),
            );
        }
        if wants("hosting") {
            let _ = write!(
                data,
                "<hosting><vrt_hst><property><name>ftp_login</name>{}</property>{}</vrt_hst></hosting>",
                el("value", &w.ftp_login),
                el("ip_address", &w.ip)
            );
        }
        if wants("stat") {
            let _ = write!(
                data,
                "<stat>{}<subdom>0</subdom><wu>0</wu>{}<redir>0</redir><mg>0</mg><resp>0</resp><maillists>0</maillists>{}<webapps>0</webapps>{}</stat>",
                el("traffic", w.traffic),
                el("box", w.mailboxes),
                el("db", w.databases),
                el("traffic_prevday", w.traffic_prevday),
            );
        }
        if wants("disk_usage") {
            let _ = write!(
                data,
                "<disk_usage>{}<httpsdocs>0</httpsdocs><subdomains>0</subdomains><web_users>0</web_users><anonftp>0</anonftp><logs>0</logs><dbases>0</dbases><mailboxes>0</mailboxes><webapps>0</webapps><maillists>0</maillists><domaindumps>0</domaindumps><configs>0</configs><chroot>0</chroot></disk_usage>",
                el("httpdocs", w.real_size)
            );
        }
        if wants("subscriptions") {
            let plan =
                w.plan_guid.as_deref().map(|g| format!("<plan>{}</plan>", el("plan-guid", g))).unwrap_or_default();
            let _ = write!(
                data,
                "<subscriptions><subscription><locked>false</locked><synchronized>true</synchronized>{plan}</subscription></subscriptions>"
            );
        }
        data.push_str("</data>");
        Ok(data)
    }

    fn webspace_set(&self, server: &mut Server, id: u64, node: Node<'_, '_>) -> Result<String, Failure> {
        let Some(values) = child(node, "values") else {
            return Err(failure(1014, "Parsing error: values is required."));
        };
        let webspace = server.webspaces.get_mut(&id).expect("selected");
        if let Some(setup) = child(values, "gen_setup") {
            for item in elements(setup) {
                let value = item.text().unwrap_or_default().trim().to_owned();
                match item.tag_name().name() {
                    "status" => {
                        webspace.status = match value.parse() {
                            Ok(status @ (0 | 16 | 64)) => status,
                            _ => return Err(failure(1025, "Wrong status value.")),
                        }
                    }
                    "external-id" => webspace.external_id = value,
                    "description" => webspace.description = value,
                    "admin-description" => webspace.admin_description = value,
                    _ => {}
                }
            }
        }
        let hosting = properties(child(values, "hosting").and_then(|h| child(h, "vrt_hst")));
        if let Some(password) = hosting.get("ftp_password")
            && password.chars().count() < 5
        {
            return Err(failure(1019, "Invalid value: the password is too short."));
        }
        Ok(String::new())
    }

    fn switch_subscription(&self, server: &mut Server, id: u64, node: Node<'_, '_>) -> Result<String, Failure> {
        let plan = if let Some(guid) = text_of(node, "plan-guid") {
            Some(
                server
                    .plans
                    .iter()
                    .find(|p| p.guid.eq_ignore_ascii_case(&guid))
                    .map(|p| p.guid.clone())
                    .ok_or_else(|| failure(1013, "Service plan does not exist."))?,
            )
        } else if child(node, "no-plan").is_some() {
            None
        } else {
            return Err(failure(1014, "Parsing error: plan-guid, plan-external-id or no-plan is required."));
        };
        server.webspaces.get_mut(&id).expect("selected").plan_guid = plan;
        Ok(String::new())
    }
}

/// `<property><name>…</name><value>…</value></property>` pairs.
fn properties(node: Option<Node<'_, '_>>) -> BTreeMap<String, String> {
    node.into_iter()
        .flat_map(|n| n.children().filter(|c| c.has_tag_name("property")))
        .filter_map(|p| Some((text_of(p, "name")?, text_of(p, "value").unwrap_or_default())))
        .collect()
}

/// `GET /enterprise/rsession_init.php?PLESKSESSID=…`: the session opens the
/// panel once, before it expires, then redirects to `success_redirect_url`.
async fn session_init(State(plesk): State<Plesk>, RawQuery(query): RawQuery) -> Response {
    let pairs: BTreeMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
    let id = pairs.get("PLESKSESSID").or_else(|| pairs.get("PHPSESSID")).cloned().unwrap_or_default();
    let mut server = plesk.server.lock().expect("server lock");
    let Some(session) = server.sessions.get_mut(&id).filter(|s| !s.used && s.expires >= now()) else {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<!DOCTYPE html><title>Plesk</title><p>The session has expired or is not valid. Log in again.</p>",
        )
            .into_response();
    };
    session.used = true;
    let login = session.login.clone();
    // Only a path on this server: never an open redirect.
    let target = pairs.get("success_redirect_url").filter(|u| u.starts_with('/') && !u.starts_with("//"));
    let cookie = format!("PLESKSESSID={}; HttpOnly; Path=/; Secure", provisio_test_server_kit::random_secret(24));
    let location = target.cloned().unwrap_or_else(|| format!("/smb/?user={login}"));
    (StatusCode::FOUND, [(header::LOCATION, location), (header::SET_COOKIE, cookie)]).into_response()
}

/// The element sequences of the XML API schema (`agent_input.xsd`) for the
/// operations this server implements: which children each element may
/// have, in which order, and which it must have.
mod schema {
    use roxmltree::Node;

    /// One element's content: allowed children in schema order (names
    /// joined by `|` are alternatives at one position), and required ones.
    struct Sequence {
        children: &'static [&'static str],
        required: &'static [&'static str],
        /// Children in any order (`xs:all`).
        any_order: bool,
    }

    const fn seq(children: &'static [&'static str], required: &'static [&'static str]) -> Sequence {
        Sequence { children, required, any_order: false }
    }

    const fn all(children: &'static [&'static str]) -> Sequence {
        Sequence { children, required: &[], any_order: true }
    }

    const CUSTOMER_FILTER: &[&str] = &["id", "login", "owner-id", "owner-login", "guid", "external-id"];
    const WEBSPACE_FILTER: &[&str] =
        &["id", "owner-id", "name", "owner-login", "guid", "owner-guid", "external-id", "owner-external-id"];
    const PLAN_FILTER: &[&str] = &["name", "id", "guid", "external-id"];

    /// The sequence of `path` (operator/operation/child/...), if the schema
    /// constrains it here.
    fn sequence(path: &str) -> Option<Sequence> {
        Some(match path {
            "customer/add" => seq(&["gen_info"], &["gen_info"]),
            "customer/add/gen_info" => seq(
                &[
                    "cname",
                    "pname",
                    "login",
                    "passwd",
                    "status",
                    "phone",
                    "fax",
                    "email",
                    "address",
                    "city",
                    "state",
                    "pcode",
                    "country",
                    "locale",
                    "owner-id|owner-login|owner-external-id",
                    "external-id",
                    "description",
                ],
                &["pname", "login", "passwd"],
            ),
            "customer/get" => seq(&["filter", "dataset"], &["filter", "dataset"]),
            "customer/get/dataset" => all(&["gen_info", "stat"]),
            "customer/set" => seq(&["filter", "values"], &["filter", "values"]),
            "customer/set/values" => seq(&["gen_info"], &["gen_info"]),
            "customer/del" => seq(&["filter"], &["filter"]),
            "webspace/add" => seq(
                &[
                    "gen_setup",
                    "hosting",
                    "limits",
                    "prefs",
                    "performance",
                    "permissions",
                    "php-settings",
                    "plan-id|plan-name|plan-guid|plan-external-id",
                    "mail",
                ],
                &["gen_setup"],
            ),
            "webspace/add/gen_setup" => seq(
                &[
                    "name",
                    "owner-id|owner-login|owner-guid|owner-external-id",
                    "htype",
                    "ip_address",
                    "status",
                    "external-id",
                    "description",
                    "admin-description",
                ],
                &["name", "ip_address"],
            ),
            "webspace/get" => seq(&["filter", "dataset"], &["filter", "dataset"]),
            "webspace/get/dataset" => all(&[
                "gen_info",
                "hosting",
                "hosting-basic",
                "limits",
                "stat",
                "prefs",
                "disk_usage",
                "performance",
                "subscriptions",
                "permissions",
                "plan-items",
                "php-settings",
                "resource-usage",
                "mail",
            ]),
            "webspace/set" => seq(&["filter", "values"], &["filter", "values"]),
            "webspace/set/values" => seq(
                &[
                    "gen_setup",
                    "limits",
                    "prefs",
                    "hosting",
                    "disk_usage",
                    "performance",
                    "permissions",
                    "php-settings",
                    "mail",
                ],
                &[],
            ),
            "webspace/del" => seq(&["filter"], &["filter"]),
            "webspace/switch-subscription" => seq(
                &["filter", "plan-guid|plan-external-id|no-plan"],
                &["filter", "plan-guid|plan-external-id|no-plan"],
            ),
            "service-plan/get" => seq(&["filter", "owner-id|owner-login|owner-all"], &["filter"]),
            "server/get" => all(&[
                "gen_info",
                "stat",
                "prefs",
                "admin",
                "key",
                "services_state",
                "interfaces",
                "shells",
                "site-isolation-config",
                "updater",
            ]),
            "server/create_session" => seq(&["login", "data"], &["login", "data"]),
            "server/create_session/data" => seq(
                &["user_ip", "c_email", "c_phone", "starting_url", "source_server", "navigation", "pathbar"],
                &["user_ip", "source_server"],
            ),
            _ => return None,
        })
    }

    fn filter_keys(operator: &str) -> Option<&'static [&'static str]> {
        match operator {
            "customer" => Some(CUSTOMER_FILTER),
            "webspace" => Some(WEBSPACE_FILTER),
            "service-plan" => Some(PLAN_FILTER),
            _ => None,
        }
    }

    /// Checks an operation and, recursively, the children the schema
    /// constrains; the message names the element, as Plesk's validator does.
    pub(super) fn check(operator: &str, operation: Node<'_, '_>) -> Result<(), String> {
        let path = format!("{operator}/{}", operation.tag_name().name());
        walk(operator, &path, operation)
    }

    fn walk(operator: &str, path: &str, node: Node<'_, '_>) -> Result<(), String> {
        let children: Vec<Node<'_, '_>> = node.children().filter(Node::is_element).collect();
        if path.ends_with("/filter") {
            let keys = filter_keys(operator).unwrap_or(&[]);
            if let Some(bad) = children.iter().find(|c| !keys.contains(&c.tag_name().name())) {
                return Err(format!("Element '{}': This element is not expected in a filter.", bad.tag_name().name()));
            }
            return Ok(());
        }
        let Some(sequence) = sequence(path) else { return Ok(()) };
        let position = |name: &str| sequence.children.iter().position(|c| c.split('|').any(|n| n == name));
        let mut last = 0;
        for child in &children {
            let name = child.tag_name().name();
            let Some(at) = position(name) else {
                return Err(format!("Element '{name}': This element is not expected."));
            };
            if !sequence.any_order && at < last {
                return Err(format!("Element '{name}': This element is not expected here (the order is wrong)."));
            }
            last = at;
            walk(operator, &format!("{path}/{name}"), *child)?;
        }
        for required in sequence.required {
            if !children.iter().any(|c| required.split('|').any(|n| n == c.tag_name().name())) {
                return Err(format!("Missing child element(s). Expected is ( {required} )."));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_up_to_ours_are_spoken() {
        assert!(version_supported("1.6.9.1"));
        assert!(version_supported("1.6"));
        assert!(version_supported("1.6.7.0"));
        assert!(!version_supported("100.0.0"));
        assert!(!version_supported("1.6.10"));
        assert!(!version_supported("x"));
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(el("name", "a<b&c"), "<name>a&lt;b&amp;c</name>");
        assert_eq!(el("state", ""), "<state/>");
    }
}
