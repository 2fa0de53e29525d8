//! Reads for the client API: a client's own services and nothing else.

use provisio_store::models::{Product, Service};
use provisio_store::{products, services};

use crate::{Engine, EngineError};

impl Engine {
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
