//! Staff API tokens, stored as keyed digests (the engine computes them), and
//! the installation's settings.

use crate::models::{ApiToken, Scope};
use crate::{Conn, StoreError, all, exec, maybe, now_ms, one};

/// Adds a token; a live token of the same name is a unique violation.
pub async fn insert(conn: &mut Conn, name: &str, scope: Scope, digest: &str) -> Result<ApiToken, StoreError> {
    one(
        conn,
        "INSERT INTO api_tokens (name, scope, digest, created_at) VALUES (?, ?, ?, ?) RETURNING *",
        crate::params![name, scope.as_str(), digest, now_ms()],
        ApiToken::from_row,
    )
    .await
}

/// The live token with this digest.
pub async fn find(conn: &mut Conn, digest: &str) -> Result<Option<ApiToken>, StoreError> {
    maybe(conn, "SELECT * FROM api_tokens WHERE digest = ? AND revoked_at IS NULL", [digest], ApiToken::from_row).await
}

/// Every token, live and revoked, newest first.
pub async fn list(conn: &mut Conn, limit: i64, before_id: Option<i64>) -> Result<Vec<ApiToken>, StoreError> {
    all(
        conn,
        "SELECT * FROM api_tokens WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2",
        crate::params![before_id, limit],
        ApiToken::from_row,
    )
    .await
}

/// Revokes a live token; answers it, if it was live.
pub async fn revoke(conn: &mut Conn, id: i64) -> Result<Option<ApiToken>, StoreError> {
    maybe(
        conn,
        "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL RETURNING *",
        crate::params![now_ms(), id],
        ApiToken::from_row,
    )
    .await
}

/// The name of a live token.
pub async fn live_name(conn: &mut Conn, id: i64) -> Result<Option<String>, StoreError> {
    maybe(conn, "SELECT name FROM api_tokens WHERE id = ? AND revoked_at IS NULL", [id], |r| r.get(0)).await
}

/// Revokes the live token named `name`, if any.
pub async fn revoke_named(conn: &mut Conn, name: &str) -> Result<(), StoreError> {
    exec(
        conn,
        "UPDATE api_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
        crate::params![now_ms(), name],
    )
    .await?;
    Ok(())
}

/// How many tokens are live.
pub async fn count_live(conn: &mut Conn) -> Result<i64, StoreError> {
    one(conn, "SELECT COUNT(*) FROM api_tokens WHERE revoked_at IS NULL", (), |r| r.get(0)).await
}

/// A setting's value.
pub async fn setting(conn: &mut Conn, name: &str) -> Result<Option<String>, StoreError> {
    maybe(conn, "SELECT value FROM settings WHERE name = ?", [name], |r| r.get(0)).await
}

/// Records a setting unless one is recorded; answers the value recorded
/// (the first writer's, when processes start together).
pub async fn setting_or_insert(conn: &mut Conn, name: &str, value: &str) -> Result<String, StoreError> {
    exec(
        conn,
        "INSERT INTO settings (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
        crate::params![name, value],
    )
    .await?;
    one(conn, "SELECT value FROM settings WHERE name = ?", [name], |r| r.get(0)).await
}

/// Test support: the stored digests of every token (to prove none is a
/// plain hash of its secret).
#[doc(hidden)]
pub async fn digests(conn: &mut Conn) -> Result<Vec<String>, StoreError> {
    all(conn, "SELECT digest FROM api_tokens", (), |r| r.get(0)).await
}
