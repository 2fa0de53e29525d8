//! `domain-names/demo`: a simulated registrar.
//!
//! Some names are held elsewhere (`google.com`, anything starting with
//! `taken`), short ones are premium, transfers take `operation_secs`.

use chrono::{DateTime, Utc};
use provisio_sdk::blueprints::domain_names::*;
use provisio_sdk::formats::DomainName;
use provisio_sdk::{Context, ProviderError, UserMessage};
use serde_json::{Value, json};

use crate::{Effect, demo_provider, key_of, token, typed};

demo_provider!(
    DemoDomains,
    "domain-names",
    "Demo registrar",
    "A simulated domain registrar: availability, registration, renewal, transfers that take time, kept in a local file."
);

fn missing(domain: &DomainName) -> String {
    format!("Domain {domain} is not registered with this account")
}

/// Names the simulated registry says are held by someone else.
fn held_elsewhere(domain: &DomainName) -> bool {
    let sld = domain.as_str().split('.').next().unwrap_or_default();
    matches!(sld, "google" | "amazon" | "microsoft" | "example") || sld.starts_with("taken")
}

fn premium(domain: &DomainName) -> bool {
    domain.as_str().split('.').next().is_some_and(|sld| sld.len() <= 3)
}

/// Whole calendar years later, as registries count them (29 February
/// becomes 28 February).
fn years_from(start: DateTime<Utc>, years: u8) -> DateTime<Utc> {
    start.checked_add_months(chrono::Months::new(12 * u32::from(years))).unwrap_or(start)
}

impl DemoDomains {
    /// Moves a finished transfer to `active`, then answers the status.
    async fn status(&self, cx: &Context, domain: &DomainName) -> Result<(Value, StatusResult), ProviderError> {
        let demo = &self.0;
        let operation = i64::from(demo.config.operation_secs);
        let data = demo
            .state
            .update(cx, domain.as_str(), &missing(domain), |data, record| {
                if data["status"] == json!(DomainStatus::PendingTransfer)
                    && (Utc::now() - record.created_at).num_seconds() >= operation
                {
                    data["status"] = json!(DomainStatus::Active);
                }
                Ok(())
            })
            .await?;
        let info: DomainInfo = typed(data.clone())?;
        let (progress, message) = match info.status {
            DomainStatus::PendingTransfer => {
                let started: DateTime<Utc> = typed(data["transfer_started_at"].clone())?;
                let elapsed = (Utc::now() - started).num_milliseconds().max(0) as f64 / 1000.0;
                let pct = ((elapsed / operation.max(1) as f64) * 100.0).min(99.0) as u8;
                (Some(pct), Some("Transfer pending approval by the losing registrar".to_owned()))
            }
            _ => (None, None),
        };
        Ok((
            data,
            StatusResult {
                domain: info.domain,
                status: info.status,
                progress,
                message,
                expires_at: info.expires_at,
                transferred_in: false,
            },
        ))
    }
}

impl DomainNames for DemoDomains {
    async fn check_availability(
        &self,
        cx: &Context,
        params: CheckAvailabilityParams,
    ) -> Result<AvailabilityResult, ProviderError> {
        let demo = &self.0;
        demo.around(cx, Effect::Reads, async {
            let mut domains = Vec::new();
            for domain in params.domains {
                let here = demo.state.get_owned(cx, domain.as_str()).await?.is_some();
                let reason = if here {
                    Some("Registered with this account".to_owned())
                } else if held_elsewhere(&domain) {
                    Some("Registered elsewhere".to_owned())
                } else {
                    None
                };
                domains.push(Availability { available: reason.is_none(), premium: premium(&domain), reason, domain });
            }
            Ok(AvailabilityResult { domains })
        })
        .await
    }

    async fn register(&self, cx: &Context, params: RegisterParams) -> Result<DomainInfo, ProviderError> {
        let demo = &self.0;
        demo.around(cx, Effect::Changes, async {
            if held_elsewhere(&params.domain) {
                return Err(ProviderError::conflict(UserMessage::new(format!(
                    "Domain {} is already registered elsewhere",
                    params.domain
                ))));
            }
            let now = Utc::now();
            let info = DomainInfo {
                domain: params.domain.clone(),
                status: DomainStatus::Active,
                locked: true,
                auto_renew: false,
                privacy: params.privacy,
                nameservers: params.nameservers.clone(),
                registrant: Some(params.contacts.registrant.clone()),
                created_at: Some(now),
                expires_at: Some(years_from(now, params.years)),
            };
            let mut doc = json!(info);
            doc["epp_code"] = json!(format!("Demo-{}", token(12)));
            let keys: Vec<&str> = key_of(cx).into_iter().collect();
            let created = demo
                .state
                .create(
                    cx,
                    params.domain.as_str(),
                    doc,
                    &keys,
                    |existing| existing["registrant"]["email"] == json!(params.contacts.registrant.email),
                    &format!("Domain {} is already registered with this account for another registrant", params.domain),
                )
                .await?;
            typed(created.into_data())
        })
        .await
    }

    async fn renew(&self, cx: &Context, params: RenewParams) -> Result<DomainInfo, ProviderError> {
        let key = key_of(cx).map(str::to_owned);
        self.0
            .change(cx, params.domain.as_str(), &missing(&params.domain), |data, _| {
                // A retried renew (same idempotency key) is done once, like EPP's curExpDate guard.
                if key.is_some() && data["last_renew_key"].as_str() == key.as_deref() {
                    return Ok(());
                }
                let expires: DateTime<Utc> = typed(data["expires_at"].clone())?;
                let renewed = years_from(expires, params.years);
                if renewed > years_from(Utc::now(), 10) {
                    return Err(ProviderError::provider("A domain cannot be registered for more than 10 years ahead"));
                }
                data["expires_at"] = json!(renewed);
                data["last_renew_key"] = json!(key);
                Ok(())
            })
            .await
    }

    async fn get_info(&self, cx: &Context, params: DomainRef) -> Result<DomainInfo, ProviderError> {
        let demo = &self.0;
        demo.around(cx, Effect::Reads, async { typed(self.status(cx, &params.domain).await?.0) }).await
    }

    async fn update_nameservers(
        &self,
        cx: &Context,
        params: UpdateNameserversParams,
    ) -> Result<DomainInfo, ProviderError> {
        self.change(cx, &params.domain, |data| {
            data["nameservers"] = json!(params.nameservers);
            Ok(())
        })
        .await
    }

    async fn get_status(&self, cx: &Context, params: DomainRef) -> Result<StatusResult, ProviderError> {
        let demo = &self.0;
        demo.around(cx, Effect::Reads, async { Ok(self.status(cx, &params.domain).await?.1) }).await
    }

    async fn transfer(&self, cx: &Context, params: TransferParams) -> Result<StatusResult, ProviderError> {
        let demo = &self.0;
        demo.around(cx, Effect::Changes, async {
            if params.epp_code.len() < 8 {
                return Err(ProviderError::provider("The authorisation code was rejected by the registry"));
            }
            let now = Utc::now();
            let info = DomainInfo {
                domain: params.domain.clone(),
                status: DomainStatus::PendingTransfer,
                locked: false,
                auto_renew: false,
                privacy: true,
                nameservers: Vec::new(),
                registrant: params.contacts.as_ref().map(|c| c.registrant.clone()),
                created_at: Some(now),
                expires_at: Some(years_from(now, params.years)),
            };
            let mut doc = json!(info);
            doc["transfer_started_at"] = json!(now);
            doc["epp_code"] = json!(format!("Demo-{}", token(12)));
            let keys: Vec<&str> = key_of(cx).into_iter().collect();
            // Calling transfer again while it runs reports its progress.
            demo.state.create(cx, params.domain.as_str(), doc, &keys, |_| true, "").await?;
            Ok(self.status(cx, &params.domain).await?.1)
        })
        .await
    }

    async fn update_contacts(&self, cx: &Context, params: UpdateContactsParams) -> Result<DomainInfo, ProviderError> {
        self.change(cx, &params.domain, |data| {
            if let Some(registrant) = &params.contacts.registrant {
                data["registrant"] = json!(registrant);
            }
            for (role, contact) in [
                ("admin", &params.contacts.admin),
                ("tech", &params.contacts.tech),
                ("billing", &params.contacts.billing),
            ] {
                if let Some(contact) = contact {
                    data[role] = json!(contact);
                }
            }
            Ok(())
        })
        .await
    }

    async fn set_lock(&self, cx: &Context, params: SetLockParams) -> Result<DomainInfo, ProviderError> {
        self.change(cx, &params.domain, |data| {
            data["locked"] = json!(params.locked);
            Ok(())
        })
        .await
    }

    async fn set_auto_renew(&self, cx: &Context, params: SetAutoRenewParams) -> Result<DomainInfo, ProviderError> {
        self.change(cx, &params.domain, |data| {
            data["auto_renew"] = json!(params.auto_renew);
            Ok(())
        })
        .await
    }

    async fn get_epp_code(&self, cx: &Context, params: DomainRef) -> Result<EppCode, ProviderError> {
        let demo = &self.0;
        demo.around(cx, Effect::Reads, async {
            let (data, status) = self.status(cx, &params.domain).await?;
            if status.status != DomainStatus::Active {
                return Err(ProviderError::provider("The authorisation code is available once the domain is active"));
            }
            Ok(EppCode { epp_code: data["epp_code"].as_str().unwrap_or_default().to_owned() })
        })
        .await
    }
}

impl DemoDomains {
    /// Changes an active domain's record.
    async fn change(
        &self,
        cx: &Context,
        domain: &DomainName,
        change: impl FnOnce(&mut Value) -> Result<(), ProviderError>,
    ) -> Result<DomainInfo, ProviderError> {
        self.0
            .change(cx, domain.as_str(), &missing(domain), |data, _| {
                if data["status"] != json!(DomainStatus::Active) {
                    return Err(ProviderError::provider("The domain cannot be changed until its transfer completes"));
                }
                change(data)
            })
            .await
    }
}
