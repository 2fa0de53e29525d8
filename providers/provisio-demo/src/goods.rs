//! `physical-goods/demo`: a simulated drop shipper.

use chrono::{DateTime, Utc};
use provisio_sdk::blueprints::physical_goods::*;
use provisio_sdk::{Context, ProviderError, UserMessage};
use serde_json::json;

use crate::{Effect, demo_provider, key_of, token, typed};

demo_provider!(
    DemoGoods,
    "physical-goods",
    "Demo drop shipper",
    "A simulated drop shipper: orders ship `operation_secs` after they are placed, kept in a local file."
);

/// The order as it stands at `now`: accepted ones ship once their time has come.
fn as_of(data: serde_json::Value, placed: DateTime<Utc>, ship_secs: u32) -> Result<Order, ProviderError> {
    let mut order: Order = typed(data)?;
    if order.status == OrderStatus::Accepted && Utc::now() >= placed + chrono::Duration::seconds(ship_secs.into()) {
        order.status = OrderStatus::Shipped;
        order.tracking = Some(format!("TRK{}", order.order_id.trim_start_matches("ord_").to_uppercase()));
    }
    Ok(order)
}

fn no_order(order_id: &str) -> ProviderError {
    ProviderError::not_found(UserMessage::new(format!("No order {order_id} at this shipper")))
}

impl PhysicalGoods for DemoGoods {
    async fn place_order(&self, cx: &Context, params: PlaceOrderParams) -> Result<Order, ProviderError> {
        let demo = &self.0;
        demo.around(cx, Effect::Changes, async {
            if let Some(key) = key_of(cx)
                && let Some(order_id) = demo.state.identifier_for_key(key).await?
                && let Some(record) = demo.state.get_owned(cx, &order_id).await?
            {
                return as_of(record.data, record.created_at, demo.config.operation_secs);
            }
            let order = Order {
                order_id: format!("ord_{}", token(12)),
                status: OrderStatus::Accepted,
                sku: params.sku,
                quantity: params.quantity,
                reference: Some(params.reference),
                tracking: None,
                created_at: Some(Utc::now()),
            };
            let keys: Vec<&str> = key_of(cx).into_iter().collect();
            demo.state.create(cx, &order.order_id, json!(order), &keys, |_| false, "Order id collision").await?;
            // With no shipping time it has shipped already, as get_info will say.
            let placed = order.created_at.unwrap_or_else(Utc::now);
            as_of(json!(order), placed, demo.config.operation_secs)
        })
        .await
    }

    async fn get_info(&self, cx: &Context, params: OrderRef) -> Result<Order, ProviderError> {
        let demo = &self.0;
        demo.around(cx, Effect::Reads, async {
            match demo.state.get_owned(cx, &params.order_id).await? {
                Some(record) => as_of(record.data, record.created_at, demo.config.operation_secs),
                None => Err(no_order(&params.order_id)),
            }
        })
        .await
    }

    async fn terminate(&self, cx: &Context, params: OrderRef) -> Result<Order, ProviderError> {
        let demo = &self.0;
        let ship_secs = demo.config.operation_secs;
        demo.around(cx, Effect::Changes, async {
            let missing = format!("No order {} at this shipper", params.order_id);
            let data = demo
                .state
                .update(cx, &params.order_id, &missing, |data, record| {
                    let order = as_of(data.clone(), record.created_at, ship_secs)?;
                    match order.status {
                        OrderStatus::Shipped => Err(ProviderError::conflict(UserMessage::new(format!(
                            "Order {} has shipped and can no longer be cancelled",
                            order.order_id
                        )))),
                        OrderStatus::Accepted | OrderStatus::Cancelled => {
                            data["status"] = json!(OrderStatus::Cancelled);
                            Ok(())
                        }
                    }
                })
                .await?;
            typed(data)
        })
        .await
    }
}
