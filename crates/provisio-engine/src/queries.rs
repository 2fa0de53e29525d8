//! Reads: what the API answers, so no handler reaches into the store.
//! Staff read services, jobs, events, history and the audit log; a client
//! reads its own services and nothing else.

use provisio_store::models::{AuditEntry, Client, Event, HistoryEntry, Job, Product, Service};
use provisio_store::{audit, clients, events, jobs, products, services};
use serde::Serialize;
use serde_json::{Value, json};

use crate::{Engine, EngineError};

/// How much of a service's jobs, history and events its detail shows; the
/// rest is paged (`/services/{id}/events`, `/history`, `/jobs?service_id=`),
/// so one service's past never makes an answer unbounded.
const DETAIL_JOBS: i64 = 50;
const DETAIL_HISTORY: i64 = 50;
const DETAIL_EVENTS: i64 = 20;

/// A service with its latest jobs, history and event summaries.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceDetail {
    pub service: Service,
    /// The product's slug.
    pub product: Option<String>,
    pub client: Option<Client>,
    /// Oldest first.
    pub jobs: Vec<Job>,
    pub history: Vec<HistoryEntry>,
    /// Summaries: payloads are read a page at a time from `/events`.
    pub events: Vec<Value>,
    /// Which lists were cut at their limit.
    pub more: Value,
}

/// The newest `limit` of a list read newest first, oldest first, and
/// whether more were left out.
fn latest<T>(mut rows: Vec<T>, limit: i64) -> (Vec<T>, bool) {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    rows.reverse();
    (rows, more)
}

/// A service that must exist (a page of its past is 404 for no service).
async fn existing(conn: &mut provisio_store::Conn, service_id: i64) -> Result<Service, EngineError> {
    services::get(conn, service_id).await?.ok_or_else(|| EngineError::NotFound(format!("no service {service_id}")))
}

impl Engine {
    /// Whether the store answers (read-only: never queued behind writes).
    pub async fn health(&self) -> Result<(), EngineError> {
        Ok(self.store().check().await?)
    }

    /// Services, newest first.
    pub async fn services(&self, filter: services::ServiceFilter) -> Result<Vec<Service>, EngineError> {
        Ok(self.store().read(move |conn| Box::pin(async move { services::list(conn, &filter).await })).await?)
    }

    /// A service with its latest jobs, history and events.
    pub async fn service_detail(&self, service_id: i64) -> Result<ServiceDetail, EngineError> {
        self.store()
            .read(move |conn| {
                Box::pin(async move {
                    let service = existing(conn, service_id).await?;
                    let product = products::get(conn, service.product_id).await?.map(|p| p.slug);
                    let client = clients::get(conn, service.client_id).await?;
                    let filter =
                        jobs::JobFilter { service_id: Some(service_id), limit: DETAIL_JOBS + 1, ..Default::default() };
                    let (jobs, more_jobs) = latest(jobs::list(conn, &filter).await?, DETAIL_JOBS);
                    let (history, more_history) = latest(
                        services::history_page(conn, service_id, None, DETAIL_HISTORY + 1).await?,
                        DETAIL_HISTORY,
                    );
                    let (recent, more_events) = latest(
                        events::page_for_service(conn, service_id, None, DETAIL_EVENTS + 1).await?,
                        DETAIL_EVENTS,
                    );
                    let events = recent
                        .into_iter()
                        .map(|e| {
                            json!({"id": e.id, "external_id": e.external_id, "type": e.event_type,
                                   "occurred_at": e.occurred_at, "received_at": e.received_at})
                        })
                        .collect();
                    let more = json!({"jobs": more_jobs, "history": more_history, "events": more_events});
                    Ok(ServiceDetail { service, product, client, jobs, history, events, more })
                })
            })
            .await
    }

    /// A page of a service's events (payloads included), newest first.
    pub async fn service_events(
        &self,
        service_id: i64,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Event>, EngineError> {
        self.store()
            .read(move |conn| {
                Box::pin(async move {
                    existing(conn, service_id).await?;
                    Ok(events::page_for_service(conn, service_id, before, limit).await?)
                })
            })
            .await
    }

    /// A page of a service's history, newest first.
    pub async fn service_history(
        &self,
        service_id: i64,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<HistoryEntry>, EngineError> {
        self.store()
            .read(move |conn| {
                Box::pin(async move {
                    existing(conn, service_id).await?;
                    Ok(services::history_page(conn, service_id, before, limit).await?)
                })
            })
            .await
    }

    /// Jobs, newest first.
    pub async fn jobs(&self, filter: jobs::JobFilter) -> Result<Vec<Job>, EngineError> {
        Ok(self.store().read(move |conn| Box::pin(async move { jobs::list(conn, &filter).await })).await?)
    }

    /// The audit log, newest first.
    pub async fn audit(&self, limit: i64, before: Option<i64>) -> Result<Vec<AuditEntry>, EngineError> {
        Ok(self.store().read(move |conn| Box::pin(async move { audit::list(conn, limit, before).await })).await?)
    }

    /// A client's services with their products, newest first.
    pub async fn client_services(
        &self,
        client_id: i64,
        limit: i64,
        before_id: Option<i64>,
    ) -> Result<Vec<(Service, Product)>, EngineError> {
        self.store()
            .read(move |conn| {
                Box::pin(async move {
                    let filter =
                        services::ServiceFilter { client_id: Some(client_id), before_id, limit, ..Default::default() };
                    let mut found = Vec::new();
                    for service in services::list(conn, &filter).await? {
                        let product = products::get(conn, service.product_id)
                            .await?
                            .ok_or_else(|| EngineError::NotFound("no product".into()))?;
                        found.push((service, product));
                    }
                    Ok(found)
                })
            })
            .await
    }

    /// One of a client's services; another client's is not found, exactly
    /// as one that does not exist.
    pub async fn client_service(&self, client_id: i64, service_id: i64) -> Result<(Service, Product), EngineError> {
        self.store()
            .read(move |conn| {
                Box::pin(async move {
                    let service = services::get(conn, service_id)
                        .await?
                        .filter(|s| s.client_id == client_id)
                        .ok_or_else(|| EngineError::NotFound(format!("no service {service_id}")))?;
                    let product = products::get(conn, service.product_id)
                        .await?
                        .ok_or_else(|| EngineError::NotFound("no product".into()))?;
                    Ok((service, product))
                })
            })
            .await
    }
}
