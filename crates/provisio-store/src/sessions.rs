//! Client sessions: bearer tokens and one-time hand-off codes, both stored
//! as keyed digests (the engine computes them).

use crate::models::ClientSession;
use crate::{Conn, StoreError, exec, maybe, now_ms, one};

/// What a new session is made of.
pub struct NewSession<'a> {
    pub client_id: i64,
    pub digest: &'a str,
    pub handoff_digest: Option<&'a str>,
    pub handoff_expires_at: Option<i64>,
    pub expires_at: i64,
    pub created_by: &'a str,
}

/// Adds a session.
pub async fn insert(conn: &mut Conn, new: &NewSession<'_>) -> Result<ClientSession, StoreError> {
    one(
        conn,
        "INSERT INTO client_sessions (client_id, digest, handoff_digest, handoff_expires_at, created_by, created_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *",
        crate::params![
            new.client_id,
            new.digest,
            new.handoff_digest,
            new.handoff_expires_at,
            new.created_by,
            now_ms(),
            new.expires_at
        ],
        ClientSession::from_row,
    ).await
}

/// The live session with this token digest.
pub async fn find(conn: &mut Conn, digest: &str) -> Result<Option<ClientSession>, StoreError> {
    maybe(
        conn,
        "SELECT * FROM client_sessions WHERE digest = ? AND revoked_at IS NULL AND expires_at > ?",
        crate::params![digest, now_ms()],
        ClientSession::from_row,
    )
    .await
}

/// Uses a hand-off code: answers its live session the first time, within
/// the code's life, and never again.
pub async fn redeem_handoff(conn: &mut Conn, handoff_digest: &str) -> Result<Option<ClientSession>, StoreError> {
    let now = now_ms();
    maybe(
        conn,
        "UPDATE client_sessions SET handoff_used_at = ?1
         WHERE handoff_digest = ?2 AND handoff_used_at IS NULL AND handoff_expires_at > ?1
           AND revoked_at IS NULL AND expires_at > ?1
         RETURNING *",
        crate::params![now, handoff_digest],
        ClientSession::from_row,
    )
    .await
}

/// Ends every live session of a client; answers how many.
pub async fn revoke_for_client(conn: &mut Conn, client_id: i64) -> Result<usize, StoreError> {
    exec(
        conn,
        "UPDATE client_sessions SET revoked_at = ? WHERE client_id = ? AND revoked_at IS NULL",
        crate::params![now_ms(), client_id],
    )
    .await
}

/// Forgets sessions that ended over a day ago.
pub async fn prune(conn: &mut Conn) -> Result<usize, StoreError> {
    exec(conn, "DELETE FROM client_sessions WHERE expires_at < ?", [now_ms() - 86_400_000]).await
}
