//! What the vendor test servers (`provisio-whm-test-server`,
//! `provisio-plesk-test-server`) share: a CA and a server certificate made
//! at start-up, serving an axum router over HTTPS (or plain HTTP, as panels
//! also offer), and random credentials.
//!
//! Real panels usually present self-signed certificates, so a client must
//! either trust the panel's CA or opt out of verification; a test server
//! with a fresh CA of its own lets tests prove both.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// A CA made for one server run, and the server's certificate signed by it
/// (for `localhost`, `127.0.0.1` and `::1`, plus any extra names).
pub struct Tls {
    /// The CA certificate, PEM: what a client trusts to verify the server.
    pub ca_pem: String,
    config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

impl Tls {
    /// A fresh CA and a certificate for the loopback names and `extra_names`.
    pub fn generate(extra_names: &[String]) -> Tls {
        let ca_key = rcgen::KeyPair::generate().expect("a CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Provisio test server CA");
        let ca = ca_params.self_signed(&ca_key).expect("the CA signs itself");
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
        names.extend(extra_names.iter().cloned());
        let key = rcgen::KeyPair::generate().expect("a server key");
        let leaf =
            rcgen::CertificateParams::new(names).expect("server params").signed_by(&key, &issuer).expect("signed");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone(), ca.der().clone()],
                rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .expect("the certificate matches its key");
        Tls { ca_pem: ca.pem(), config: Arc::new(config) }
    }

    /// An acceptor for servers that speak something other than HTTP over TLS.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }
}

/// A running server.
#[derive(Debug)]
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `https` or `http`.
    pub scheme: &'static str,
    /// The CA to trust (HTTPS only).
    pub ca_pem: Option<String>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// The base URL, e.g. `https://127.0.0.1:2087`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `router` on `listener` until dropped: HTTPS with `tls`, plain HTTP
/// without. Each connection runs on its own task; a client that hangs up
/// mid-request ends only its own connection.
pub fn serve(listener: TcpListener, router: Router, tls: Option<Tls>) -> Running {
    let addr = listener.local_addr().expect("a bound listener");
    let scheme = if tls.is_some() { "https" } else { "http" };
    let ca_pem = tls.as_ref().map(|t| t.ca_pem.clone());
    let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(t.config));
    let task = tokio::spawn(async move {
        loop {
            let Ok((socket, peer)) = listener.accept().await else { continue };
            let (router, acceptor) = (router.clone(), acceptor.clone());
            tokio::spawn(async move {
                match acceptor {
                    Some(acceptor) => {
                        let handshake =
                            tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(socket));
                        if let Ok(Ok(stream)) = handshake.await {
                            connection(TokioIo::new(stream), peer, router).await;
                        }
                    }
                    None => connection(TokioIo::new(socket), peer, router).await,
                }
            });
        }
    });
    Running { addr, scheme, ca_pem, task }
}

async fn connection<I>(io: I, peer: SocketAddr, router: Router)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
        let router = router.clone();
        async move { router.oneshot(request.map(Body::new)).await }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(std::time::Duration::from_secs(10))
        .serve_connection(io, service)
        .await;
}

/// A random credential: `len` letters and digits.
pub fn random_secret(len: usize) -> String {
    std::iter::repeat_with(fastrand::alphanumeric).take(len).collect()
}

/// Random decimal digits (session ids, security tokens).
pub fn random_digits(len: usize) -> String {
    std::iter::repeat_with(|| fastrand::digit(10)).take(len).collect()
}

/// How a hostile or broken server answers every request (for the abuse
/// tests of the providers that call panels).
#[derive(Debug, Clone)]
pub enum Hostile {
    /// 20 MiB of a JSON string, then the end.
    Huge,
    /// A body that never ends, a byte at a time.
    Endless,
    /// A 302 to another host (a credential must not follow it).
    Redirect(String),
    /// This status and body, as `text/html`.
    Page(u16, String),
    /// This body, as `text/xml`.
    Xml(String),
}

/// A router answering every request as `hostile` says.
pub fn hostile_router(hostile: Hostile) -> Router {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    let answer = move || {
        let hostile = hostile.clone();
        async move {
            match hostile {
                Hostile::Huge => {
                    let mut body = String::with_capacity(20 * 1024 * 1024 + 2);
                    body.push('"');
                    body.extend(std::iter::repeat_n('x', 20 * 1024 * 1024));
                    body.push('"');
                    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
                }
                Hostile::Endless => {
                    let stream = futures_stream();
                    Body::from_stream(stream).into_response()
                }
                Hostile::Redirect(to) => (StatusCode::FOUND, [(header::LOCATION, to)]).into_response(),
                Hostile::Page(status, body) => (
                    StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                    [(header::CONTENT_TYPE, "text/html")],
                    body,
                )
                    .into_response(),
                Hostile::Xml(body) => ([(header::CONTENT_TYPE, "text/xml")], body).into_response(),
            }
        }
    };
    Router::new().fallback(answer)
}

/// One byte every 50 ms, for ever.
fn futures_stream() -> impl futures::Stream<Item = Result<axum::body::Bytes, std::io::Error>> + Send {
    let mut interval = tokio::time::interval(std::time::Duration::from_millis(50));
    futures::stream::poll_fn(move |cx| interval.poll_tick(cx).map(|_| Some(Ok(axum::body::Bytes::from_static(b" ")))))
}

/// Every place where the XML answer `ours` departs from a vendor's
/// published `sample`: an element of the sample missing, out of order, or
/// text where the sample has a number. Ours may have more. Both must parse.
/// (What the test servers' checks against published examples share.)
pub fn xml_differences(sample: &str, ours: &str) -> Result<Vec<String>, String> {
    let sample = roxmltree::Document::parse(sample).map_err(|e| format!("the sample does not parse: {e}"))?;
    let ours = roxmltree::Document::parse(ours).map_err(|e| format!("our answer does not parse: {e}"))?;
    let mut out = Vec::new();
    let root = sample.root_element();
    xml_walk(root, ours.root_element(), &format!("/{}", root.tag_name().name()), &mut out);
    Ok(out)
}

fn elements<'a, 'i>(node: roxmltree::Node<'a, 'i>) -> Vec<roxmltree::Node<'a, 'i>> {
    node.children().filter(roxmltree::Node::is_element).collect()
}

fn xml_walk(sample: roxmltree::Node<'_, '_>, ours: roxmltree::Node<'_, '_>, path: &str, out: &mut Vec<String>) {
    let theirs = elements(ours);
    let mut cursor = 0;
    let mut seen: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for expected in elements(sample) {
        let name = expected.tag_name().name();
        let nth = seen.entry(name.to_owned()).or_default();
        let here = format!("{path}/{name}[{nth}]");
        let found = theirs.iter().enumerate().filter(|(_, n)| n.tag_name().name() == name).nth(*nth);
        *nth += 1;
        let Some((position, node)) = found else {
            out.push(format!("{here} is missing"));
            continue;
        };
        if position < cursor {
            out.push(format!("{here} is out of order"));
        }
        cursor = position;
        let text = expected.text().unwrap_or_default().trim();
        let value = node.text().unwrap_or_default().trim();
        if elements(expected).is_empty() && text.parse::<f64>().is_ok() && value.parse::<f64>().is_err() {
            out.push(format!("{here}: the sample has the number {text}, ours {value:?}"));
        }
        xml_walk(expected, *node, &here, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_xml_comparison_sees_missing_misordered_and_mistyped_elements() {
        let compare = |sample: &str, ours: &str| xml_differences(sample, ours).unwrap();
        assert!(compare("<p><a>1</a><b/></p>", "<p><a>2</a><b/><c/></p>").is_empty());
        assert_eq!(compare("<p><a/><d/></p>", "<p><a/></p>"), ["/p/d[0] is missing"]);
        assert_eq!(compare("<p><a/><b/></p>", "<p><b/><a/></p>"), ["/p/b[0] is out of order"]);
        assert_eq!(compare("<p><a>7</a></p>", "<p><a>seven</a></p>").len(), 1);
        assert!(xml_differences("<p>", "<p/>").is_err());
    }
}
