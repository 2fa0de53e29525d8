//! A Hexonet test server: the ISPAPI HTTP gateway (`POST /api/call.cgi`)
//! for the domain commands a registrar integration uses, as Hexonet
//! documents them (`centralnicgroup-public/hexonet-api-documentation`), kept
//! in memory.
//!
//! What it follows is in `docs/research/hexonet-api.md` (sections below
//! refer to it):
//!
//! - a form body whatever its Content-Type, `s_entity` (`1234`, the OT&E
//!   system), `s_login`, `s_pw`, and `s_command` as `KEY=value` lines, keys
//!   in any order and case (§1, §4);
//! - answers in the live form: `[RESPONSE]`, `CODE=`, `DESCRIPTION=`,
//!   `PROPERTY[NAME][i]=`, `QUEUETIME=`, `RUNTIME=`, `EOF`, CRLF, always
//!   HTTP 200 (§2);
//! - CheckDomains, AddContact, StatusContact, ModifyContact, AddDomain,
//!   StatusDomain, ModifyDomain, RenewDomain (refused with 555 unless
//!   `EXPIRATION` names the current expiry year, when given), TransferDomain
//!   (pending, completed after a delay), StatusDomainTransfer and
//!   SetDomainRenewalMode (§3);
//! - 530 for bad credentials, 500 for an unknown command, 504/505/541 for
//!   missing or bad attributes, 545 for what does not exist (§5).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, Datelike, Months, Utc};

/// How a server starts.
#[derive(Debug, Clone)]
pub struct Options {
    /// Accounts: login and password.
    pub accounts: Vec<(String, String)>,
    /// How long an incoming transfer stays pending.
    pub transfer_after: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            accounts: vec![
                ("test.user".into(), provisio_test_server_kit::random_secret(16)),
                ("other.user".into(), provisio_test_server_kit::random_secret(16)),
            ],
            transfer_after: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Contact {
    id: String,
    user: String,
    fields: BTreeMap<String, String>,
    created: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
struct Domain {
    name: String,
    user: String,
    owner: String,
    admin: String,
    tech: String,
    billing: String,
    nameservers: Vec<String>,
    transfer_lock: bool,
    renewal_mode: String,
    auth: String,
    created: DateTime<Utc>,
    expires: DateTime<Utc>,
    /// An incoming transfer: the gaining user and when it completes.
    transfer: Option<(String, DateTime<Utc>, DateTime<Utc>)>,
}

#[derive(Debug, Default)]
struct Store {
    /// Commands (lower case) whose next answer comes this late, after the command took effect.
    slow: BTreeMap<String, Duration>,
    next: u64,
    contacts: BTreeMap<String, Contact>,
    domains: BTreeMap<String, Domain>,
}

/// A handle on one server's state.
#[derive(Debug, Clone)]
pub struct Hexonet {
    options: Arc<Options>,
    store: Arc<Mutex<Store>>,
}

/// One answer: code, description, properties.
struct Answer {
    code: u16,
    description: String,
    properties: Vec<(String, Vec<String>)>,
    pending: bool,
}

impl Answer {
    fn ok() -> Answer {
        Answer::code(200)
    }
    fn code(code: u16) -> Answer {
        Answer { code, description: text(code).into(), properties: Vec::new(), pending: false }
    }
    fn detail(code: u16, detail: &str) -> Answer {
        Answer { description: format!("{}; {detail}", text(code)), ..Answer::code(code) }
    }
    fn property(mut self, name: &str, values: Vec<String>) -> Answer {
        self.properties.push((name.to_owned(), values));
        self
    }
    fn one(self, name: &str, value: impl Into<String>) -> Answer {
        self.property(name, vec![value.into()])
    }
    /// The live form: no spaces, CRLF, timing lines (§2).
    fn render(&self) -> String {
        let mut out = format!("[RESPONSE]\r\nCODE={}\r\nDESCRIPTION={}\r\n", self.code, self.description);
        if self.pending {
            out.push_str("PENDING=1\r\n");
        }
        let mut sorted: Vec<&(String, Vec<String>)> = self.properties.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, values) in sorted {
            for (i, value) in values.iter().enumerate() {
                let _ = write!(out, "PROPERTY[{name}][{i}]={}\r\n", value.replace(['\r', '\n'], " "));
            }
        }
        out.push_str("QUEUETIME=0\r\nRUNTIME=0.001\r\nEOF\r\n");
        out
    }
}

/// The code table's texts (§2.2).
fn text(code: u16) -> &'static str {
    match code {
        200 => "Command completed successfully",
        210 => "Domain name available",
        211 => "Domain name not available",
        500 => "Invalid command name",
        504 => "Missing required attribute",
        505 => "Invalid attribute value syntax",
        530 => "Authentication failed",
        531 => "Authorization failed",
        540 => "Attribute value is not unique",
        541 => "Invalid attribute value",
        545 => "Object not found",
        552 => "Object status does not allow for operation",
        553 => "Operation not allowed. Object pending transfer",
        554 => "Object already registered",
        555 => "Object already renewed",
        _ => "Command failed",
    }
}

fn date(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// `s_command` lines into upper-case keys (lists as `KEY0`, `KEY1`…).
fn command_of(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "[COMMAND]" && *l != "EOF")
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_uppercase(), v.trim().to_owned()))
        .collect()
}

/// Values of `KEY0`, `KEY1`… (and `KEY` alone), in order.
fn list(command: &BTreeMap<String, String>, key: &str) -> Vec<String> {
    let mut values: Vec<(usize, String)> = command
        .iter()
        .filter_map(|(k, v)| {
            let rest = k.strip_prefix(key)?;
            if rest.is_empty() {
                return Some((0, v.clone()));
            }
            rest.parse::<usize>().ok().map(|i| (i, v.clone()))
        })
        .filter(|(_, v)| !v.is_empty())
        .collect();
    values.sort();
    values.into_iter().map(|(_, v)| v.to_lowercase()).collect()
}

fn valid_domain(name: &str) -> bool {
    let labels: Vec<&str> = name.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

fn years(command: &BTreeMap<String, String>) -> Result<u32, Answer> {
    let Some(period) = command.get("PERIOD") else { return Ok(1) };
    let (number, unit) = period.split_at(period.len().saturating_sub(1));
    let (number, unit) = if unit.chars().all(|c| c.is_ascii_digit()) { (period.as_str(), "Y") } else { (number, unit) };
    let value: u32 = number.parse().map_err(|_| Answer::detail(505, "PERIOD"))?;
    match unit {
        "Y" if (1..=10).contains(&value) => Ok(value),
        "M" if value.is_multiple_of(12) && (1..=10).contains(&(value / 12)) => Ok(value / 12),
        _ => Err(Answer::detail(541, "PERIOD")),
    }
}

impl Hexonet {
    /// A server's state.
    pub fn new(options: Options) -> Hexonet {
        Hexonet { options: Arc::new(options), store: Arc::default() }
    }

    /// The options (credentials included).
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// A domain's account and expiry.
    pub fn domain(&self, name: &str) -> Option<(String, DateTime<Utc>)> {
        let store = self.store.lock().expect("lock");
        store.domains.get(name).map(|d| (d.user.clone(), d.expires))
    }

    /// Registers `name` in `user`'s account directly, with `auth` as its code.
    pub fn add_domain(&self, user: &str, name: &str, auth: &str) {
        let mut store = self.store.lock().expect("lock");
        let created = Utc::now();
        store.domains.insert(
            name.to_owned(),
            Domain {
                name: name.to_owned(),
                user: user.to_owned(),
                owner: String::new(),
                admin: String::new(),
                tech: String::new(),
                billing: String::new(),
                nameservers: Vec::new(),
                transfer_lock: false,
                renewal_mode: "DEFAULT".into(),
                auth: auth.to_owned(),
                created,
                expires: created.checked_add_months(Months::new(12)).unwrap_or(created),
                transfer: None,
            },
        );
    }

    /// The next `command` (`RenewDomain`...) takes effect at once and is
    /// answered only after `delay`: a client with a shorter deadline loses
    /// the answer.
    pub fn slow_answer_to(&self, command: &str, delay: Duration) {
        self.store.lock().expect("lock").slow.insert(command.to_lowercase(), delay);
    }

    /// The HTTP route.
    pub fn router(&self) -> Router {
        Router::new().route("/api/call.cgi", post(call)).with_state(self.clone())
    }

    fn answer(&self, form: &BTreeMap<String, String>) -> Answer {
        if form.get("s_entity").map(String::as_str) != Some("1234") {
            return Answer::detail(530, "unknown entity");
        }
        let login = form.get("s_login").cloned().unwrap_or_default();
        let user = login.split('!').next().unwrap_or_default().to_owned();
        let password = form.get("s_pw").cloned().unwrap_or_default();
        if !self.options.accounts.iter().any(|(l, p)| *l == user && *p == password) {
            return Answer::code(530);
        }
        let command = command_of(form.get("s_command").map(String::as_str).unwrap_or_default());
        let mut store = self.store.lock().expect("lock");
        settle_transfers(&mut store);
        let name = command.get("COMMAND").map(|c| c.to_lowercase()).unwrap_or_default();
        match name.as_str() {
            "checkdomains" => check_domains(&store, &command),
            "addcontact" => add_contact(&mut store, &user, &command),
            "statuscontact" => status_contact(&store, &user, &command),
            "modifycontact" => modify_contact(&mut store, &user, &command),
            "adddomain" => add_domain(&mut store, &user, &command),
            "statusdomain" => status_domain(&store, &user, &command),
            "modifydomain" => modify_domain(&mut store, &user, &command),
            "renewdomain" => renew_domain(&mut store, &user, &command),
            "transferdomain" => transfer_domain(&mut store, &user, &command, self.options.transfer_after),
            "statusdomaintransfer" => status_transfer(&store, &user, &command),
            "setdomainrenewalmode" => set_renewal_mode(&mut store, &user, &command),
            _ => Answer::code(500),
        }
    }
}

async fn call(State(hexonet): State<Hexonet>, body: Bytes) -> Response {
    // The form is read whatever the Content-Type (the node SDK sends text/plain).
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let answer = hexonet.answer(&form);
    let command = command_of(form.get("s_command").map(String::as_str).unwrap_or_default());
    let name = command.get("COMMAND").map(|c| c.to_lowercase()).unwrap_or_default();
    let delay = hexonet.store.lock().expect("lock").slow.remove(&name);
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], answer.render()).into_response()
}

fn settle_transfers(store: &mut Store) {
    let now = Utc::now();
    for domain in store.domains.values_mut() {
        if let Some((gaining, _, at)) = domain.transfer.clone()
            && at <= now
        {
            domain.user = gaining;
            domain.expires = domain.expires.checked_add_months(Months::new(12)).unwrap_or(domain.expires);
            domain.transfer = None;
            domain.auth = provisio_test_server_kit::random_secret(12);
        }
    }
}

fn check_domains(store: &Store, command: &BTreeMap<String, String>) -> Answer {
    let names = list(command, "DOMAIN");
    if names.is_empty() {
        return Answer::detail(504, "DOMAIN");
    }
    let checks: Vec<String> = names
        .iter()
        .map(|n| match (valid_domain(n), store.domains.contains_key(n)) {
            (false, _) => "541 Invalid attribute value".to_owned(),
            (true, true) => "211 Domain name not available".to_owned(),
            // As the published example writes it (§3.1).
            (true, false) => "210 Available".to_owned(),
        })
        .collect();
    let n = checks.len();
    // No premium names here: their columns are there, empty (as the published example shows).
    let empty = || vec![String::new(); n];
    Answer::ok()
        .property("CLASS", empty())
        .property("CURRENCY", empty())
        .property("DOMAINCHECK", checks)
        .property("DOMAINCHECKTIME", vec!["0.001".to_owned(); n])
        .property("PREMIUMCHANNEL", empty())
        .property("PRICE", empty())
        .property("REASON", empty())
}

const CONTACT_FIELDS: &[&str] = &[
    "FIRSTNAME",
    "LASTNAME",
    "NAME",
    "ORGANIZATION",
    "STREET",
    "CITY",
    "STATE",
    "ZIP",
    "COUNTRY",
    "PHONE",
    "FAX",
    "EMAIL",
];

fn add_contact(store: &mut Store, user: &str, command: &BTreeMap<String, String>) -> Answer {
    let mut fields: BTreeMap<String, String> = CONTACT_FIELDS
        .iter()
        .filter_map(|f| command.get(*f).or_else(|| command.get(&format!("{f}0"))).map(|v| ((*f).to_owned(), v.clone())))
        .collect();
    for required in ["CITY", "ZIP", "COUNTRY", "PHONE", "EMAIL", "STREET"] {
        if fields.get(required).is_none_or(String::is_empty) {
            return Answer::detail(504, required);
        }
    }
    if !fields.contains_key("NAME") && !fields.contains_key("LASTNAME") {
        return Answer::detail(504, "NAME");
    }
    if !fields["EMAIL"].contains('@') {
        return Answer::detail(505, "EMAIL");
    }
    let phone = &fields["PHONE"];
    if !(phone.starts_with('+') && phone.contains('.')) {
        return Answer::detail(505, "PHONE");
    }
    fields.entry("NAME".into()).or_insert_with(|| {
        format!(
            "{} {}",
            command.get("FIRSTNAME").cloned().unwrap_or_default(),
            command.get("LASTNAME").cloned().unwrap_or_default()
        )
        .trim()
        .to_owned()
    });
    // An identical contact is answered as it is, unless NEW=1 (§3.9).
    let force = command.get("NEW").map(String::as_str) == Some("1");
    if !force && let Some(same) = store.contacts.values().find(|c| c.user == user && c.fields == fields) {
        return Answer::ok().one("CONTACT", same.id.clone()).one("NEW", "0").one("STATUS", "ACTIVE");
    }
    store.next += 1;
    let id = format!("P-PTS{}", 1_378_000 + store.next);
    store
        .contacts
        .insert(id.clone(), Contact { id: id.clone(), user: user.to_owned(), fields, created: Some(Utc::now()) });
    Answer::ok().one("CONTACT", id).one("NEW", "1").one("STATUS", "ACTIVE")
}

fn status_contact(store: &Store, user: &str, command: &BTreeMap<String, String>) -> Answer {
    let id = command.get("CONTACT").cloned().unwrap_or_default();
    let Some(contact) = store.contacts.get(&id).filter(|c| c.user == user) else {
        return Answer::detail(545, "CONTACT NOT FOUND");
    };
    let field = |f: &str| contact.fields.get(f).cloned().unwrap_or_default();
    let created = contact.created.map(date).unwrap_or_default();
    Answer::ok()
        .one("AUTH", "")
        .one("CITY", field("CITY"))
        .one("CLASS", "CONTACT")
        .one("COUNTRY", field("COUNTRY"))
        .one("CREATEDBY", user)
        .one("CREATEDDATE", created.clone())
        .one("DESCRIPTION", "")
        .one("EMAIL", field("EMAIL"))
        .one("FAX", field("FAX"))
        .one("FIRSTNAME", field("FIRSTNAME"))
        .one("ID", contact.id.clone())
        .one("LASTNAME", field("LASTNAME"))
        .one("NAME", field("NAME"))
        .one("ORGANIZATION", field("ORGANIZATION"))
        .one("PEERUSER", user)
        .one("PHONE", field("PHONE"))
        .one("REGISTRAR", "")
        .one("STATE", field("STATE"))
        .one("STATUS", "ACTIVE")
        .one("STREET", field("STREET"))
        .one("TRANSFERDATE", "0000-00-00 00:00:00")
        .one("UPDATEDBY", user)
        .one("UPDATEDDATE", created)
        .one("USER", user)
        .one("ZIP", field("ZIP"))
}

fn modify_contact(store: &mut Store, user: &str, command: &BTreeMap<String, String>) -> Answer {
    let id = command.get("CONTACT").cloned().unwrap_or_default();
    let Some(contact) = store.contacts.get_mut(&id).filter(|c| c.user == user) else {
        return Answer::detail(545, "CONTACT NOT FOUND");
    };
    for field in CONTACT_FIELDS {
        if let Some(value) = command.get(*field) {
            contact.fields.insert((*field).to_owned(), value.clone());
        }
    }
    Answer::ok()
}

fn contact_ok(store: &Store, user: &str, id: &str) -> bool {
    store.contacts.get(id).is_some_and(|c| c.user == user)
}

fn add_domain(store: &mut Store, user: &str, command: &BTreeMap<String, String>) -> Answer {
    let name = command.get("DOMAIN").map(|d| d.to_lowercase()).unwrap_or_default();
    if name.is_empty() {
        return Answer::detail(504, "DOMAIN");
    }
    if !valid_domain(&name) {
        return Answer::detail(505, "DOMAIN");
    }
    if let Some(existing) = store.domains.get(&name) {
        return if existing.user == user {
            Answer::detail(540, "DOMAIN is already assigned to your account")
        } else {
            Answer::code(554)
        };
    }
    let years = match years(command) {
        Ok(years) => years,
        Err(answer) => return answer,
    };
    let mut roles = Vec::new();
    for role in ["OWNERCONTACT0", "ADMINCONTACT0", "TECHCONTACT0", "BILLINGCONTACT0"] {
        let Some(id) = command.get(role).filter(|v| !v.is_empty()) else { return Answer::detail(504, role) };
        if !contact_ok(store, user, id) {
            return Answer::detail(541, role);
        }
        roles.push(id.clone());
    }
    let created = Utc::now();
    let expires = created.checked_add_months(Months::new(12 * years)).unwrap_or(created);
    let auth = command.get("AUTH").cloned().unwrap_or_else(|| provisio_test_server_kit::random_secret(12));
    store.domains.insert(
        name.clone(),
        Domain {
            name,
            user: user.to_owned(),
            owner: roles[0].clone(),
            admin: roles[1].clone(),
            tech: roles[2].clone(),
            billing: roles[3].clone(),
            nameservers: list(command, "NAMESERVER"),
            transfer_lock: command.get("TRANSFERLOCK").map(String::as_str) == Some("1"),
            renewal_mode: command.get("RENEWALMODE").cloned().unwrap_or_else(|| "DEFAULT".into()),
            auth,
            created,
            expires,
            transfer: None,
        },
    );
    Answer::ok()
        .one("ACCOUNTINGDATE", date(created))
        .one("FAILUREDATE", date(expires))
        .one("FINALIZATIONDATE", date(expires))
        .one("PAIDUNTILDATE", date(expires))
        .one("REGISTRATIONEXPIRATIONDATE", date(expires))
        .one("STATUS", "ACTIVE")
}

fn owned<'a>(store: &'a Store, user: &str, command: &BTreeMap<String, String>) -> Result<&'a Domain, Answer> {
    let name = command.get("DOMAIN").map(|d| d.to_lowercase()).unwrap_or_default();
    store.domains.get(&name).filter(|d| d.user == user).ok_or_else(|| Answer::detail(545, "DOMAIN NAME NOT FOUND"))
}

fn status_domain(store: &Store, user: &str, command: &BTreeMap<String, String>) -> Answer {
    let domain = match owned(store, user, command) {
        Ok(domain) => domain,
        Err(answer) => return answer,
    };
    let mut statuses = vec!["ACTIVE".to_owned()];
    if domain.transfer_lock {
        statuses.push("clientTransferProhibited".into());
    }
    Answer::ok()
        .one("ACCOUNTINGDATE", date(domain.created))
        .one("ACCOUNTINGPERIOD", "0d")
        .one("ADMINCONTACT", domain.admin.clone())
        .one("AUTH", domain.auth.clone())
        .one("BILLINGCONTACT", domain.billing.clone())
        .one("CLASS", "DOMAIN")
        .one("CREATEDBY", domain.user.clone())
        .one("CREATEDDATE", date(domain.created))
        .one("DOMAIN", domain.name.clone())
        .one("EXPIRATIONDATE", date(domain.expires))
        .property("NAMESERVER", domain.nameservers.clone())
        .one("OWNERCONTACT", domain.owner.clone())
        .one("PAIDUNTILDATE", date(domain.expires))
        .one("REGISTRATIONEXPIRATIONDATE", date(domain.expires))
        .one(
            "RENEWALMODE",
            if domain.renewal_mode == "DEFAULT" { "AUTORENEW".into() } else { domain.renewal_mode.clone() },
        )
        .property("STATUS", statuses)
        .one("TECHCONTACT", domain.tech.clone())
        .one("TRANSFERLOCK", if domain.transfer_lock { "1" } else { "0" })
        .one("USER", domain.user.clone())
}

fn modify_domain(store: &mut Store, user: &str, command: &BTreeMap<String, String>) -> Answer {
    let name = match owned(store, user, command) {
        Ok(domain) => domain.name.clone(),
        Err(answer) => return answer,
    };
    for role in ["OWNERCONTACT0", "ADMINCONTACT0", "TECHCONTACT0", "BILLINGCONTACT0"] {
        if let Some(id) = command.get(role)
            && !contact_ok(store, user, id)
        {
            return Answer::detail(541, role);
        }
    }
    // Everything is checked before anything changes.
    if command.get("AUTH").is_some_and(|auth| auth.len() < 6) {
        return Answer::detail(541, "AUTH");
    }
    let domain = store.domains.get_mut(&name).expect("owned");
    if domain.transfer.is_some() {
        return Answer::code(553);
    }
    let nameservers = list(command, "NAMESERVER");
    if !nameservers.is_empty() {
        domain.nameservers = nameservers;
    }
    if let Some(lock) = command.get("TRANSFERLOCK") {
        domain.transfer_lock = lock == "1";
    }
    for (role, slot) in [
        ("OWNERCONTACT0", &mut domain.owner),
        ("ADMINCONTACT0", &mut domain.admin),
        ("TECHCONTACT0", &mut domain.tech),
        ("BILLINGCONTACT0", &mut domain.billing),
    ] {
        if let Some(id) = command.get(role) {
            *slot = id.clone();
        }
    }
    if let Some(auth) = command.get("AUTH") {
        domain.auth = auth.clone();
    }
    Answer::ok()
}

fn renew_domain(store: &mut Store, user: &str, command: &BTreeMap<String, String>) -> Answer {
    let name = match owned(store, user, command) {
        Ok(domain) => domain.name.clone(),
        Err(answer) => return answer,
    };
    let years = match years(command) {
        Ok(years) => years,
        Err(answer) => return answer,
    };
    let domain = store.domains.get_mut(&name).expect("owned");
    // The current expiry year, when given, must match: a replay names a stale one (§3.5).
    if let Some(year) = command.get("EXPIRATION")
        && year.parse::<i32>().ok() != Some(domain.expires.year())
    {
        return Answer::code(555);
    }
    if let Some(when) = command.get("EXPIRATIONDATE")
        && when.get(..10) != Some(domain.expires.format("%Y-%m-%d").to_string().as_str())
    {
        return Answer::code(555);
    }
    domain.expires = domain.expires.checked_add_months(Months::new(12 * years)).unwrap_or(domain.expires);
    Answer::ok()
        .one("DOMAIN", domain.name.clone())
        .one("EXPIRATIONDATE", date(domain.expires))
        .one("REGISTRATIONEXPIRATIONDATE", date(domain.expires))
}

fn transfer_domain(store: &mut Store, user: &str, command: &BTreeMap<String, String>, after: Duration) -> Answer {
    let name = command.get("DOMAIN").map(|d| d.to_lowercase()).unwrap_or_default();
    let Some(domain) = store.domains.get_mut(&name) else { return Answer::detail(545, "DOMAIN NAME NOT FOUND") };
    if domain.user == user {
        return Answer::detail(540, "DOMAIN is already assigned to your account");
    }
    let action = command.get("ACTION").map(|a| a.to_uppercase()).unwrap_or_else(|| "REQUEST".into());
    if action != "REQUEST" {
        return Answer::detail(541, "ACTION");
    }
    if domain.transfer.is_some() {
        return Answer::code(553);
    }
    if domain.transfer_lock {
        return Answer::detail(552, "DOMAIN TRANSFER IS PROHIBITED BY STATUS (clientTransferProhibited)");
    }
    if command.get("AUTH").is_none_or(|auth| *auth != domain.auth) {
        return Answer::detail(531, "DOMAIN TRANSFER IS PROHIBITED BY WRONG AUTH");
    }
    let now = Utc::now();
    domain.transfer = Some((user.to_owned(), now, now + chrono::Duration::from_std(after).unwrap_or_default()));
    Answer { pending: true, ..Answer::detail(200, "domain transfer initiated") }
}

fn status_transfer(store: &Store, user: &str, command: &BTreeMap<String, String>) -> Answer {
    let name = command.get("DOMAIN").map(|d| d.to_lowercase()).unwrap_or_default();
    let Some((_, started, _)) = store.domains.get(&name).and_then(|d| d.transfer.clone()).filter(|(g, _, _)| g == user)
    else {
        return Answer::detail(545, "NO PENDING TRANSFER");
    };
    Answer::ok()
        .one("CREATEDDATE", date(started))
        .one("REPOSITORY", "COM-OTE-1API1")
        .one("TRANSFERLOG", format!("{} [INITIATED] domain transfer initiated", date(started)))
        .one("TRANSFERSTATUS", "INITIATED")
        .one("TRANSFERTYPE", "INCOMING")
        .one("UPDATEDDATE", date(started))
}

fn set_renewal_mode(store: &mut Store, user: &str, command: &BTreeMap<String, String>) -> Answer {
    let name = match owned(store, user, command) {
        Ok(domain) => domain.name.clone(),
        Err(answer) => return answer,
    };
    let Some(mode) = command.get("RENEWALMODE").map(|m| m.to_uppercase()) else {
        return Answer::detail(504, "RENEWALMODE");
    };
    if !["DEFAULT", "AUTORENEW", "AUTOEXPIRE", "AUTODELETE"].contains(&mode.as_str()) {
        return Answer::detail(541, "RENEWALMODE");
    }
    store.domains.get_mut(&name).expect("owned").renewal_mode = mode;
    Answer::ok().one("UNRENEW", "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_read_keys_in_any_case_and_lists_in_order() {
        let command = command_of("command=CheckDomains\ndomain1=b.net\nDOMAIN0=a.com\r\n");
        assert_eq!(command["COMMAND"], "CheckDomains");
        assert_eq!(list(&command, "DOMAIN"), ["a.com", "b.net"]);
    }

    #[test]
    fn answers_are_written_in_the_live_form() {
        let text = Answer::detail(545, "DOMAIN NAME NOT FOUND").render();
        assert_eq!(
            text,
            "[RESPONSE]\r\nCODE=545\r\nDESCRIPTION=Object not found; DOMAIN NAME NOT FOUND\r\nQUEUETIME=0\r\nRUNTIME=0.001\r\nEOF\r\n"
        );
    }
}
