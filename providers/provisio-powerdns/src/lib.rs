//! `dns-hosting/powerdns`: zones on a PowerDNS Authoritative server, through
//! its HTTP API (v1, `X-API-Key`).
//!
//! - create_zone: `POST /zones` (kind Native, the configured name servers,
//!   `account` = the service's owner mark), with the initial record sets;
//! - set_records / delete_records: `PATCH /zones/{zone}` with REPLACE / DELETE
//!   rrsets;
//! - suspend: every record of the zone, SOA included, is disabled, so the
//!   server stops answering for it (it refuses the queries); unsuspend enables
//!   them again. Nothing is lost in between;
//! - terminate: `DELETE /zones/{zone}`.
//!
//! Every function acts only on a zone whose `account` is the caller's owner
//! mark (the customer id is not stored: the mark names the service).
//!
//! PowerDNS answers 500 while its backend is briefly busy (the SQLite backend
//! under concurrent writes: "database is locked"); every API change runs in a
//! transaction, so requests other than POST are tried again, briefly.
//!
//! Record contents are taken in zone-file syntax and made absolute where
//! PowerDNS wants it (`mail.example.com` becomes `mail.example.com.`; TXT is
//! quoted).

use provisio_sdk::blueprints::dns_hosting::*;
use provisio_sdk::blueprints::{ListParams, Listed, Listing, State};
use provisio_sdk::formats::{DomainName, Hostname};
use provisio_sdk::http::HttpResponse;
use provisio_sdk::{ConnectionTest, Context, Empty, Provider, ProviderAbout, ProviderError, UserMessage};
use reqwest::Method;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The registry entry.
pub fn entry() -> provisio_sdk::ProviderEntry {
    provisio_sdk::blueprints::dns_hosting::entry::<PowerDns>()
}

fn default_server_id() -> String {
    "localhost".into()
}

/// How to reach the PowerDNS API.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PowerDnsConfig {
    /// Base address of the API, e.g. `http://127.0.0.1:8081`.
    #[schemars(length(min = 1), extend("format" = "url", "x-endpoint" = true))]
    pub api_url: String,
    /// The API key (`api-key` in pdns.conf).
    #[schemars(extend("x-secret" = true, "writeOnly" = true))]
    pub api_key: String,
    /// The server id in API paths.
    #[serde(default = "default_server_id")]
    pub server_id: String,
    /// Name servers put in every new zone's NS record set.
    #[schemars(length(min = 1, max = 13))]
    pub nameservers: Vec<Hostname>,
}

/// The PowerDNS provider for one server.
#[derive(Debug)]
pub struct PowerDns {
    config: PowerDnsConfig,
}

/// The API's view of a record set.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Rrset {
    name: String,
    #[serde(rename = "type")]
    record_type: String,
    #[serde(default)]
    ttl: u32,
    #[serde(default)]
    records: Vec<Record>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    changetype: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    content: String,
    #[serde(default)]
    disabled: bool,
}

/// The API's view of a zone.
#[derive(Debug, Clone, Deserialize)]
struct Zone {
    serial: u32,
    /// The owner mark of the service that made it (empty: none).
    #[serde(default)]
    account: Option<String>,
    #[serde(default)]
    rrsets: Vec<Rrset>,
}

fn fqdn(zone: &DomainName, name: &str) -> String {
    match name {
        "@" => format!("{zone}."),
        name => format!("{name}.{zone}."),
    }
}

fn relative(zone: &DomainName, fqdn: &str) -> String {
    let apex = format!("{zone}.");
    if fqdn == apex {
        "@".into()
    } else {
        fqdn.strip_suffix(&format!(".{apex}")).unwrap_or(fqdn.trim_end_matches('.')).to_owned()
    }
}

fn dotted(host: &str) -> String {
    if host.ends_with('.') { host.to_owned() } else { format!("{host}.") }
}

/// Record content as PowerDNS wants it: absolute names, quoted TXT.
fn content(record_type: RecordType, text: &str) -> String {
    match record_type {
        RecordType::Cname | RecordType::Ns => dotted(text),
        RecordType::Mx => match text.split_once(' ') {
            Some((priority, host)) => format!("{priority} {}", dotted(host.trim())),
            None => text.to_owned(),
        },
        RecordType::Srv => {
            let parts: Vec<&str> = text.split_whitespace().collect();
            match parts.as_slice() {
                [priority, weight, port, target] => format!("{priority} {weight} {port} {}", dotted(target)),
                _ => text.to_owned(),
            }
        }
        RecordType::Txt if !text.starts_with('"') => format!("\"{}\"", text.replace('"', "\\\"")),
        _ => text.to_owned(),
    }
}

fn record_type_name(record_type: RecordType) -> String {
    serde_json::to_value(record_type).expect("record types serialise").as_str().unwrap_or_default().to_owned()
}

fn to_rrset(zone: &DomainName, set: &RecordSet, changetype: &str, disabled: bool) -> Rrset {
    Rrset {
        name: fqdn(zone, &set.name),
        record_type: record_type_name(set.record_type),
        ttl: set.ttl,
        records: set.records.iter().map(|r| Record { content: content(set.record_type, r), disabled }).collect(),
        changetype: Some(changetype.into()),
    }
}

impl PowerDns {
    fn url(&self, path: &str) -> String {
        format!("{}/api/v1/servers/{}{path}", self.config.api_url.trim_end_matches('/'), self.config.server_id)
    }

    async fn send(
        &self,
        cx: &Context,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<HttpResponse, ProviderError> {
        // A change that failed with 500 was rolled back: reads, PATCH (REPLACE
        // or DELETE record sets) and DELETE may be sent again; a POST is not.
        let retries = if method == Method::POST { 0 } else { 3 };
        let mut attempt = 0;
        loop {
            let mut request =
                cx.http().request(method.clone(), &self.url(path)).header("X-API-Key", &self.config.api_key);
            if let Some(body) = &body {
                request = request.json(body);
            }
            let response = cx.http().send(request).await?;
            if response.status.as_u16() == 401 || response.status.as_u16() == 403 {
                return Err(ProviderError::provider("The DNS server rejected the API key"));
            }
            let pause = std::time::Duration::from_millis(100 << attempt);
            if response.status.is_server_error() && attempt < retries && cx.remaining() > pause * 2 {
                attempt += 1;
                tokio::time::sleep(pause).await;
                continue;
            }
            return Ok(response);
        }
    }

    /// The zone, if it exists and this call may act on it: one whose
    /// `account` is another owner mark (or empty) is `conflict`.
    async fn zone(&self, cx: &Context, zone: &DomainName) -> Result<Option<Zone>, ProviderError> {
        let response = self.send(cx, Method::GET, &format!("/zones/{zone}."), None).await?;
        // PowerDNS answers 404, or 422 "Could not find domain", for an unknown zone.
        if matches!(response.status.as_u16(), 404 | 422) {
            return Ok(None);
        }
        let found: Zone = response.error_for_status("The DNS server could not read the zone")?.json()?;
        cx.check_owner(&format!("Zone {zone}"), found.account.as_deref().filter(|a| !a.is_empty()))?;
        Ok(Some(found))
    }

    async fn require(&self, cx: &Context, zone: &DomainName) -> Result<Zone, ProviderError> {
        self.zone(cx, zone).await?.ok_or_else(|| {
            ProviderError::not_found(UserMessage::new(format!("Zone {zone} does not exist on this server")))
        })
    }

    fn info(&self, zone: &DomainName, found: &Zone) -> Result<ZoneInfo, ProviderError> {
        let apex = format!("{zone}.");
        let soa_disabled = found.rrsets.iter().any(|r| r.record_type == "SOA" && r.records.iter().all(|x| x.disabled));
        let nameservers = found
            .rrsets
            .iter()
            .filter(|r| r.record_type == "NS" && r.name == apex)
            .flat_map(|r| r.records.iter())
            .filter_map(|r| Hostname::parse(r.content.trim_end_matches('.')).ok())
            .collect();
        let mut records: Vec<RecordSet> = found
            .rrsets
            .iter()
            .filter(|r| r.record_type != "SOA")
            .filter_map(|r| {
                let record_type: RecordType = serde_json::from_value(json!(r.record_type)).ok()?;
                Some(RecordSet {
                    name: relative(zone, &r.name),
                    record_type,
                    ttl: r.ttl.max(60),
                    records: r.records.iter().map(|x| x.content.clone()).collect(),
                })
            })
            .collect();
        records.sort();
        Ok(ZoneInfo {
            zone: zone.clone(),
            state: if soa_disabled { State::Suspended } else { State::Active },
            nameservers,
            records,
            serial: found.serial,
        })
    }

    async fn patch(&self, cx: &Context, zone: &DomainName, rrsets: Vec<Rrset>) -> Result<(), ProviderError> {
        let response =
            self.send(cx, Method::PATCH, &format!("/zones/{zone}."), Some(json!({"rrsets": rrsets}))).await?;
        if response.status.as_u16() == 422 {
            let error: Value = response.json().unwrap_or(Value::Null);
            return Err(ProviderError::provider(UserMessage::new(format!(
                "The DNS server refused the records: {}",
                error["error"].as_str().unwrap_or("invalid records")
            ))));
        }
        response.error_for_status("The DNS server could not change the zone")?;
        Ok(())
    }

    /// Disables or enables every record of the zone (suspend / unsuspend).
    async fn set_disabled(&self, cx: &Context, zone: &DomainName, disabled: bool) -> Result<ZoneInfo, ProviderError> {
        let found = self.require(cx, zone).await?;
        let rrsets: Vec<Rrset> = found
            .rrsets
            .iter()
            .filter(|r| r.records.iter().any(|x| x.disabled != disabled))
            .map(|r| Rrset {
                records: r.records.iter().map(|x| Record { content: x.content.clone(), disabled }).collect(),
                changetype: Some("REPLACE".into()),
                ..r.clone()
            })
            .collect();
        if !rrsets.is_empty() {
            self.patch(cx, zone, rrsets).await?;
        }
        let found = self.require(cx, zone).await?;
        self.info(zone, &found)
    }

    fn ensure_active(info: &ZoneInfo) -> Result<(), ProviderError> {
        if info.state == State::Suspended {
            return Err(ProviderError::provider("The zone is suspended; its records cannot be changed"));
        }
        Ok(())
    }
}

impl Provider for PowerDns {
    type Config = PowerDnsConfig;

    fn about() -> ProviderAbout {
        ProviderAbout {
            id: "powerdns".into(),
            name: "PowerDNS Authoritative".into(),
            description: "Zones on a PowerDNS Authoritative server, through its HTTP API.".into(),
            logo_url: Some("https://www.powerdns.com/hubfs/PowerDNS_2020_Logo_RGB.svg".into()),
        }
    }

    async fn new(config: PowerDnsConfig) -> Result<Self, ProviderError> {
        Ok(PowerDns { config })
    }

    async fn test_connection(&self, cx: &Context) -> Result<ConnectionTest, ProviderError> {
        let response = self.send(cx, Method::GET, "", None).await?;
        if response.status.as_u16() == 404 {
            return Err(ProviderError::provider(UserMessage::new(format!(
                "The API answered, but knows no server \"{}\"",
                self.config.server_id
            ))));
        }
        let server: Value = response.error_for_status("The DNS server's API did not answer as expected")?.json()?;
        let version = server["version"].as_str().unwrap_or("unknown").to_owned();
        Ok(ConnectionTest {
            message: format!("Connected to PowerDNS {version} (server {})", self.config.server_id),
            details: json!({"version": version, "daemon_type": server["daemon_type"]}),
        })
    }
}

impl DnsHosting for PowerDns {
    async fn create_zone(&self, cx: &Context, params: CreateZoneParams) -> Result<ZoneInfo, ProviderError> {
        let zone = &params.zone;
        // An existing zone is answered only if it carries this call's owner
        // mark (`zone` checks it), and adopted only if its records match.
        if let Some(existing) = self.zone(cx, zone).await? {
            let info = self.info(zone, &existing)?;
            let wanted: Vec<RecordSet> = params
                .records
                .iter()
                .map(|set| RecordSet {
                    records: set.records.iter().map(|r| content(set.record_type, r)).collect(),
                    name: set.name.clone(),
                    ..set.clone()
                })
                .collect();
            let same = wanted.iter().all(|w| info.records.contains(w))
                && info.records.iter().filter(|r| !(r.record_type == RecordType::Ns && r.name == "@")).count()
                    == wanted.len();
            if same {
                return Ok(info);
            }
            return Err(ProviderError::conflict(UserMessage::new(format!(
                "Zone {zone} already exists on this server with other records"
            ))));
        }
        let rrsets: Vec<Rrset> = params.records.iter().map(|set| to_rrset(zone, set, "REPLACE", false)).collect();
        let body = json!({
            "name": format!("{zone}."),
            "kind": "Native",
            "nameservers": self.config.nameservers.iter().map(|ns| dotted(ns.as_str())).collect::<Vec<_>>(),
            "account": cx.owner().unwrap_or_default(),
            "soa_edit_api": "DEFAULT",
            "rrsets": rrsets.into_iter().map(|mut r| { r.changetype = None; r }).collect::<Vec<_>>(),
        });
        let response = self.send(cx, Method::POST, "/zones", Some(body)).await?;
        match response.status.as_u16() {
            409 => return Err(ProviderError::conflict(UserMessage::new(format!("Zone {zone} already exists")))),
            422 => {
                let error: Value = response.json().unwrap_or(Value::Null);
                return Err(ProviderError::provider(UserMessage::new(format!(
                    "The DNS server refused the zone: {}",
                    error["error"].as_str().unwrap_or("invalid zone")
                ))));
            }
            _ => {}
        }
        let created: Zone = response.error_for_status("The DNS server could not create the zone")?.json()?;
        self.info(zone, &created)
    }

    /// Every zone of the server by name (the API answers them all at once;
    /// pages are cut here), each with its `account` as the owner mark.
    async fn list(&self, cx: &Context, params: ListParams) -> Result<Listing, ProviderError> {
        #[derive(Deserialize)]
        struct ZoneSummary {
            name: String,
            #[serde(default)]
            account: Option<String>,
        }
        let response = self.send(cx, Method::GET, "/zones", None).await?;
        let mut zones: Vec<ZoneSummary> =
            response.error_for_status("The DNS server could not list its zones")?.json()?;
        for zone in &mut zones {
            zone.name = zone.name.trim_end_matches('.').to_ascii_lowercase();
        }
        let (page, next_cursor, total) = params.page(zones, |z| z.name.as_str());
        let resources: Vec<Listed> = page
            .into_iter()
            .map(|zone| {
                let valid = DomainName::parse(&zone.name).is_ok();
                Listed {
                    // The listing has no records: adopt reads the zone, and its state, whole.
                    state: State::Active,
                    owner_mark: zone.account.filter(|a| !a.is_empty()),
                    refused: (!valid).then(|| "its name is not one Provisio manages".to_owned()),
                    email: None,
                    data: Default::default(),
                    identifier: zone.name,
                }
            })
            .collect();
        Ok(Listing { resources, next_cursor, total: Some(total) })
    }

    /// Sets the zone's `account` to the service's mark. PowerDNS has no
    /// conditional change: of two imports racing through two configurations,
    /// both may write, and the one whose mark is overwritten finds every
    /// later call `conflict`.
    async fn adopt(&self, cx: &Context, params: ZoneRef) -> Result<ZoneInfo, ProviderError> {
        let zone = &params.zone;
        let response = self.send(cx, Method::GET, &format!("/zones/{zone}."), None).await?;
        if matches!(response.status.as_u16(), 404 | 422) {
            return Err(ProviderError::not_found(UserMessage::new(format!(
                "Zone {zone} does not exist on this server"
            ))));
        }
        let found: Zone = response.error_for_status("The DNS server could not read the zone")?.json()?;
        let marked = found.account.as_deref().filter(|a| !a.is_empty());
        if let Some(mark) = cx.adoption(&format!("Zone {zone}"), marked)? {
            let response =
                self.send(cx, Method::PUT, &format!("/zones/{zone}."), Some(json!({"account": mark}))).await?;
            response.error_for_status("The DNS server could not mark the zone")?;
        }
        let found = self.require(cx, zone).await?;
        self.info(zone, &found)
    }

    async fn get_info(&self, cx: &Context, params: ZoneRef) -> Result<ZoneInfo, ProviderError> {
        let found = self.require(cx, &params.zone).await?;
        self.info(&params.zone, &found)
    }

    async fn set_records(&self, cx: &Context, params: SetRecordsParams) -> Result<ZoneInfo, ProviderError> {
        let zone = &params.zone;
        Self::ensure_active(&self.info(zone, &self.require(cx, zone).await?)?)?;
        let rrsets = params.records.iter().map(|set| to_rrset(zone, set, "REPLACE", false)).collect();
        self.patch(cx, zone, rrsets).await?;
        self.info(zone, &self.require(cx, zone).await?)
    }

    async fn delete_records(&self, cx: &Context, params: DeleteRecordsParams) -> Result<ZoneInfo, ProviderError> {
        let zone = &params.zone;
        Self::ensure_active(&self.info(zone, &self.require(cx, zone).await?)?)?;
        let rrsets = params
            .records
            .iter()
            .map(|key| Rrset {
                name: fqdn(zone, &key.name),
                record_type: record_type_name(key.record_type),
                ttl: 0,
                records: Vec::new(),
                changetype: Some("DELETE".into()),
            })
            .collect();
        self.patch(cx, zone, rrsets).await?;
        self.info(zone, &self.require(cx, zone).await?)
    }

    async fn suspend(&self, cx: &Context, params: SuspendZoneParams) -> Result<ZoneInfo, ProviderError> {
        self.set_disabled(cx, &params.zone, true).await
    }

    async fn unsuspend(&self, cx: &Context, params: ZoneRef) -> Result<ZoneInfo, ProviderError> {
        self.set_disabled(cx, &params.zone, false).await
    }

    async fn terminate(&self, cx: &Context, params: ZoneRef) -> Result<Empty, ProviderError> {
        let zone = &params.zone;
        self.require(cx, zone).await?;
        let response = self.send(cx, Method::DELETE, &format!("/zones/{zone}."), None).await?;
        response.error_for_status("The DNS server could not delete the zone")?;
        Ok(Empty {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contents_are_made_absolute() {
        assert_eq!(content(RecordType::Mx, "10 mail.example.com"), "10 mail.example.com.");
        assert_eq!(content(RecordType::Cname, "example.com."), "example.com.");
        assert_eq!(content(RecordType::Txt, "v=spf1 -all"), "\"v=spf1 -all\"");
        assert_eq!(content(RecordType::A, "192.0.2.1"), "192.0.2.1");
        let zone = DomainName::parse("example.com").unwrap();
        assert_eq!(fqdn(&zone, "@"), "example.com.");
        assert_eq!(relative(&zone, "www.example.com."), "www");
        assert_eq!(relative(&zone, "example.com."), "@");
    }
}
