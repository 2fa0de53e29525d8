//! `coffee/demo`: a simulated coffee machine.

use chrono::{DateTime, Utc};
use provisio_sdk::blueprints::coffee::*;
use provisio_sdk::{Context, ProviderError, UserMessage};
use serde_json::json;

use crate::{Effect, demo_provider, key_of, token, typed};

demo_provider!(
    DemoCoffee,
    "coffee",
    "Demo coffee machine",
    "A simulated coffee machine: cups queue, brew and become ready over time, kept in a local file."
);

/// Brewing time relative to `operation_secs`, per size.
fn brew_share(size: Size) -> f64 {
    match size {
        Size::Small => 0.6,
        Size::Medium => 1.0,
        Size::Large => 1.4,
    }
}

/// The cup's status at `now`: queued for the first fifth of its time, then brewing, then ready.
fn status_at(ordered_at: DateTime<Utc>, ready_at: DateTime<Utc>, now: DateTime<Utc>) -> CupStatus {
    if now >= ready_at {
        CupStatus::Ready
    } else if now < ordered_at + (ready_at - ordered_at) / 5 {
        CupStatus::Queued
    } else {
        CupStatus::Brewing
    }
}

fn with_status(data: serde_json::Value, ordered_at: DateTime<Utc>) -> Result<Cup, ProviderError> {
    let mut cup: Cup = typed(data)?;
    cup.status = status_at(ordered_at, cup.ready_at, Utc::now());
    Ok(cup)
}

impl Coffee for DemoCoffee {
    async fn brew(&self, cx: &Context, params: BrewParams) -> Result<Cup, ProviderError> {
        let demo = &self.0;
        demo.around(cx, Effect::Changes, async {
            if let Some(key) = key_of(cx)
                && let Some(order_id) = demo.state.identifier_for_key(key).await?
                && let Some(record) = demo.state.get_owned(cx, &order_id).await?
            {
                return with_status(record.data, record.created_at);
            }
            let now = Utc::now();
            let millis = (f64::from(demo.config.operation_secs) * 1000.0 * brew_share(params.size)) as i64;
            let cup = Cup {
                order_id: format!("cup_{}", token(12)),
                name: params.name,
                size: params.size,
                sugar: params.sugar,
                milk: params.milk,
                status: CupStatus::Queued,
                ready_at: now + chrono::Duration::milliseconds(millis),
            };
            // A machine with no brewing time has it ready at once.
            let cup = Cup { status: status_at(now, cup.ready_at, now), ..cup };
            let keys: Vec<&str> = key_of(cx).into_iter().collect();
            demo.state.create(cx, &cup.order_id, json!(cup), &keys, |_| false, "Order id collision").await?;
            Ok(cup)
        })
        .await
    }

    async fn get_info(&self, cx: &Context, params: CupRef) -> Result<Cup, ProviderError> {
        let demo = &self.0;
        demo.around(cx, Effect::Reads, async {
            match demo.state.get_owned(cx, &params.order_id).await? {
                Some(record) => with_status(record.data, record.created_at),
                None => Err(ProviderError::not_found(UserMessage::new(format!(
                    "No order {} on this machine",
                    params.order_id
                )))),
            }
        })
        .await
    }
}
