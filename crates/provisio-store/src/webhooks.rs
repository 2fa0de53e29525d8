//! Webhook subscribers and their deliveries (an outbox drained by the
//! engine's deliverer).

use serde_json::Value;

use crate::models::{WebhookDelivery, WebhookSubscriber};
use crate::{Conn, StoreError, all, exec, maybe, now_ms, one};

/// What a new subscriber is made of.
pub struct NewSubscriber<'a> {
    pub name: &'a str,
    pub url: &'a str,
    pub secrets: &'a [u8],
    pub event_types: &'a Value,
    pub include_credentials: bool,
    pub allow_private: bool,
}

/// The id the next subscriber will get (its secret is sealed to it first).
pub async fn next_id(conn: &mut Conn) -> Result<i64, StoreError> {
    one(conn, "SELECT COALESCE(MAX(id), 0) + 1 FROM webhook_subscribers", (), |r| r.get(0)).await
}

/// Adds subscriber `id` (from [`next_id`]); a taken name is a unique
/// violation, an id another writer took first is `Busy`.
pub async fn insert(conn: &mut Conn, id: i64, new: &NewSubscriber<'_>) -> Result<WebhookSubscriber, StoreError> {
    let now = now_ms();
    maybe(
        conn,
        "INSERT INTO webhook_subscribers (id, name, url, secrets, event_types, include_credentials, allow_private, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING *",
        crate::params![
            id,
            new.name,
            new.url,
            new.secrets,
            new.event_types.to_string(),
            new.include_credentials,
            new.allow_private,
            now,
            now
        ],
        WebhookSubscriber::from_row,
    ).await?
    .ok_or_else(|| StoreError::Busy(format!("webhook subscriber {id} was created by another writer")))
}

/// A change to a subscriber: each `None` keeps the value.
#[derive(Default)]
pub struct SubscriberChange<'a> {
    pub url: Option<&'a str>,
    pub secrets: Option<&'a [u8]>,
    pub event_types: Option<&'a Value>,
    pub include_credentials: Option<bool>,
    pub allow_private: Option<bool>,
    pub enabled: Option<bool>,
}

/// Changes a subscriber.
pub async fn update(
    conn: &mut Conn,
    id: i64,
    change: &SubscriberChange<'_>,
) -> Result<Option<WebhookSubscriber>, StoreError> {
    maybe(
        conn,
        "UPDATE webhook_subscribers SET url = COALESCE(?, url), secrets = COALESCE(?, secrets),
                event_types = COALESCE(?, event_types), include_credentials = COALESCE(?, include_credentials),
                allow_private = COALESCE(?, allow_private), enabled = COALESCE(?, enabled), updated_at = ?
         WHERE id = ? RETURNING *",
        crate::params![
            change.url,
            change.secrets,
            change.event_types.map(Value::to_string),
            change.include_credentials,
            change.allow_private,
            change.enabled,
            now_ms(),
            id
        ],
        WebhookSubscriber::from_row,
    )
    .await
}

/// A subscriber.
pub async fn get(conn: &mut Conn, id: i64) -> Result<Option<WebhookSubscriber>, StoreError> {
    maybe(conn, "SELECT * FROM webhook_subscribers WHERE id = ?", [id], WebhookSubscriber::from_row).await
}

/// Every subscriber, by name.
pub async fn list(conn: &mut Conn) -> Result<Vec<WebhookSubscriber>, StoreError> {
    all(conn, "SELECT * FROM webhook_subscribers ORDER BY name", (), WebhookSubscriber::from_row).await
}

/// Deletes a subscriber and its deliveries.
pub async fn delete(conn: &mut Conn, id: i64) -> Result<bool, StoreError> {
    exec(conn, "DELETE FROM webhook_deliveries WHERE subscriber_id = ?", [id]).await?;
    Ok(exec(conn, "DELETE FROM webhook_subscribers WHERE id = ?", [id]).await? > 0)
}

/// Whether any enabled subscriber wants `event_type` (most installations
/// have none: then no notice is even built).
pub async fn wanted(conn: &mut Conn, event_type: &str) -> Result<bool, StoreError> {
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM webhook_subscribers s WHERE s.enabled = 1 AND {})",
        conn.json_array_has("s.event_types", "?")
    );
    one(conn, &sql, [event_type], |r| r.get(0)).await
}

/// Whether any delivery is waiting or being sent (a read, so an idle
/// deliverer never takes the writer's time).
pub async fn pending(conn: &mut Conn) -> Result<bool, StoreError> {
    one(conn, "SELECT EXISTS (SELECT 1 FROM webhook_deliveries WHERE state IN ('queued', 'delivering'))", (), |r| {
        r.get(0)
    })
    .await
}

/// Records a delivery of `event_type` to every enabled subscriber that
/// wants it; answers how many.
pub async fn enqueue(
    conn: &mut Conn,
    event_type: &str,
    service_id: Option<i64>,
    payload: &Value,
) -> Result<usize, StoreError> {
    let now = now_ms();
    let sql = format!(
        "INSERT INTO webhook_deliveries (subscriber_id, event_type, service_id, payload, state, next_at, created_at)
         SELECT s.id, ?1, ?2, ?3, 'queued', ?4, ?4 FROM webhook_subscribers s WHERE s.enabled = 1 AND {}",
        conn.json_array_has("s.event_types", "?1")
    );
    exec(conn, &sql, crate::params![event_type, service_id, payload.to_string(), now]).await
}

/// Leases up to `limit` due deliveries until `lease_until`; takes back
/// those whose lease ran out first. The outer `state = 'queued'` is what
/// PostgreSQL checks again on a row another process leased meanwhile, so
/// no delivery is leased twice.
pub async fn claim(conn: &mut Conn, limit: i64, lease_until: i64) -> Result<Vec<WebhookDelivery>, StoreError> {
    let now = now_ms();
    exec(
        conn,
        "UPDATE webhook_deliveries SET state = 'queued', lease_until = NULL WHERE state = 'delivering' AND lease_until < ?",
        [now],
    ).await?;
    all(
        conn,
        "UPDATE webhook_deliveries SET state = 'delivering', lease_until = ?1, attempts = attempts + 1
         WHERE id IN (SELECT id FROM webhook_deliveries WHERE state = 'queued' AND next_at <= ?2 ORDER BY next_at, id LIMIT ?3)
           AND state = 'queued'
         RETURNING *",
        crate::params![lease_until, now, limit],
        WebhookDelivery::from_row,
    ).await
}

/// Records a delivery's outcome: delivered, retried at `retry_at`, or failed for good.
pub async fn finish(
    conn: &mut Conn,
    id: i64,
    state: &str,
    status: Option<u16>,
    error: Option<&str>,
    retry_at: i64,
) -> Result<(), StoreError> {
    let now = now_ms();
    exec(
        conn,
        "UPDATE webhook_deliveries SET state = ?1, last_status = ?2, last_error = ?3, lease_until = NULL,
                next_at = CASE WHEN ?1 = 'queued' THEN ?4 ELSE next_at END,
                delivered_at = CASE WHEN ?1 = 'delivered' THEN ?5 ELSE delivered_at END
         WHERE id = ?6 AND state = 'delivering'",
        crate::params![state, status, error, retry_at, now, id],
    )
    .await?;
    Ok(())
}

/// A subscriber's deliveries, newest first.
pub async fn deliveries(
    conn: &mut Conn,
    subscriber_id: i64,
    limit: i64,
    before_id: Option<i64>,
) -> Result<Vec<WebhookDelivery>, StoreError> {
    all(
        conn,
        "SELECT * FROM webhook_deliveries WHERE subscriber_id = ?1 AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3",
        crate::params![subscriber_id, before_id, limit],
        WebhookDelivery::from_row,
    ).await
}
