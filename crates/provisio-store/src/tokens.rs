//! Staff API tokens, stored as SHA-256 digests.

use crate::{Conn, StoreError, now_ms};

/// Adds a token digest.
pub async fn insert(conn: &mut Conn, name: &str, token_sha256: &str) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT OR IGNORE INTO api_tokens (name, token_sha256, created_at) VALUES (?, ?, ?)",
    )
    .bind(name)
    .bind(token_sha256)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

/// The token's name, if the digest is known.
pub async fn find(conn: &mut Conn, token_sha256: &str) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT name FROM api_tokens WHERE token_sha256 = ?")
            .bind(token_sha256)
            .fetch_optional(conn)
            .await?,
    )
}

/// How many tokens exist.
pub async fn count(conn: &mut Conn) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens")
        .fetch_one(conn)
        .await?)
}
