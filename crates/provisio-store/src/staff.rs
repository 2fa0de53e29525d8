//! Staff users and their sessions (session tokens stored as keyed digests).

use crate::models::{Scope, StaffUser};
use crate::{Conn, StoreError, all, exec, maybe, now_ms, one};

/// Adds a user; a taken username is a unique violation.
pub async fn insert(
    conn: &mut Conn,
    username: &str,
    password_hash: &str,
    scope: Scope,
) -> Result<StaffUser, StoreError> {
    let now = now_ms();
    one(
        conn,
        "INSERT INTO staff_users (username, password_hash, scope, created_at, updated_at) VALUES (?, ?, ?, ?, ?) RETURNING *",
        rusqlite::params![username, password_hash, scope.as_str(), now, now],
        StaffUser::from_row,
    )
}

/// A user by name.
pub async fn by_username(conn: &mut Conn, username: &str) -> Result<Option<StaffUser>, StoreError> {
    maybe(conn, "SELECT * FROM staff_users WHERE username = ?", [username], StaffUser::from_row)
}

/// Every user, by name.
pub async fn list(conn: &mut Conn) -> Result<Vec<StaffUser>, StoreError> {
    all(conn, "SELECT * FROM staff_users ORDER BY username", [], StaffUser::from_row)
}

/// Records a failed sign-in; locks the account until `lock_until` once it
/// reaches `most` failures in a row.
pub async fn failed_login(conn: &mut Conn, id: i64, most: i64, lock_until: i64) -> Result<(), StoreError> {
    exec(
        conn,
        "UPDATE staff_users SET failed_logins = failed_logins + 1,
                locked_until = CASE WHEN failed_logins + 1 >= ?1 THEN ?2 ELSE locked_until END,
                updated_at = ?3
         WHERE id = ?4",
        rusqlite::params![most, lock_until, now_ms(), id],
    )?;
    Ok(())
}

/// Clears the failures after a good sign-in.
pub async fn good_login(conn: &mut Conn, id: i64) -> Result<(), StoreError> {
    exec(conn, "UPDATE staff_users SET failed_logins = 0, locked_until = NULL WHERE id = ?", [id])?;
    Ok(())
}

/// Opens a session.
pub async fn open_session(conn: &mut Conn, user_id: i64, digest: &str, expires_at: i64) -> Result<i64, StoreError> {
    one(
        conn,
        "INSERT INTO staff_sessions (user_id, digest, created_at, expires_at) VALUES (?, ?, ?, ?) RETURNING id",
        rusqlite::params![user_id, digest, now_ms(), expires_at],
        |r| r.get(0),
    )
}

/// The live session with this digest and its user (not disabled).
pub async fn session(conn: &mut Conn, digest: &str) -> Result<Option<(i64, StaffUser)>, StoreError> {
    let found: Option<(i64, i64)> = maybe(
        conn,
        "SELECT id, user_id FROM staff_sessions WHERE digest = ? AND revoked_at IS NULL AND expires_at > ?",
        rusqlite::params![digest, now_ms()],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let Some((session, user)) = found else { return Ok(None) };
    let user = maybe(conn, "SELECT * FROM staff_users WHERE id = ? AND disabled = 0", [user], StaffUser::from_row)?;
    Ok(user.map(|u| (session, u)))
}

/// Ends a session.
pub async fn end_session(conn: &mut Conn, digest: &str) -> Result<bool, StoreError> {
    Ok(exec(
        conn,
        "UPDATE staff_sessions SET revoked_at = ? WHERE digest = ? AND revoked_at IS NULL",
        rusqlite::params![now_ms(), digest],
    )? > 0)
}
