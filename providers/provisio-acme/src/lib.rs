//! `ssl-certificates/acme`: certificates from an ACME authority (RFC 8555:
//! Let's Encrypt, ZeroSSL, pebble...), proved by DNS-01 challenges.
//!
//! The provider does not write DNS itself: it asks the engine to run
//! `set_records` / `delete_records` of a `dns-hosting` configuration that
//! Provisio manages (`dns_configuration`), through [`Context::call_peer`].
//! The zone is the longest suffix of the name that configuration hosts.
//!
//! - create / renew / reissue: the zones are found first (nothing is ordered
//!   for a name no zone holds); a private key and signing request are
//!   generated here; a new order; the `_acme-challenge` TXT records are
//!   written, the challenges answered, and the call waits up to
//!   `issue_wait_secs` for the authority. The key is answered once, whatever
//!   the order's state (the engine seals it); issued in time, the chain too.
//!   Otherwise the answer is `pending_validation`, and `get_info` (given the
//!   stored signing request) finalises the order once validated;
//! - get_info / download: the order's state and chain (the order URL is the
//!   `certificate_id`; only URLs of the configured authority are followed);
//! - revoke: revokes the order's certificate, signed by the account key.
//!
//! Every request to the authority goes through the SDK's HTTP client, so
//! the job log holds the (redacted) exchanges.

mod transport;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, Key, NewOrder, Order, OrderStatus, RetryPolicy,
    RevocationRequest,
};
use provisio_sdk::blueprints::ssl_certificates::*;
use provisio_sdk::formats::DomainName;
use provisio_sdk::{ConnectionTest, Context, Empty, ErrorKind, Provider, ProviderAbout, ProviderError, UserMessage};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateSigningRequestDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The registry entry.
pub fn entry() -> provisio_sdk::ProviderEntry {
    provisio_sdk::blueprints::ssl_certificates::entry::<Acme>()
}

fn default_issue_wait() -> u32 {
    20
}

/// One ACME account at one authority.
#[derive(Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AcmeConfig {
    /// The authority's directory, e.g. `https://acme-v02.api.letsencrypt.org/directory`.
    #[schemars(length(min = 1), extend("format" = "url", "x-endpoint" = true))]
    pub directory_url: String,
    /// The account key: an ECDSA P-256 private key, PKCS#8 PEM
    /// (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`).
    /// The account is registered (or found) by this key.
    #[schemars(length(min = 1), extend("x-secret" = true, "writeOnly" = true))]
    pub account_key_pem: String,
    /// The `dns-hosting` provision configuration (by name) that hosts the
    /// zones of the names to certify; DNS-01 records are written through it.
    #[schemars(length(min = 1, max = 100))]
    pub dns_configuration: String,
    /// How long create, renew and reissue wait for issuance before answering
    /// `pending_validation` (get_info carries on), seconds; 0 answers at
    /// once, and leaves finalising the order to get_info.
    #[serde(default = "default_issue_wait")]
    #[schemars(range(max = 300))]
    pub issue_wait_secs: u32,
    /// Accept an authority whose HTTPS certificate does not verify: for test
    /// authorities (pebble) only. What it issues is checked by its clients.
    #[serde(default)]
    pub accept_invalid_certs: bool,
}

impl std::fmt::Debug for AcmeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the account key (Debug would escape its newlines past the redactor).
        f.debug_struct("AcmeConfig")
            .field("directory_url", &self.directory_url)
            .field("dns_configuration", &self.dns_configuration)
            .finish_non_exhaustive()
    }
}

/// The ACME provider for one account.
pub struct Acme {
    config: AcmeConfig,
    key_der: Vec<u8>,
}

impl std::fmt::Debug for Acme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acme").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Maps the ACME client's failures: problem documents from the authority
/// are its own words; anything else is the way there.
fn acme_error(err: instant_acme::Error) -> ProviderError {
    match err {
        instant_acme::Error::Api(problem) => {
            let detail = problem.detail.clone().unwrap_or_else(|| "no detail".into());
            let kind = match problem.status {
                Some(404) => ErrorKind::NotFound,
                Some(429) | Some(500..) => ErrorKind::Transient,
                _ => ErrorKind::ProviderError,
            };
            ProviderError::new(kind, UserMessage::new(format!("The certificate authority refused: {detail}")))
                .with_debug("problem_type", problem.r#type.unwrap_or_default())
        }
        instant_acme::Error::Timeout(_) => ProviderError::transient("The certificate authority did not finish in time"),
        instant_acme::Error::Other(inner) => match inner.downcast::<ProviderError>() {
            Ok(sent) => *sent,
            Err(other) => ProviderError::transient("The certificate authority could not be reached")
                .with_debug("cause", other.to_string()),
        },
        other => ProviderError::transient("The certificate authority could not be reached")
            .with_debug("cause", other.to_string()),
    }
}

impl Provider for Acme {
    type Config = AcmeConfig;

    fn about() -> ProviderAbout {
        ProviderAbout {
            id: "acme".into(),
            name: "ACME (Let's Encrypt and others)".into(),
            description: "Certificates from an RFC 8555 authority, validated by DNS-01 records written through a \
                          dns-hosting configuration."
                .into(),
            logo_url: None,
        }
    }

    async fn new(config: AcmeConfig) -> Result<Self, ProviderError> {
        let key = PrivatePkcs8KeyDer::from_pem_slice(config.account_key_pem.as_bytes()).map_err(|_| {
            ProviderError::provider(UserMessage::new(
                "account_key_pem is not a PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----)",
            ))
        })?;
        Key::from_pkcs8_der(key.clone_key())
            .map_err(|_| ProviderError::provider(UserMessage::new("account_key_pem must be an ECDSA P-256 key")))?;
        Ok(Acme { key_der: key.secret_pkcs8_der().to_vec(), config })
    }

    async fn test_connection(&self, cx: &Context) -> Result<ConnectionTest, ProviderError> {
        let account = self.account(cx).await?;
        Ok(ConnectionTest {
            message: format!("The authority at {} knows the account {}", self.config.directory_url, account.id()),
            details: json!({"account": account.id()}),
        })
    }
}

impl SslCertificates for Acme {
    async fn create(&self, cx: &Context, params: CreateCertificateParams) -> Result<CertificateInfo, ProviderError> {
        self.order_certificate(cx, params.common_name, params.alt_names).await
    }

    async fn get_info(&self, cx: &Context, params: CertificateQuery) -> Result<CertificateInfo, ProviderError> {
        let Some(certificate_id) = params.certificate_id else {
            return Err(ProviderError::not_found(UserMessage::new(
                "No certificate order is recorded for this service",
            )));
        };
        let account = self.account(cx).await?;
        let mut order = self.existing_order(&account, &certificate_id).await?;
        let names = order_names(&mut order).await?;
        let asked_first = params.common_name.map(|n| n.to_string());
        self.progress(cx, order, names, asked_first, params.csr_pem.as_deref(), Instant::now()).await
    }

    async fn download(&self, cx: &Context, params: CertificateRef) -> Result<CertificateDownload, ProviderError> {
        let account = self.account(cx).await?;
        let mut order = self.existing_order(&account, &params.certificate_id).await?;
        let certificate_pem = issued_chain(&mut order).await?;
        Ok(CertificateDownload { certificate_id: params.certificate_id, certificate_pem })
    }

    async fn renew(&self, cx: &Context, params: RenewCertificateParams) -> Result<CertificateInfo, ProviderError> {
        self.order_certificate(cx, params.common_name, params.alt_names).await
    }

    async fn revoke(&self, cx: &Context, params: CertificateRef) -> Result<Empty, ProviderError> {
        let account = self.account(cx).await?;
        let mut order = self.existing_order(&account, &params.certificate_id).await?;
        let chain = issued_chain(&mut order).await?;
        let leaf = CertificateDer::from_pem_slice(chain.as_bytes())
            .map_err(|_| ProviderError::internal("the issued chain holds no certificate"))?;
        account.revoke(&RevocationRequest { certificate: &leaf, reason: None }).await.map_err(acme_error)?;
        Ok(Empty {})
    }

    async fn reissue(&self, cx: &Context, params: RenewCertificateParams) -> Result<CertificateInfo, ProviderError> {
        self.order_certificate(cx, params.common_name, params.alt_names).await
    }
}

/// A fresh private key (ECDSA P-256) and a signing request for `names`
/// (the first is the subject's common name): (key PEM, request PEM).
fn signing_request(names: &[String]) -> Result<(String, String), ProviderError> {
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(ProviderError::internal)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, names[0].clone());
    let key = rcgen::KeyPair::generate().map_err(ProviderError::internal)?;
    let request = params.serialize_request(&key).map_err(ProviderError::internal)?;
    Ok((key.serialize_pem(), request.pem().map_err(ProviderError::internal)?))
}

/// The `_acme-challenge` record of a name, relative to its zone.
fn challenge_name(name: &str, zone: &str) -> String {
    let host = name.trim_start_matches("*.");
    match host.strip_suffix(zone).and_then(|rest| rest.strip_suffix('.')) {
        Some(rest) => format!("_acme-challenge.{rest}"),
        None => "_acme-challenge".into(),
    }
}

async fn order_names(order: &mut Order) -> Result<Vec<String>, ProviderError> {
    let mut names = Vec::new();
    let mut identifiers = order.identifiers();
    while let Some(identifier) = identifiers.next().await {
        names.push(identifier.map_err(acme_error)?.to_string());
    }
    Ok(names)
}

async fn issued_chain(order: &mut Order) -> Result<String, ProviderError> {
    let state = order.refresh().await.map_err(acme_error)?;
    if state.status != OrderStatus::Valid {
        return Err(ProviderError::provider(UserMessage::new("The certificate is not issued yet")));
    }
    order
        .certificate()
        .await
        .map_err(acme_error)?
        .ok_or_else(|| ProviderError::provider(UserMessage::new("The certificate is not issued yet")))
}

/// The leaf's subject common name, if it has one.
fn subject_name(chain: &str) -> Option<String> {
    let leaf = CertificateDer::from_pem_slice(chain.as_bytes()).ok()?;
    let (_, parsed) = x509_parser::parse_x509_certificate(&leaf).ok()?;
    let name = parsed.subject().iter_common_name().next()?.as_str().ok()?.to_owned();
    Some(name)
}

fn not_after(chain: &str) -> Option<DateTime<Utc>> {
    let leaf = CertificateDer::from_pem_slice(chain.as_bytes()).ok()?;
    let (_, parsed) = x509_parser::parse_x509_certificate(&leaf).ok()?;
    DateTime::from_timestamp(parsed.validity().not_after.timestamp(), 0)
}

impl Acme {
    async fn account(&self, cx: &Context) -> Result<Account, ProviderError> {
        let key = PrivatePkcs8KeyDer::from(self.key_der.clone());
        let signer = Key::from_pkcs8_der(key.clone_key()).map_err(|_| ProviderError::internal("account key"))?;
        let builder = Account::builder_with_http(Box::new(transport::Recorded::new(cx.http().clone())));
        let (account, _) = builder
            .create_from_key((signer, PrivateKeyDer::Pkcs8(key)), self.config.directory_url.clone())
            .await
            .map_err(acme_error)?;
        Ok(account)
    }

    async fn existing_order(&self, account: &Account, certificate_id: &str) -> Result<Order, ProviderError> {
        // Only the configured authority's URLs are followed (with a signed request).
        let origin = |url: &str| {
            url.parse::<http::Uri>().ok().and_then(|u| Some((u.scheme_str()?.to_owned(), u.authority()?.to_string())))
        };
        if origin(certificate_id).is_none() || origin(certificate_id) != origin(&self.config.directory_url) {
            return Err(ProviderError::not_found(UserMessage::new(format!(
                "No certificate order {certificate_id} at this authority"
            ))));
        }
        account.order(certificate_id.to_owned()).await.map_err(|err| match acme_error(err) {
            e if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::ProviderError => {
                ProviderError::not_found(UserMessage::new("The certificate authority knows no such order"))
            }
            e => e,
        })
    }

    /// The zone of the DNS configuration that holds `name`: the longest
    /// suffix of it that `get_info` finds.
    async fn zone_of(&self, cx: &Context, name: &str) -> Result<String, ProviderError> {
        let host = name.trim_start_matches("*.");
        let labels: Vec<&str> = host.split('.').collect();
        for start in 0..labels.len().saturating_sub(1) {
            let candidate = labels[start..].join(".");
            match cx.call_peer(&self.config.dns_configuration, "get_info", json!({"zone": candidate})).await {
                Ok(_) => return Ok(candidate),
                Err(err) if err.kind() == ErrorKind::NotFound || err.kind() == ErrorKind::InvalidInput => continue,
                Err(err) => return Err(err),
            }
        }
        Err(ProviderError::provider(UserMessage::new(format!(
            "No zone of the DNS configuration {} holds {host}",
            self.config.dns_configuration
        ))))
    }

    async fn order_certificate(
        &self,
        cx: &Context,
        common_name: DomainName,
        alt_names: Vec<DomainName>,
    ) -> Result<CertificateInfo, ProviderError> {
        let mut names: Vec<String> = vec![common_name.to_string()];
        for name in alt_names {
            if !names.contains(&name.to_string()) {
                names.push(name.to_string());
            }
        }
        // Every name's zone first: nothing is ordered for a name no zone holds.
        let mut zones = Vec::new();
        for name in &names {
            zones.push(self.zone_of(cx, name).await?);
        }
        let (private_key_pem, csr_pem) = signing_request(&names)?;
        let account = self.account(cx).await?;
        let identifiers: Vec<Identifier> = names.iter().map(|n| Identifier::Dns(n.clone())).collect();
        let mut order = account.new_order(&NewOrder::new(&identifiers)).await.map_err(acme_error)?;
        // Half the call's time at most: the rest is for finishing and cleaning up.
        let deadline =
            Instant::now() + Duration::from_secs(self.config.issue_wait_secs.into()).min(cx.remaining().mul_f32(0.5));
        let progress = match self.answer_challenges(cx, &mut order, &names, &zones).await {
            Ok(()) => {
                let first = names.first().cloned();
                // No wait asked: answered at once, finalised later by get_info.
                let finalise = (self.config.issue_wait_secs > 0).then_some(csr_pem.as_str());
                self.progress(cx, order, names.clone(), first, finalise, deadline).await
            }
            Err(err) => Err(err),
        };
        let mut info = match progress {
            Ok(info) => info,
            Err(err) => {
                self.clean_challenges(cx, &names).await;
                return Err(err);
            }
        };
        info.private_key_pem = Some(private_key_pem);
        info.csr_pem = Some(csr_pem);
        Ok(info)
    }

    /// Writes the DNS-01 records (every value of a name in one record set)
    /// and tells the authority they are there.
    async fn answer_challenges(
        &self,
        cx: &Context,
        order: &mut Order,
        names: &[String],
        zones: &[String],
    ) -> Result<(), ProviderError> {
        let mut records: Vec<(String, String, Vec<String>)> = Vec::new(); // (zone, name, values)
        let mut ready = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization.map_err(acme_error)?;
            if authorization.status != AuthorizationStatus::Pending {
                continue; // already valid (the authority reuses recent validations)
            }
            let name = authorization.identifier().to_string();
            let zone = names
                .iter()
                .position(|n| *n == name)
                .map(|i| zones[i].clone())
                .ok_or_else(|| ProviderError::internal("the authority asks about a name not ordered"))?;
            let challenge = authorization.challenge(ChallengeType::Dns01).ok_or_else(|| {
                ProviderError::provider(UserMessage::new("The certificate authority offers no DNS-01 challenge"))
            })?;
            let record = challenge_name(&name, &zone);
            let value = challenge.key_authorization().dns_value();
            match records.iter_mut().find(|(z, r, _)| *z == zone && *r == record) {
                Some((_, _, values)) => values.push(value),
                None => records.push((zone, record, vec![value])),
            }
            ready.push(challenge.url.clone());
        }
        for (zone, name, values) in &records {
            let set = json!({"zone": zone, "records": [{"name": name, "type": "TXT", "ttl": 60, "records": values}]});
            cx.call_peer(&self.config.dns_configuration, "set_records", set).await?;
        }
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization.map_err(acme_error)?;
            if let Some(mut challenge) = authorization.challenge(ChallengeType::Dns01)
                && ready.contains(&challenge.url)
            {
                challenge.set_ready().await.map_err(acme_error)?;
            }
        }
        Ok(())
    }

    /// Moves the order on as far as it goes by `deadline`: finalises it with
    /// the signing request once validated, and fetches the chain once issued.
    async fn progress(
        &self,
        cx: &Context,
        mut order: Order,
        names: Vec<String>,
        asked_first: Option<String>,
        csr_pem: Option<&str>,
        deadline: Instant,
    ) -> Result<CertificateInfo, ProviderError> {
        let certificate_id = order.url().to_owned();
        let left = || deadline.saturating_duration_since(Instant::now());
        let mut status = order.refresh().await.map_err(acme_error)?.status;
        let mut problem = None;
        if status == OrderStatus::Pending && !left().is_zero() {
            let policy = RetryPolicy::new().initial_delay(Duration::from_millis(250)).backoff(1.5).timeout(left());
            status = match order.poll_ready(&policy).await {
                Ok(status) => status,
                Err(instant_acme::Error::Timeout(_)) => OrderStatus::Pending,
                // An order that failed validation comes back as its problem.
                Err(instant_acme::Error::Api(failed)) => {
                    problem = failed.detail;
                    OrderStatus::Invalid
                }
                Err(err) => return Err(acme_error(err)),
            };
        }
        if status == OrderStatus::Ready
            && let Some(csr_pem) = csr_pem
        {
            let csr = CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes())
                .map_err(|_| ProviderError::provider(UserMessage::new("csr_pem is not a PEM signing request")))?;
            order.finalize_csr(csr.as_ref()).await.map_err(acme_error)?;
            status = order.refresh().await.map_err(acme_error)?.status;
        }
        let mut certificate_pem = None;
        if status == OrderStatus::Processing || status == OrderStatus::Valid {
            let policy = RetryPolicy::new()
                .initial_delay(Duration::from_millis(250))
                .timeout(left().max(Duration::from_secs(1)));
            match order.poll_certificate(&policy).await {
                Ok(chain) => {
                    certificate_pem = Some(chain);
                    status = OrderStatus::Valid;
                }
                Err(instant_acme::Error::Timeout(_)) => {}
                Err(err) => return Err(acme_error(err)),
            }
        }
        if status == OrderStatus::Valid || status == OrderStatus::Invalid {
            self.clean_challenges(cx, &names).await;
        }
        let problem = problem.or_else(|| order.state().error.as_ref().and_then(|p| p.detail.clone()));
        let (status, message) = match status {
            OrderStatus::Pending => {
                (CertificateStatus::PendingValidation, "Waiting for the authority to validate the names")
            }
            OrderStatus::Ready if csr_pem.is_none() => {
                (CertificateStatus::Processing, "Validated; finalised when asked with the signing request")
            }
            OrderStatus::Ready | OrderStatus::Processing => {
                (CertificateStatus::Processing, "Validated; the authority is issuing")
            }
            OrderStatus::Valid => (CertificateStatus::Issued, "Issued"),
            OrderStatus::Invalid => (CertificateStatus::Invalid, "The authority could not validate the names"),
        };
        let mut names = names
            .into_iter()
            .map(|n| DomainName::parse(&n))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| ProviderError::internal("the authority answered a name that is not a domain name"))?;
        // An order does not keep its names in the order asked: the main name
        // is the one asked first when known, else the certificate's subject,
        // else the shortest.
        let main = asked_first
            .or_else(|| certificate_pem.as_deref().and_then(subject_name))
            .and_then(|cn| names.iter().position(|n| n.as_str() == cn))
            .or_else(|| (0..names.len()).min_by_key(|&i| names[i].as_str().len()))
            .ok_or_else(|| ProviderError::internal("the order names nothing"))?;
        let common_name = names.remove(main);
        Ok(CertificateInfo {
            certificate_id,
            common_name,
            alt_names: names,
            status,
            message: Some(problem.map_or_else(|| message.to_owned(), |detail| format!("{message}: {detail}"))),
            not_after: certificate_pem.as_deref().and_then(not_after),
            certificate_pem,
            csr_pem: None,
            private_key_pem: None,
        })
    }

    /// Removes the challenge records once they served (best effort: a stale
    /// TXT record is harmless, and the next order replaces it).
    async fn clean_challenges(&self, cx: &Context, names: &[String]) {
        for name in names {
            let Ok(zone) = self.zone_of(cx, name).await else { continue };
            let record = challenge_name(name, &zone);
            let _ = cx
                .call_peer(
                    &self.config.dns_configuration,
                    "delete_records",
                    json!({"zone": zone, "records": [{"name": record, "type": "TXT"}]}),
                )
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_records_are_named_relative_to_the_zone() {
        assert_eq!(challenge_name("example.com", "example.com"), "_acme-challenge");
        assert_eq!(challenge_name("www.example.com", "example.com"), "_acme-challenge.www");
        assert_eq!(challenge_name("*.example.com", "example.com"), "_acme-challenge");
        assert_eq!(challenge_name("a.b.example.com", "example.com"), "_acme-challenge.a.b");
    }
}
