//! A cPanel & WHM test server: the part of WHM API 1 that provisioning uses,
//! as cPanel documents it (<https://api.docs.cpanel.net/whm/introduction>),
//! kept in memory per server.
//!
//! What it follows, and where each choice comes from, is in
//! `docs/research/whm-api-1.md` (section numbers below refer to it):
//!
//! - `/json-api/<function>?api.version=1` and `/cpsessNNNNNNNNNN/json-api/<function>`,
//!   GET or POST, parameters from the query and a form body (§1);
//! - `Authorization: whm USER:TOKEN` (the scheme in any case) or HTTP Basic;
//!   anything else is the 403 `cpanelresult` body real servers send (§1.4);
//! - the API 1 envelope: failures are HTTP 200 with `metadata.result` 0 and
//!   the server's own reason text (§2, §3);
//! - usernames checked by cPanel's rules (§5.3);
//! - resellers see and act on only the accounts they own (§3.3, §3.14);
//! - `create_user_session` URLs that work once, within 300 seconds (§3.10;
//!   single use is this server's choice, which real servers appear to share);
//! - a slow `createacct` on demand ([`Whm::set_create_delay`]): the account is
//!   made first and the answer comes late, as when `wwwacct` runs long (§5.1).
//!
//! Not implemented: WHM API 0 beyond `applist`, the other 600-odd functions,
//! ACLs finer than root/reseller, and regular expressions in `search`
//! (only `^name$`, `^prefix`, `suffix$` and substrings).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use base64::Engine as _;
use serde_json::{Map, Value, json};

/// The version this server reports (`version`).
pub const VERSION: &str = "11.134.0.5";

/// How a server starts.
#[derive(Debug, Clone)]
pub struct Options {
    /// The root user's name (`root`).
    pub root_user: String,
    /// The root user's API token.
    pub root_token: String,
    /// The root password, for HTTP Basic (clients that use it).
    pub root_password: String,
    /// Resellers: name and API token.
    pub resellers: Vec<(String, String)>,
    /// The packages (`listpkgs`).
    pub packages: Vec<String>,
    /// The server's host name (accounts' `server`, nameserver names).
    pub hostname: String,
    /// The shared IP new accounts get.
    pub shared_ip: String,
    /// How long `createacct` takes to answer (the account exists from the start).
    pub create_delay: Duration,
    /// The scheme of sign-on URLs: real servers send `https` (cpaneld's TLS
    /// port); this server answers every service on its own port, so a plain
    /// one says `http`.
    pub scheme: &'static str,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            root_user: "root".into(),
            root_token: provisio_test_server_kit::random_secret(32).to_uppercase(),
            root_password: provisio_test_server_kit::random_secret(16),
            resellers: Vec::new(),
            packages: vec!["basic".into(), "standard".into(), "premium".into()],
            hostname: "server.example.com".into(),
            shared_ip: "192.0.2.10".into(),
            create_delay: Duration::ZERO,
            scheme: "https",
        }
    }
}

/// One cPanel account.
#[derive(Debug, Clone)]
struct Account {
    user: String,
    domain: String,
    plan: String,
    contact_email: String,
    password: String,
    owner: String,
    ip: String,
    suspended: bool,
    suspend_reason: String,
    suspend_time: u64,
    start: u64,
    disk_used_mb: u64,
    inodes_used: u64,
    bandwidth_bytes: u64,
}

/// A pre-authenticated session from `create_user_session`.
#[derive(Debug)]
struct Session {
    security_token: String,
    service: String,
    expires: u64,
    used: bool,
}

#[derive(Debug, Default)]
struct Panel {
    accounts: BTreeMap<String, Account>,
    sessions: BTreeMap<String, Session>,
    requests: u64,
}

/// A handle on one server's state (for tests: usage, delays, counts).
#[derive(Debug, Clone)]
pub struct Whm {
    options: Arc<Options>,
    panel: Arc<Mutex<Panel>>,
    create_delay: Arc<Mutex<Duration>>,
}

/// Who is calling.
#[derive(Debug, Clone)]
struct Caller {
    user: String,
    root: bool,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// An XID as cPanel makes them: six characters from its unambiguous alphabet.
fn xid() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    (0..6).map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char).collect()
}

/// A reason as thrown errors render: `API failure: (XID …) message`.
fn api_failure(message: &str) -> String {
    format!("API failure: (XID {}) {message}", xid())
}

impl Whm {
    /// A server's state.
    pub fn new(options: Options) -> Whm {
        let delay = options.create_delay;
        Whm { options: Arc::new(options), panel: Arc::default(), create_delay: Arc::new(Mutex::new(delay)) }
    }

    /// The options it runs with (credentials included).
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Makes `createacct` answer after `delay` (the account is made at once).
    pub fn set_create_delay(&self, delay: Duration) {
        *self.create_delay.lock().expect("delay lock") = delay;
    }

    /// Sets an account's usage, as if its sites had grown.
    pub fn set_usage(&self, user: &str, disk_mb: u64, inodes: u64, bandwidth_bytes: u64) -> bool {
        let mut panel = self.panel.lock().expect("panel lock");
        let Some(account) = panel.accounts.get_mut(user) else { return false };
        (account.disk_used_mb, account.inodes_used, account.bandwidth_bytes) = (disk_mb, inodes, bandwidth_bytes);
        true
    }

    /// The accounts, by user: package, owner, suspended, contact email.
    pub fn accounts(&self) -> Vec<(String, String, String, bool, String)> {
        let panel = self.panel.lock().expect("panel lock");
        panel
            .accounts
            .values()
            .map(|a| (a.user.clone(), a.plan.clone(), a.owner.clone(), a.suspended, a.contact_email.clone()))
            .collect()
    }

    /// An account's password (to check a change, or that it never leaked).
    pub fn password(&self, user: &str) -> Option<String> {
        self.panel.lock().expect("panel lock").accounts.get(user).map(|a| a.password.clone())
    }

    /// Sets an account's contact email as its owner can in cPanel » Contact
    /// Information (a second address is joined with ", ", as WHM reads it back).
    pub fn set_contact_email(&self, user: &str, email: &str) -> bool {
        let mut panel = self.panel.lock().expect("panel lock");
        let Some(account) = panel.accounts.get_mut(user) else { return false };
        account.contact_email = email.to_owned();
        true
    }

    /// Makes an account as an operator would by hand in WHM (no API call).
    pub fn add_account(&self, user: &str, domain: &str, plan: &str, contact_email: &str) {
        let account = self.account(user, domain, plan, contact_email, &self.options.root_user);
        self.panel.lock().expect("panel lock").accounts.insert(user.to_owned(), account);
    }

    /// How many API requests were answered (authenticated or not).
    pub fn requests(&self) -> u64 {
        self.panel.lock().expect("panel lock").requests
    }

    fn account(&self, user: &str, domain: &str, plan: &str, contact_email: &str, owner: &str) -> Account {
        Account {
            user: user.to_owned(),
            domain: domain.to_owned(),
            plan: plan.to_owned(),
            contact_email: contact_email.to_owned(),
            password: provisio_test_server_kit::random_secret(16),
            owner: owner.to_owned(),
            ip: self.options.shared_ip.clone(),
            suspended: false,
            suspend_reason: String::new(),
            suspend_time: 0,
            start: now(),
            disk_used_mb: 0,
            inodes_used: 0,
            bandwidth_bytes: 0,
        }
    }

    /// The HTTP routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/json-api/{function}", any(api))
            .route("/{security}/json-api/{function}", any(api_in_session))
            .route("/{security}/login/", get(login))
            .with_state(self.clone())
    }

    fn authenticate(&self, headers: &HeaderMap) -> Option<Caller> {
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, credentials) = value.split_once(' ')?;
        let options = &self.options;
        let (user, secret, basic) = if scheme.eq_ignore_ascii_case("whm") {
            let (user, token) = credentials.trim().split_once(':')?;
            (user.to_owned(), token.to_owned(), false)
        } else if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD.decode(credentials.trim()).ok()?;
            let decoded = String::from_utf8(decoded).ok()?;
            let (user, password) = decoded.split_once(':')?;
            (user.to_owned(), password.to_owned(), true)
        } else {
            return None;
        };
        if user == options.root_user {
            let expected = if basic { &options.root_password } else { &options.root_token };
            return (secret == *expected).then_some(Caller { user, root: true });
        }
        let (_, token) = options.resellers.iter().find(|(name, _)| *name == user)?;
        (!basic && secret == *token).then_some(Caller { user, root: false })
    }
}

/// The 403 a real server sends for bad credentials, before any API runs
/// (observed; §1.4).
fn access_denied() -> Response {
    let body = r#"{"cpanelresult":{"apiversion":"2","error":"Access denied","data":{"reason":"Access denied","result":"0"},"type":"text"}}"#;
    let mut response = (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, r#"text/plain; charset="utf-8""#), (header::CONNECTION, "close")],
        body,
    )
        .into_response();
    response.extensions_mut().insert(hyper::ext::ReasonPhrase::from_static(b"Forbidden Access denied"));
    response
}

fn json_response(body: Value) -> Response {
    ([(header::CONTENT_TYPE, r#"application/json; charset="utf-8""#)], body.to_string()).into_response()
}

/// One API 1 answer.
struct Answer {
    data: Option<Value>,
    reason: String,
    ok: bool,
    output: Option<Value>,
}

impl Answer {
    fn ok(data: Option<Value>) -> Answer {
        Answer { data, reason: "OK".into(), ok: true, output: None }
    }
    fn fail(reason: impl Into<String>) -> Answer {
        Answer { data: None, reason: reason.into(), ok: false, output: None }
    }
    fn reason(mut self, reason: impl Into<String>) -> Answer {
        self.reason = reason.into();
        self
    }
    fn raw(mut self, raw: impl Into<String>) -> Answer {
        self.output = Some(json!({"raw": raw.into()}));
        self
    }
    fn envelope(self, command: &str) -> Value {
        let mut metadata =
            json!({"command": command, "reason": self.reason, "result": u8::from(self.ok), "version": 1});
        if let Some(output) = self.output {
            metadata["output"] = output;
        }
        let mut body = Map::new();
        if let Some(data) = self.data {
            body.insert("data".into(), data);
        }
        body.insert("metadata".into(), metadata);
        Value::Object(body)
    }
}

/// Query string and form body, merged (the body's pairs come last).
fn parameters(query: Option<&str>, headers: &HeaderMap, body: &[u8]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if form {
        pairs.extend(url::form_urlencoded::parse(body).into_owned());
    }
    pairs
}

struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
    fn nonempty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }
    /// A required parameter, with cPanel's messages for missing and empty.
    fn required(&self, name: &str) -> Result<&str, Box<Answer>> {
        match self.get(name) {
            None => Err(Box::new(Answer::fail(api_failure(&format!("Provide the “{name}” parameter."))))),
            Some("") => Err(Box::new(Answer::fail(api_failure(&format!("The value of “{name}” may not be empty."))))),
            Some(value) => Ok(value),
        }
    }
}

async fn api(
    State(whm): State<Whm>,
    Path(function): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run(whm, function, query, headers, body).await
}

async fn api_in_session(
    State(whm): State<Whm>,
    Path((security, function)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !is_security_token(&security) {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    }
    run(whm, function, query, headers, body).await
}

fn is_security_token(segment: &str) -> bool {
    segment.strip_prefix("cpsess").is_some_and(|d| d.len() == 10 && d.bytes().all(|b| b.is_ascii_digit()))
}

async fn run(whm: Whm, function: String, query: Option<String>, headers: HeaderMap, body: Bytes) -> Response {
    whm.panel.lock().expect("panel lock").requests += 1;
    let Some(caller) = whm.authenticate(&headers) else {
        return access_denied();
    };
    let params = Params(parameters(query.as_deref(), &headers, &body));
    if params.get("api.version") != Some("1") {
        // Without api.version a call is WHM API 0 (§1.1): only `applist` here.
        if function == "applist" {
            return json_response(json!({"app": FUNCTIONS}));
        }
        return json_response(json!({"result": [{"status": 0,
            "statusmsg": "This test server implements WHM API 1 only: add api.version=1"}]}));
    }
    if function == "createacct" {
        let answer = whm.createacct(&caller, &params);
        let delay = *whm.create_delay.lock().expect("delay lock");
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        return json_response(answer.envelope(&function));
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost").to_owned();
    let answer = match function.as_str() {
        "version" => Answer::ok(Some(json!({"version": VERSION}))),
        "applist" => Answer::ok(Some(json!({"app": FUNCTIONS}))),
        "myprivs" => Answer::ok(Some(json!({"privileges": [privileges(&caller)]}))),
        "listpkgs" => whm.listpkgs(),
        "verify_new_username" => whm.verify_new_username(&params),
        "accountsummary" => whm.accountsummary(&caller, &params),
        "listaccts" => whm.listaccts(&caller, &params),
        "suspendacct" => whm.suspendacct(&caller, &params),
        "unsuspendacct" => whm.unsuspendacct(&caller, &params),
        "changepackage" => whm.changepackage(&caller, &params),
        "removeacct" => whm.removeacct(&caller, &params),
        "passwd" => whm.passwd(&caller, &params),
        "modifyacct" => whm.modifyacct(&caller, &params),
        "create_user_session" => whm.create_user_session(&caller, &params, &host),
        "showbw" => whm.showbw(&caller, &params),
        // Unverified wording: what WHM answers for a function it lacks.
        other => Answer::fail(format!("Unknown app (“{other}”) requested for this version (1) of the API.")),
    };
    json_response(answer.envelope(&function))
}

/// The functions this server implements (`applist`).
const FUNCTIONS: &[&str] = &[
    "accountsummary",
    "applist",
    "changepackage",
    "create_user_session",
    "createacct",
    "listaccts",
    "listpkgs",
    "modifyacct",
    "myprivs",
    "passwd",
    "removeacct",
    "showbw",
    "suspendacct",
    "unsuspendacct",
    "verify_new_username",
    "version",
];

/// The ACLs this server knows; root has them all, a reseller all but `all`.
const ACLS: &[&str] = &[
    "acct-summary",
    "all",
    "create-acct",
    "create-user-session",
    "edit-account",
    "kill-acct",
    "list-accts",
    "list-pkgs",
    "passwd",
    "show-bandwidth",
    "suspend-acct",
    "upgrade-account",
];

fn privileges(caller: &Caller) -> Value {
    let mut map = Map::new();
    for acl in ACLS {
        map.insert((*acl).into(), json!(u8::from(caller.root || *acl != "all")));
    }
    Value::Object(map)
}

/// Exact names cPanel reserves (§5.3).
const RESERVED: &[&str] = &[
    "abrt",
    "all",
    "clamav",
    "cpanel-ccs",
    "cpeasyapache",
    "cpses",
    "cptkt",
    "cphulkd",
    "cpwebcalls",
    "dbus",
    "dirs",
    "dnsadmin",
    "dovecot",
    "eximstats",
    "files",
    "ftpxferlog",
    "haldaemon",
    "information_schema",
    "mailman",
    "modsec",
    "munin",
    "mydns",
    "nobody",
    "performance_schema",
    "postgres",
    "postmaster",
    "proftpd",
    "root",
    "roundcube",
    "shadow",
    "spamassassin",
    "ssl",
    "sys",
    "system",
    "tcpdump",
    "tmp",
    "tomcat",
    "toor",
    "virtfs",
    "virtual",
    "webmaster",
    "whmxfer",
    "_lock",
];
const RESERVED_PREFIXES: &[&str] =
    &["test", "passwd.", "cpmydns", "cpanel", "mydns", "pg_toast", "pg_temp", "cpbackup"];
const RESERVED_SUFFIXES: &[&str] = &[".lock", ".cache", ".yaml", ".json", ".db", "assword"];
/// How many leading characters must differ between usernames (§5.3: 8 on
/// MySQL, the stricter case).
const PREFIX_LENGTH: usize = 8;

/// Whether a name is valid for a new account: `^(?![-.0-9])[a-z0-9]{1,16}$`.
fn valid_username(name: &str) -> bool {
    (1..=16).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

fn reserved_username(name: &str) -> bool {
    RESERVED.contains(&name)
        || RESERVED_PREFIXES.iter().any(|p| name.starts_with(p))
        || RESERVED_SUFFIXES.iter().any(|s| name.ends_with(s))
}

impl Whm {
    /// Why `name` cannot be a new account, in cPanel's words and order (§3.2).
    fn username_problem(&self, panel: &Panel, name: &str) -> Option<String> {
        if !valid_username(name) {
            return Some(format!("“{name}” is not a valid username on this system."));
        }
        if reserved_username(name) {
            return Some(format!("“{name}” is a reserved username on this system."));
        }
        if panel.accounts.contains_key(name) {
            return Some(format!("This system already has an account named “{name}”."));
        }
        if name.len() >= PREFIX_LENGTH {
            let prefix = &name[..PREFIX_LENGTH];
            if panel.accounts.keys().any(|other| other.len() >= PREFIX_LENGTH && &other[..PREFIX_LENGTH] == prefix) {
                return Some(format!(
                    "The name of another account on this server has the same initial {PREFIX_LENGTH} characters as the given username ({name}). Each username’s first {PREFIX_LENGTH} characters must be unique."
                ));
            }
        }
        None
    }

    fn verify_new_username(&self, params: &Params) -> Answer {
        let name = match params.get("user") {
            None => return Answer::fail(api_failure("Provide the “user” parameter.")),
            Some("") => return Answer::fail(api_failure("The value of “user” may not be empty.")),
            Some(name) => name.to_owned(),
        };
        let panel = self.panel.lock().expect("panel lock");
        match self.username_problem(&panel, &name) {
            Some(problem) => Answer::fail(api_failure(&problem)),
            None => Answer::ok(None),
        }
    }

    fn createacct(&self, caller: &Caller, params: &Params) -> Answer {
        let name = match params.required("username") {
            Ok(name) => name.to_lowercase(),
            Err(answer) => return *answer,
        };
        if params.get("password").is_some() && params.get("pass").is_some() {
            return Answer::fail(api_failure("You may not specify both “password” and “pass”."));
        }
        let owner = params.nonempty("owner").unwrap_or(&caller.user).to_owned();
        if !caller.root && owner != caller.user {
            return Answer::fail(api_failure(
                "Without root access, you can only create accounts that you yourself own.",
            ));
        }
        let plan = params.nonempty("plan").or(params.nonempty("pkgname")).unwrap_or("default").to_owned();
        let mut panel = self.panel.lock().expect("panel lock");
        if let Some(problem) = self.username_problem(&panel, &name) {
            // createacct's reasons carry an XID without the "API failure:" prefix.
            return Answer::fail(format!("(XID {}) {problem}", xid()));
        }
        let domain = params
            .nonempty("domain")
            .map(str::to_lowercase)
            .unwrap_or_else(|| format!("{name}.{}", self.options.hostname));
        if panel.accounts.values().any(|a| a.domain == domain) {
            return Answer::fail(format!(
                "(XID {}) The domain “{domain}” already exists in the Apache configuration.",
                xid()
            ));
        }
        if plan != "default" && !self.options.packages.contains(&plan) {
            // Sic: the real message misspells "package" (§3.1).
            return Answer::fail(format!("Sorry, \"{plan}\" is not a valid pacakge name."));
        }
        let mut account =
            self.account(&name, &domain, &plan, params.nonempty("contactemail").unwrap_or_default(), &owner);
        if let Some(password) = params.nonempty("password").or(params.nonempty("pass")) {
            account.password = password.to_owned();
        }
        panel.accounts.insert(name.clone(), account);
        let hostname = &self.options.hostname;
        let nameserver = |n: &str| format!("ns{n}.{}", hostname.split_once('.').map(|(_, d)| d).unwrap_or(hostname));
        Answer::ok(Some(json!({
            "ip": self.options.shared_ip, "package": plan,
            "nameserver": nameserver("1"), "nameserver2": nameserver("2"), "nameserver3": "", "nameserver4": "",
            "nameservera": "", "nameservera2": "", "nameservera3": "", "nameservera4": "",
            "nameserverentry": "", "nameserverentry2": "", "nameserverentry3": "", "nameserverentry4": "",
        })))
        .reason("Account Creation Ok")
        .raw(format!(
            "Checking input data...Done\nWWWAcct 12.6.0 (c) 2026 cPanel, L.L.C....\n+===================================+\n| Domain: {domain}\n| UserName: {name}\n| Package: {plan}\n+===================================+\nwwwacct creation finished\nAccount Creation Complete!!!...Account Creation Ok...Done\n"
        ))
    }

    /// The account `user` as `caller` may see it: a reseller sees only its own.
    fn visible<'a>(&self, panel: &'a Panel, caller: &Caller, user: &str) -> Option<&'a Account> {
        panel.accounts.get(user).filter(|a| caller.root || a.owner == caller.user)
    }

    /// The access check suspend, unsuspend, remove and passwd run first (§3.4).
    fn accessible(&self, panel: &Panel, caller: &Caller, user: &str) -> Result<(), Box<Answer>> {
        if self.visible(panel, caller, user).is_some() {
            return Ok(());
        }
        Err(Box::new(Answer::fail(api_failure(&if caller.root {
            format!("You do not have a user named “{user}”.")
        } else {
            format!("You do not have access to an account named “{user}”.")
        }))))
    }

    fn summary(&self, account: &Account) -> Value {
        let megabytes = |n: u64| if n == 0 { "none".to_owned() } else { format!("{n}M") };
        json!({
            "backup": 0, "child_nodes": [], "disklimit": "unlimited", "diskused": megabytes(account.disk_used_mb),
            "domain": account.domain,
            "email": if account.contact_email.is_empty() { "*unknown*" } else { &account.contact_email },
            "inodeslimit": "unlimited",
            "inodesused": if account.inodes_used == 0 { json!("none") } else { json!(account.inodes_used) },
            "ip": account.ip, "ipv6": [], "is_locked": 0, "legacy_backup": 0, "mailbox_format": "maildir",
            "max_defer_fail_percentage": "unlimited", "max_email_per_hour": "unlimited",
            "max_emailacct_quota": "unlimited", "maxaddons": "unlimited", "maxftp": "unlimited",
            "maxlst": "unlimited", "maxparked": "unlimited", "maxpop": "unlimited", "maxsql": "unlimited",
            "maxsub": "unlimited", "min_defer_fail_to_trigger_protection": "5", "outgoing_mail_hold": 0,
            "outgoing_mail_suspended": 0, "owner": account.owner, "partition": "home", "plan": account.plan,
            "shell": if account.suspended { "/bin/false" } else { "/usr/local/cpanel/bin/jailshell" },
            "startdate": startdate(account.start),
            "suspended": u8::from(account.suspended),
            "suspendreason": if account.suspended { account.suspend_reason.as_str() } else { "not suspended" },
            "suspendtime": account.suspend_time,
            "temporary": 0, "is_temporary_domain": 0, "theme": "jupiter", "uid": 1000 + account.start % 1000,
            "unix_startdate": account.start, "user": account.user,
        })
    }

    fn accountsummary(&self, caller: &Caller, params: &Params) -> Answer {
        let panel = self.panel.lock().expect("panel lock");
        let found = match (params.nonempty("user"), params.nonempty("domain")) {
            (Some(user), _) => self.visible(&panel, caller, user),
            (None, Some(domain)) => {
                panel.accounts.values().find(|a| a.domain == domain && (caller.root || a.owner == caller.user))
            }
            (None, None) => return Answer::fail(api_failure("You must specify a user or domain to get a summary of.")),
        };
        match found {
            Some(account) => Answer::ok(Some(json!({"acct": [self.summary(account)]}))),
            None => Answer { data: Some(json!({"acct": []})), ..Answer::fail("Account does not exist.") },
        }
    }

    fn listaccts(&self, caller: &Caller, params: &Params) -> Answer {
        let panel = self.panel.lock().expect("panel lock");
        let search = params.get("search").unwrap_or_default();
        let exact = params.get("searchmethod") == Some("exact");
        let searchtype = params.nonempty("searchtype");
        let field = |a: &Account| -> Option<String> {
            Some(match searchtype {
                None | Some("user") => a.user.clone(),
                Some("domain") => a.domain.clone(),
                Some("owner") => a.owner.clone(),
                Some("ip") => a.ip.clone(),
                Some("package") => a.plan.clone(),
                Some(_) => return None,
            })
        };
        if searchtype.is_some() && field(&self.account("x", "x", "x", "", "x")).is_none() {
            return Answer::fail("Unknown search type.");
        }
        let found: Vec<Value> = panel
            .accounts
            .values()
            .filter(|a| caller.root || a.owner == caller.user)
            .filter(|a| search.is_empty() || field(a).is_some_and(|v| matches(&v, search, exact)))
            .map(|a| {
                let mut summary = self.summary(a);
                summary["has_backup"] = json!(0);
                summary
            })
            .collect();
        if found.is_empty() {
            // listaccts returns nothing for no match: result 1, no `acct` (§3.14).
            return Answer::ok(Some(json!({})));
        }
        Answer::ok(Some(json!({"acct": found})))
    }

    fn suspendacct(&self, caller: &Caller, params: &Params) -> Answer {
        let user = match params.required("user") {
            Ok(user) => user.to_owned(),
            Err(answer) => return *answer,
        };
        let mut panel = self.panel.lock().expect("panel lock");
        if let Err(answer) = self.accessible(&panel, caller, &user) {
            return *answer;
        }
        let account = panel.accounts.get_mut(&user).expect("checked");
        account.suspended = true;
        account.suspend_reason = params.nonempty("reason").unwrap_or("Unknown").to_owned();
        account.suspend_time = now();
        Answer::ok(None).raw(format!(
            "Changing Shell to /bin/false...Done\nLocking Password...Done\nSuspending websites...Done\n{user}'s account has been suspended\n"
        ))
    }

    fn unsuspendacct(&self, caller: &Caller, params: &Params) -> Answer {
        let user = match params.required("user") {
            Ok(user) => user.to_owned(),
            Err(answer) => return *answer,
        };
        let mut panel = self.panel.lock().expect("panel lock");
        if let Err(answer) = self.accessible(&panel, caller, &user) {
            return *answer;
        }
        let account = panel.accounts.get_mut(&user).expect("checked");
        (account.suspended, account.suspend_reason, account.suspend_time) = (false, String::new(), 0);
        Answer::ok(None)
    }

    fn changepackage(&self, caller: &Caller, params: &Params) -> Answer {
        let (user, package) = match (params.required("user"), params.required("pkg")) {
            (Ok(user), Ok(package)) => (user.to_owned(), package.to_owned()),
            (Err(answer), _) | (_, Err(answer)) => return *answer,
        };
        let mut panel = self.panel.lock().expect("panel lock");
        if let Err(answer) = self.accessible(&panel, caller, &user) {
            return *answer;
        }
        if !self.options.packages.contains(&package) {
            // Unverified wording (§3.6): the package-change backend's refusal.
            return Answer::fail(format!("Specified package “{package}” does not exist."));
        }
        let account = panel.accounts.get_mut(&user).expect("checked");
        let before = std::mem::replace(&mut account.plan, package.clone());
        Answer::ok(None)
            .raw(format!("<pre>\nChanging Feature List to default\nChanging plan from {before} to {package}\n</pre>"))
    }

    fn listpkgs(&self) -> Answer {
        let packages: Vec<Value> = self
            .options
            .packages
            .iter()
            .map(|name| {
                json!({"BWLIMIT": "unlimited", "CGI": "y", "CPMOD": "jupiter", "DIGESTAUTH": "n",
                       "FEATURELIST": "default", "HASSHELL": "n", "IP": "n", "LANG": "en",
                       "MAXADDON": "unlimited", "MAXFTP": "unlimited", "MAXLST": "unlimited",
                       "MAXPARK": "unlimited", "MAXPOP": "unlimited", "MAXSQL": "unlimited",
                       "MAXSUB": "unlimited", "MAX_DEFER_FAIL_PERCENTAGE": "unlimited",
                       "MAX_EMAILACCT_QUOTA": "unlimited", "MAX_EMAIL_PER_HOUR": "unlimited",
                       "MAX_TEAM_USERS": 7, "QUOTA": "unlimited", "_PACKAGE_EXTENSIONS": "", "name": name})
            })
            .collect();
        Answer::ok(Some(json!({"pkg": packages})))
    }

    fn removeacct(&self, caller: &Caller, params: &Params) -> Answer {
        // `username` is documented; `user` is the older name clients still send.
        let Some(user) = params.nonempty("username").or(params.nonempty("user")).map(str::to_owned) else {
            return Answer::fail("No user name supplied: \"user\" is a required argument.");
        };
        let mut panel = self.panel.lock().expect("panel lock");
        if let Err(answer) = self.accessible(&panel, caller, &user) {
            return *answer;
        }
        panel.accounts.remove(&user);
        Answer::ok(None).reason(format!("{user} account removed")).raw(format!(
            "Running pre removal script (/usr/local/cpanel/scripts/prekillacct)......Done\nAccount Removal Complete!!!...{user} account removed...Done\n"
        ))
    }

    fn passwd(&self, caller: &Caller, params: &Params) -> Answer {
        let Some(user) = params.nonempty("user").map(str::to_owned) else {
            return Answer::fail("No user name supplied: “user” is a required argument.");
        };
        let Some(password) = params.nonempty("password").map(str::to_owned) else {
            return Answer::fail("No password supplied: “password” is a required argument.");
        };
        let mut panel = self.panel.lock().expect("panel lock");
        if let Err(answer) = self.accessible(&panel, caller, &user) {
            return *answer;
        }
        panel.accounts.get_mut(&user).expect("checked").password = password;
        Answer::ok(Some(json!({"app": ["ftp"]}))).reason(format!("Password changed for user “{user}”."))
    }

    fn modifyacct(&self, caller: &Caller, params: &Params) -> Answer {
        let Some(user) = params.nonempty("user").map(str::to_owned) else {
            return Answer::fail("Must at least specify a user to modify.");
        };
        let mut panel = self.panel.lock().expect("panel lock");
        if let Err(answer) = self.accessible(&panel, caller, &user) {
            return *answer;
        }
        let account = panel.accounts.get_mut(&user).expect("checked");
        if let Some(email) = params.get("contactemail") {
            account.contact_email = email.to_owned();
        }
        if let Some(owner) = params.nonempty("owner") {
            if !caller.root {
                return Answer::fail(api_failure(
                    "You cannot use the “owner” argument because you do not have root access.",
                ));
            }
            account.owner = owner.to_owned();
        }
        let cpuser = json!({"CONTACTEMAIL": account.contact_email, "DNS": account.domain, "OWNER": account.owner,
                            "PLAN": account.plan, "USER": account.user});
        Answer {
            data: Some(json!({"cpuser": cpuser, "domain": account.domain, "setshell": "", "user": user})),
            reason: "Account Modified".into(),
            ok: true,
            output: Some(json!({"messages": [], "warnings": []})),
        }
    }

    fn create_user_session(&self, caller: &Caller, params: &Params, host: &str) -> Answer {
        let Some(user) = params.nonempty("user").map(str::to_owned) else {
            return Answer::fail("The “user” parameter is required.");
        };
        let Some(service) = params.nonempty("service").map(str::to_owned) else {
            return Answer::fail("The “service” parameter is required.");
        };
        if !["cpaneld", "webmaild", "whostmgrd"].contains(&service.as_str()) {
            return Answer::fail(
                "The “service” parameter is invalid. The only supported services for this API call are “cpaneld”, “webmaild”, and “whostmgrd”.",
            );
        }
        let mut panel = self.panel.lock().expect("panel lock");
        let own_session = user == caller.user && service == "whostmgrd";
        if !own_session {
            let Some(account) = panel.accounts.get(&user) else {
                return Answer::fail(format!(
                    "You cannot create a session for the user “{user}” because they do not exist."
                ));
            };
            if (!caller.root && account.owner != caller.user) || service == "whostmgrd" {
                return Answer::fail(format!("You do not have permission to create sessions for the user “{user}”."));
            }
            if account.suspended {
                return Answer::fail(format!(
                    "You cannot create a session for the user “{user}” because they are currently suspended."
                ));
            }
        }
        let security_token = format!("/cpsess{}", provisio_test_server_kit::random_digits(10));
        let session = format!(
            "{user}:{}:create_user_session,{}",
            provisio_test_server_kit::random_secret(16),
            (0..32).map(|_| char::from_digit(fastrand::u32(..16), 16).unwrap_or('0')).collect::<String>()
        );
        let expires = now() + 300;
        panel.sessions.insert(
            session.clone(),
            Session { security_token: security_token.clone(), service: service.clone(), expires, used: false },
        );
        // The session's own port is the service's (2083 cPanel, 2096 Webmail);
        // this server answers every service on its one port.
        let encoded: String = url::form_urlencoded::byte_serialize(session.as_bytes()).collect();
        let mut url = format!("{}://{host}{security_token}/login/?session={encoded}", self.options.scheme);
        if let Some(locale) = params.nonempty("locale") {
            url.push_str(&format!("&locale={locale}"));
        }
        let mut data = json!({"cp_security_token": security_token, "expires": expires, "service": service,
                              "session": session, "url": url});
        if let Some(locale) = params.nonempty("locale") {
            data["locale"] = json!(locale);
        }
        Answer::ok(Some(data)).reason("Created session")
    }

    fn showbw(&self, caller: &Caller, params: &Params) -> Answer {
        let panel = self.panel.lock().expect("panel lock");
        let search = params.get("search").unwrap_or_default();
        let searchtype = params.nonempty("searchtype").unwrap_or("user");
        let rows: Vec<Value> = panel
            .accounts
            .values()
            .filter(|a| caller.root || a.owner == caller.user)
            .filter(|a| {
                let value = match searchtype {
                    "domain" => &a.domain,
                    "owner" => &a.owner,
                    "ip" => &a.ip,
                    "package" => &a.plan,
                    _ => &a.user,
                };
                search.is_empty() || matches(value, search, false)
            })
            .map(|a| {
                json!({"bwusage": [{"deleted": 0, "domain": a.domain, "usage": a.bandwidth_bytes}],
                       "deleted": 0, "limit": 0, "maindomain": a.domain, "owner": a.owner, "reseller": 0,
                       "totalbytes": a.bandwidth_bytes, "user": a.user})
            })
            .collect();
        let total: u64 = rows.iter().filter_map(|r| r["totalbytes"].as_u64()).sum();
        let (year, month) = year_month(now());
        let month = params.nonempty("month").and_then(|m| m.parse().ok()).unwrap_or(month);
        let year = params.nonempty("year").and_then(|y| y.parse().ok()).unwrap_or(year);
        Answer::ok(Some(
            json!({"acct": rows, "month": month, "reseller": caller.user, "totalused": total, "year": year}),
        ))
    }
}

/// A search as this server understands it: `^x$` exact, `^x` prefix, `x$`
/// suffix, otherwise a substring (or equality with `searchmethod=exact`).
fn matches(value: &str, search: &str, exact: bool) -> bool {
    let value = value.to_lowercase();
    let search = search.to_lowercase();
    if exact {
        return value == search;
    }
    match (search.strip_prefix('^'), search.ends_with('$')) {
        (Some(rest), true) => value == rest.trim_end_matches('$'),
        (Some(rest), false) => value.starts_with(rest),
        (None, true) => value.ends_with(search.trim_end_matches('$')),
        (None, false) => value.contains(&search),
    }
}

/// `startdate` as cPanel writes it: `YY Mon DD HH:MM`.
fn startdate(unix: u64) -> String {
    let (year, month, day) = civil(unix / 86_400);
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let seconds = unix % 86_400;
    format!(
        "{:02} {} {:02} {:02}:{:02}",
        year % 100,
        MONTHS[month as usize - 1],
        day,
        seconds / 3600,
        seconds % 3600 / 60
    )
}

fn year_month(unix: u64) -> (u64, u64) {
    let (year, month, _) = civil(unix / 86_400);
    (year, month)
}

/// The civil date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: u64) -> (u64, u64, u64) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year as u64, month as u64, day as u64)
}

/// `GET /cpsessNNNNNNNNNN/login/?session=…`: the session works once, before
/// it expires; then the panel's cookie and a redirect to its front page.
async fn login(State(whm): State<Whm>, Path(security): Path<String>, RawQuery(query): RawQuery) -> Response {
    let session = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "session")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let mut panel = whm.panel.lock().expect("panel lock");
    let valid = panel
        .sessions
        .get_mut(&session)
        .filter(|s| !s.used && s.expires >= now() && s.security_token.trim_start_matches('/') == security);
    let Some(found) = valid else {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<!DOCTYPE html><title>Login</title><p>The login session is invalid or has expired.</p>",
        )
            .into_response();
    };
    found.used = true;
    let landing = match found.service.as_str() {
        "webmaild" => "webmail/jupiter/index.html",
        "whostmgrd" => "",
        _ => "frontend/jupiter/index.html",
    };
    let cookie = format!("cpsession={}; HttpOnly; path=/; secure", provisio_test_server_kit::random_secret(24));
    (StatusCode::FOUND, [(header::LOCATION, format!("/{security}/{landing}")), (header::SET_COOKIE, cookie)])
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_cpanel_rules() {
        assert!(valid_username("bob"));
        assert!(!valid_username("1bob"));
        assert!(!valid_username("Bob"));
        assert!(!valid_username("bob_smith"));
        assert!(!valid_username("abcdefghijklmnopq"));
        assert!(reserved_username("root"));
        assert!(reserved_username("testuser"));
        assert!(reserved_username("cpanelx"));
        assert!(reserved_username("mypassword"));
        assert!(!reserved_username("alice"));
    }

    #[test]
    fn startdates_read_like_cpanels() {
        assert_eq!(startdate(1_369_256_589), "13 May 22 21:03");
        assert_eq!(year_month(1_575_158_400), (2019, 12));
    }

    #[test]
    fn searches_cover_anchors() {
        assert!(matches("bob", "^bob$", false));
        assert!(!matches("bobby", "^bob$", false));
        assert!(matches("bobby", "^bob", false));
        assert!(matches("bobby", "bby$", false));
        assert!(matches("bobby", "ob", false));
        assert!(matches("Bob", "bob", true));
    }
}
