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
        crate::params![username, password_hash, scope.as_str(), now, now],
        StaffUser::from_row,
    ).await
}

/// A user by name.
pub async fn by_username(conn: &mut Conn, username: &str) -> Result<Option<StaffUser>, StoreError> {
    maybe(conn, "SELECT * FROM staff_users WHERE username = ?", [username], StaffUser::from_row).await
}

/// Every user, by name.
pub async fn list(conn: &mut Conn) -> Result<Vec<StaffUser>, StoreError> {
    all(conn, "SELECT * FROM staff_users ORDER BY username", (), StaffUser::from_row).await
}

/// Counts a sign-in attempt before its password is checked, unless the
/// account is locked; the `most`-th attempt in a row locks it until
/// `lock_until`. Answers whether the attempt may go ahead.
pub async fn count_attempt(conn: &mut Conn, id: i64, most: i64, lock_until: i64) -> Result<bool, StoreError> {
    let counted: Option<i64> = maybe(
        conn,
        "UPDATE staff_users SET failed_logins = failed_logins + 1,
                locked_until = CASE WHEN failed_logins + 1 >= ?1 THEN ?2 ELSE NULL END,
                updated_at = ?3
         WHERE id = ?4 AND (locked_until IS NULL OR locked_until <= ?3)
         RETURNING failed_logins",
        crate::params![most, lock_until, now_ms(), id],
        |r| r.get(0),
    )
    .await?;
    Ok(counted.is_some())
}

/// Clears the failures after a good sign-in.
pub async fn good_login(conn: &mut Conn, id: i64) -> Result<(), StoreError> {
    exec(conn, "UPDATE staff_users SET failed_logins = 0, locked_until = NULL WHERE id = ?", [id]).await?;
    Ok(())
}

/// Opens a session.
pub async fn open_session(conn: &mut Conn, user_id: i64, digest: &str, expires_at: i64) -> Result<i64, StoreError> {
    one(
        conn,
        "INSERT INTO staff_sessions (user_id, digest, created_at, expires_at) VALUES (?, ?, ?, ?) RETURNING id",
        crate::params![user_id, digest, now_ms(), expires_at],
        |r| r.get(0),
    )
    .await
}

/// The live session with this digest and its user (not disabled).
pub async fn session(conn: &mut Conn, digest: &str) -> Result<Option<(i64, StaffUser)>, StoreError> {
    let found: Option<(i64, i64)> = maybe(
        conn,
        "SELECT id, user_id FROM staff_sessions WHERE digest = ? AND revoked_at IS NULL AND expires_at > ?",
        crate::params![digest, now_ms()],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .await?;
    let Some((session, user)) = found else { return Ok(None) };
    let user =
        maybe(conn, "SELECT * FROM staff_users WHERE id = ? AND disabled = 0", [user], StaffUser::from_row).await?;
    Ok(user.map(|u| (session, u)))
}

/// Ends a session.
pub async fn end_session(conn: &mut Conn, digest: &str) -> Result<bool, StoreError> {
    Ok(exec(
        conn,
        "UPDATE staff_sessions SET revoked_at = ? WHERE digest = ? AND revoked_at IS NULL",
        crate::params![now_ms(), digest],
    )
    .await?
        > 0)
}

/// Changes a user's scope or switch; a change ends their sessions.
pub async fn update(
    conn: &mut Conn,
    id: i64,
    scope: Option<Scope>,
    disabled: Option<bool>,
) -> Result<Option<StaffUser>, StoreError> {
    let user = maybe(
        conn,
        "UPDATE staff_users SET scope = COALESCE(?1, scope), disabled = COALESCE(?2, disabled), updated_at = ?3
         WHERE id = ?4 RETURNING *",
        crate::params![scope.map(Scope::as_str), disabled, now_ms(), id],
        StaffUser::from_row,
    )
    .await?;
    if user.is_some() {
        exec(
            conn,
            "UPDATE staff_sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
            crate::params![now_ms(), id],
        )
        .await?;
    }
    Ok(user)
}
