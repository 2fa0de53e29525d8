//! What systems announce on their own (a registry's poll messages), as
//! events on the services they are about.
//!
//! The worker reads each configuration's oldest notice, records it as an
//! event (id `registry:<configuration>:<notice>`) with the status change it
//! means, durably, and only then acknowledges it at the system. A crash
//! between the two loses nothing: the system gives the same notice again,
//! and the same event id makes it a duplicate, never a second change.
//! (Upmind's providers acknowledge first, and lose what a crash interrupts.)
//!
//! | notice | the service becomes |
//! |---|---|
//! | transferred in | active (when it was waiting) |
//! | transferred away | terminated, "transferred away" |
//! | deleted | terminated, "deleted at the registry" |
//! | anything else | unchanged; the event is kept |

use std::collections::HashSet;
use std::future::Future;

use provisio_sdk::{CallOptions, ErrorKind, Notice, NoticeKind, ServiceStatus, invoke};
use provisio_store::{audit, configurations, events, jobs, services};
use serde_json::json;

use crate::events::canonical;
use crate::webhooks::{WebhookEvent, outbox};
use crate::{EngineError, Ingest, Worker};

/// What recording a notice did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// A new event on this service.
    Event { service_id: i64, event_id: i64 },
    /// Recorded before (the system gave it again): nothing more to do.
    Duplicate,
    /// No live service holds the name: kept in the audit log.
    Unmatched,
}

impl Ingest {
    /// Records `notice` from configuration `configuration_id`, in one
    /// transaction with the status change it means: one event per resource
    /// it names (a message listing several domains ends or starts each).
    pub async fn notice(&self, configuration_id: i64, notice: &Notice) -> Result<Recorded, EngineError> {
        // The message's id and a digest of what it says: the same message
        // read again is a duplicate; a reused id (another registry behind the
        // configuration, a registry reset) is a new event, never swallowed.
        let digest =
            self.engine.vault().digest(&canonical(&json!({"type": notice.kind.event_type(), "notice": notice})));
        let base = format!("registry:{configuration_id}:{}:{}", notice.id, &digest[..12.min(digest.len())]);
        let kind = notice.kind;
        let notice = notice.clone();
        let recorded = self
            .engine
            .store()
            .write(move |conn| {
                Box::pin(async move {
                    // A notice may end several services, each ending lock its
                    // configuration's count row: taken in a claim's turn, never
                    // beside one (which locks services, then that row).
                    conn.lock_admissions().await?;
                    let identifiers = std::iter::once(&notice.identifier).chain(&notice.also);
                    let mut outcome = Vec::new();
                    for (n, identifier) in identifiers.enumerate() {
                        // The first keeps the id events were recorded under before lists were read.
                        let external_id = if n == 0 { base.clone() } else { format!("{base}:{n}") };
                        outcome.push(record(conn, configuration_id, &external_id, identifier, &notice, &digest).await?);
                    }
                    let first_event = outcome.iter().find(|r| matches!(r, Recorded::Event { .. })).cloned();
                    Ok::<_, EngineError>(match first_event {
                        Some(event) => event,
                        None if outcome.iter().all(|r| *r == Recorded::Duplicate) => Recorded::Duplicate,
                        None => Recorded::Unmatched,
                    })
                })
            })
            .await?;
        if matches!(recorded, Recorded::Event { .. }) {
            self.engine.metrics().event(kind.event_type());
        }
        Ok(recorded)
    }
}

/// Records what `notice` means for the service holding `identifier`, as the
/// event `external_id` (a duplicate when recorded before).
async fn record(
    conn: &mut provisio_store::Conn,
    configuration_id: i64,
    external_id: &str,
    identifier: &str,
    notice: &Notice,
    digest: &str,
) -> Result<Recorded, EngineError> {
    if events::get_by_external(conn, external_id).await?.is_some() {
        return Ok(Recorded::Duplicate);
    }
    let holder = services::holder(conn, configuration_id, &identifier.to_lowercase(), -1).await?;
    let Some(service) = holder else {
        audit::record(
            conn,
            "registry",
            "notice.unmatched",
            &format!("configuration:{configuration_id}"),
            &json!({"notice": notice, "identifier": identifier}),
        )
        .await?;
        return Ok(Recorded::Unmatched);
    };
    let payload =
        json!({"id": external_id, "type": notice.kind.event_type(), "notice": notice, "identifier": identifier});
    let event_id = events::insert(
        conn,
        &events::NewEvent {
            external_id,
            event_type: notice.kind.event_type(),
            service_id: service.id,
            payload: &payload,
            occurred_at: None,
            body_digest: digest,
        },
    )
    .await?;
    let current = crate::rules::parse_status(&service.status);
    let (to, note, announce) = match notice.kind {
        NoticeKind::TransferredIn
            if matches!(current, ServiceStatus::Pending | ServiceStatus::Provisioning | ServiceStatus::Failed) =>
        {
            (ServiceStatus::Active, "Transferred in at the registry", Some(WebhookEvent::ServiceActivated))
        }
        NoticeKind::TransferredAway if current != ServiceStatus::Terminated => {
            (ServiceStatus::Terminated, "Transferred away to another registrar", Some(WebhookEvent::ServiceTerminated))
        }
        NoticeKind::TransferRefused if matches!(current, ServiceStatus::Pending | ServiceStatus::Provisioning) => {
            (ServiceStatus::Failed, "The transfer in was refused", Some(WebhookEvent::ServiceFailed))
        }
        NoticeKind::Deleted if current != ServiceStatus::Terminated => {
            (ServiceStatus::Terminated, "Deleted at the registry", Some(WebhookEvent::ServiceTerminated))
        }
        _ => (current, "Registry notice recorded", None),
    };
    let note = format!("{note}: {}", notice.message);
    services::add_history(conn, service.id, Some(&service.status), to.as_str(), None, &note).await?;
    if to != current {
        let change = services::ServiceChange {
            status: to.as_str(),
            identifier: None,
            provision_data: &service.provision_data,
            secrets: None,
            last_error: None,
        };
        services::apply(conn, service.id, &change).await?;
        services::set_projected_status(conn, service.id, to.as_str()).await?;
    }
    if let Some(event) = announce {
        outbox(conn, event, &service, None).await?;
    }
    // A follow of the operation reads its result now rather than at its time
    // (hours away, late in a long transfer).
    jobs::follow_now(conn, service.id).await?;
    Ok(Recorded::Event { service_id: service.id, event_id })
}

impl Worker {
    /// Reads, records and acknowledges every configuration's notices, each
    /// `Settings::notice_interval`, until `shutdown`.
    pub async fn collect_notices(&self, shutdown: impl Future<Output = ()>) {
        let Some(interval) = self.engine.settings().notice_interval else { return };
        // Providers whose systems announce nothing are not asked again.
        let mut silent: HashSet<String> = HashSet::new();
        tokio::pin!(shutdown);
        loop {
            let listed = self
                .engine
                .store()
                .read(|conn| Box::pin(async move { configurations::list(conn, None).await }))
                .await
                .unwrap_or_default();
            for configuration in listed.into_iter().filter(|c| c.enabled) {
                let address = format!("{}/{}", configuration.blueprint, configuration.provider);
                if silent.contains(&address) {
                    continue;
                }
                match self.drain_notices(configuration.id).await {
                    Ok(None) => {
                        silent.insert(address);
                    }
                    Err(err) => tracing::warn!(configuration = configuration.id, error = %err, "notices not read"),
                    Ok(Some(_)) => {}
                }
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// Reads one configuration's notices until none is left (at most 100),
    /// recording each before acknowledging it; answers how many were read,
    /// or `None` when its provider's system announces nothing.
    pub async fn drain_notices(&self, configuration_id: i64) -> Result<Option<usize>, EngineError> {
        let configuration = self
            .engine
            .store()
            .read(move |conn| Box::pin(async move { configurations::get(conn, configuration_id).await }))
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("configuration {configuration_id}")))?;
        let entry = self
            .engine
            .registry()
            .provider(&format!("{}/{}", configuration.blueprint, configuration.provider))
            .map_err(|e| EngineError::Conflict(e.to_string()))?
            .clone();
        let values = self.engine.configuration_values(&configuration)?;
        let options = CallOptions { timeout: self.engine.settings().call_timeout, ..CallOptions::default() };
        let mut read = 0;
        while read < 100 {
            let report = invoke::notice(&entry, &values, None, &options).await;
            let envelope = report.envelope;
            match envelope.error_kind {
                None => {}
                Some(ErrorKind::Unsupported) => return Ok(None),
                Some(_) => return Err(EngineError::Conflict(envelope.message.to_string())),
            }
            let Some(notice) = envelope.data.and_then(|d| serde_json::from_value::<Notice>(d).ok()) else {
                break;
            };
            // Stored first: only then may the system forget it.
            self.engine.ingest().notice(configuration_id, &notice).await?;
            let acknowledged = invoke::notice(&entry, &values, Some(&notice.id), &options).await;
            if let Some(kind) = acknowledged.envelope.error_kind {
                return Err(EngineError::Conflict(format!(
                    "acknowledging notice {} failed ({kind}): {}",
                    notice.id, acknowledged.envelope.message
                )));
            }
            read += 1;
        }
        Ok(Some(read))
    }
}
