//! `domain-names/nominet`: .uk domains at Nominet, the `domain-names/epp`
//! client with Nominet's extensions, as Nominet documents them (each page is
//! cited in `docs/research/epp-nominet.md`: "EPP commands", "Release",
//! "Handshake", "EPP notifications", "Registry options", "MyRP"):
//!
//! - login by **tag** (a two-character tag as `#XX`), a password of 14-16
//!   characters, declaring Nominet's extensions when the registry offers them;
//! - the registrant account carries `contact-nom-ext-1.0` `type`: `IND`
//!   (UK individual) or `FIND` (non-UK individual) without an organisation,
//!   `OTHER` or `FOTHER` (UK or non-UK organisation) with one;
//! - .uk domains have no authInfo (the registry ignores it, with a
//!   warning), so there is no EPP code: a domain leaves by **release** to
//!   the new registrar's tag (`std-release-1.0`), and arrives the same way,
//!   pushed by its old registrar. `transfer` therefore asks nothing of the
//!   registry: it answers `pending_transfer` with what the client must ask
//!   of the old registrar, and the domain's arrival activates the service;
//! - **notifications** (`std-notifications-1.0`/`1.1`/`1.2`, all three read,
//!   as live data still uses the older namespaces) become notices, one event
//!   per domain listed: registrar change (transfer in), release done
//!   (transfer away), cancellation (deleted); a release the receiver refused,
//!   suspensions and data-quality cases are recorded;
//! - a **handshake** (a release to us that waits for our answer) is accepted,
//!   rejected or left for staff, as the configuration's `handshakes` says.
//!   It is answered when its message is read, before the message is
//!   recorded; read again after a crash, a case already answered is
//!   recognised by where its domains now are.

use provisio_sdk::blueprints::domain_names::*;
use provisio_sdk::formats::DomainName;
use provisio_sdk::xml::{Xml, esc};
use provisio_sdk::{ConnectionTest, Context, Notice, NoticeKind, Provider, ProviderAbout, ProviderError, UserMessage};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Epp, EppConfig, invalid, refused};

const CONTACT_NOM_EXT: &str = "http://www.nominet.org.uk/epp/xml/contact-nom-ext-1.0";
const RELEASE: &str = "http://www.nominet.org.uk/epp/xml/std-release-1.0";
const HANDSHAKE: &str = "http://www.nominet.org.uk/epp/xml/std-handshake-1.0";
const NOTIFICATIONS: &str = "http://www.nominet.org.uk/epp/xml/std-notifications-";

/// What this client declares at login, when offered.
pub(crate) const EXTENSIONS: [&str; 6] = [
    "urn:ietf:params:xml:ns:secDNS-1.1",
    CONTACT_NOM_EXT,
    RELEASE,
    HANDSHAKE,
    "http://www.nominet.org.uk/epp/xml/std-notifications-1.2",
    "http://www.nominet.org.uk/epp/xml/std-warning-1.1",
];

/// The registry entry.
pub fn entry() -> provisio_sdk::ProviderEntry {
    provisio_sdk::blueprints::domain_names::entry::<Nominet>()
}

/// What to do with a release to this tag that waits for its answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Handshakes {
    /// Accept every one (as Nominet's "Always accept" would).
    Accept,
    /// Reject every one.
    Reject,
    /// Answer none: staff answer them at Nominet; the message is recorded.
    #[default]
    Leave,
}

fn default_host() -> String {
    "epp.nominet.org.uk".into()
}

fn default_port() -> u16 {
    700
}

fn default_sessions() -> u8 {
    2
}

/// How to reach Nominet as one registrar (tag).
#[derive(Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NominetConfig {
    /// Nominet's EPP host: `epp.nominet.org.uk`, or `ote-epp.nominet.org.uk`
    /// for the test environment.
    #[serde(default = "default_host")]
    #[schemars(length(min = 1, max = 253), extend("x-endpoint" = true))]
    pub host: String,
    /// Its port.
    #[serde(default = "default_port")]
    #[schemars(extend("x-endpoint" = true))]
    pub port: u16,
    /// The registrar's tag (IPS tag), upper case.
    #[schemars(length(min = 2, max = 16), regex(pattern = r"^[A-Z0-9][A-Z0-9-]*$"))]
    pub tag: String,
    /// The tag's EPP password (Nominet asks for 14 characters or more).
    #[schemars(length(min = 14, max = 16), extend("x-secret" = true, "writeOnly" = true))]
    pub password: String,
    /// The CA certificate (PEM) that signed the registry's certificate, when
    /// it is not a public one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 65536), extend("x-endpoint" = true))]
    pub ca_cert_pem: Option<String>,
    /// Sessions kept open at most (Nominet limits them per tag).
    #[serde(default = "default_sessions")]
    #[schemars(range(min = 1, max = 6))]
    pub sessions: u8,
    /// Releases to this tag that wait for its answer: accept, reject or leave.
    #[serde(default)]
    pub handshakes: Handshakes,
}

impl std::fmt::Debug for NominetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NominetConfig").field("host", &self.host).field("tag", &self.tag).finish_non_exhaustive()
    }
}

/// The Nominet ways of an [`Epp`] client.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The tag, as `clID` names it.
    pub tag: String,
    pub handshakes: Handshakes,
}

/// The Nominet provider for one tag.
#[derive(Debug)]
pub struct Nominet(Epp);

/// Whether a .uk transfer in brought the domain with the registrant the
/// order named (the follow that saw it arrive said so).
pub(crate) fn arrived_as_ordered(provision_data: &serde_json::Map<String, serde_json::Value>) -> bool {
    provision_data.get("transferred_in").and_then(serde_json::Value::as_bool) == Some(true)
}

/// Nominet's registrant type for a contact (contact-nom-ext `type`).
fn registrant_type(contact: &Contact) -> &'static str {
    match (contact.organisation.is_some(), contact.country_code.as_str() == "GB") {
        (false, true) => "IND",
        (false, false) => "FIND",
        (true, true) => "OTHER",
        (true, false) => "FOTHER",
    }
}

/// The domains a notification lists: names, or whole `domain:infData`.
fn listed(data: &Xml) -> Vec<String> {
    let list = data.child("domainListData");
    let mut names: Vec<String> = list
        .into_iter()
        .flat_map(|l| l.children.iter())
        .filter_map(|c| match c.name.as_str() {
            "domainName" => Some(c.text.clone()),
            "infData" => c.child("name").map(|n| n.text.clone()),
            _ => None,
        })
        .collect();
    if names.is_empty() && !data.at(&["domainName"]).is_empty() {
        names.push(data.at(&["domainName"]).to_owned());
    }
    names.into_iter().map(|n| n.trim().to_lowercase()).filter(|n| !n.is_empty()).collect()
}

impl Epp {
    /// The contact-nom-ext part of a contact command (`create` or
    /// `update`): the registrant's type, for Nominet only.
    pub(crate) fn contact_extension(&self, role: char, contact: &Contact, verb: &str) -> String {
        if self.nominet.is_none() || role != 'r' {
            return String::new();
        }
        format!(
            "<extension><contact-nom-ext:{verb} xmlns:contact-nom-ext=\"{CONTACT_NOM_EXT}\"><contact-nom-ext:type>{}</contact-nom-ext:type></contact-nom-ext:{verb}></extension>",
            registrant_type(contact)
        )
    }

    fn tag(&self) -> &str {
        self.nominet.as_ref().map(|s| s.tag.as_str()).unwrap_or_default()
    }

    /// A transfer in: .uk domains are pushed by their registrar, so nothing
    /// is asked of the registry; the service waits for the domain. No code
    /// proves the client's right to it, so the order names the registrant,
    /// and the domain is the service's only if it arrives with that one.
    pub(crate) async fn nominet_transfer(
        &self,
        cx: &Context,
        domain: &DomainName,
        contacts: Option<&Contacts>,
    ) -> Result<StatusResult, ProviderError> {
        let Some(contacts) = contacts else {
            return Err(invalid(
                "/contacts",
                "is required for a .uk transfer: the domain becomes the service's only if it arrives with this registrant",
            ));
        };
        let found = self.registration(cx, domain).await?.ok_or_else(|| {
            ProviderError::not_found(UserMessage::new(format!("{domain} is not registered: register it instead")))
        })?;
        if found.sponsor == self.client_id() {
            return self.nominet_arrived(cx, domain, &found, Some(&contacts.registrant)).await;
        }
        Ok(self.waiting(domain, &found))
    }

    /// A domain on this tag that the service asked to transfer in: its own
    /// (`transferred_in`) when its registrant's email is the one ordered;
    /// otherwise `cancelled`, for staff to look at (the service fails).
    pub(crate) async fn nominet_arrived(
        &self,
        cx: &Context,
        domain: &DomainName,
        found: &crate::Registration,
        ordered: Option<&Contact>,
    ) -> Result<StatusResult, ProviderError> {
        let stored = cx.provision_data().get("contacts").and_then(|c| c.get("registrant")).cloned();
        let stored: Option<Contact> = stored.and_then(|c| serde_json::from_value(c).ok());
        let ordered = ordered.or(stored.as_ref());
        let arrived = self.contact_data(cx, &found.registrant).await?;
        let same = match (ordered, &arrived) {
            (Some(ordered), Some(arrived)) => {
                ordered.email.as_str().eq_ignore_ascii_case(arrived.at(&["email"]).trim())
            }
            _ => false,
        };
        let (status, message) = if same {
            (crate::status_of(found), format!("{domain} arrived on tag {}", self.tag()))
        } else {
            (
                DomainStatus::Cancelled,
                format!(
                    "{domain} arrived on tag {} with a registrant other than the one ordered: staff must check it",
                    self.tag()
                ),
            )
        };
        Ok(StatusResult {
            domain: domain.clone(),
            status,
            progress: None,
            message: Some(message),
            expires_at: found.expires,
            transferred_in: same,
        })
    }

    fn waiting(&self, domain: &DomainName, found: &crate::Registration) -> StatusResult {
        StatusResult {
            domain: domain.clone(),
            status: DomainStatus::PendingTransfer,
            progress: None,
            message: Some(format!(
                "Ask the registrar holding {domain} (tag {}) to release it to tag {}",
                found.sponsor.trim_start_matches('#'),
                self.tag()
            )),
            expires_at: found.expires,
            transferred_in: false,
        }
    }

    /// `get_status` of a domain another tag holds: waiting for it, if this
    /// service asked for it; anyone else's otherwise.
    pub(crate) fn nominet_waiting(
        &self,
        cx: &Context,
        domain: &DomainName,
        found: &crate::Registration,
    ) -> Result<StatusResult, ProviderError> {
        if asked_for_transfer(cx.provision_data()) {
            return Ok(self.waiting(domain, found));
        }
        Err(ProviderError::conflict(UserMessage::new(format!("{domain} is registered with another registrar"))))
    }

    /// Releases the service's domain to `to`.
    pub(crate) async fn nominet_release(
        &self,
        cx: &Context,
        domain: &DomainName,
        to: &str,
    ) -> Result<StatusResult, ProviderError> {
        if to == self.tag() {
            return Err(invalid("/registrar_tag", "is this registrar's own tag"));
        }
        // A release whose answer was lost may have moved it already.
        if let Some(found) = self.registration(cx, domain).await?
            && found.sponsor.trim_start_matches('#') == to
        {
            return Ok(StatusResult {
                domain: domain.clone(),
                status: DomainStatus::TransferredAway,
                progress: None,
                message: Some(format!("Released to tag {to}")),
                expires_at: found.expires,
                transferred_in: false,
            });
        }
        let found = self.owned(cx, domain).await?;
        let body = format!(
            "<update><r:release xmlns:r=\"{RELEASE}\"><r:domainName>{}</r:domainName><r:registrarTag>{}</r:registrarTag></r:release></update>",
            esc(domain.as_str()),
            esc(to)
        );
        let reply = self.send(cx, "release", &body, true).await?;
        let (status, message) = match reply.code {
            1000 => (DomainStatus::TransferredAway, format!("Released to tag {to}")),
            1001 => (DomainStatus::PendingTransfer, format!("Released to tag {to}; waiting for {to} to accept it")),
            2004 | 2005 => return Err(invalid("/registrar_tag", "is not a tag the registry accepts")),
            2304 => {
                return Err(ProviderError::provider(UserMessage::new(format!(
                    "{domain} cannot be released now: it is locked, or already offered to a tag"
                ))));
            }
            _ => return Err(refused(&format!("Releasing {domain}"), &reply, "/registrar_tag")),
        };
        Ok(StatusResult {
            domain: domain.clone(),
            status,
            progress: None,
            message: Some(message),
            expires_at: found.expires,
            transferred_in: false,
        })
    }

    /// A Nominet notification as a notice; `None` when the message is not
    /// one (the RFC reading applies).
    pub(crate) async fn nominet_notice(
        &self,
        cx: &Context,
        response: &Xml,
        id: &str,
        message: &str,
    ) -> Result<Option<Notice>, ProviderError> {
        let Some(data) = response.path(&["response", "resData"]).and_then(|r| {
            r.children.iter().find(|c| c.namespace.as_deref().is_some_and(|ns| ns.starts_with(NOTIFICATIONS)))
        }) else {
            return Ok(None);
        };
        let domains = listed(data);
        let (kind, message) = match data.name.as_str() {
            // Addressed to another tag (or a registry mistake): recorded, nothing more.
            "rcData" if data.at(&["registrarTag"]).trim_start_matches('#') != self.tag() => {
                (NoticeKind::Other, format!("{message} (for tag {})", data.at(&["registrarTag"])))
            }
            "rcData" if !data.at(&["caseId"]).is_empty() => {
                self.answer_case(cx, data.at(&["caseId"]), &domains, message).await?
            }
            "rcData" => (NoticeKind::TransferredIn, message.to_owned()),
            "relData" => {
                // Released (`moved` set, or said so) or refused by the receiver.
                let moved = data.child("accountId").and_then(|a| a.attribute("moved")).is_some();
                let refused = message.to_lowercase().contains("reject");
                if moved || !refused {
                    (NoticeKind::TransferredAway, format!("{message} (to tag {})", data.at(&["registrarTag"])))
                } else {
                    (NoticeKind::Other, format!("{message}: tag {} refused it", data.at(&["registrarTag"])))
                }
            }
            "cancData" => (NoticeKind::Deleted, message.to_owned()),
            _ => (NoticeKind::Other, message.to_owned()),
        };
        let mut domains = domains.into_iter();
        Ok(Some(Notice {
            id: id.to_owned(),
            identifier: domains.next().unwrap_or_default(),
            also: domains.collect(),
            kind,
            message,
        }))
    }

    /// A release to this tag waiting for its answer, answered as configured.
    async fn answer_case(
        &self,
        cx: &Context,
        case: &str,
        domains: &[String],
        message: &str,
    ) -> Result<(NoticeKind, String), ProviderError> {
        let policy = self.nominet.as_ref().map(|s| s.handshakes).unwrap_or_default();
        let verb = match policy {
            Handshakes::Leave => {
                return Ok((NoticeKind::Other, format!("{message}: case {case} waits for an answer at Nominet")));
            }
            Handshakes::Accept => "accept",
            Handshakes::Reject => "reject",
        };
        let body =
            format!("<update><h:{verb} xmlns:h=\"{HANDSHAKE}\"><h:caseId>{}</h:caseId></h:{verb}></update>", esc(case));
        let reply = self.send(cx, "handshake", &body, true).await?;
        let accepted = match reply.code {
            1000 => policy == Handshakes::Accept,
            // Answered before (the message was read, then not recorded):
            // where its domains are says how.
            2303 => {
                let mut here = false;
                for domain in domains.iter().filter_map(|d| DomainName::parse(d).ok()) {
                    here |= self.registration(cx, &domain).await?.is_some_and(|f| f.sponsor == self.client_id());
                }
                here
            }
            // Refused now (a transient failure is tried again, with the message).
            code if code >= 2400 => return Err(refused("Answering a handshake", &reply, "/handshakes")),
            // Refused for good: recorded, so the queue behind it moves on.
            code => {
                let why = format!("{message}: case {case} could not be answered ({code} {})", reply.text);
                return Ok((NoticeKind::Other, why));
            }
        };
        Ok(if accepted {
            (NoticeKind::TransferredIn, format!("{message}: case {case} accepted"))
        } else {
            (NoticeKind::Other, format!("{message}: case {case} rejected"))
        })
    }
}

impl Provider for Nominet {
    type Config = NominetConfig;

    fn about() -> ProviderAbout {
        ProviderAbout {
            id: "nominet".into(),
            name: "Nominet (.uk)".into(),
            description: ".uk domains at Nominet over EPP, with its tags, releases, handshakes and notifications."
                .into(),
            logo_url: None,
        }
    }

    async fn new(config: NominetConfig) -> Result<Self, ProviderError> {
        // The schema allows 3-16 characters in clID: a two-character tag logs in as `#XX`.
        let username = if config.tag.len() == 2 { format!("#{}", config.tag) } else { config.tag.clone() };
        let epp = EppConfig {
            host: config.host,
            port: config.port,
            username,
            password: config.password,
            ca_cert_pem: config.ca_cert_pem,
            sessions: config.sessions,
        };
        Ok(Nominet(Epp { config: epp, nominet: Some(Settings { tag: config.tag, handshakes: config.handshakes }) }))
    }

    async fn test_connection(&self, cx: &Context) -> Result<ConnectionTest, ProviderError> {
        self.0.test_connection(cx).await
    }

    async fn next_notice(&self, cx: &Context) -> Result<Option<Notice>, ProviderError> {
        self.0.next_notice(cx).await
    }

    async fn acknowledge(&self, cx: &Context, id: &str) -> Result<(), ProviderError> {
        self.0.acknowledge(cx, id).await
    }
}

impl DomainNames for Nominet {
    async fn check_availability(
        &self,
        cx: &Context,
        params: CheckAvailabilityParams,
    ) -> Result<AvailabilityResult, ProviderError> {
        self.0.check_availability(cx, params).await
    }

    async fn register(&self, cx: &Context, params: RegisterParams) -> Result<DomainInfo, ProviderError> {
        self.0.register(cx, params).await
    }

    async fn renew(&self, cx: &Context, params: RenewParams) -> Result<DomainInfo, ProviderError> {
        self.0.renew(cx, params).await
    }

    async fn get_info(&self, cx: &Context, params: DomainRef) -> Result<DomainInfo, ProviderError> {
        self.0.get_info(cx, params).await
    }

    async fn update_nameservers(
        &self,
        cx: &Context,
        params: UpdateNameserversParams,
    ) -> Result<DomainInfo, ProviderError> {
        self.0.update_nameservers(cx, params).await
    }

    async fn get_status(&self, cx: &Context, params: DomainRef) -> Result<StatusResult, ProviderError> {
        self.0.get_status(cx, params).await
    }

    async fn transfer(&self, cx: &Context, params: TransferParams) -> Result<StatusResult, ProviderError> {
        self.0.transfer(cx, params).await
    }

    async fn update_contacts(&self, cx: &Context, params: UpdateContactsParams) -> Result<DomainInfo, ProviderError> {
        self.0.update_contacts(cx, params).await
    }

    async fn set_lock(&self, cx: &Context, params: SetLockParams) -> Result<DomainInfo, ProviderError> {
        self.0.set_lock(cx, params).await
    }

    async fn get_epp_code(&self, cx: &Context, params: DomainRef) -> Result<EppCode, ProviderError> {
        self.0.get_epp_code(cx, params).await
    }

    async fn release(&self, cx: &Context, params: ReleaseParams) -> Result<StatusResult, ProviderError> {
        self.0.release(cx, params).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res_data(xml: &str) -> Xml {
        let doc = format!(
            "<epp xmlns=\"urn:ietf:params:xml:ns:epp-1.0\"><response><result code=\"1301\"><msg>ok</msg></result><resData>{xml}</resData></response></epp>"
        );
        let parsed = Xml::parse(&doc).unwrap();
        parsed.path(&["response", "resData"]).unwrap().children[0].clone()
    }

    /// The samples Nominet's pages show (as captured in Net::DRI's tests),
    /// in the 1.2 namespace and in the 1.0 one live data still uses.
    #[test]
    fn documented_notifications_list_their_domains() {
        let released = res_data(
            "<n:relData xmlns:n=\"http://www.nominet.org.uk/epp/xml/std-notifications-1.2\"><n:accountId moved=\"Y\">12345</n:accountId><n:from>EXAMPLE1-TAG</n:from><n:registrarTag>EXAMPLE2-TAG</n:registrarTag><n:domainListData noDomains=\"2\"><n:domainName>epp-example1.co.uk</n:domainName><n:domainName>EPP-example2.co.uk</n:domainName></n:domainListData></n:relData>",
        );
        assert_eq!(listed(&released), ["epp-example1.co.uk", "epp-example2.co.uk"]);
        let cancelled = res_data(
            "<n:cancData xmlns:n=\"http://www.nominet.org.uk/epp/xml/std-notifications-1.0\"><n:domainName>epp-example1.co.uk</n:domainName><n:orig>example@nominet</n:orig></n:cancData>",
        );
        assert!(cancelled.namespace.as_deref().unwrap().starts_with(NOTIFICATIONS));
        assert_eq!(listed(&cancelled), ["epp-example1.co.uk"]);
        let arrived = res_data(
            "<n:rcData xmlns:n=\"http://www.nominet.org.uk/epp/xml/std-notifications-1.1\"><n:orig>p@epp-example.co.uk</n:orig><n:registrarTag>EXAMPLE</n:registrarTag><n:domainListData noDomains=\"1\"><domain:infData xmlns:domain=\"urn:ietf:params:xml:ns:domain-1.0\"><domain:name>epp-example2.co.uk</domain:name><domain:roid>1-UK</domain:roid><domain:clID>EXAMPLE</domain:clID></domain:infData></n:domainListData></n:rcData>",
        );
        assert_eq!(listed(&arrived), ["epp-example2.co.uk"]);
    }

    #[test]
    fn the_registrant_type_follows_organisation_and_country() {
        let mut contact = Contact {
            name: "Ann Lee".into(),
            organisation: None,
            email: provisio_sdk::formats::Email::parse("ann@example.com").unwrap(),
            phone: provisio_sdk::formats::Phone::from_dotted("+44.2071234567").unwrap(),
            address1: "1 High Street".into(),
            address2: None,
            city: "London".into(),
            state: None,
            postcode: "N1 1AA".into(),
            country_code: provisio_sdk::formats::CountryCode::parse("GB").unwrap(),
        };
        assert_eq!(registrant_type(&contact), "IND");
        contact.organisation = Some("Lee Ltd".into());
        assert_eq!(registrant_type(&contact), "OTHER");
        contact.country_code = provisio_sdk::formats::CountryCode::parse("FR").unwrap();
        assert_eq!(registrant_type(&contact), "FOTHER");
        contact.organisation = None;
        assert_eq!(registrant_type(&contact), "FIND");
    }
}
