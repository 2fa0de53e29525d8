//! `domain-names/epp`: domains at a registry over EPP, RFC 5730 (the
//! protocol), 5731 (domains), 5732 (hosts) and 5733 (contacts), on RFC 5734's
//! transport ([`session`]: TLS, length-prefixed frames, a session pool).
//!
//! - register: `domain:info` first (a domain this registrar holds for this
//!   service, with the same registrant, is adopted; any other holder is
//!   `conflict`), the service's contacts (`contact:create`, or updated when
//!   they exist), name servers as host objects (`host:create` for unknown
//!   ones), then `domain:create` with a fresh authInfo;
//! - renew: `curExpDate` is the expiry the service last knew (its stored
//!   result), so a renew whose answer was lost is never done twice: the
//!   registry refuses the stale date, and an expiry already moved by the
//!   years asked is answered as done;
//! - transfer in: `transfer op="request"` with the code, then pending until
//!   the registry or the losing registrar approves; `get_status` follows it;
//! - lock: the `clientTransferProhibited` status; EPP code: the authInfo;
//! - errors by result code: 2302 `conflict`, 2303 `not_found`, 2003/2004/2005
//!   `invalid_input` naming the field, 2304/2306 provider errors saying why,
//!   2400 and 25xx `transient` (or `outcome_unknown` once a change was sent).
//!
//! **Ownership mark.** The service's contacts have ids made from its mark
//! (`pv` + 13 hex digits of its SHA-256 + the role), so a domain is this
//! service's when this registrar sponsors it and its registrant is the
//! service's registrant contact.

pub mod nominet;
mod session;

use chrono::{DateTime, Utc};
use provisio_sdk::blueprints::domain_names::*;
use provisio_sdk::formats::{CountryCode, DomainName, Email, Hostname, Phone, generate_password};
use provisio_sdk::xml::{Xml, esc};
use provisio_sdk::{
    ConnectionTest, Context, FieldLocation, Notice, NoticeKind, Provider, ProviderAbout, ProviderError, UserMessage,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use session::{CONTACT, DOMAIN, Endpoint, HOST, Reply};

/// The registry entry.
pub fn entry() -> provisio_sdk::ProviderEntry {
    provisio_sdk::blueprints::domain_names::entry::<Epp>()
}

fn default_port() -> u16 {
    700
}

fn default_sessions() -> u8 {
    2
}

/// How to reach one registry as one registrar.
#[derive(Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EppConfig {
    /// The registry's EPP host, e.g. `epp.example-registry.net`.
    #[schemars(length(min = 1, max = 253), extend("x-endpoint" = true))]
    pub host: String,
    /// Its port (700 by RFC 5734).
    #[serde(default = "default_port")]
    #[schemars(extend("x-endpoint" = true))]
    pub port: u16,
    /// The registrar's client id (`clID`).
    #[schemars(length(min = 3, max = 16))]
    pub username: String,
    /// The registrar's password.
    #[schemars(length(min = 6, max = 16), extend("x-secret" = true, "writeOnly" = true))]
    pub password: String,
    /// The CA certificate (PEM) that signed the registry's certificate, when
    /// it is not a public one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 65536), extend("x-endpoint" = true))]
    pub ca_cert_pem: Option<String>,
    /// Sessions kept open at most (registries limit them per registrar).
    #[serde(default = "default_sessions")]
    #[schemars(range(min = 1, max = 16))]
    pub sessions: u8,
}

impl std::fmt::Debug for EppConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EppConfig").field("host", &self.host).field("username", &self.username).finish_non_exhaustive()
    }
}

/// The EPP provider for one registrar account.
#[derive(Debug)]
pub struct Epp {
    config: EppConfig,
    /// Nominet .uk's ways, when this is `domain-names/nominet`.
    nominet: Option<nominet::Settings>,
}

/// What a domain:info answered.
#[derive(Debug, Clone)]
struct Registration {
    sponsor: String,
    registrant: String,
    statuses: Vec<String>,
    nameservers: Vec<String>,
    contacts: Vec<(String, String)>,
    created: Option<DateTime<Utc>>,
    expires: Option<DateTime<Utc>>,
    auth: String,
}

fn invalid(path: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::invalid_field(FieldLocation::Params, path, message)
}

/// The error a refused command is: by RFC 5730 result code.
fn refused(what: &str, reply: &Reply, field: &str) -> ProviderError {
    let error = match reply.code {
        2302 => ProviderError::conflict(UserMessage::new(format!("{what}: it already exists at the registry"))),
        2303 => ProviderError::not_found(UserMessage::new(format!("{what}: it does not exist at the registry"))),
        2003..=2005 => invalid(field, format!("was refused by the registry ({})", reply.text)),
        2201 => ProviderError::conflict(UserMessage::new(format!("{what}: another registrar holds it"))),
        2202 => invalid("/epp_code", "is not the domain's authorisation code"),
        2304 => ProviderError::provider(UserMessage::new(format!("{what}: the object's status forbids it"))),
        2306 => ProviderError::provider(UserMessage::new(format!(
            "{what}: the registry's policy forbids it (for a renew: the expiry date it was given is not the current one)"
        ))),
        2400 | 2500..=2502 => ProviderError::transient("The registry failed the command; try again later"),
        _ => ProviderError::provider(UserMessage::new(format!("{what}: the registry refused it"))),
    };
    error.with_debug("epp_code", reply.code).with_debug("epp_msg", reply.text.clone())
}

/// A contact id made from the service's mark and the role (`r`, `a`, `t`, `b`).
fn contact_id(cx: &Context, role: char) -> String {
    use sha2::Digest;
    let seed = cx.owner().map(str::to_owned).unwrap_or_else(|| generate_password(16));
    let digest = hex::encode(sha2::Sha256::digest(seed.as_bytes()));
    format!("pv{}{role}", &digest[..13])
}

fn parse_date(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|d| d.with_timezone(&Utc))
}

fn contact_xml(contact: &Contact) -> String {
    let org =
        contact.organisation.as_deref().map(|o| format!("<contact:org>{}</contact:org>", esc(o))).unwrap_or_default();
    let street2 =
        contact.address2.as_deref().map(|s| format!("<contact:street>{}</contact:street>", esc(s))).unwrap_or_default();
    let sp = contact.state.as_deref().map(|s| format!("<contact:sp>{}</contact:sp>", esc(s))).unwrap_or_default();
    format!(
        "<contact:postalInfo type=\"int\"><contact:name>{}</contact:name>{org}<contact:addr><contact:street>{}</contact:street>{street2}<contact:city>{}</contact:city>{sp}<contact:pc>{}</contact:pc><contact:cc>{}</contact:cc></contact:addr></contact:postalInfo><contact:voice>{}</contact:voice><contact:email>{}</contact:email>",
        esc(&contact.name),
        esc(&contact.address1),
        esc(&contact.city),
        esc(&contact.postcode),
        esc(contact.country_code.as_str()),
        esc(&contact.phone.dotted()),
        esc(contact.email.as_str()),
    )
}

/// A contact from a contact:infData.
fn contact_of(data: &Xml) -> Option<Contact> {
    let postal = data.child("postalInfo")?;
    let addr = postal.child("addr")?;
    let streets: Vec<&str> = addr.all("street").map(|s| s.text.as_str()).collect();
    let optional = |text: &str| (!text.is_empty()).then(|| text.to_owned());
    Some(Contact {
        name: postal.at(&["name"]).to_owned(),
        organisation: optional(postal.at(&["org"])),
        email: Email::parse(data.at(&["email"])).ok()?,
        phone: Phone::from_dotted(data.at(&["voice"])).ok()?,
        address1: streets.first().copied().unwrap_or_default().to_owned(),
        address2: streets.get(1).map(|s| (*s).to_owned()),
        city: addr.at(&["city"]).to_owned(),
        state: optional(addr.at(&["sp"])),
        postcode: addr.at(&["pc"]).to_owned(),
        country_code: CountryCode::parse(addr.at(&["cc"])).ok()?,
    })
}

impl Epp {
    fn endpoint(&self) -> Endpoint {
        Endpoint {
            host: self.config.host.clone(),
            port: self.config.port,
            client_id: self.config.username.clone(),
            password: self.config.password.clone(),
            ca_cert_pem: self.config.ca_cert_pem.clone(),
            sessions: usize::from(self.config.sessions),
            extensions: if self.nominet.is_some() { &nominet::EXTENSIONS } else { session::EXTENSIONS },
        }
    }

    /// The registrar's id as the registry writes it in `clID`: the login
    /// id (for Nominet, the tag; `#XX` for a two-character one, as `clID`
    /// takes 3 to 16 characters).
    fn client_id(&self) -> &str {
        &self.config.username
    }

    async fn send(&self, cx: &Context, what: &str, body: &str, changes: bool) -> Result<Reply, ProviderError> {
        session::command(cx, &self.endpoint(), what, body, changes).await
    }

    /// The registration as this registrar sees it; `None` if the name is free.
    async fn registration(&self, cx: &Context, domain: &DomainName) -> Result<Option<Registration>, ProviderError> {
        let body = format!(
            "<info><domain:info xmlns:domain=\"{DOMAIN}\"><domain:name hosts=\"all\">{}</domain:name></domain:info></info>",
            esc(domain.as_str())
        );
        let reply = self.send(cx, "domain:info", &body, false).await?;
        match reply.code {
            1000 => {}
            2303 => return Ok(None),
            _ => return Err(refused(&format!("Reading {domain}"), &reply, "/domain")),
        }
        let data = reply.response.path(&["response", "resData", "infData"]).cloned().unwrap_or_default();
        // The authInfo is the domain's transfer key: out of every log.
        cx.add_secret(data.at(&["authInfo", "pw"]));
        Ok(Some(Registration {
            sponsor: data.at(&["clID"]).to_owned(),
            registrant: data.at(&["registrant"]).to_owned(),
            statuses: data.all("status").filter_map(|s| s.attribute("s").map(str::to_owned)).collect(),
            nameservers: data
                .child("ns")
                .into_iter()
                .flat_map(|ns| ns.all("hostObj"))
                .map(|h| h.text.clone())
                .collect(),
            contacts: data
                .all("contact")
                .map(|c| (c.attribute("type").unwrap_or_default().to_owned(), c.text.clone()))
                .collect(),
            created: parse_date(data.at(&["crDate"])),
            expires: parse_date(data.at(&["exDate"])),
            auth: data.at(&["authInfo", "pw"]).to_owned(),
        }))
    }

    /// The registration, if this service may act on it: held by this
    /// registrar, with the service's registrant.
    async fn owned(&self, cx: &Context, domain: &DomainName) -> Result<Registration, ProviderError> {
        let found = self
            .registration(cx, domain)
            .await?
            .ok_or_else(|| ProviderError::not_found(UserMessage::new(format!("{domain} is not registered"))))?;
        if found.sponsor != self.client_id() {
            return Err(ProviderError::conflict(UserMessage::new(format!(
                "{domain} is registered with another registrar"
            ))));
        }
        // A domain this service asked to transfer in keeps the old
        // registrar's contacts: it is the service's by its own request (and
        // its code). A .uk domain needs no code to be pushed here, so it is
        // the service's only once it arrived with the registrant ordered.
        let transferred_in = match self.nominet {
            Some(_) => nominet::arrived_as_ordered(cx.provision_data()),
            None => asked_for_transfer(cx.provision_data()),
        };
        if cx.owner().is_some() && found.registrant != contact_id(cx, 'r') && !transferred_in {
            return Err(ProviderError::conflict(UserMessage::new(format!(
                "{domain} exists but belongs to another service (or was not made by Provisio)"
            ))));
        }
        Ok(found)
    }

    async fn contact(&self, cx: &Context, id: &str) -> Result<Option<Contact>, ProviderError> {
        Ok(self.contact_data(cx, id).await?.as_ref().and_then(contact_of))
    }

    /// A contact's `contact:infData`, as the registry gave it.
    async fn contact_data(&self, cx: &Context, id: &str) -> Result<Option<Xml>, ProviderError> {
        let body = format!(
            "<info><contact:info xmlns:contact=\"{CONTACT}\"><contact:id>{}</contact:id></contact:info></info>",
            esc(id)
        );
        let reply = self.send(cx, "contact:info", &body, false).await?;
        let data = reply.response.path(&["response", "resData", "infData"]);
        cx.add_secret(data.map(|d| d.at(&["authInfo", "pw"])).unwrap_or_default());
        match reply.code {
            1000 => Ok(data.cloned()),
            2303 => Ok(None),
            _ => Err(refused("Reading a contact", &reply, "/contacts")),
        }
    }

    /// Makes (or brings up to date) the service's contact for `role`.
    async fn ensure_contact(
        &self,
        cx: &Context,
        role: char,
        contact: &Contact,
        path: &str,
    ) -> Result<String, ProviderError> {
        let id = contact_id(cx, role);
        match self.contact(cx, &id).await? {
            Some(current) if current == *contact => {}
            Some(_) => {
                let body = format!(
                    "<update><contact:update xmlns:contact=\"{CONTACT}\"><contact:id>{}</contact:id><contact:chg>{}</contact:chg></contact:update></update>{}",
                    esc(&id),
                    contact_xml(contact),
                    self.contact_extension(role, contact, "update")
                );
                let reply = self.send(cx, "contact:update", &body, true).await?;
                if reply.code != 1000 {
                    return Err(refused("Updating a contact", &reply, path));
                }
            }
            None => {
                let auth = generate_password(16);
                cx.add_secret(&auth);
                let body = format!(
                    "<create><contact:create xmlns:contact=\"{CONTACT}\"><contact:id>{}</contact:id>{}<contact:authInfo><contact:pw>{}</contact:pw></contact:authInfo></contact:create></create>{}",
                    esc(&id),
                    contact_xml(contact),
                    esc(&auth),
                    self.contact_extension(role, contact, "create")
                );
                let reply = self.send(cx, "contact:create", &body, true).await?;
                if reply.code != 1000 && reply.code != 2302 {
                    return Err(refused("Creating a contact", &reply, path));
                }
            }
        }
        Ok(id)
    }

    /// Makes host objects for name servers the registry does not know.
    async fn ensure_hosts(&self, cx: &Context, hosts: &[Hostname]) -> Result<(), ProviderError> {
        if hosts.is_empty() {
            return Ok(());
        }
        let names: String = hosts.iter().map(|h| format!("<host:name>{}</host:name>", esc(h.as_str()))).collect();
        let body = format!("<check><host:check xmlns:host=\"{HOST}\">{names}</host:check></check>");
        let reply = self.send(cx, "host:check", &body, false).await?;
        if reply.code != 1000 {
            return Err(refused("Checking name servers", &reply, "/nameservers"));
        }
        let free: Vec<String> = reply
            .response
            .path(&["response", "resData", "chkData"])
            .into_iter()
            .flat_map(|c| c.all("cd"))
            .filter_map(|cd| cd.child("name"))
            .filter(|n| matches!(n.attribute("avail"), Some("1" | "true")))
            .map(|n| n.text.clone())
            .collect();
        for host in free {
            let body = format!(
                "<create><host:create xmlns:host=\"{HOST}\"><host:name>{}</host:name></host:create></create>",
                esc(&host)
            );
            let reply = self.send(cx, "host:create", &body, true).await?;
            if reply.code != 1000 && reply.code != 2302 {
                return Err(refused(&format!("Creating name server {host}"), &reply, "/nameservers"));
            }
        }
        Ok(())
    }

    async fn info(&self, cx: &Context, domain: &DomainName, found: &Registration) -> Result<DomainInfo, ProviderError> {
        // Another registrar's contact (after a transfer in) is not ours to read.
        let registrant = match self.contact(cx, &found.registrant).await {
            Ok(contact) => contact,
            Err(err) if err.kind() == provisio_sdk::ErrorKind::Conflict => None,
            Err(err) => return Err(err),
        };
        Ok(DomainInfo {
            domain: domain.clone(),
            status: status_of(found),
            locked: found.statuses.iter().any(|s| s == "clientTransferProhibited"),
            auto_renew: false,
            privacy: false,
            nameservers: found.nameservers.iter().filter_map(|h| Hostname::parse(h).ok()).collect(),
            registrant,
            created_at: found.created,
            expires_at: found.expires,
        })
    }

    async fn read(&self, cx: &Context, domain: &DomainName) -> Result<DomainInfo, ProviderError> {
        let found = self.owned(cx, domain).await?;
        self.info(cx, domain, &found).await
    }

    async fn update(&self, cx: &Context, domain: &DomainName, inner: &str, field: &str) -> Result<(), ProviderError> {
        let body = format!(
            "<update><domain:update xmlns:domain=\"{DOMAIN}\"><domain:name>{}</domain:name>{inner}</domain:update></update>",
            esc(domain.as_str())
        );
        let reply = self.send(cx, "domain:update", &body, true).await?;
        if reply.code != 1000 {
            return Err(refused(&format!("Updating {domain}"), &reply, field));
        }
        Ok(())
    }
}

fn status_of(found: &Registration) -> DomainStatus {
    if found.statuses.iter().any(|s| s == "pendingTransfer") {
        DomainStatus::PendingTransfer
    } else if found.statuses.iter().any(|s| s == "pendingCreate") {
        DomainStatus::PendingRegistration
    } else if found.expires.is_some_and(|e| e < Utc::now()) {
        DomainStatus::Expired
    } else {
        DomainStatus::Active
    }
}

impl Provider for Epp {
    type Config = EppConfig;

    fn about() -> ProviderAbout {
        ProviderAbout {
            id: "epp".into(),
            name: "EPP registry".into(),
            description: "Domains at any registry that speaks EPP (RFC 5730-5734), as one of its registrars.".into(),
            logo_url: None,
        }
    }

    async fn new(config: EppConfig) -> Result<Self, ProviderError> {
        Ok(Epp { config, nominet: None })
    }

    async fn test_connection(&self, cx: &Context) -> Result<ConnectionTest, ProviderError> {
        // A check of a reserved name: logs in and runs one harmless command.
        let body = format!(
            "<check><domain:check xmlns:domain=\"{DOMAIN}\"><domain:name>provisio-connection-test.example</domain:name></domain:check></check>"
        );
        let reply = self.send(cx, "domain:check", &body, false).await?;
        if reply.code != 1000 {
            return Err(refused("Checking a name", &reply, "/host"));
        }
        Ok(ConnectionTest {
            message: format!("Logged in to {}:{} as {}", self.config.host, self.config.port, self.config.username),
            details: json!({"host": self.config.host, "sessions": self.config.sessions}),
        })
    }

    /// The head of the registry's message queue (`poll op="req"`): transfer
    /// messages become notices about their domain.
    async fn next_notice(&self, cx: &Context) -> Result<Option<Notice>, ProviderError> {
        let reply = self.send(cx, "poll req", "<poll op=\"req\"/>", false).await?;
        match reply.code {
            1300 => return Ok(None),
            1301 => {}
            _ => return Err(refused("Reading the registry's messages", &reply, "/")),
        }
        let response = &reply.response;
        let queue = response.path(&["response", "msgQ"]).cloned().unwrap_or_default();
        let id = queue.attribute("id").unwrap_or_default().to_owned();
        let message = queue.at(&["msg"]).to_owned();
        if self.nominet.is_some()
            && let Some(notice) = self.nominet_notice(cx, response, &id, &message).await?
        {
            return Ok(Some(notice));
        }
        let transfer = response.path(&["response", "resData", "trnData"]).filter(|t| t.child("trStatus").is_some());
        let (identifier, kind) = match transfer {
            Some(data) => {
                let us = self.client_id();
                let (gaining, losing) = (data.at(&["reID"]) == us, data.at(&["acID"]) == us);
                let kind = match data.at(&["trStatus"]) {
                    "serverApproved" | "clientApproved" if gaining => NoticeKind::TransferredIn,
                    "serverApproved" | "clientApproved" if losing => NoticeKind::TransferredAway,
                    "pending" if losing => NoticeKind::TransferRequested,
                    "clientRejected" | "clientCancelled" | "serverCancelled" if gaining => NoticeKind::TransferRefused,
                    _ => NoticeKind::Other,
                };
                (data.at(&["name"]).to_owned(), kind)
            }
            None => (String::new(), NoticeKind::Other),
        };
        Ok(Some(Notice { id, identifier, also: Vec::new(), kind, message }))
    }

    /// Removes a message from the registry's queue (`poll op="ack"`); one
    /// already gone is gone.
    async fn acknowledge(&self, cx: &Context, id: &str) -> Result<(), ProviderError> {
        // An attribute value: only the id's letters and digits (and `-`, `.`).
        let id: String = id.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.')).collect();
        let body = format!("<poll op=\"ack\" msgID=\"{id}\"/>");
        let reply = self.send(cx, "poll ack", &body, true).await?;
        match reply.code {
            1000 | 2303 => Ok(()),
            _ => Err(refused("Acknowledging a registry message", &reply, "/")),
        }
    }
}

impl DomainNames for Epp {
    async fn check_availability(
        &self,
        cx: &Context,
        params: CheckAvailabilityParams,
    ) -> Result<AvailabilityResult, ProviderError> {
        let names: String =
            params.domains.iter().map(|d| format!("<domain:name>{}</domain:name>", esc(d.as_str()))).collect();
        let body = format!("<check><domain:check xmlns:domain=\"{DOMAIN}\">{names}</domain:check></check>");
        let reply = self.send(cx, "domain:check", &body, false).await?;
        if reply.code != 1000 {
            return Err(refused("Checking names", &reply, "/domains"));
        }
        let data = reply.response.path(&["response", "resData", "chkData"]).cloned().unwrap_or_default();
        let domains = data
            .all("cd")
            .filter_map(|cd| {
                let name = cd.child("name")?;
                Some(Availability {
                    domain: DomainName::parse(&name.text).ok()?,
                    available: name.attribute("avail") == Some("1") || name.attribute("avail") == Some("true"),
                    premium: false,
                    reason: (!cd.at(&["reason"]).is_empty()).then(|| cd.at(&["reason"]).to_owned()),
                })
            })
            .collect();
        Ok(AvailabilityResult { domains })
    }

    async fn register(&self, cx: &Context, params: RegisterParams) -> Result<DomainInfo, ProviderError> {
        let domain = &params.domain;
        if let Some(found) = self.registration(cx, domain).await? {
            return self.adopt(cx, domain, &found, &params.contacts.registrant).await;
        }
        let registrant = self.ensure_contact(cx, 'r', &params.contacts.registrant, "/contacts/registrant").await?;
        let mut roles = String::new();
        for (kind, role, contact) in [
            ("admin", 'a', &params.contacts.admin),
            ("tech", 't', &params.contacts.tech),
            ("billing", 'b', &params.contacts.billing),
        ] {
            // A role not given is held by the registrant.
            let id = match contact {
                Some(contact) => self.ensure_contact(cx, role, contact, &format!("/contacts/{kind}")).await?,
                None => registrant.clone(),
            };
            roles.push_str(&format!("<domain:contact type=\"{kind}\">{}</domain:contact>", esc(&id)));
        }
        self.ensure_hosts(cx, &params.nameservers).await?;
        let ns: String = params
            .nameservers
            .iter()
            .map(|h| format!("<domain:hostObj>{}</domain:hostObj>", esc(h.as_str())))
            .collect();
        let ns = if ns.is_empty() { String::new() } else { format!("<domain:ns>{ns}</domain:ns>") };
        let auth = generate_password(16);
        cx.add_secret(&auth);
        let body = format!(
            "<create><domain:create xmlns:domain=\"{DOMAIN}\"><domain:name>{}</domain:name><domain:period unit=\"y\">{}</domain:period>{ns}<domain:registrant>{}</domain:registrant>{roles}<domain:authInfo><domain:pw>{}</domain:pw></domain:authInfo></domain:create></create>",
            esc(domain.as_str()),
            params.years,
            esc(&registrant),
            esc(&auth)
        );
        let reply = self.send(cx, "domain:create", &body, true).await?;
        match reply.code {
            1000 | 1001 => self.read(cx, domain).await,
            // Registered meanwhile (another attempt of this job, or someone else).
            2302 => match self.registration(cx, domain).await? {
                Some(found) => self.adopt(cx, domain, &found, &params.contacts.registrant).await,
                None => Err(refused(&format!("Registering {domain}"), &reply, "/domain")),
            },
            _ => Err(refused(&format!("Registering {domain}"), &reply, "/domain")),
        }
    }

    async fn renew(&self, cx: &Context, params: RenewParams) -> Result<DomainInfo, ProviderError> {
        let domain = &params.domain;
        let found = self.owned(cx, domain).await?;
        let current = found.expires.ok_or_else(|| ProviderError::provider("The registry gave no expiry date"))?;
        let cur = match plan_renewal(cx.provision_data(), current, params.years) {
            Renewal::AlreadyDone => return self.info(cx, domain, &found).await,
            Renewal::From(expiry) => expiry,
        };
        let body = format!(
            "<renew><domain:renew xmlns:domain=\"{DOMAIN}\"><domain:name>{}</domain:name><domain:curExpDate>{}</domain:curExpDate><domain:period unit=\"y\">{}</domain:period></domain:renew></renew>",
            esc(domain.as_str()),
            cur.format("%Y-%m-%d"),
            params.years
        );
        let reply = self.send(cx, "domain:renew", &body, true).await?;
        if reply.code != 1000 {
            return Err(refused(&format!("Renewing {domain}"), &reply, "/years"));
        }
        self.read(cx, domain).await
    }

    async fn get_info(&self, cx: &Context, params: DomainRef) -> Result<DomainInfo, ProviderError> {
        self.read(cx, &params.domain).await
    }

    async fn update_nameservers(
        &self,
        cx: &Context,
        params: UpdateNameserversParams,
    ) -> Result<DomainInfo, ProviderError> {
        let domain = &params.domain;
        let found = self.owned(cx, domain).await?;
        self.ensure_hosts(cx, &params.nameservers).await?;
        let wanted: Vec<String> = params.nameservers.iter().map(|h| h.as_str().to_owned()).collect();
        let add: String = wanted
            .iter()
            .filter(|h| !found.nameservers.contains(h))
            .map(|h| format!("<domain:hostObj>{}</domain:hostObj>", esc(h)))
            .collect();
        let rem: String = found
            .nameservers
            .iter()
            .filter(|h| !wanted.contains(h))
            .map(|h| format!("<domain:hostObj>{}</domain:hostObj>", esc(h)))
            .collect();
        if !add.is_empty() || !rem.is_empty() {
            let add = if add.is_empty() {
                String::new()
            } else {
                format!("<domain:add><domain:ns>{add}</domain:ns></domain:add>")
            };
            let rem = if rem.is_empty() {
                String::new()
            } else {
                format!("<domain:rem><domain:ns>{rem}</domain:ns></domain:rem>")
            };
            self.update(cx, domain, &format!("{add}{rem}"), "/nameservers").await?;
        }
        self.read(cx, domain).await
    }

    async fn get_status(&self, cx: &Context, params: DomainRef) -> Result<StatusResult, ProviderError> {
        let domain = &params.domain;
        let found = self
            .registration(cx, domain)
            .await?
            .ok_or_else(|| ProviderError::not_found(UserMessage::new(format!("{domain} is not registered"))))?;
        if found.sponsor == self.client_id() {
            if self.nominet.is_some() && asked_for_transfer(cx.provision_data()) {
                return self.nominet_arrived(cx, domain, &found, None).await;
            }
            return Ok(StatusResult {
                domain: domain.clone(),
                status: status_of(&found),
                progress: None,
                message: None,
                expires_at: found.expires,
                // Here because this service asked for it (with its code): its own from now on.
                transferred_in: asked_for_transfer(cx.provision_data()),
            });
        }
        if self.nominet.is_some() {
            return self.nominet_waiting(cx, domain, &found);
        }
        // Held by another registrar: a transfer of ours may be under way.
        let body = format!(
            "<transfer op=\"query\"><domain:transfer xmlns:domain=\"{DOMAIN}\"><domain:name>{}</domain:name></domain:transfer></transfer>",
            esc(domain.as_str())
        );
        let reply = self.send(cx, "domain:transfer query", &body, false).await?;
        let data = reply.response.path(&["response", "resData", "trnData"]).cloned().unwrap_or_default();
        let ours = data.at(&["reID"]) == self.client_id();
        let status = match (reply.code, data.at(&["trStatus"]), ours) {
            (1000, "pending", true) => DomainStatus::PendingTransfer,
            (1000, "clientRejected" | "serverCancelled" | "clientCancelled", true) => DomainStatus::Cancelled,
            _ => {
                return Err(ProviderError::conflict(UserMessage::new(format!(
                    "{domain} is registered with another registrar"
                ))));
            }
        };
        Ok(StatusResult {
            domain: domain.clone(),
            status,
            progress: None,
            message: Some(format!("Transfer {}", data.at(&["trStatus"]))),
            expires_at: found.expires,
            transferred_in: false,
        })
    }

    async fn transfer(&self, cx: &Context, params: TransferParams) -> Result<StatusResult, ProviderError> {
        let domain = &params.domain;
        cx.add_secret(&params.epp_code);
        if self.nominet.is_some() {
            return self.nominet_transfer(cx, domain, params.contacts.as_ref()).await;
        }
        let body = format!(
            "<transfer op=\"request\"><domain:transfer xmlns:domain=\"{DOMAIN}\"><domain:name>{}</domain:name><domain:period unit=\"y\">{}</domain:period><domain:authInfo><domain:pw>{}</domain:pw></domain:authInfo></domain:transfer></transfer>",
            esc(domain.as_str()),
            params.years,
            esc(&params.epp_code)
        );
        let reply = self.send(cx, "domain:transfer request", &body, true).await?;
        match reply.code {
            // Pending (1001), or already requested by us (2300): follow it.
            1000 | 1001 | 2300 => self.get_status(cx, DomainRef { domain: domain.clone() }).await,
            // Not eligible: already with this registrar (get_status says so), or refused by policy.
            2106 => self.get_status(cx, DomainRef { domain: domain.clone() }).await,
            _ => Err(refused(&format!("Transferring {domain}"), &reply, "/epp_code")),
        }
    }

    async fn update_contacts(&self, cx: &Context, params: UpdateContactsParams) -> Result<DomainInfo, ProviderError> {
        let domain = &params.domain;
        let found = self.owned(cx, domain).await?;
        let changes = &params.contacts;
        let mut chg = String::new();
        let (mut add, mut rem) = (String::new(), String::new());
        if let Some(registrant) = &changes.registrant {
            // The service's own registrant contact changes in place; a domain
            // that still names another (after a transfer in) is pointed at it.
            let id = self.ensure_contact(cx, 'r', registrant, "/contacts/registrant").await?;
            if found.registrant != id {
                chg = format!("<domain:chg><domain:registrant>{}</domain:registrant></domain:chg>", esc(&id));
            }
        }
        for (kind, role, contact) in
            [("admin", 'a', &changes.admin), ("tech", 't', &changes.tech), ("billing", 'b', &changes.billing)]
        {
            if let Some(contact) = contact {
                let id = self.ensure_contact(cx, role, contact, &format!("/contacts/{kind}")).await?;
                let current = found.contacts.iter().find(|(k, _)| k == kind).map(|(_, c)| c.clone());
                if current.as_deref() != Some(id.as_str()) {
                    add.push_str(&format!("<domain:contact type=\"{kind}\">{}</domain:contact>", esc(&id)));
                    if let Some(old) = current {
                        rem.push_str(&format!("<domain:contact type=\"{kind}\">{}</domain:contact>", esc(&old)));
                    }
                }
            }
        }
        let add = if add.is_empty() { add } else { format!("<domain:add>{add}</domain:add>") };
        let rem = if rem.is_empty() { rem } else { format!("<domain:rem>{rem}</domain:rem>") };
        if !(add.is_empty() && rem.is_empty() && chg.is_empty()) {
            self.update(cx, domain, &format!("{add}{rem}{chg}"), "/contacts").await?;
        }
        self.read(cx, domain).await
    }

    async fn set_lock(&self, cx: &Context, params: SetLockParams) -> Result<DomainInfo, ProviderError> {
        let domain = &params.domain;
        let found = self.owned(cx, domain).await?;
        let locked = found.statuses.iter().any(|s| s == "clientTransferProhibited");
        if locked != params.locked {
            let part = if params.locked { "add" } else { "rem" };
            self.update(
                cx,
                domain,
                &format!("<domain:{part}><domain:status s=\"clientTransferProhibited\"/></domain:{part}>"),
                "/locked",
            )
            .await?;
        }
        self.read(cx, domain).await
    }

    async fn release(&self, cx: &Context, params: ReleaseParams) -> Result<StatusResult, ProviderError> {
        if self.nominet.is_none() {
            return Err(ProviderError::unsupported("release"));
        }
        self.nominet_release(cx, &params.domain, &params.registrar_tag).await
    }

    async fn set_auto_renew(&self, _cx: &Context, _params: SetAutoRenewParams) -> Result<DomainInfo, ProviderError> {
        // EPP has no auto-renew: registrations are renewed by `renew`.
        Err(ProviderError::unsupported("set_auto_renew"))
    }

    async fn get_epp_code(&self, cx: &Context, params: DomainRef) -> Result<EppCode, ProviderError> {
        if self.nominet.is_some() {
            // .uk domains have no authInfo: they move by `release` to the new registrar's tag.
            return Err(ProviderError::unsupported("get_epp_code"));
        }
        let found = self.owned(cx, &params.domain).await?;
        cx.add_secret(&found.auth);
        Ok(EppCode { epp_code: found.auth })
    }
}

impl Epp {
    /// A registration found where `register` wanted to create one: this
    /// service's (held here, with its registrant contact, the same
    /// registrant details) is adopted; anything else is `conflict`.
    async fn adopt(
        &self,
        cx: &Context,
        domain: &DomainName,
        found: &Registration,
        registrant: &Contact,
    ) -> Result<DomainInfo, ProviderError> {
        if found.sponsor != self.client_id() {
            return Err(ProviderError::conflict(UserMessage::new(format!(
                "{domain} is registered with another registrar"
            ))));
        }
        let ours = cx.owner().is_none() || found.registrant == contact_id(cx, 'r');
        let info = self.info(cx, domain, found).await?;
        if !ours || info.registrant.as_ref() != Some(registrant) {
            return Err(ProviderError::conflict(UserMessage::new(format!(
                "{domain} is already registered, with another registrant"
            ))));
        }
        Ok(info)
    }
}
