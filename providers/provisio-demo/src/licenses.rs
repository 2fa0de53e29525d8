//! `software-licenses/demo`: a simulated licensing vendor.

use chrono::Utc;
use provisio_sdk::blueprints::State;
use provisio_sdk::blueprints::software_licenses::*;
use provisio_sdk::{Context, Empty, ProviderError};
use serde_json::{Value, json};

use crate::{Effect, demo_provider, key_of, token, typed};

demo_provider!(
    DemoLicenses,
    "software-licenses",
    "Demo licensing vendor",
    "A simulated software licensing vendor: licence keys bound to an IP or domain, kept in a local file."
);

fn missing(key: &str) -> String {
    format!("Licence {key} does not exist")
}

fn new_key() -> String {
    let part = || token(4).to_ascii_uppercase();
    format!("DEMO-{}-{}-{}-{}", part(), part(), part(), part())
}

impl SoftwareLicenses for DemoLicenses {
    async fn create(&self, cx: &Context, params: CreateLicenseParams) -> Result<LicenseInfo, ProviderError> {
        let demo = &self.0;
        demo.around(cx, Effect::Changes, async {
            demo.check_package(&params.package_identifier)?;
            // The reference (and the idempotency key) find a licence issued before.
            let reference_key = format!("reference:{}", params.reference);
            let mut known = demo.state.identifier_for_key(&reference_key).await?;
            if known.is_none()
                && let Some(key) = key_of(cx)
            {
                known = demo.state.identifier_for_key(key).await?;
            }
            if let Some(license_key) = known
                && let Some(record) = demo.state.get_owned(cx, &license_key).await?
            {
                return typed(record.data);
            }
            let info = LicenseInfo {
                license_key: new_key(),
                reference: params.reference.clone(),
                package_identifier: params.package_identifier.clone(),
                state: State::Active,
                customer_email: params.customer_email.clone(),
                ip: params.ip.clone(),
                domain: params.domain.clone(),
                reissue_count: 0,
                created_at: Utc::now(),
            };
            let mut keys = vec![reference_key.as_str()];
            keys.extend(key_of(cx));
            let created = demo
                .state
                .create(cx, &info.license_key, json!(info), &keys, |_| false, "Licence key collision")
                .await?;
            typed(created.into_data())
        })
        .await
    }

    async fn get_info(&self, cx: &Context, params: LicenseRef) -> Result<LicenseInfo, ProviderError> {
        self.0.read(cx, &params.license_key, &missing(&params.license_key)).await
    }

    async fn change_package(
        &self,
        cx: &Context,
        params: ChangeLicensePackageParams,
    ) -> Result<LicenseInfo, ProviderError> {
        self.0.check_package(&params.package_identifier)?;
        self.change(cx, &params.license_key, |data| {
            data["package_identifier"] = json!(params.package_identifier);
            Ok(())
        })
        .await
    }

    async fn suspend(&self, cx: &Context, params: SuspendLicenseParams) -> Result<LicenseInfo, ProviderError> {
        self.change(cx, &params.license_key, |data| {
            data["state"] = json!(State::Suspended);
            Ok(())
        })
        .await
    }

    async fn unsuspend(&self, cx: &Context, params: LicenseRef) -> Result<LicenseInfo, ProviderError> {
        self.change(cx, &params.license_key, |data| {
            data["state"] = json!(State::Active);
            Ok(())
        })
        .await
    }

    async fn terminate(&self, cx: &Context, params: LicenseRef) -> Result<Empty, ProviderError> {
        self.0.remove(cx, &params.license_key, &missing(&params.license_key)).await
    }

    async fn reissue(&self, cx: &Context, params: ReissueParams) -> Result<LicenseInfo, ProviderError> {
        self.change(cx, &params.license_key, |data| {
            if data["state"] == json!(State::Suspended) {
                return Err(ProviderError::provider("A suspended licence cannot be reissued"));
            }
            data["ip"] = json!(params.ip);
            data["domain"] = json!(params.domain);
            data["reissue_count"] = json!(data["reissue_count"].as_u64().unwrap_or(0) + 1);
            Ok(())
        })
        .await
    }
}

impl DemoLicenses {
    async fn change(
        &self,
        cx: &Context,
        license_key: &str,
        change: impl FnOnce(&mut Value) -> Result<(), ProviderError>,
    ) -> Result<LicenseInfo, ProviderError> {
        self.0.change(cx, license_key, &missing(license_key), |data, _| change(data)).await
    }
}
