//! `dns-hosting/demo`: a simulated authoritative name server.
//!
//! It checks record contents the way a real server would (addresses must
//! parse, a CNAME stands alone) and bumps the SOA serial on every change.

use std::net::{Ipv4Addr, Ipv6Addr};

use provisio_sdk::blueprints::State;
use provisio_sdk::blueprints::dns_hosting::*;
use provisio_sdk::formats::{DomainName, Hostname};
use provisio_sdk::{Context, Empty, ProviderError, UserMessage};
use serde_json::json;

use crate::{Effect, demo_provider, key_of, typed};

demo_provider!(
    DemoDns,
    "dns-hosting",
    "Demo name server",
    "A simulated authoritative DNS server: zones, record sets and serials, kept in a local file."
);

fn missing(zone: &DomainName) -> String {
    format!("Zone {zone} does not exist on this server")
}

/// Checks record contents as a name server would.
fn check_records(sets: &[RecordSet]) -> Result<(), ProviderError> {
    for set in sets {
        for content in &set.records {
            let ok = match set.record_type {
                RecordType::A => content.parse::<Ipv4Addr>().is_ok(),
                RecordType::Aaaa => content.parse::<Ipv6Addr>().is_ok(),
                RecordType::Cname | RecordType::Ns => Hostname::parse(content).is_ok(),
                RecordType::Mx => content
                    .split_once(' ')
                    .is_some_and(|(prio, host)| prio.parse::<u16>().is_ok() && Hostname::parse(host).is_ok()),
                RecordType::Srv => content.split(' ').count() == 4,
                RecordType::Caa => content.split(' ').count() >= 3,
                RecordType::Txt => content.len() <= 4096,
            };
            if !ok {
                return Err(ProviderError::provider(UserMessage::new(format!(
                    "Record {} {:?} has invalid content: {content}",
                    set.name, set.record_type
                ))));
            }
        }
        if set.record_type == RecordType::Cname && set.records.len() > 1 {
            return Err(ProviderError::provider(UserMessage::new(format!(
                "{} may have only one CNAME record",
                set.name
            ))));
        }
    }
    Ok(())
}

/// Replaces record sets by (name, type), keeping the zone sorted, and checks
/// that a CNAME does not share its name with other records.
fn merge(current: &mut Vec<RecordSet>, changes: &[RecordSet]) -> Result<(), ProviderError> {
    for change in changes {
        current.retain(|set| !(set.name == change.name && set.record_type == change.record_type));
        current.push(change.clone());
    }
    current.sort();
    for set in current.iter().filter(|set| set.record_type == RecordType::Cname) {
        if current.iter().any(|other| other.name == set.name && other.record_type != RecordType::Cname) {
            return Err(ProviderError::provider(UserMessage::new(format!(
                "{} has a CNAME record and other records",
                set.name
            ))));
        }
    }
    Ok(())
}

fn bump_serial(data: &mut serde_json::Value) {
    let serial = data["serial"].as_u64().unwrap_or(1);
    data["serial"] = json!(serial + 1);
}

impl DnsHosting for DemoDns {
    async fn create_zone(&self, cx: &Context, params: CreateZoneParams) -> Result<ZoneInfo, ProviderError> {
        let demo = &self.0;
        demo.around(cx, Effect::Changes, async {
            check_records(&params.records)?;
            let mut records = Vec::new();
            merge(&mut records, &params.records)?;
            let nameservers = ["ns1", "ns2"]
                .iter()
                .map(|ns| Hostname::parse(&format!("{ns}.{}", demo.hostname())).map_err(ProviderError::internal))
                .collect::<Result<Vec<_>, _>>()?;
            let zone = ZoneInfo {
                zone: params.zone.clone(),
                state: State::Active,
                nameservers,
                records: records.clone(),
                serial: 1,
            };
            let mut doc = json!(zone);
            doc["account"] = json!(params.customer_id);
            let keys: Vec<&str> = key_of(cx).into_iter().collect();
            let created = demo
                .state
                .create(
                    cx,
                    params.zone.as_str(),
                    doc,
                    &keys,
                    |existing| existing["records"] == json!(records),
                    &format!("Zone {} already exists on this server with other records", params.zone),
                )
                .await?;
            typed(created.into_data())
        })
        .await
    }

    async fn list(
        &self,
        cx: &Context,
        params: provisio_sdk::blueprints::ListParams,
    ) -> Result<provisio_sdk::blueprints::Listing, ProviderError> {
        self.0.list(cx, params).await
    }

    async fn adopt(&self, cx: &Context, params: ZoneRef) -> Result<ZoneInfo, ProviderError> {
        self.0.adopt(cx, params.zone.as_str(), &missing(&params.zone)).await
    }

    async fn get_info(&self, cx: &Context, params: ZoneRef) -> Result<ZoneInfo, ProviderError> {
        self.0.read(cx, params.zone.as_str(), &missing(&params.zone)).await
    }

    async fn set_records(&self, cx: &Context, params: SetRecordsParams) -> Result<ZoneInfo, ProviderError> {
        check_records(&params.records)?;
        self.change(cx, &params.zone, |zone| merge(&mut zone.records, &params.records)).await
    }

    async fn delete_records(&self, cx: &Context, params: DeleteRecordsParams) -> Result<ZoneInfo, ProviderError> {
        self.change(cx, &params.zone, |zone| {
            zone.records.retain(|set| {
                !params.records.iter().any(|key| key.name == set.name && key.record_type == set.record_type)
            });
            Ok(())
        })
        .await
    }

    async fn suspend(&self, cx: &Context, params: SuspendZoneParams) -> Result<ZoneInfo, ProviderError> {
        self.set_state(cx, &params.zone, State::Suspended).await
    }

    async fn unsuspend(&self, cx: &Context, params: ZoneRef) -> Result<ZoneInfo, ProviderError> {
        self.set_state(cx, &params.zone, State::Active).await
    }

    async fn terminate(&self, cx: &Context, params: ZoneRef) -> Result<Empty, ProviderError> {
        self.0.remove(cx, params.zone.as_str(), &missing(&params.zone)).await
    }
}

impl DemoDns {
    async fn set_state(&self, cx: &Context, zone: &DomainName, state: State) -> Result<ZoneInfo, ProviderError> {
        self.0
            .change(cx, zone.as_str(), &missing(zone), |data, _| {
                if data["state"] != json!(state) {
                    data["state"] = json!(state);
                    bump_serial(data);
                }
                Ok(())
            })
            .await
    }

    async fn change(
        &self,
        cx: &Context,
        zone: &DomainName,
        change: impl FnOnce(&mut ZoneInfo) -> Result<(), ProviderError>,
    ) -> Result<ZoneInfo, ProviderError> {
        self.0
            .change(cx, zone.as_str(), &missing(zone), |data, _| {
                let mut info: ZoneInfo = typed(data.clone())?;
                if info.state == State::Suspended {
                    return Err(ProviderError::provider("The zone is suspended; its records cannot be changed"));
                }
                change(&mut info)?;
                if json!(info.records) != data["records"] {
                    data["records"] = json!(info.records);
                    bump_serial(data);
                }
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(name: &str, record_type: RecordType, records: &[&str]) -> RecordSet {
        RecordSet { name: name.into(), record_type, ttl: 300, records: records.iter().map(|r| r.to_string()).collect() }
    }

    #[test]
    fn contents_are_checked() {
        assert!(check_records(&[set("www", RecordType::A, &["192.0.2.1"])]).is_ok());
        assert!(check_records(&[set("www", RecordType::A, &["2001:db8::1"])]).is_err());
        assert!(check_records(&[set("@", RecordType::Mx, &["10 mail.example.com"])]).is_ok());
        assert!(check_records(&[set("@", RecordType::Mx, &["mail.example.com"])]).is_err());
    }

    #[test]
    fn cname_stands_alone() {
        let mut zone = vec![set("www", RecordType::A, &["192.0.2.1"])];
        assert!(merge(&mut zone, &[set("www", RecordType::Cname, &["example.com"])]).is_err());
        let mut zone = vec![set("www", RecordType::A, &["192.0.2.1"])];
        merge(&mut zone, &[set("www", RecordType::A, &["192.0.2.2"])]).unwrap();
        assert_eq!(zone, [set("www", RecordType::A, &["192.0.2.2"])]);
    }
}
