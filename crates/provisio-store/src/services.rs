//! Services (contract products) and their history.

use std::collections::HashMap;

use serde_json::Value;

use crate::models::{HistoryEntry, Service};
use crate::{Conn, StoreError, all, exec, maybe, now_ms, one};

/// A new service.
#[derive(Debug, Clone)]
pub struct NewService<'a> {
    pub external_id: Option<&'a str>,
    pub client_id: i64,
    pub product_id: i64,
    /// The status its queued jobs will bring.
    pub projected_status: &'a str,
    pub provision_data: &'a Value,
    /// The stable reference providers record at the vendor.
    pub owner_mark: &'a str,
}

/// Inserts a `pending` service.
pub async fn insert(conn: &mut Conn, service: &NewService<'_>) -> Result<Service, StoreError> {
    let now = now_ms();
    one(
        conn,
        "INSERT INTO services (external_id, client_id, product_id, status, projected_status, provision_data, \
         owner_mark, created_at, updated_at) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?) RETURNING *",
        crate::params![
            service.external_id,
            service.client_id,
            service.product_id,
            service.projected_status,
            service.provision_data.to_string(),
            service.owner_mark,
            now,
            now
        ],
        Service::from_row,
    )
    .await
}

/// The live (not terminated) service other than `except` holding
/// `identifier` on a configuration.
pub async fn holder(
    conn: &mut Conn,
    configuration_id: i64,
    identifier: &str,
    except: i64,
) -> Result<Option<Service>, StoreError> {
    maybe(
        conn,
        "SELECT * FROM services WHERE configuration_id = ? AND identifier = ? AND status <> 'terminated' AND id <> ?",
        crate::params![configuration_id, identifier, except],
        Service::from_row,
    )
    .await
}

/// A live service of another client than `client_id` on a configuration
/// whose identifier lies inside `identifier` (`*.identifier`) or is one of
/// `parents` (the names `identifier` lies inside).
pub async fn nested_of_other_client(
    conn: &mut Conn,
    configuration_id: i64,
    identifier: &str,
    parents: &[String],
    client_id: i64,
) -> Result<Option<Service>, StoreError> {
    let suffix = format!(".{identifier}");
    // substr from a computed start: PostgreSQL reads a negative start differently.
    let sql = format!(
        "SELECT * FROM services WHERE configuration_id = ?1 AND status <> 'terminated' AND client_id <> ?2 \
         AND identifier IS NOT NULL AND ((length(identifier) > length(?3) \
         AND substr(identifier, length(identifier) - length(?3) + 1) = ?3) OR {}) LIMIT 1",
        crate::sql::in_list("identifier", 4, parents.len())
    );
    let mut values = crate::params![configuration_id, client_id, suffix];
    values.extend(parents.iter().map(crate::sql::Bind::bind));
    maybe(conn, &sql, values, Service::from_row).await
}

/// Reserves `identifier` on a configuration for a service (the partial
/// UNIQUE index refuses a second live holder, whatever the caller checked).
pub async fn reserve(conn: &mut Conn, id: i64, configuration_id: i64, identifier: &str) -> Result<(), StoreError> {
    // Guarded: the caller goes on after a refusal (the name was just taken).
    crate::exec_guarded(
        conn,
        "UPDATE services SET configuration_id = ?, identifier = ?, updated_at = ? WHERE id = ?",
        crate::params![configuration_id, identifier, now_ms(), id],
    )
    .await?;
    Ok(())
}

/// A service by id.
pub async fn get(conn: &mut Conn, id: i64) -> Result<Option<Service>, StoreError> {
    maybe(conn, "SELECT * FROM services WHERE id = ?", [id], Service::from_row).await
}

/// A service by id, its row locked until the transaction ends: what is
/// decided from it (an event's plan, a job's outcome, a claim) is written
/// before any other writer reads it.
pub async fn get_locked(conn: &mut Conn, id: i64) -> Result<Option<Service>, StoreError> {
    let sql = format!("SELECT * FROM services WHERE id = ?{}", conn.for_update());
    maybe(conn, &sql, [id], Service::from_row).await
}

/// The services of `ids`, locked for this transaction, by id. Locked in id
/// order, so two transactions locking overlapping sets cannot deadlock.
pub async fn get_locked_many(conn: &mut Conn, ids: &[i64]) -> Result<HashMap<i64, Service>, StoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = format!(
        "SELECT * FROM services WHERE {} ORDER BY id{}",
        crate::sql::in_list("id", 1, ids.len()),
        conn.for_update()
    );
    let values: Vec<_> = ids.iter().map(crate::sql::Bind::bind).collect();
    Ok(all(conn, &sql, values, Service::from_row).await?.into_iter().map(|s| (s.id, s)).collect())
}

/// The service whose owner mark is `mark`.
pub async fn by_owner_mark(conn: &mut Conn, mark: &str) -> Result<Option<Service>, StoreError> {
    maybe(conn, "SELECT * FROM services WHERE owner_mark = ? LIMIT 1", [mark], Service::from_row).await
}

/// A service by the billing system's id.
pub async fn get_by_external(conn: &mut Conn, external_id: &str) -> Result<Option<Service>, StoreError> {
    maybe(conn, "SELECT * FROM services WHERE external_id = ?", [external_id], Service::from_row).await
}

/// Filters for [`list`].
#[derive(Debug, Clone, Default)]
pub struct ServiceFilter {
    pub status: Option<String>,
    pub product_id: Option<i64>,
    pub client_id: Option<i64>,
    pub configuration_id: Option<i64>,
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// The live service of `client_id` named `identifier` on a configuration
/// (what a provider may act on through another configuration).
pub async fn owned_on_configuration(
    conn: &mut Conn,
    configuration_id: i64,
    client_id: i64,
    identifier: &str,
) -> Result<Option<Service>, StoreError> {
    let found = all(
        conn,
        "SELECT * FROM services WHERE configuration_id = ?1 AND client_id = ?2 AND identifier = ?3 \
         AND status IN ('active', 'suspended') ORDER BY id DESC LIMIT 1",
        crate::params![configuration_id, client_id, identifier],
        Service::from_row,
    )
    .await?;
    Ok(found.into_iter().next())
}

/// Services, newest first.
pub async fn list(conn: &mut Conn, filter: &ServiceFilter) -> Result<Vec<Service>, StoreError> {
    all(
        conn,
        "SELECT * FROM services WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR product_id = ?2) \
         AND (?3 IS NULL OR client_id = ?3) AND (?4 IS NULL OR configuration_id = ?4) AND (?5 IS NULL OR id < ?5) \
         ORDER BY id DESC LIMIT ?6",
        crate::params![
            filter.status,
            filter.product_id,
            filter.client_id,
            filter.configuration_id,
            filter.before_id,
            filter.limit
        ],
        Service::from_row,
    )
    .await
}

/// Sets the status rules are matched against.
pub async fn set_projected_status(conn: &mut Conn, id: i64, status: &str) -> Result<(), StoreError> {
    exec(conn, "UPDATE services SET projected_status = ? WHERE id = ?", crate::params![status, id]).await?;
    Ok(())
}

/// Replaces a service's provision data.
pub async fn set_provision_data(conn: &mut Conn, id: i64, provision_data: &Value) -> Result<(), StoreError> {
    exec(
        conn,
        "UPDATE services SET provision_data = ?, updated_at = ? WHERE id = ?",
        crate::params![provision_data.to_string(), now_ms(), id],
    )
    .await?;
    Ok(())
}

/// Replaces a service's sealed secrets.
pub async fn set_secrets(conn: &mut Conn, id: i64, secrets: Option<&[u8]>) -> Result<(), StoreError> {
    exec(conn, "UPDATE services SET secrets = ? WHERE id = ?", crate::params![secrets, id]).await?;
    Ok(())
}

/// Assigns the configuration a service is deployed to.
pub async fn set_configuration(conn: &mut Conn, id: i64, configuration_id: i64) -> Result<(), StoreError> {
    exec(
        conn,
        "UPDATE services SET configuration_id = ?, updated_at = ? WHERE id = ?",
        crate::params![configuration_id, now_ms(), id],
    )
    .await?;
    Ok(())
}

/// The new state of a service after a job.
#[derive(Debug, Clone)]
pub struct ServiceChange<'a> {
    pub status: &'a str,
    pub identifier: Option<&'a str>,
    pub provision_data: &'a Value,
    pub secrets: Option<&'a [u8]>,
    pub last_error: Option<&'a str>,
}

/// Writes a service's new status, identifier, provision data and last error.
pub async fn apply(conn: &mut Conn, id: i64, change: &ServiceChange<'_>) -> Result<(), StoreError> {
    exec(
        conn,
        "UPDATE services SET status = ?, identifier = COALESCE(?, identifier), provision_data = ?, \
         secrets = COALESCE(?, secrets), last_error = ?, updated_at = ? WHERE id = ?",
        crate::params![
            change.status,
            change.identifier,
            change.provision_data.to_string(),
            change.secrets,
            change.last_error,
            now_ms(),
            id
        ],
    )
    .await?;
    Ok(())
}

/// Adds a history entry.
pub async fn add_history(
    conn: &mut Conn,
    service_id: i64,
    from_status: Option<&str>,
    to_status: &str,
    job_id: Option<i64>,
    note: &str,
) -> Result<(), StoreError> {
    exec(
        conn,
        "INSERT INTO service_history (service_id, at, from_status, to_status, job_id, note) VALUES (?, ?, ?, ?, ?, ?)",
        crate::params![service_id, now_ms(), from_status, to_status, job_id, note],
    )
    .await?;
    Ok(())
}

/// A page of a service's history, newest first: at most `limit`, older than `before`.
pub async fn history_page(
    conn: &mut Conn,
    service_id: i64,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<HistoryEntry>, StoreError> {
    all(
        conn,
        "SELECT * FROM service_history WHERE service_id = ?1 AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3",
        crate::params![service_id, before, limit],
        HistoryEntry::from_row,
    )
    .await
}

/// How many services exist per status.
pub async fn count_by_status(conn: &mut Conn) -> Result<Vec<(String, i64)>, StoreError> {
    all(conn, "SELECT status, COUNT(*) FROM services GROUP BY status ORDER BY status", (), |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .await
}
