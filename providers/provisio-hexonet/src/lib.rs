//! `domain-names/hexonet`: domains in a Hexonet (ISPAPI) account, through
//! its HTTP gateway (`POST …/api/call.cgi` with `s_entity`, `s_login`,
//! `s_pw` and the command as `KEY=value` lines).
//!
//! - register: `StatusDomain` first (a domain in this account with the same
//!   registrant is adopted; one elsewhere is `conflict`), `AddContact` for
//!   each role (an identical contact is answered as it is), then
//!   `AddDomain`;
//! - renew: `RenewDomain` with `EXPIRATION`, the year of the expiry the
//!   service knew, so a renew whose answer was lost is refused on the retry
//!   (555) and answered from the new expiry: never twice;
//! - get_info / get_status / get_epp_code: `StatusDomain` (and
//!   `StatusDomainTransfer` while a transfer in is pending);
//! - update_nameservers, set_lock, update_contacts: `ModifyDomain`;
//! - set_auto_renew: `SetDomainRenewalMode` (`AUTORENEW` / `AUTOEXPIRE`);
//! - transfer: `TransferDomain` (pending until the losing side lets go).
//!
//! Codes: 2xx success; 4xx `transient`; 530/531 a provider error about the
//! credentials; 545 `not_found`; 504/505/541 `invalid_input`; 540/554
//! `conflict`; the rest provider errors whose text only staff see.
//! Answers are documented in docs/research/hexonet-api.md.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDateTime, Utc};
use provisio_sdk::blueprints::domain_names::*;
use provisio_sdk::formats::{CountryCode, DomainName, Email, Hostname, Phone, generate_password};
use provisio_sdk::{
    ConnectionTest, Context, ErrorKind, FieldLocation, Provider, ProviderAbout, ProviderError, UserMessage,
};
use reqwest::Method;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The registry entry.
pub fn entry() -> provisio_sdk::ProviderEntry {
    provisio_sdk::blueprints::domain_names::entry::<Hexonet>()
}

fn default_url() -> String {
    "https://api.ispapi.net/api/call.cgi".into()
}

fn default_entity() -> String {
    "54cd".into()
}

/// How to reach one Hexonet account.
#[derive(Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HexonetConfig {
    /// The gateway (`https://api-ote.ispapi.net/api/call.cgi` for OT&E).
    #[serde(default = "default_url")]
    #[schemars(length(min = 1), extend("format" = "url", "x-endpoint" = true))]
    pub api_url: String,
    /// `54cd` for the live system, `1234` for OT&E.
    #[serde(default = "default_entity")]
    #[schemars(length(min = 1, max = 16), extend("x-endpoint" = true))]
    pub entity: String,
    /// The account's login (`user` or `user!role`).
    #[schemars(length(min = 1, max = 128))]
    pub login: String,
    /// The account's password.
    #[schemars(length(min = 1, max = 256), extend("x-secret" = true, "writeOnly" = true))]
    pub password: String,
    /// The CA certificate (PEM) of a gateway whose certificate is not public.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 65536), extend("x-endpoint" = true))]
    pub ca_cert_pem: Option<String>,
}

impl std::fmt::Debug for HexonetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HexonetConfig")
            .field("api_url", &self.api_url)
            .field("login", &self.login)
            .finish_non_exhaustive()
    }
}

/// The Hexonet provider for one account.
#[derive(Debug)]
pub struct Hexonet {
    config: HexonetConfig,
}

/// A parsed answer.
#[derive(Debug, Default)]
struct Answer {
    code: u16,
    description: String,
    pending: bool,
    properties: BTreeMap<String, Vec<String>>,
}

impl Answer {
    fn first(&self, name: &str) -> &str {
        self.properties.get(name).and_then(|v| v.first()).map_or("", String::as_str)
    }
    fn all(&self, name: &str) -> &[String] {
        self.properties.get(name).map_or(&[], Vec::as_slice)
    }
}

/// Reads the `[RESPONSE]` grammar: `KEY=value` lines, spaces and CR optional.
fn parse(text: &str) -> Answer {
    let mut answer = Answer::default();
    for line in text.lines().map(str::trim) {
        let Some((key, value)) = line.split_once('=') else { continue };
        let (key, value) = (key.trim(), value.trim().to_owned());
        if let Some((name, _)) = key.strip_prefix("PROPERTY[").and_then(|rest| rest.split_once(']')) {
            answer.properties.entry(name.to_uppercase()).or_default().push(value);
            continue;
        }
        match key.to_uppercase().as_str() {
            "CODE" => answer.code = value.parse().unwrap_or(0),
            "DESCRIPTION" => answer.description = value,
            "PENDING" => answer.pending = value == "1",
            _ => {}
        }
    }
    answer
}

fn invalid(path: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::invalid_field(FieldLocation::Params, path, message)
}

/// The error an answer is, by its code (§2.2 of the research note).
fn refused(what: &str, answer: &Answer, field: &str) -> ProviderError {
    let error = match answer.code {
        420..=499 => ProviderError::transient("Hexonet is busy or failed the command; try again later"),
        530 | 531 => ProviderError::provider(
            "Hexonet refused the credentials: check login, password and entity (and the account's IP filter)",
        ),
        545 => ProviderError::not_found(UserMessage::new(format!("{what}: it does not exist in this account"))),
        504 | 505 | 541 => invalid(field, "was refused by Hexonet"),
        540 | 554 => ProviderError::conflict(UserMessage::new(format!("{what}: it is already registered"))),
        546 => ProviderError::provider("The Hexonet account's credit limit is reached"),
        _ => ProviderError::provider(UserMessage::new(format!("{what}: Hexonet refused it"))),
    };
    error.with_debug("hexonet_code", answer.code).with_debug("hexonet_description", answer.description.clone())
}

fn parse_date(text: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").ok().map(|d| d.and_utc())
}

impl Hexonet {
    /// Runs a command; `changes` says whether it changes anything (a lost
    /// answer is then `outcome_unknown`; after a read, `transient`).
    async fn command(&self, cx: &Context, lines: &[(&str, String)], changes: bool) -> Result<Answer, ProviderError> {
        let command: String = lines.iter().map(|(k, v)| format!("{k}={}\n", v.replace(['\r', '\n'], " "))).collect();
        let form = [
            ("s_entity", self.config.entity.as_str()),
            ("s_login", self.config.login.as_str()),
            ("s_pw", self.config.password.as_str()),
            ("s_command", command.as_str()),
        ];
        let request = cx.http().request(Method::POST, &self.config.api_url).form(&form);
        let response = match cx.http().send(request).await {
            Err(err) if !changes && err.kind() == ErrorKind::OutcomeUnknown => {
                return Err(ProviderError::transient("Hexonet did not answer in time"));
            }
            other => other?,
        };
        if let Some(err) = response.server_error(changes) {
            return Err(err);
        }
        if !response.status.is_success() {
            return Err(ProviderError::provider(UserMessage::new(format!(
                "Hexonet answered HTTP {}; is api_url the gateway (…/api/call.cgi)?",
                response.status.as_u16()
            ))));
        }
        let answer = parse(&response.text());
        if answer.code == 0 {
            return Err(if changes {
                ProviderError::outcome_unknown("Hexonet's answer could not be read; the command may have taken effect")
            } else {
                ProviderError::provider("Hexonet answered something that is not an ISPAPI response")
            });
        }
        Ok(answer)
    }

    /// `StatusDomain`: the domain in this account, if it is there.
    async fn status(&self, cx: &Context, domain: &DomainName) -> Result<Option<Answer>, ProviderError> {
        let answer =
            self.command(cx, &[("COMMAND", "StatusDomain".into()), ("DOMAIN", domain.to_string())], false).await?;
        match answer.code {
            200..=299 => {
                cx.add_secret(answer.first("AUTH"));
                Ok(Some(answer))
            }
            545 => Ok(None),
            _ => Err(refused(&format!("Reading {domain}"), &answer, "/domain")),
        }
    }

    async fn owned(&self, cx: &Context, domain: &DomainName) -> Result<Answer, ProviderError> {
        self.status(cx, domain).await?.ok_or_else(|| {
            ProviderError::not_found(UserMessage::new(format!("{domain} is not in this Hexonet account")))
        })
    }

    async fn contact(&self, cx: &Context, handle: &str) -> Result<Option<Contact>, ProviderError> {
        if handle.is_empty() {
            return Ok(None);
        }
        let answer =
            self.command(cx, &[("COMMAND", "StatusContact".into()), ("CONTACT", handle.into())], false).await?;
        if answer.code != 200 {
            return Ok(None);
        }
        let optional = |name: &str| Some(answer.first(name).to_owned()).filter(|v| !v.is_empty());
        let name =
            optional("NAME").unwrap_or_else(|| format!("{} {}", answer.first("FIRSTNAME"), answer.first("LASTNAME")));
        let streets: Vec<&str> = answer.first("STREET").split('\n').collect();
        Ok(Some(Contact {
            name: name.trim().to_owned(),
            organisation: optional("ORGANIZATION"),
            email: Email::parse(answer.first("EMAIL"))
                .map_err(|_| ProviderError::provider("a contact without a usable email"))?,
            phone: Phone::from_dotted(answer.first("PHONE"))
                .map_err(|_| ProviderError::provider("a contact without a usable phone"))?,
            address1: streets.first().copied().unwrap_or_default().to_owned(),
            address2: streets.get(1).map(|s| (*s).to_owned()),
            city: answer.first("CITY").to_owned(),
            state: optional("STATE"),
            postcode: answer.first("ZIP").to_owned(),
            country_code: CountryCode::parse(answer.first("COUNTRY"))
                .map_err(|_| ProviderError::provider("a contact without a usable country"))?,
        }))
    }

    /// `AddContact` (an identical one is answered as it is); its handle.
    async fn add_contact(&self, cx: &Context, contact: &Contact, path: &str) -> Result<String, ProviderError> {
        let mut lines = vec![
            ("COMMAND", "AddContact".to_owned()),
            ("NAME", contact.name.clone()),
            ("STREET", contact.address1.clone()),
            ("CITY", contact.city.clone()),
            ("ZIP", contact.postcode.clone()),
            ("COUNTRY", contact.country_code.to_string()),
            ("PHONE", contact.phone.dotted()),
            ("EMAIL", contact.email.to_string()),
        ];
        if let Some(org) = &contact.organisation {
            lines.push(("ORGANIZATION", org.clone()));
        }
        if let Some(state) = &contact.state {
            lines.push(("STATE", state.clone()));
        }
        let answer = self.command(cx, &lines, true).await?;
        if answer.code != 200 {
            return Err(refused("Creating a contact", &answer, path));
        }
        Ok(answer.first("CONTACT").to_owned())
    }

    async fn info(&self, cx: &Context, domain: &DomainName, status: &Answer) -> Result<DomainInfo, ProviderError> {
        let registrant = self.contact(cx, status.first("OWNERCONTACT")).await?;
        let expires = parse_date(status.first("EXPIRATIONDATE"));
        Ok(DomainInfo {
            domain: domain.clone(),
            status: if expires.is_some_and(|e| e < Utc::now()) { DomainStatus::Expired } else { DomainStatus::Active },
            locked: status.first("TRANSFERLOCK") == "1",
            auto_renew: matches!(status.first("RENEWALMODE"), "AUTORENEW" | "DEFAULT" | ""),
            privacy: false,
            nameservers: status.all("NAMESERVER").iter().filter_map(|h| Hostname::parse(h).ok()).collect(),
            registrant,
            created_at: parse_date(status.first("CREATEDDATE")),
            expires_at: expires,
        })
    }

    async fn read(&self, cx: &Context, domain: &DomainName) -> Result<DomainInfo, ProviderError> {
        let status = self.owned(cx, domain).await?;
        self.info(cx, domain, &status).await
    }

    async fn modify(
        &self,
        cx: &Context,
        domain: &DomainName,
        lines: Vec<(&str, String)>,
        field: &str,
    ) -> Result<(), ProviderError> {
        let mut all = vec![("COMMAND", "ModifyDomain".to_owned()), ("DOMAIN", domain.to_string())];
        all.extend(lines);
        let answer = self.command(cx, &all, true).await?;
        if !(200..300).contains(&answer.code) {
            return Err(refused(&format!("Changing {domain}"), &answer, field));
        }
        Ok(())
    }
}

impl Provider for Hexonet {
    type Config = HexonetConfig;

    fn about() -> ProviderAbout {
        ProviderAbout {
            id: "hexonet".into(),
            name: "Hexonet".into(),
            description: "Domains in a Hexonet (ISPAPI) reseller account, through its HTTP gateway.".into(),
            logo_url: None,
        }
    }

    async fn new(config: HexonetConfig) -> Result<Self, ProviderError> {
        Ok(Hexonet { config })
    }

    async fn test_connection(&self, cx: &Context) -> Result<ConnectionTest, ProviderError> {
        let answer = self
            .command(
                cx,
                &[("COMMAND", "CheckDomains".into()), ("DOMAIN0", "provisio-connection-test.com".into())],
                false,
            )
            .await?;
        if answer.code != 200 {
            return Err(refused("Checking a name", &answer, "/login"));
        }
        Ok(ConnectionTest {
            message: format!("Logged in to Hexonet as {} (entity {})", self.config.login, self.config.entity),
            details: json!({"entity": self.config.entity}),
        })
    }
}

impl DomainNames for Hexonet {
    async fn check_availability(
        &self,
        cx: &Context,
        params: CheckAvailabilityParams,
    ) -> Result<AvailabilityResult, ProviderError> {
        let mut lines = vec![("COMMAND", "CheckDomains".to_owned())];
        let keys: Vec<String> = (0..params.domains.len()).map(|i| format!("DOMAIN{i}")).collect();
        for (key, domain) in keys.iter().zip(&params.domains) {
            lines.push((key.as_str(), domain.to_string()));
        }
        let answer = self.command(cx, &lines, false).await?;
        if answer.code != 200 {
            return Err(refused("Checking names", &answer, "/domains"));
        }
        let checks = answer.all("DOMAINCHECK");
        let domains = params
            .domains
            .iter()
            .enumerate()
            .map(|(i, domain)| {
                let check = checks.get(i).map_or("", String::as_str);
                let premium = check.contains("[PREMIUM]");
                // 210 available; 211 taken, or available at a premium (§3.1).
                let available = check.starts_with("210") || (check.starts_with("211") && premium);
                Availability {
                    domain: domain.clone(),
                    available,
                    premium,
                    reason: (!available).then(|| check.get(4..).unwrap_or(check).to_owned()),
                }
            })
            .collect();
        Ok(AvailabilityResult { domains })
    }

    async fn register(&self, cx: &Context, params: RegisterParams) -> Result<DomainInfo, ProviderError> {
        let domain = &params.domain;
        if let Some(existing) = self.status(cx, domain).await? {
            return self.adopt(cx, domain, &existing, &params.contacts.registrant).await;
        }
        let owner = self.add_contact(cx, &params.contacts.registrant, "/contacts/registrant").await?;
        let mut roles = vec![("OWNERCONTACT0", owner.clone())];
        for (key, kind, contact) in [
            ("ADMINCONTACT0", "admin", &params.contacts.admin),
            ("TECHCONTACT0", "tech", &params.contacts.tech),
            ("BILLINGCONTACT0", "billing", &params.contacts.billing),
        ] {
            let handle = match contact {
                Some(contact) => self.add_contact(cx, contact, &format!("/contacts/{kind}")).await?,
                None => owner.clone(),
            };
            roles.push((key, handle));
        }
        let auth = generate_password(16);
        cx.add_secret(&auth);
        let mut lines = vec![
            ("COMMAND", "AddDomain".to_owned()),
            ("DOMAIN", domain.to_string()),
            ("PERIOD", format!("{}Y", params.years)),
            ("AUTH", auth),
        ];
        lines.extend(roles);
        let keys: Vec<String> = (0..params.nameservers.len()).map(|i| format!("NAMESERVER{i}")).collect();
        for (key, host) in keys.iter().zip(&params.nameservers) {
            lines.push((key.as_str(), host.to_string()));
        }
        let answer = self.command(cx, &lines, true).await?;
        match answer.code {
            200..=299 => self.read(cx, domain).await,
            // In this account already (a retry, or a race): adopted if it is the same.
            540 => match self.status(cx, domain).await? {
                Some(existing) => self.adopt(cx, domain, &existing, &params.contacts.registrant).await,
                None => Err(refused(&format!("Registering {domain}"), &answer, "/domain")),
            },
            _ => Err(refused(&format!("Registering {domain}"), &answer, "/domain")),
        }
    }

    async fn renew(&self, cx: &Context, params: RenewParams) -> Result<DomainInfo, ProviderError> {
        let domain = &params.domain;
        let status = self.owned(cx, domain).await?;
        let current = parse_date(status.first("EXPIRATIONDATE"))
            .ok_or_else(|| ProviderError::provider("Hexonet gave no expiry date"))?;
        let year = match plan_renewal(cx.provision_data(), current, params.years) {
            Renewal::AlreadyDone => return self.info(cx, domain, &status).await,
            Renewal::From(expiry) => expiry.year(),
        };
        let lines = vec![
            ("COMMAND", "RenewDomain".to_owned()),
            ("DOMAIN", domain.to_string()),
            ("PERIOD", params.years.to_string()),
            ("EXPIRATION", year.to_string()),
        ];
        let answer = self.command(cx, &lines, true).await?;
        if !(200..300).contains(&answer.code) {
            return Err(refused(&format!("Renewing {domain}"), &answer, "/years"));
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
        self.owned(cx, domain).await?;
        let keys: Vec<String> = (0..params.nameservers.len()).map(|i| format!("NAMESERVER{i}")).collect();
        let lines = keys.iter().zip(&params.nameservers).map(|(k, h)| (k.as_str(), h.to_string())).collect();
        self.modify(cx, domain, lines, "/nameservers").await?;
        self.read(cx, domain).await
    }

    async fn get_status(&self, cx: &Context, params: DomainRef) -> Result<StatusResult, ProviderError> {
        let domain = &params.domain;
        if let Some(status) = self.status(cx, domain).await? {
            let info = self.info(cx, domain, &status).await?;
            return Ok(StatusResult {
                domain: domain.clone(),
                status: info.status,
                progress: None,
                message: None,
                expires_at: info.expires_at,
                transferred_in: false,
            });
        }
        let answer = self
            .command(cx, &[("COMMAND", "StatusDomainTransfer".into()), ("DOMAIN", domain.to_string())], false)
            .await?;
        if answer.code != 200 {
            return Err(ProviderError::not_found(UserMessage::new(format!("{domain} is not in this Hexonet account"))));
        }
        Ok(StatusResult {
            domain: domain.clone(),
            status: DomainStatus::PendingTransfer,
            progress: None,
            message: Some(format!("Transfer {}", answer.first("TRANSFERSTATUS").to_lowercase())),
            expires_at: None,
            transferred_in: false,
        })
    }

    async fn transfer(&self, cx: &Context, params: TransferParams) -> Result<StatusResult, ProviderError> {
        let domain = &params.domain;
        cx.add_secret(&params.epp_code);
        let lines = vec![
            ("COMMAND", "TransferDomain".to_owned()),
            ("DOMAIN", domain.to_string()),
            ("ACTION", "REQUEST".to_owned()),
            ("AUTH", params.epp_code.clone()),
            ("PERIOD", format!("{}Y", params.years)),
        ];
        let answer = self.command(cx, &lines, true).await?;
        match answer.code {
            // Requested, already requested (553) or already ours (540): follow it.
            200..=299 | 540 | 553 => self.get_status(cx, DomainRef { domain: domain.clone() }).await,
            531 | 552 => Err(invalid("/epp_code", "was refused by the losing side (a wrong code, or a locked domain)")),
            _ => Err(refused(&format!("Transferring {domain}"), &answer, "/epp_code")),
        }
    }

    async fn update_contacts(&self, cx: &Context, params: UpdateContactsParams) -> Result<DomainInfo, ProviderError> {
        let domain = &params.domain;
        self.owned(cx, domain).await?;
        let changes = &params.contacts;
        let mut lines = Vec::new();
        for (key, kind, contact) in [
            ("OWNERCONTACT0", "registrant", &changes.registrant),
            ("ADMINCONTACT0", "admin", &changes.admin),
            ("TECHCONTACT0", "tech", &changes.tech),
            ("BILLINGCONTACT0", "billing", &changes.billing),
        ] {
            if let Some(contact) = contact {
                // A new handle: changing a shared one would change every domain using it.
                lines.push((key, self.add_contact(cx, contact, &format!("/contacts/{kind}")).await?));
            }
        }
        if !lines.is_empty() {
            self.modify(cx, domain, lines, "/contacts").await?;
        }
        self.read(cx, domain).await
    }

    async fn set_lock(&self, cx: &Context, params: SetLockParams) -> Result<DomainInfo, ProviderError> {
        let domain = &params.domain;
        self.owned(cx, domain).await?;
        self.modify(cx, domain, vec![("TRANSFERLOCK", if params.locked { "1" } else { "0" }.to_owned())], "/locked")
            .await?;
        self.read(cx, domain).await
    }

    async fn set_auto_renew(&self, cx: &Context, params: SetAutoRenewParams) -> Result<DomainInfo, ProviderError> {
        let domain = &params.domain;
        self.owned(cx, domain).await?;
        let mode = if params.auto_renew { "AUTORENEW" } else { "AUTOEXPIRE" };
        let lines = vec![
            ("COMMAND", "SetDomainRenewalMode".to_owned()),
            ("DOMAIN", domain.to_string()),
            ("RENEWALMODE", mode.to_owned()),
        ];
        let answer = self.command(cx, &lines, true).await?;
        if answer.code != 200 {
            return Err(refused(&format!("Changing the renewal of {domain}"), &answer, "/auto_renew"));
        }
        self.read(cx, domain).await
    }

    async fn get_epp_code(&self, cx: &Context, params: DomainRef) -> Result<EppCode, ProviderError> {
        let status = self.owned(cx, &params.domain).await?;
        Ok(EppCode { epp_code: status.first("AUTH").to_owned() })
    }
}

impl Hexonet {
    /// A domain found in this account where `register` wanted to add it:
    /// adopted when its registrant is the one asked for, else `conflict`.
    async fn adopt(
        &self,
        cx: &Context,
        domain: &DomainName,
        status: &Answer,
        registrant: &Contact,
    ) -> Result<DomainInfo, ProviderError> {
        let info = self.info(cx, domain, status).await?;
        if info.registrant.as_ref() != Some(registrant) {
            return Err(ProviderError::conflict(UserMessage::new(format!(
                "{domain} is already registered, with another registrant"
            ))));
        }
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse_with_or_without_spaces() {
        let live = parse("[RESPONSE]\r\nCODE=545\r\nDESCRIPTION=Object not found; DOMAIN NAME NOT FOUND\r\nEOF\r\n");
        assert_eq!((live.code, live.description.as_str()), (545, "Object not found; DOMAIN NAME NOT FOUND"));
        let docs = parse(
            "[RESPONSE]\nCODE = 200\nPENDING = 1\nPROPERTY[NAMESERVER][0] = ns1.x\nPROPERTY[NAMESERVER][1] = ns2.x\nEOF",
        );
        assert!(docs.pending);
        assert_eq!(docs.all("NAMESERVER"), ["ns1.x", "ns2.x"]);
        assert_eq!(refused("x", &live, "/domain").kind(), ErrorKind::NotFound);
    }
}
