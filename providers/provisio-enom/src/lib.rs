//! `domain-names/enom`: domains in an Enom reseller account, through its
//! API (`…/interface.asp?command=…&uid=…&pw=…&responsetype=xml`).
//!
//! - register: `GetDomainInfo` first (a domain in this account with the
//!   same registrant is adopted; anywhere else, `Purchase` answers it taken:
//!   `conflict`), then `Purchase` with the registrant and name servers, and
//!   `Contacts` for the other roles given;
//! - renew: `Extend` **without** `OverrideOrder`, so Enom refuses a second
//!   renewal within 24 hours, and the expiry the service knew tells a renew
//!   whose answer was lost from one still to do: never twice (Enom's
//!   `Extend` has no order key of its own);
//! - get_info: `GetDomainInfo` (expiry, name servers), `GetRegLock`,
//!   `GetRenew`, `GetContacts`;
//! - update_nameservers `ModifyNS`, set_lock `SetRegLock`, set_auto_renew
//!   `SetRenew`, update_contacts `Contacts` per role;
//! - transfer: `TP_CreateOrder`, followed with `TP_GetOrdersByDomain`;
//! - get_epp_code: unsupported: Enom only e-mails the code to the registrant.
//!
//! Failures: `ErrCount` > 0 and a six-digit `ResponseNumber` (system,
//! error, parameter): 304155 credentials, 713254 IP not allowed, x16xxx not
//! found, x02xxx duplicate, 301/303/304xxx invalid input; 6xxxxx transient.
//! See docs/research/enom-api.md.

use chrono::{DateTime, NaiveDateTime, Utc};
use provisio_sdk::blueprints::domain_names::*;
use provisio_sdk::formats::{CountryCode, DomainName, Email, Hostname, Phone};
use provisio_sdk::xml::Xml;
use provisio_sdk::{
    ConnectionTest, Context, ErrorKind, FieldLocation, Provider, ProviderAbout, ProviderError, UserMessage,
};
use reqwest::Method;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The registry entry.
pub fn entry() -> provisio_sdk::ProviderEntry {
    provisio_sdk::blueprints::domain_names::entry::<Enom>()
}

fn default_url() -> String {
    "https://reseller.enom.com/interface.asp".into()
}

/// How to reach one Enom account.
#[derive(Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnomConfig {
    /// The API (`https://resellertest.enom.com/interface.asp` to test).
    #[serde(default = "default_url")]
    #[schemars(length(min = 1), extend("format" = "url", "x-endpoint" = true))]
    pub api_url: String,
    /// The account's login id (`UID`).
    #[schemars(length(min = 1, max = 128))]
    pub uid: String,
    /// The account's API token (`PW`).
    #[schemars(length(min = 1, max = 256), extend("x-secret" = true, "writeOnly" = true))]
    pub api_token: String,
    /// The CA certificate (PEM) of an API whose certificate is not public.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 65536), extend("x-endpoint" = true))]
    pub ca_cert_pem: Option<String>,
}

impl std::fmt::Debug for EnomConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnomConfig").field("api_url", &self.api_url).field("uid", &self.uid).finish_non_exhaustive()
    }
}

/// The Enom provider for one account.
#[derive(Debug)]
pub struct Enom {
    config: EnomConfig,
}

/// A failed answer: Enom's first error text and its response number.
fn refused(what: &str, answer: &Xml, field: &str) -> ProviderError {
    let number: u32 = answer.at(&["responses", "response", "ResponseNumber"]).parse().unwrap_or(0);
    let text = answer.at(&["errors", "Err1"]).to_owned();
    let (system, kind) = (number / 100_000, (number / 1000) % 100);
    let error = match (number, system, kind) {
        (304_155, ..) => ProviderError::provider("Enom refused the credentials: check uid and api_token"),
        (713_254, ..) => {
            ProviderError::provider("Enom refuses API calls from this address: add it to the account's allowed IPs")
        }
        (_, _, 16) => ProviderError::not_found(UserMessage::new(format!("{what}: it is not in this Enom account"))),
        (_, _, 2) => ProviderError::conflict(UserMessage::new(format!("{what}: it is already registered"))),
        (_, 3, _) => {
            ProviderError::invalid_field(FieldLocation::Params, field, format!("was refused by Enom ({text})"))
        }
        (_, 6, _) => ProviderError::transient("Enom failed the command; try again later"),
        _ => ProviderError::provider(UserMessage::new(format!("{what}: Enom refused it"))),
    };
    error.with_debug("enom_response_number", number).with_debug("enom_error", text)
}

fn failed(answer: &Xml) -> bool {
    answer.at(&["ErrCount"]).parse::<u32>().unwrap_or(0) > 0
}

/// `4/1/2017 7:34:00 PM` (GetDomainInfo) or `2019-05-17 01:26:10.000`.
fn parse_date(text: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(text, "%m/%d/%Y %I:%M:%S %p")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.3f"))
        .ok()
        .map(|d| d.and_utc())
}

/// A contact's fields as Enom names them, for `kind` (`Registrant`, `Admin`…).
fn contact_params(kind: &str, contact: &Contact) -> Vec<(String, String)> {
    let (first, last) = match contact.name.rsplit_once(' ') {
        Some((first, last)) => (first.to_owned(), last.to_owned()),
        None => (contact.name.clone(), contact.name.clone()),
    };
    let mut fields = vec![
        ("FirstName", first),
        ("LastName", last),
        ("Address1", contact.address1.clone()),
        ("City", contact.city.clone()),
        ("PostalCode", contact.postcode.clone()),
        ("Country", contact.country_code.to_string()),
        ("EmailAddress", contact.email.to_string()),
        ("Phone", contact.phone.dotted()),
    ];
    if let Some(org) = &contact.organisation {
        fields.push(("OrganizationName", org.clone()));
    }
    if let Some(line) = &contact.address2 {
        fields.push(("Address2", line.clone()));
    }
    if let Some(state) = &contact.state {
        fields.push(("StateProvince", state.clone()));
    }
    fields.into_iter().map(|(k, v)| (format!("{kind}{k}"), v)).collect()
}

/// A contact block of GetContacts (`<Registrant><RegistrantFirstName>…`).
fn contact_of(block: &Xml, kind: &str) -> Option<Contact> {
    let field = |name: &str| block.at(&[&format!("{kind}{name}")]).to_owned();
    let optional = |name: &str| Some(field(name)).filter(|v| !v.is_empty());
    Some(Contact {
        name: format!("{} {}", field("FirstName"), field("LastName")).trim().to_owned(),
        organisation: optional("OrganizationName"),
        email: Email::parse(&field("EmailAddress")).ok()?,
        phone: Phone::from_dotted(&field("Phone")).ok()?,
        address1: field("Address1"),
        address2: optional("Address2"),
        city: field("City"),
        state: optional("StateProvince"),
        postcode: field("PostalCode"),
        country_code: CountryCode::parse(&field("Country")).ok()?,
    })
}

impl Enom {
    /// Runs a command; `changes` says whether it changes anything (a lost
    /// answer is then `outcome_unknown`; after a read, `transient`).
    async fn command(
        &self,
        cx: &Context,
        command: &str,
        params: &[(String, String)],
        changes: bool,
    ) -> Result<Xml, ProviderError> {
        let mut form: Vec<(&str, &str)> = vec![
            ("command", command),
            ("uid", &self.config.uid),
            ("pw", &self.config.api_token),
            ("responsetype", "xml"),
        ];
        form.extend(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        // A form body keeps the token out of URLs (and access logs).
        let request = cx.http().request(Method::POST, &self.config.api_url).form(&form);
        let response = match cx.http().send(request).await {
            Err(err) if !changes && err.kind() == ErrorKind::OutcomeUnknown => {
                return Err(ProviderError::transient("Enom did not answer in time"));
            }
            other => other?,
        };
        if let Some(err) = response.server_error(changes) {
            return Err(err);
        }
        Xml::parse(&response.text()).map_err(|_| {
            if changes {
                ProviderError::outcome_unknown("Enom's answer could not be read; the command may have taken effect")
            } else {
                ProviderError::provider("Enom answered something that is not its XML")
            }
        })
    }

    fn name_params(domain: &DomainName) -> Vec<(String, String)> {
        let (sld, tld) = domain.as_str().split_once('.').unwrap_or((domain.as_str(), ""));
        vec![("sld".into(), sld.into()), ("tld".into(), tld.into())]
    }

    /// `GetDomainInfo`: the domain in this account, if it is there.
    async fn domain_info(&self, cx: &Context, domain: &DomainName) -> Result<Option<Xml>, ProviderError> {
        let answer = self.command(cx, "GetDomainInfo", &Self::name_params(domain), false).await?;
        if !failed(&answer) {
            return Ok(Some(answer));
        }
        match refused("", &answer, "/domain").kind() {
            ErrorKind::NotFound => Ok(None),
            _ => Err(refused(&format!("Reading {domain}"), &answer, "/domain")),
        }
    }

    async fn read(&self, cx: &Context, domain: &DomainName) -> Result<DomainInfo, ProviderError> {
        let info = self.domain_info(cx, domain).await?.ok_or_else(|| {
            ProviderError::not_found(UserMessage::new(format!("{domain} is not in this Enom account")))
        })?;
        let names = Self::name_params(domain);
        let lock = self.command(cx, "GetRegLock", &names, false).await?;
        let renew = self.command(cx, "GetRenew", &names, false).await?;
        let contacts = self.command(cx, "GetContacts", &names, false).await?;
        let registrant =
            contacts.path(&["GetContacts", "Registrant"]).and_then(|block| contact_of(block, "Registrant"));
        let dns = info
            .path(&["GetDomainInfo", "services"])
            .into_iter()
            .flat_map(|s| s.all("entry"))
            .filter(|e| e.attribute("name") == Some("dnsserver"))
            .flat_map(|e| e.child("configuration").into_iter().flat_map(|c| c.all("dns")))
            .filter_map(|d| Hostname::parse(&d.text).ok())
            .collect();
        let expires = parse_date(info.at(&["GetDomainInfo", "status", "expiration"]));
        Ok(DomainInfo {
            domain: domain.clone(),
            status: if expires.is_some_and(|e| e < Utc::now()) { DomainStatus::Expired } else { DomainStatus::Active },
            locked: lock.at(&["reg-lock"]) == "1",
            auto_renew: renew.at(&["auto-renew"]) == "1",
            privacy: false,
            nameservers: dns,
            registrant,
            created_at: None,
            expires_at: expires,
        })
    }

    async fn simple(
        &self,
        cx: &Context,
        command: &str,
        domain: &DomainName,
        extra: Vec<(String, String)>,
        field: &str,
    ) -> Result<(), ProviderError> {
        let mut params = Self::name_params(domain);
        params.extend(extra);
        let answer = self.command(cx, command, &params, true).await?;
        if failed(&answer) {
            return Err(refused(&format!("Changing {domain}"), &answer, field));
        }
        Ok(())
    }
}

impl Provider for Enom {
    type Config = EnomConfig;

    fn about() -> ProviderAbout {
        ProviderAbout {
            id: "enom".into(),
            name: "Enom".into(),
            description: "Domains in an Enom reseller account, through its reseller API.".into(),
            logo_url: None,
        }
    }

    async fn new(config: EnomConfig) -> Result<Self, ProviderError> {
        Ok(Enom { config })
    }

    async fn test_connection(&self, cx: &Context) -> Result<ConnectionTest, ProviderError> {
        let params =
            vec![("sld".to_owned(), "provisio-connection-test".to_owned()), ("tld".to_owned(), "com".to_owned())];
        let answer = self.command(cx, "Check", &params, false).await?;
        if failed(&answer) {
            return Err(refused("Checking a name", &answer, "/uid"));
        }
        Ok(ConnectionTest { message: format!("Logged in to Enom as {}", self.config.uid), details: json!({}) })
    }
}

impl DomainNames for Enom {
    async fn check_availability(
        &self,
        cx: &Context,
        params: CheckAvailabilityParams,
    ) -> Result<AvailabilityResult, ProviderError> {
        let mut domains = Vec::new();
        // One name per call: the unindexed form every Enom version answers alike (§3.1).
        for domain in &params.domains {
            let answer = self.command(cx, "Check", &Self::name_params(domain), false).await?;
            if failed(&answer) {
                return Err(refused("Checking names", &answer, "/domains"));
            }
            let available = answer.at(&["RRPCode"]) == "210";
            domains.push(Availability {
                domain: domain.clone(),
                available,
                premium: false,
                reason: (!available).then(|| answer.at(&["RRPText"]).to_owned()),
            });
        }
        Ok(AvailabilityResult { domains })
    }

    async fn register(&self, cx: &Context, params: RegisterParams) -> Result<DomainInfo, ProviderError> {
        let domain = &params.domain;
        if self.domain_info(cx, domain).await?.is_some() {
            let info = self.read(cx, domain).await?;
            if info.registrant.as_ref() != Some(&params.contacts.registrant) {
                return Err(ProviderError::conflict(UserMessage::new(format!(
                    "{domain} is already registered, with another registrant"
                ))));
            }
            return Ok(info);
        }
        let mut purchase = Self::name_params(domain);
        purchase.push(("NumYears".into(), params.years.to_string()));
        for (i, host) in params.nameservers.iter().enumerate() {
            purchase.push((format!("NS{}", i + 1), host.to_string()));
        }
        purchase.extend(contact_params("Registrant", &params.contacts.registrant));
        let answer = self.command(cx, "Purchase", &purchase, true).await?;
        if failed(&answer) {
            return Err(refused(&format!("Registering {domain}"), &answer, "/contacts/registrant"));
        }
        for (kind, enom_kind, contact) in [
            ("admin", "Admin", &params.contacts.admin),
            ("tech", "Tech", &params.contacts.tech),
            ("billing", "AuxBilling", &params.contacts.billing),
        ] {
            if let Some(contact) = contact {
                let mut extra = vec![("ContactType".to_owned(), enom_kind.to_uppercase())];
                extra.extend(contact_params(enom_kind, contact));
                self.simple(cx, "Contacts", domain, extra, &format!("/contacts/{kind}")).await?;
            }
        }
        self.read(cx, domain).await
    }

    async fn renew(&self, cx: &Context, params: RenewParams) -> Result<DomainInfo, ProviderError> {
        let domain = &params.domain;
        let info = self.read(cx, domain).await?;
        let current = info.expires_at.ok_or_else(|| ProviderError::provider("Enom gave no expiry date"))?;
        if plan_renewal(cx.provision_data(), current, params.years) == Renewal::AlreadyDone {
            return Ok(info);
        }
        // No OverrideOrder: Enom refuses a second renewal within a day.
        self.simple(cx, "Extend", domain, vec![("NumYears".into(), params.years.to_string())], "/years").await?;
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
        let servers =
            params.nameservers.iter().enumerate().map(|(i, h)| (format!("NS{}", i + 1), h.to_string())).collect();
        self.simple(cx, "ModifyNS", domain, servers, "/nameservers").await?;
        self.read(cx, domain).await
    }

    async fn get_status(&self, cx: &Context, params: DomainRef) -> Result<StatusResult, ProviderError> {
        let domain = &params.domain;
        if self.domain_info(cx, domain).await?.is_some() {
            let info = self.read(cx, domain).await?;
            return Ok(StatusResult {
                domain: domain.clone(),
                status: info.status,
                progress: None,
                message: None,
                expires_at: info.expires_at,
                transferred_in: false,
            });
        }
        let orders = self.command(cx, "TP_GetOrdersByDomain", &Self::name_params(domain), false).await?;
        let ours = orders
            .all("TransferOrder")
            .filter(|o| o.at(&["loginid"]) == self.config.uid)
            .last()
            .map(|o| o.at(&["statusid"]).to_owned());
        let status = match ours.as_deref() {
            Some("2") => DomainStatus::Cancelled,
            Some(_) => DomainStatus::PendingTransfer,
            None => {
                return Err(ProviderError::not_found(UserMessage::new(format!(
                    "{domain} is not in this Enom account"
                ))));
            }
        };
        Ok(StatusResult {
            domain: domain.clone(),
            status,
            progress: None,
            message: None,
            expires_at: None,
            transferred_in: false,
        })
    }

    async fn transfer(&self, cx: &Context, params: TransferParams) -> Result<StatusResult, ProviderError> {
        let domain = &params.domain;
        cx.add_secret(&params.epp_code);
        let (sld, tld) = domain.as_str().split_once('.').unwrap_or((domain.as_str(), ""));
        let order = vec![
            ("OrderType".to_owned(), "Autoverification".to_owned()),
            ("DomainCount".to_owned(), "1".to_owned()),
            ("SLD1".to_owned(), sld.to_owned()),
            ("TLD1".to_owned(), tld.to_owned()),
            ("AuthInfo1".to_owned(), params.epp_code.clone()),
        ];
        let answer = self.command(cx, "TP_CreateOrder", &order, true).await?;
        if failed(&answer) {
            return Err(refused(&format!("Transferring {domain}"), &answer, "/epp_code"));
        }
        // Errors come as the order detail's status (§3.9): 32 is a wrong code.
        if answer.at(&["transferorder", "transferorderdetail", "statusid"]) == "32" {
            return Err(ProviderError::invalid_field(
                FieldLocation::Params,
                "/epp_code",
                "is not the domain's authorisation code",
            ));
        }
        self.get_status(cx, DomainRef { domain: domain.clone() }).await
    }

    async fn update_contacts(&self, cx: &Context, params: UpdateContactsParams) -> Result<DomainInfo, ProviderError> {
        let domain = &params.domain;
        let changes = &params.contacts;
        for (kind, enom_kind, contact) in [
            ("registrant", "Registrant", &changes.registrant),
            ("admin", "Admin", &changes.admin),
            ("tech", "Tech", &changes.tech),
            ("billing", "AuxBilling", &changes.billing),
        ] {
            if let Some(contact) = contact {
                let mut extra = vec![("ContactType".to_owned(), enom_kind.to_uppercase())];
                extra.extend(contact_params(enom_kind, contact));
                self.simple(cx, "Contacts", domain, extra, &format!("/contacts/{kind}")).await?;
            }
        }
        self.read(cx, domain).await
    }

    async fn set_lock(&self, cx: &Context, params: SetLockParams) -> Result<DomainInfo, ProviderError> {
        let unlock = if params.locked { "0" } else { "1" };
        self.simple(cx, "SetRegLock", &params.domain, vec![("UnlockRegistrar".into(), unlock.into())], "/locked")
            .await?;
        self.read(cx, &params.domain).await
    }

    async fn set_auto_renew(&self, cx: &Context, params: SetAutoRenewParams) -> Result<DomainInfo, ProviderError> {
        let flag = if params.auto_renew { "1" } else { "0" };
        self.simple(cx, "SetRenew", &params.domain, vec![("RenewFlag".into(), flag.into())], "/auto_renew").await?;
        self.read(cx, &params.domain).await
    }

    async fn get_epp_code(&self, _cx: &Context, _params: DomainRef) -> Result<EppCode, ProviderError> {
        // Enom answers no code: SynchAuthInfo only e-mails it to the registrant (§3.8).
        Err(ProviderError::unsupported("get_epp_code"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_numbers_map_by_their_families() {
        let answer = |number: &str| {
            Xml::parse(&format!(
                "<interface-response><ErrCount>1</ErrCount><errors><Err1>x</Err1></errors><responses><response><ResponseNumber>{number}</ResponseNumber></response></responses></interface-response>"
            ))
            .unwrap()
        };
        assert_eq!(refused("x", &answer("316153"), "/domain").kind(), ErrorKind::NotFound);
        assert_eq!(refused("x", &answer("302153"), "/domain").kind(), ErrorKind::Conflict);
        assert_eq!(refused("x", &answer("304145"), "/contacts").kind(), ErrorKind::InvalidInput);
        assert_eq!(refused("x", &answer("304155"), "/domain").kind(), ErrorKind::ProviderError);
        assert_eq!(refused("x", &answer("601000"), "/domain").kind(), ErrorKind::Transient);
        assert_eq!(parse_date("4/1/2017 7:34:00 PM").unwrap().to_rfc3339(), "2017-04-01T19:34:00+00:00");
    }
}
