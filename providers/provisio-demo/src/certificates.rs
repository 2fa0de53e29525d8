//! `ssl-certificates/demo`: a simulated certificate authority. Certificates
//! are real X.509 (self-signed, 90 days, generated with rcgen) so clients of
//! the demo can install them; orders are issued at once.

use chrono::{Datelike, Utc};
use provisio_sdk::blueprints::ssl_certificates::*;
use provisio_sdk::formats::DomainName;
use provisio_sdk::{Context, Empty, ProviderError, UserMessage};
use serde_json::json;

use crate::{Effect, demo_provider, key_of, token, typed};

demo_provider!(
    DemoCertificates,
    "ssl-certificates",
    "Demo certificate authority",
    "A simulated certificate authority: self-signed certificates issued at once, kept in a local file."
);

fn missing(id: &str) -> String {
    format!("Certificate order {id} does not exist")
}

/// A self-signed certificate for the names, valid 90 days: (chain, key).
fn self_signed(common_name: &DomainName, alt_names: &[DomainName]) -> Result<(String, String, String), ProviderError> {
    let mut names = vec![common_name.to_string()];
    names.extend(alt_names.iter().map(ToString::to_string));
    let mut params = rcgen::CertificateParams::new(names).map_err(ProviderError::internal)?;
    let end = Utc::now() + chrono::Duration::days(90);
    params.not_after = rcgen::date_time_ymd(end.year(), end.month() as u8, end.day() as u8);
    let key = rcgen::KeyPair::generate().map_err(ProviderError::internal)?;
    let certificate = params.self_signed(&key).map_err(ProviderError::internal)?;
    Ok((
        certificate.pem(),
        key.serialize_pem(),
        end.date_naive().and_hms_opt(0, 0, 0).expect("midnight").and_utc().to_rfc3339(),
    ))
}

impl SslCertificates for DemoCertificates {
    async fn create(&self, cx: &Context, params: CreateCertificateParams) -> Result<CertificateInfo, ProviderError> {
        self.issue(cx, params.common_name, params.alt_names).await
    }

    async fn get_info(&self, cx: &Context, params: CertificateQuery) -> Result<CertificateInfo, ProviderError> {
        let Some(id) = params.certificate_id else {
            return Err(ProviderError::not_found(UserMessage::new(
                "No certificate order is recorded for this service",
            )));
        };
        self.0.read(cx, &id, &missing(&id)).await
    }

    async fn download(&self, cx: &Context, params: CertificateRef) -> Result<CertificateDownload, ProviderError> {
        let info: CertificateInfo = self.0.read(cx, &params.certificate_id, &missing(&params.certificate_id)).await?;
        match (info.status, info.certificate_pem) {
            (CertificateStatus::Issued, Some(certificate_pem)) => {
                Ok(CertificateDownload { certificate_id: info.certificate_id, certificate_pem })
            }
            _ => Err(ProviderError::provider(UserMessage::new("The certificate is not issued"))),
        }
    }

    async fn renew(&self, cx: &Context, params: RenewCertificateParams) -> Result<CertificateInfo, ProviderError> {
        self.0.read::<CertificateInfo>(cx, &params.certificate_id, &missing(&params.certificate_id)).await?;
        self.issue(cx, params.common_name, params.alt_names).await
    }

    async fn revoke(&self, cx: &Context, params: CertificateRef) -> Result<Empty, ProviderError> {
        let _: CertificateInfo = self
            .0
            .change(cx, &params.certificate_id, &missing(&params.certificate_id), |data, _| {
                if data["status"] != json!(CertificateStatus::Issued) {
                    return Err(ProviderError::conflict(UserMessage::new("Only an issued certificate can be revoked")));
                }
                data["status"] = json!(CertificateStatus::Revoked);
                data["message"] = json!("Revoked");
                Ok(())
            })
            .await?;
        Ok(Empty {})
    }

    async fn reissue(&self, cx: &Context, params: RenewCertificateParams) -> Result<CertificateInfo, ProviderError> {
        self.renew(cx, params).await
    }
}

impl DemoCertificates {
    async fn issue(
        &self,
        cx: &Context,
        common_name: DomainName,
        alt_names: Vec<DomainName>,
    ) -> Result<CertificateInfo, ProviderError> {
        let demo = &self.0;
        demo.around(cx, Effect::Changes, async {
            // A retried call (same idempotency key) answers the first order, without the key.
            if let Some(key) = key_of(cx)
                && let Some(id) = demo.state.identifier_for_key(key).await?
                && let Some(record) = demo.state.get_owned(cx, &id).await?
            {
                return typed(record.data);
            }
            let (chain, private_key, not_after) = self_signed(&common_name, &alt_names)?;
            let certificate_id = format!("demo-cert-{}", token(16));
            let data = json!({
                "certificate_id": certificate_id, "common_name": common_name, "alt_names": alt_names,
                "status": CertificateStatus::Issued, "message": "Issued (self-signed by the demo authority)",
                "not_after": not_after, "certificate_pem": chain,
            });
            let keys: Vec<&str> = key_of(cx).into_iter().collect();
            demo.state.create(cx, &certificate_id, data, &keys, |_| false, "The order id is taken").await?;
            let mut info: CertificateInfo =
                typed(demo.state.get_owned(cx, &certificate_id).await?.expect("just created").data)?;
            info.private_key_pem = Some(private_key);
            Ok(info)
        })
        .await
    }
}
