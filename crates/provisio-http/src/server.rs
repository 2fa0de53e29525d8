//! Serving the router on a listener without falling to slow or idle
//! clients: a cap on open connections, a deadline for each request's
//! headers, for each request, and for idleness between requests, and small
//! per-connection buffers, so memory and file descriptors stay bounded.
//!
//! When the cap is reached, a new connection takes the place of the
//! connection idle the longest (one waiting for its first headers counts as
//! idle); only when every connection is inside a request is the newcomer
//! turned away. Half-open connections therefore cost an attacker a slot each
//! for a moment, never the service: `/healthz` and real requests still get in.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::Problem;

/// Limits of the HTTP server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Time a client has to send a request's headers.
    pub header_timeout: Duration,
    /// Time a request may take, body included (actions wait for their job).
    pub request_timeout: Duration,
    /// Time a connection may sit between requests.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// The most connections this process can hold: the open-files limit less
/// room for the database, providers and logs (Linux reports it in /proc).
pub fn connections_allowed_by_the_system(wanted: usize) -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits").ok().and_then(|limits| {
        limits
            .lines()
            .find(|line| line.starts_with("Max open files"))
            .and_then(|line| line.split_whitespace().nth(3))
            .and_then(|soft| soft.parse::<usize>().ok())
    });
    match soft {
        Some(soft) => wanted.min(soft.saturating_sub(256).max(16)),
        None => wanted,
    }
}

/// One open connection, as the table sees it.
struct Slot {
    /// Requests in progress on it.
    busy: Arc<AtomicUsize>,
    /// When it last started or finished a request (ms since the server started).
    last_active: Arc<AtomicU64>,
    /// Closes it.
    abort: tokio::task::AbortHandle,
}

#[derive(Default)]
struct Table {
    slots: HashMap<u64, Slot>,
    next: u64,
}

/// Serves `router` on `listener` within `limits` until `shutdown` completes;
/// requests in progress then finish (up to the request timeout).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let started = Instant::now();
    let table = Arc::new(Mutex::new(Table::default()));
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors (or a transient error): wait, never spin.
                tracing::warn!(error = %err, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let id = {
            let mut table = table.lock().expect("connection table lock");
            if table.slots.len() >= limits.max_connections {
                let victim = table
                    .slots
                    .iter()
                    .filter(|(_, slot)| slot.busy.load(Ordering::Relaxed) == 0)
                    .min_by_key(|(_, slot)| slot.last_active.load(Ordering::Relaxed))
                    .map(|(id, _)| *id);
                match victim {
                    Some(victim) => {
                        if let Some(slot) = table.slots.remove(&victim) {
                            slot.abort.abort();
                        }
                    }
                    None => {
                        drop(stream);
                        continue;
                    }
                }
            }
            table.next += 1;
            table.next
        };
        while tasks.try_join_next().is_some() {}
        let busy = Arc::new(AtomicUsize::new(0));
        let now = started.elapsed().as_millis() as u64;
        let last_active = Arc::new(AtomicU64::new(now));
        let task = tasks.spawn(connection(
            stream,
            peer,
            router.clone(),
            limits.clone(),
            busy.clone(),
            last_active.clone(),
            started,
            table.clone(),
            id,
        ));
        let mut slots = table.lock().expect("connection table lock");
        // A connection that already ended must not hold a slot.
        if !task.is_finished() {
            slots.slots.insert(id, Slot { busy, last_active, abort: task });
        }
    }
    // Stop reading new requests; let the ones in progress finish.
    drop(listener);
    let idle: Vec<tokio::task::AbortHandle> = table
        .lock()
        .expect("connection table lock")
        .slots
        .values()
        .filter(|slot| slot.busy.load(Ordering::Relaxed) == 0)
        .map(|slot| slot.abort.clone())
        .collect();
    idle.iter().for_each(tokio::task::AbortHandle::abort);
    let _ = tokio::time::timeout(limits.request_timeout, async { while tasks.join_next().await.is_some() {} }).await;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn connection(
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    router: Router,
    limits: Limits,
    busy: Arc<AtomicUsize>,
    last_active: Arc<AtomicU64>,
    started: Instant,
    table: Arc<Mutex<Table>>,
    id: u64,
) {
    let service = {
        let (busy, last_active, request_timeout) = (busy.clone(), last_active.clone(), limits.request_timeout);
        hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
            // Who is on the other end, for limits per address (`ConnectInfo`, as axum names it).
            request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            let (router, busy, last_active) = (router.clone(), busy.clone(), last_active.clone());
            async move {
                busy.fetch_add(1, Ordering::Relaxed);
                last_active.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                let response = match tokio::time::timeout(request_timeout, router.oneshot(request.map(Body::new))).await
                {
                    Ok(Ok(response)) => response,
                    Ok(Err(never)) => match never {},
                    Err(_) => {
                        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "The request took too long").into_response()
                    }
                };
                busy.fetch_sub(1, Ordering::Relaxed);
                last_active.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                Ok::<_, std::convert::Infallible>(response)
            }
        })
    };
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(32 * 1024)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let check = (limits.idle_timeout / 4).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = connection.as_mut() => break,
            _ = tokio::time::sleep(check) => {
                let idle_for = started.elapsed().as_millis() as u64 - last_active.load(Ordering::Relaxed);
                if busy.load(Ordering::Relaxed) == 0 && idle_for >= limits.idle_timeout.as_millis() as u64 {
                    break;
                }
            }
        }
    }
    table.lock().expect("connection table lock").slots.remove(&id);
}
