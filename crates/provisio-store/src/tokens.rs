//! Staff API tokens, stored as SHA-256 digests.

use crate::{Conn, StoreError, exec, maybe, now_ms, one};

/// Adds a token digest.
pub async fn insert(conn: &mut Conn, name: &str, token_sha256: &str) -> Result<(), StoreError> {
    exec(
        conn,
        "INSERT OR IGNORE INTO api_tokens (name, token_sha256, created_at) VALUES (?, ?, ?)",
        rusqlite::params![name, token_sha256, now_ms()],
    )?;
    Ok(())
}

/// The token's name, if the digest is known.
pub async fn find(conn: &mut Conn, token_sha256: &str) -> Result<Option<String>, StoreError> {
    maybe(conn, "SELECT name FROM api_tokens WHERE token_sha256 = ?", [token_sha256], |r| r.get(0))
}

/// How many tokens exist.
pub async fn count(conn: &mut Conn) -> Result<i64, StoreError> {
    one(conn, "SELECT COUNT(*) FROM api_tokens", [], |r| r.get(0))
}
