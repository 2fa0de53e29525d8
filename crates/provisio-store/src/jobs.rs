//! Jobs, their attempts, and the queue operations on them.

use std::collections::HashMap;

use serde_json::Value;

use crate::models::{Attempt, Job};
use crate::{Conn, StoreError, all, exec, maybe, now_ms, one};

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    pub service_id: i64,
    pub event_id: Option<i64>,
    pub function: &'a str,
    pub args: &'a Value,
    pub origin: &'a str,
    pub max_attempts: i64,
    pub idempotency_key: &'a str,
    /// Secret params, sealed by the caller.
    pub secrets: Option<&'a [u8]>,
}

/// Enqueues a job, ready now.
pub async fn insert(conn: &mut Conn, job: &NewJob<'_>) -> Result<Job, StoreError> {
    let now = now_ms();
    one(
        conn,
        "INSERT INTO jobs (service_id, event_id, function, args, origin, state, max_attempts, run_at, \
         idempotency_key, secrets, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?) RETURNING *",
        crate::params![
            job.service_id,
            job.event_id,
            job.function,
            job.args.to_string(),
            job.origin,
            job.max_attempts,
            now,
            job.idempotency_key,
            job.secrets,
            now,
            now
        ],
        Job::from_row,
    ).await
}

/// The origin of jobs that follow a pending operation (see [`insert_follow`]).
pub const FOLLOW: &str = "follow";
/// The origin of jobs that compare a service with its system.
pub const SYNC: &str = "sync";
/// The origin of jobs that put a system back as its service records it.
pub const REPAIR: &str = "repair";
/// The origin of jobs that adopt a resource an import made a service of.
pub const IMPORT: &str = "import";

/// Enqueues a follow of a service's pending operation, due at `run_at`; a
/// follow already waiting is moved to this one's time and round instead (a
/// setup run again starts its operation afresh), and none is added beside a
/// running one. Follows never hold back the service's other jobs, and wait
/// for all of them (see [`ready`]).
pub async fn insert_follow(
    conn: &mut Conn,
    service_id: i64,
    function: &str,
    args: &Value,
    run_at: i64,
    max_attempts: i64,
) -> Result<Option<Job>, StoreError> {
    let moved = exec(
        conn,
        "UPDATE jobs SET args = ?, run_at = ?, updated_at = ? WHERE service_id = ? AND origin = ? \
         AND state IN ('queued', 'retrying')",
        crate::params![args.to_string(), run_at, now_ms(), service_id, FOLLOW],
    )
    .await?;
    let running = maybe(
        conn,
        "SELECT 1 FROM jobs WHERE service_id = ? AND origin = ? AND state = 'running' LIMIT 1",
        crate::params![service_id, FOLLOW],
        |r| r.get::<_, i64>(0),
    )
    .await?;
    if moved > 0 || running.is_some() {
        return Ok(None);
    }
    let now = now_ms();
    let key = format!("follow-{service_id}-{now}");
    one(
        conn,
        "INSERT INTO jobs (service_id, event_id, function, args, origin, state, max_attempts, run_at, \
         idempotency_key, secrets, created_at, updated_at) VALUES (?, NULL, ?, ?, ?, 'queued', ?, ?, ?, NULL, ?, ?) RETURNING *",
        crate::params![service_id, function, args.to_string(), FOLLOW, max_attempts, run_at, key, now, now],
        Job::from_row,
    ).await
    .map(Some)
}

/// Brings a service's waiting follow forward to now (a notice said its
/// operation is done: the follow reads the result at once).
pub async fn follow_now(conn: &mut Conn, service_id: i64) -> Result<(), StoreError> {
    exec(
        conn,
        "UPDATE jobs SET run_at = ?, updated_at = ? WHERE service_id = ? AND origin = ? AND state IN ('queued', 'retrying')",
        crate::params![now_ms(), now_ms(), service_id, FOLLOW],
    ).await?;
    Ok(())
}

/// A job by id.
pub async fn get(conn: &mut Conn, id: i64) -> Result<Option<Job>, StoreError> {
    maybe(conn, "SELECT * FROM jobs WHERE id = ?", [id], Job::from_row).await
}

/// Filters for [`list`].
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub state: Option<String>,
    pub service_id: Option<i64>,
    pub event_id: Option<i64>,
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// Jobs, newest first.
pub async fn list(conn: &mut Conn, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
    all(
        conn,
        "SELECT * FROM jobs WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR service_id = ?2) \
         AND (?3 IS NULL OR event_id = ?3) AND (?4 IS NULL OR id < ?4) ORDER BY id DESC LIMIT ?5",
        crate::params![filter.state, filter.service_id, filter.event_id, filter.before_id, filter.limit],
        Job::from_row,
    )
    .await
}

/// Jobs ready to run: due, first among their service's unfinished jobs (one
/// at a time per service, in event order; a follow or a sync holds nothing
/// back and waits until the service has no other unfinished job), of a service with no job running
/// (a staff retry of an older job must not start beside a later one), and
/// not of a configuration in `blocked` (saturated or disabled: its backlog
/// must not hide every other configuration's work).
///
/// The per-service conditions are scalar subqueries on purpose: each is one
/// index probe per candidate, walked in `jobs_ready` order until `limit`
/// are found. Written as `NOT EXISTS`, PostgreSQL turns them into anti-joins
/// whose plan hangs on the queue's row estimates, and a queue that grew
/// since its last ANALYZE was read in a nested loop over every open job.
pub async fn ready(conn: &mut Conn, now: i64, blocked: &[i64], limit: i64) -> Result<Vec<Job>, StoreError> {
    let sql = format!(
        "SELECT j.* FROM jobs j JOIN services s ON s.id = j.service_id \
         WHERE j.state IN ('queued', 'retrying') AND j.run_at <= ?1 \
         AND COALESCE((SELECT MIN(p.id) FROM jobs p WHERE p.service_id = j.service_id \
                         AND p.state IN ('queued', 'retrying') AND p.origin NOT IN ('follow', 'sync')), j.id) >= j.id \
         AND (j.origin NOT IN ('follow', 'sync') OR NOT EXISTS (SELECT 1 FROM jobs o WHERE o.service_id = j.service_id \
                         AND o.id != j.id AND o.state IN ('queued', 'retrying', 'running') \
                         AND (o.origin NOT IN ('follow', 'sync') OR o.id < j.id))) \
         AND (SELECT COUNT(*) FROM jobs r WHERE r.service_id = j.service_id AND r.state = 'running') = 0 \
         AND (s.configuration_id IS NULL OR {}) \
         ORDER BY j.run_at, j.id LIMIT ?2",
        crate::sql::not_in_list("s.configuration_id", 3, blocked.len())
    );
    let mut values = crate::params![now, limit];
    values.extend(blocked.iter().map(crate::sql::Bind::bind));
    all(conn, &sql, values, Job::from_row).await
}

/// Whether any job is due (queued or retrying, its time come): a read that
/// saves a worker woken for nothing its claim (and, on PostgreSQL, the
/// admission lock).
pub async fn any_due(conn: &mut Conn, now: i64) -> Result<bool, StoreError> {
    let sql = "SELECT 1 FROM jobs WHERE state IN ('queued', 'retrying') AND run_at <= ? LIMIT 1";
    Ok(maybe(conn, sql, [now], |r| r.get::<_, i64>(0)).await?.is_some())
}

/// How many jobs are not finished (queued, retrying or running).
pub async fn open_count(conn: &mut Conn) -> Result<i64, StoreError> {
    one(conn, "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'retrying', 'running')", (), |r| r.get(0)).await
}

/// Whether a job of the service is running now.
pub async fn running_for_service(conn: &mut Conn, service_id: i64) -> Result<bool, StoreError> {
    Ok(maybe(conn, "SELECT 1 FROM jobs WHERE service_id = ? AND state = 'running' LIMIT 1", [service_id], |r| {
        r.get::<_, i64>(0)
    })
    .await?
    .is_some())
}

/// Records an on-demand job already running for its caller (an action run
/// at once), leased until `lease_until`.
pub async fn insert_on_demand(
    conn: &mut Conn,
    job: &NewJob<'_>,
    configuration_id: i64,
    worker: &str,
    lease_until: i64,
) -> Result<Job, StoreError> {
    let queued = insert(conn, job).await?;
    one(
        conn,
        "UPDATE jobs SET state = 'running', attempts = 1, max_attempts = 1, on_demand = 1, lease_until = ?, \
         locked_by = ?, configuration_id = ? WHERE id = ? RETURNING *",
        crate::params![lease_until, worker, configuration_id, queued.id],
        Job::from_row,
    )
    .await
}

/// Takes a job for a worker until `lease_until`; false if someone else took it.
pub async fn claim(
    conn: &mut Conn,
    id: i64,
    worker: &str,
    lease_until: i64,
    configuration_id: Option<i64>,
) -> Result<bool, StoreError> {
    let changed = exec(
        conn,
        "UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_by = ?, lease_until = ?, \
         configuration_id = COALESCE(?, configuration_id), updated_at = ? WHERE id = ? AND state IN ('queued', 'retrying')",
        crate::params![worker, lease_until, configuration_id, now_ms(), id],
    ).await?;
    Ok(changed == 1)
}

/// Whether `worker` still holds the running job from the claim that made
/// attempt `attempt` (a lease taken back and claimed again is another claim).
/// The job's row stays locked until the transaction ends, so no take-back
/// comes between this answer and what the worker writes on it.
pub async fn held_by(conn: &mut Conn, id: i64, worker: &str, attempt: i64) -> Result<bool, StoreError> {
    let sql = format!(
        "SELECT 1 FROM jobs WHERE id = ? AND state = 'running' AND locked_by = ? AND attempts = ?{}",
        conn.for_update()
    );
    Ok(maybe(conn, &sql, crate::params![id, worker, attempt], |r| r.get::<_, i64>(0)).await?.is_some())
}

/// Jobs running per configuration.
pub async fn running_by_configuration(conn: &mut Conn) -> Result<HashMap<i64, i64>, StoreError> {
    let rows = all(
        conn,
        "SELECT configuration_id, COUNT(*) FROM jobs WHERE state = 'running' AND configuration_id IS NOT NULL \
         GROUP BY configuration_id",
        (),
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .await?;
    Ok(rows.into_iter().collect())
}

/// Jobs running on one configuration.
pub async fn running_on(conn: &mut Conn, configuration_id: i64) -> Result<i64, StoreError> {
    one(conn, "SELECT COUNT(*) FROM jobs WHERE state = 'running' AND configuration_id = ?", [configuration_id], |r| {
        r.get(0)
    })
    .await
}

/// Attempts started on one configuration since `since` (for its rate limit).
pub async fn attempts_since_on(conn: &mut Conn, configuration_id: i64, since: i64) -> Result<i64, StoreError> {
    one(
        conn,
        "SELECT COUNT(*) FROM job_attempts WHERE configuration_id = ? AND started_at >= ?",
        [configuration_id, since],
        |r| r.get(0),
    )
    .await
}

/// Attempts started per configuration since `since` (for rate limits).
pub async fn attempts_since_by_configuration(conn: &mut Conn, since: i64) -> Result<HashMap<i64, i64>, StoreError> {
    let rows = all(
        conn,
        "SELECT configuration_id, COUNT(*) FROM job_attempts WHERE configuration_id IS NOT NULL AND started_at >= ?1 \
         GROUP BY configuration_id",
        [since],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .await?;
    Ok(rows.into_iter().collect())
}

/// Ends a job: `succeeded`, `failed` or `skipped`.
pub async fn finish(conn: &mut Conn, id: i64, state: &str, message: Option<&str>) -> Result<(), StoreError> {
    let now = now_ms();
    exec(
        conn,
        "UPDATE jobs SET state = ?, message = ?, locked_by = NULL, lease_until = NULL, reconcile = 0, \
         updated_at = ?, finished_at = ? WHERE id = ?",
        crate::params![state, message, now, now, id],
    )
    .await?;
    Ok(())
}

/// Puts a job back to wait until `run_at`.
pub async fn reschedule(
    conn: &mut Conn,
    id: i64,
    run_at: i64,
    reconcile: bool,
    message: &str,
) -> Result<(), StoreError> {
    exec(
        conn,
        "UPDATE jobs SET state = 'retrying', run_at = ?, reconcile = ?, message = ?, locked_by = NULL, \
         lease_until = NULL, updated_at = ? WHERE id = ?",
        crate::params![run_at, reconcile, message, now_ms(), id],
    )
    .await?;
    Ok(())
}

/// Extends the leases of the jobs a worker is running right now (by id, so a
/// job it lost track of still expires and is taken back).
pub async fn extend_leases(conn: &mut Conn, worker: &str, ids: &[i64], lease_until: i64) -> Result<usize, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let sql = format!(
        "UPDATE jobs SET lease_until = ?1 WHERE state = 'running' AND locked_by = ?2 AND {}",
        crate::sql::in_list("id", 3, ids.len())
    );
    let mut values = crate::params![lease_until, worker];
    values.extend(ids.iter().map(crate::sql::Bind::bind));
    exec(conn, &sql, values).await
}

/// Takes back running jobs whose lease expired (their worker died): they
/// will be reconciled before anything is retried. Answers their ids.
pub async fn take_back_expired(conn: &mut Conn, now: i64) -> Result<Vec<i64>, StoreError> {
    // An on-demand job whose caller died is not run again by anyone: its
    // caller is gone, and a second change_password nobody sees helps no one.
    exec(
        conn,
        "UPDATE jobs SET state = 'failed', locked_by = NULL, lease_until = NULL, finished_at = ?1, updated_at = ?1, \
         message = 'The process running this action stopped; its outcome is unknown' \
         WHERE state = 'running' AND on_demand = 1 AND lease_until < ?1",
        [now],
    )
    .await?;
    all(
        conn,
        "UPDATE jobs SET state = 'retrying', reconcile = 1, run_at = ?1, locked_by = NULL, lease_until = NULL, \
         message = 'The worker running this job stopped; checking the outcome before retrying', updated_at = ?1 \
         WHERE state = 'running' AND lease_until < ?1 RETURNING id",
        [now],
        |r| r.get(0),
    )
    .await
}

/// Releases running jobs `worker` still holds (it is stopping): each is
/// checked before anything is retried, by whichever worker claims it next,
/// at once rather than when its lease runs out. Answers their ids.
pub async fn release(conn: &mut Conn, worker: &str, ids: &[i64], now: i64) -> Result<Vec<i64>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "UPDATE jobs SET state = 'retrying', reconcile = 1, run_at = ?1, locked_by = NULL, lease_until = NULL, \
         message = 'The worker running this job was stopped; checking the outcome before retrying', updated_at = ?1 \
         WHERE state = 'running' AND locked_by = ?2 AND {} RETURNING id",
        crate::sql::in_list("id", 3, ids.len())
    );
    let mut values = crate::params![now, worker];
    values.extend(ids.iter().map(crate::sql::Bind::bind));
    all(conn, &sql, values, |r| r.get(0)).await
}

/// When one attempt ran, and its job's origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptSpan {
    pub started_at: i64,
    pub finished_at: i64,
    pub origin: String,
}

/// The attempts made on a configuration since `since` (ms), oldest first
/// (rate and concurrency limits, read back by tests and benchmarks).
pub async fn attempt_spans(conn: &mut Conn, configuration_id: i64, since: i64) -> Result<Vec<AttemptSpan>, StoreError> {
    all(
        conn,
        "SELECT a.started_at, a.finished_at, j.origin FROM job_attempts a JOIN jobs j ON j.id = a.job_id \
         WHERE a.configuration_id = ?1 AND a.started_at >= ?2 ORDER BY a.started_at",
        crate::params![configuration_id, since],
        |r| Ok(AttemptSpan { started_at: r.get(0)?, finished_at: r.get(1)?, origin: r.get(2)? }),
    )
    .await
}

/// Test support: every running job's lease ends now, as if its worker had
/// stalled. Answers how many.
#[doc(hidden)]
pub async fn expire_running_leases(conn: &mut Conn) -> Result<usize, StoreError> {
    exec(conn, "UPDATE jobs SET lease_until = 0 WHERE state = 'running'", ()).await
}

/// Test support: a job's args and due time set by hand (a follow made to
/// look as old as a test needs).
#[doc(hidden)]
pub async fn backdate(conn: &mut Conn, id: i64, args: &Value, run_at: i64) -> Result<(), StoreError> {
    exec(conn, "UPDATE jobs SET args = ?1, run_at = ?2 WHERE id = ?3", crate::params![args.to_string(), run_at, id])
        .await?;
    Ok(())
}

/// Queues a failed job again (staff retry), with `extra_attempts` more
/// tries; if its last attempt's outcome was unknown it is reconciled first.
pub async fn requeue(conn: &mut Conn, id: i64, extra_attempts: i64) -> Result<bool, StoreError> {
    let now = now_ms();
    let changed = exec(
        conn,
        "UPDATE jobs SET state = 'queued', run_at = ?1, max_attempts = attempts + ?2, finished_at = NULL, \
         message = 'Retry requested', updated_at = ?1, \
         reconcile = COALESCE((SELECT CASE WHEN outcome = 'outcome_unknown' THEN 1 ELSE 0 END \
         FROM job_attempts WHERE job_id = ?3 ORDER BY number DESC, id DESC LIMIT 1), 0) \
         WHERE id = ?3 AND state = 'failed'",
        crate::params![now, extra_attempts, id],
    )
    .await?;
    Ok(changed == 1)
}

/// One try to record.
#[derive(Debug, Clone)]
pub struct NewAttempt<'a> {
    pub job_id: i64,
    pub number: i64,
    pub function: &'a str,
    pub configuration_id: Option<i64>,
    pub started_at: i64,
    pub duration_ms: i64,
    pub outcome: &'a str,
    pub envelope: &'a Value,
    pub http_log: &'a Value,
}

/// Records an attempt.
pub async fn insert_attempt(conn: &mut Conn, attempt: &NewAttempt<'_>) -> Result<(), StoreError> {
    exec(
        conn,
        "INSERT INTO job_attempts (job_id, number, function, configuration_id, started_at, finished_at, duration_ms, \
         outcome, envelope, http_log) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        crate::params![
            attempt.job_id,
            attempt.number,
            attempt.function,
            attempt.configuration_id,
            attempt.started_at,
            attempt.started_at + attempt.duration_ms,
            attempt.duration_ms,
            attempt.outcome,
            attempt.envelope.to_string(),
            attempt.http_log.to_string()
        ],
    )
    .await?;
    Ok(())
}

/// A job's attempts, first to last.
pub async fn attempts(conn: &mut Conn, job_id: i64) -> Result<Vec<Attempt>, StoreError> {
    all(conn, "SELECT * FROM job_attempts WHERE job_id = ? ORDER BY number, id", [job_id], Attempt::from_row).await
}

/// How many unfinished jobs a service has (follows of a pending operation
/// and syncs aside: they read the system and change no status).
pub async fn open_for_service(conn: &mut Conn, service_id: i64) -> Result<i64, StoreError> {
    one(
        conn,
        "SELECT COUNT(*) FROM jobs WHERE service_id = ? AND state IN ('queued', 'retrying', 'running') \
         AND origin NOT IN ('follow', 'sync')",
        [service_id],
        |r| r.get(0),
    )
    .await
}

/// How many jobs exist per state.
pub async fn count_by_state(conn: &mut Conn) -> Result<Vec<(String, i64)>, StoreError> {
    all(conn, "SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state", (), |r| Ok((r.get(0)?, r.get(1)?)))
        .await
}
