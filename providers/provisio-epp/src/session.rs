//! RFC 5734 transport and the session pool.
//!
//! A session is one TLS connection, logged in: frames led by a 4-byte
//! big-endian length that counts itself, a greeting first, then login
//! declaring the object and extension URIs both sides speak. Registries
//! limit sessions per registrar, so each configuration keeps a small pool
//! (`sessions` in its configuration); a session runs one command at a time,
//! and one that fails, or that the server is closing (2500, 2502), is
//! dropped and made again on the next use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use provisio_sdk::http::HttpExchange;
use provisio_sdk::{Context, ProviderError, UserMessage};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use provisio_sdk::xml::{Xml, esc};

pub(crate) const EPP: &str = "urn:ietf:params:xml:ns:epp-1.0";
pub(crate) const DOMAIN: &str = "urn:ietf:params:xml:ns:domain-1.0";
pub(crate) const CONTACT: &str = "urn:ietf:params:xml:ns:contact-1.0";
pub(crate) const HOST: &str = "urn:ietf:params:xml:ns:host-1.0";
/// Extensions the RFC client can use, when the server offers them.
pub(crate) const EXTENSIONS: &[&str] = &["urn:ietf:params:xml:ns:secDNS-1.1", "urn:ietf:params:xml:ns:rgp-1.0"];
/// The largest answer read.
const MAX_FRAME: usize = 4 * 1024 * 1024;

/// Where and as whom to log in.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct Endpoint {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub password: String,
    pub ca_cert_pem: Option<String>,
    pub sessions: usize,
    /// Extensions declared at login when the server offers them.
    pub extensions: &'static [&'static str],
}

/// One logged-in connection.
struct Session {
    stream: TlsStream<TcpStream>,
    used: Instant,
}

/// Sessions idle longer than this are dropped, not reused: registries close
/// idle sessions, and a changing command sent on a closed one would come
/// back `outcome_unknown` for nothing.
const MAX_IDLE: std::time::Duration = std::time::Duration::from_secs(240);

/// A configuration's sessions: free ones wait here; `permits` bounds how
/// many exist.
struct Pool {
    endpoint: Endpoint,
    idle: Mutex<Vec<Session>>,
    permits: tokio::sync::Semaphore,
}

/// Where a registrar logs in: one pool each, whatever its settings.
type Registrar = (String, u16, String);

fn pools() -> &'static Mutex<HashMap<Registrar, Arc<Pool>>> {
    static POOLS: OnceLock<Mutex<HashMap<Registrar, Arc<Pool>>>> = OnceLock::new();
    POOLS.get_or_init(Mutex::default)
}

/// The registrar's pool. A configuration edited since (a new password, CA
/// or session count) gets a new pool, and the old one's idle sessions are
/// closed at once: registries count every open session against the
/// registrar's limit, so stale ones must not linger beside the new ones.
fn pool(endpoint: &Endpoint) -> Arc<Pool> {
    let mut pools = pools().lock().expect("pool lock");
    let key = (endpoint.host.clone(), endpoint.port, endpoint.client_id.clone());
    if let Some(current) = pools.get(&key) {
        if current.endpoint == *endpoint {
            return current.clone();
        }
        current.idle.lock().expect("pool lock").clear();
    }
    let fresh = Arc::new(Pool {
        endpoint: endpoint.clone(),
        idle: Mutex::default(),
        permits: tokio::sync::Semaphore::new(endpoint.sessions.max(1)),
    });
    pools.insert(key, fresh.clone());
    fresh
}

/// Whether `pool` is still its registrar's (not replaced by an edit).
fn is_current(pool: &Arc<Pool>) -> bool {
    let key = (pool.endpoint.host.clone(), pool.endpoint.port, pool.endpoint.client_id.clone());
    pools().lock().expect("pool lock").get(&key).is_some_and(|p| Arc::ptr_eq(p, pool))
}

/// What a sent command got: the answer, or an error saying whether the
/// command may have reached the server.
pub(crate) struct Reply {
    pub code: u16,
    pub text: String,
    pub response: Xml,
}

async fn read_frame(stream: &mut TlsStream<TcpStream>) -> std::io::Result<String> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).await?;
    let total = u32::from_be_bytes(header) as usize;
    if !(5..=MAX_FRAME).contains(&total) {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("a frame of {total} bytes")));
    }
    let mut body = vec![0u8; total - 4];
    stream.read_exact(&mut body).await?;
    String::from_utf8(body).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "a frame not in UTF-8"))
}

async fn write_frame(stream: &mut TlsStream<TcpStream>, xml: &str) -> std::io::Result<()> {
    let length = u32::try_from(xml.len() + 4).map_err(|_| std::io::Error::other("frame too large"))?;
    let mut frame = length.to_be_bytes().to_vec();
    frame.extend_from_slice(xml.as_bytes());
    stream.write_all(&frame).await?;
    stream.flush().await
}

fn connection_error(err: &std::io::Error) -> ProviderError {
    if provisio_sdk::tls::is_tls_failure(err) {
        return ProviderError::provider(
            "TLS to the registry failed: its certificate is not trusted or names another host (see ca_cert_pem)",
        );
    }
    ProviderError::transient(UserMessage::new("The registry could not be reached; try again later"))
        .with_debug("cause", err.to_string())
}

/// Connects, reads the greeting and logs in.
async fn open(endpoint: &Endpoint) -> Result<Session, ProviderError> {
    let config = provisio_sdk::tls::client_config(endpoint.ca_cert_pem.as_deref())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from(endpoint.host.clone())
        .map_err(|_| ProviderError::provider("host is not a name or address TLS can verify"))?;
    let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port)).await.map_err(|e| connection_error(&e))?;
    let mut stream = connector.connect(name, tcp).await.map_err(|e| connection_error(&e))?;
    let greeting = read_frame(&mut stream).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => {
            ProviderError::provider("The registry's greeting is not EPP").with_debug("cause", e.to_string())
        }
        _ => connection_error(&e),
    })?;
    let greeting = Xml::parse(&greeting).map_err(|_| ProviderError::provider("The registry's greeting is not EPP"))?;
    let menu = greeting.path(&["greeting", "svcMenu"]).cloned().unwrap_or_default();
    let offered: Vec<&str> = menu.all("objURI").map(|o| o.text.as_str()).collect();
    for needed in [DOMAIN, CONTACT, HOST] {
        if !offered.contains(&needed) {
            return Err(ProviderError::provider(UserMessage::new(format!("The registry does not offer {needed}"))));
        }
    }
    let extensions: String = menu
        .child("svcExtension")
        .into_iter()
        .flat_map(|e| e.all("extURI"))
        .filter(|e| endpoint.extensions.contains(&e.text.as_str()))
        .map(|e| format!("<extURI>{}</extURI>", esc(&e.text)))
        .collect();
    let extensions =
        if extensions.is_empty() { String::new() } else { format!("<svcExtension>{extensions}</svcExtension>") };
    let login = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?><epp xmlns=\"{EPP}\"><command><login><clID>{}</clID><pw>{}</pw><options><version>1.0</version><lang>en</lang></options><svcs><objURI>{DOMAIN}</objURI><objURI>{CONTACT}</objURI><objURI>{HOST}</objURI>{extensions}</svcs></login><clTRID>provisio-login</clTRID></command></epp>",
        esc(&endpoint.client_id),
        esc(&endpoint.password)
    );
    write_frame(&mut stream, &login).await.map_err(|e| connection_error(&e))?;
    let answer = read_frame(&mut stream).await.map_err(|e| connection_error(&e))?;
    let answer = Xml::parse(&answer).map_err(|_| ProviderError::provider("The registry's login answer is not EPP"))?;
    let code = result_code(&answer);
    match code {
        1000 => Ok(Session { stream, used: Instant::now() }),
        2200 | 2501 => Err(ProviderError::provider(
            "The registry refused the login: check username and password (and that this address may connect)",
        )),
        2502 => Err(ProviderError::transient(
            "The registry allows no more sessions for this registrar now; try again later (or lower sessions)",
        )),
        code => Err(ProviderError::provider(UserMessage::new(format!("The registry refused the login ({code})")))),
    }
}

pub(crate) fn result_code(answer: &Xml) -> u16 {
    answer.path(&["response", "result"]).and_then(|r| r.attribute("code")).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// Sends one command (`body` is what goes inside `<command>`, before the
/// clTRID) on a pooled session; `changes` says whether it changes anything
/// at the registry (a lost answer is then `outcome_unknown`).
pub(crate) async fn command(
    cx: &Context,
    endpoint: &Endpoint,
    what: &str,
    body: &str,
    changes: bool,
) -> Result<Reply, ProviderError> {
    let pool = pool(endpoint);
    let permit = tokio::time::timeout(cx.remaining(), pool.permits.acquire())
        .await
        .map_err(|_| ProviderError::transient("Every session to the registry stayed busy; try again later"))?
        .map_err(ProviderError::internal)?;
    let idle = pool.idle.lock().expect("pool lock").pop().filter(|s| s.used.elapsed() < MAX_IDLE);
    let mut session = match idle {
        Some(session) => session,
        None => tokio::time::timeout(cx.remaining(), open(endpoint))
            .await
            .map_err(|_| ProviderError::transient("The registry did not answer in time"))??,
    };
    let cl_trid = cl_trid(cx);
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?><epp xmlns=\"{EPP}\"><command>{body}<clTRID>{}</clTRID></command></epp>",
        esc(&cl_trid)
    );
    let started = Instant::now();
    let mut exchange =
        HttpExchange::other("EPP", &format!("epp://{}:{}/{what}", endpoint.host, endpoint.port), started);
    exchange.request_body = Some(xml.clone());
    let sent = tokio::time::timeout(cx.remaining(), write_frame(&mut session.stream, &xml)).await;
    if !matches!(sent, Ok(Ok(()))) {
        // Nothing (or not all) reached the server: the session is gone.
        exchange.error = Some("the frame could not be sent".into());
        cx.record(exchange);
        drop(permit);
        return Err(ProviderError::transient("The connection to the registry broke; try again later"));
    }
    let answer = tokio::time::timeout(cx.remaining(), read_frame(&mut session.stream)).await;
    exchange.duration_ms = started.elapsed().as_millis() as u64;
    let text = match answer {
        Ok(Ok(text)) => text,
        lost => {
            exchange.error = Some(match lost {
                Err(_) => "deadline exceeded".into(),
                Ok(Err(err)) => err.to_string(),
                Ok(Ok(_)) => unreachable!(),
            });
            cx.record(exchange);
            return Err(if changes {
                ProviderError::outcome_unknown(
                    "The registry's answer was lost after the command was sent; it may have taken effect",
                )
            } else {
                ProviderError::transient("The registry did not answer; try again later")
            });
        }
    };
    exchange.response_body = Some(text.clone());
    // An answer that cannot be read, after a change, says nothing of whether it was done.
    let unreadable = || {
        if changes {
            ProviderError::outcome_unknown("The registry's answer could not be read; the command may have taken effect")
        } else {
            ProviderError::provider("The registry answered something that is not EPP")
        }
    };
    let response = Xml::parse(&text).map_err(|_| unreadable());
    let response = match response {
        Ok(response) => response,
        Err(err) => {
            cx.record(exchange);
            return Err(err);
        }
    };
    let code = result_code(&response);
    exchange.status = Some(code);
    cx.record(exchange);
    if code == 0 {
        return Err(unreadable());
    }
    // 2500-2502: the server closes this session; a fresh one is made next time.
    if !(2500..=2502).contains(&code) && is_current(&pool) {
        session.used = Instant::now();
        pool.idle.lock().expect("pool lock").push(session);
    }
    let text = response.path(&["response", "result", "msg"]).map(|m| m.text.clone()).unwrap_or_default();
    Ok(Reply { code, text, response })
}

/// A client transaction id: the job's idempotency key (the same for every
/// attempt of the job, so the registry's log ties them together) and a
/// short random tail, at most 64 characters (RFC 5730 `trIDStringType`).
fn cl_trid(cx: &Context) -> String {
    let tail: String = std::iter::repeat_with(fastrand::alphanumeric).take(6).collect();
    let key: String = cx
        .idempotency_key()
        .unwrap_or("provisio")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        .take(57)
        .collect();
    format!("{key}-{tail}")
}
