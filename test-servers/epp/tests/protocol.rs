//! The test registry as RFC 5730 and 5734 describe a server: a greeting on
//! connect, 2002 before login, 2001 for a frame the schemas refuse (and
//! nothing changes), 2502 past the session limit, 1500 on logout, and a
//! frame that claims too much closes the connection.

use std::sync::Arc;

use provisio_epp_test_server::{Options, Registry, read_frame, write_frame};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

const EPP: &str = "urn:ietf:params:xml:ns:epp-1.0";

struct Server {
    registry: Registry,
    port: u16,
    ca: String,
    _task: tokio::task::JoinHandle<()>,
}

async fn start(options: Options) -> Server {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let registry = Registry::new(options);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tls = provisio_test_server_kit::Tls::generate(&[]);
    let task = registry.serve(listener, &tls);
    Server { registry, port, ca: tls.ca_pem.clone(), _task: task }
}

async fn connect(server: &Server) -> TlsStream<TcpStream> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls_pki_types::CertificateDer::from_pem_slice(server.ca.as_bytes()).unwrap()).unwrap();
    let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
    connector.connect(rustls_pki_types::ServerName::try_from("localhost").unwrap(), tcp).await.unwrap()
}

async fn exchange(stream: &mut TlsStream<TcpStream>, xml: &str) -> String {
    write_frame(stream, xml).await.unwrap();
    read_frame(stream).await.unwrap().expect("an answer")
}

fn code(answer: &str) -> &str {
    answer.split("result code=\"").nth(1).map(|r| &r[..4]).unwrap_or("none")
}

fn command(inner: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><epp xmlns=\"{EPP}\"><command>{inner}<clTRID>t-1</clTRID></command></epp>"
    )
}

fn login(id: &str, pw: &str) -> String {
    command(&format!(
        "<login><clID>{id}</clID><pw>{pw}</pw><options><version>1.0</version><lang>en</lang></options><svcs><objURI>urn:ietf:params:xml:ns:domain-1.0</objURI></svcs></login>"
    ))
}

const CHECK: &str = "<check><domain:check xmlns:domain=\"urn:ietf:params:xml:ns:domain-1.0\"><domain:name>example.com</domain:name></domain:check></check>";

#[tokio::test]
async fn a_session_follows_the_rfc_and_invalid_frames_change_nothing() {
    let server = start(Options { max_sessions: 1, ..Options::default() }).await;
    let (id, pw) = server.registry.options().registrars[0].clone();
    let mut stream = connect(&server).await;
    let greeting = read_frame(&mut stream).await.unwrap().unwrap();
    assert!(greeting.contains("<greeting>") && greeting.contains("urn:ietf:params:xml:ns:domain-1.0"), "{greeting}");
    // Before login only login (and hello) are allowed.
    assert_eq!(code(&exchange(&mut stream, &command(CHECK)).await), "2002");
    assert!(exchange(&mut stream, &format!("<epp xmlns=\"{EPP}\"><hello/></epp>")).await.contains("<greeting>"));
    assert_eq!(code(&exchange(&mut stream, &login(&id, "wrong-pass")).await), "2200");
    assert_eq!(code(&exchange(&mut stream, &login(&id, &pw)).await), "1000");
    // A frame the schemas refuse: a domain create without its authInfo, and plain nonsense.
    let invalid = "<create><domain:create xmlns:domain=\"urn:ietf:params:xml:ns:domain-1.0\"><domain:name>sneaky.com</domain:name><domain:registrant>abc</domain:registrant></domain:create></create>";
    assert_eq!(code(&exchange(&mut stream, &command(invalid)).await), "2001");
    assert_eq!(code(&exchange(&mut stream, "<epp><nonsense/></epp>").await), "2001");
    assert_eq!(code(&exchange(&mut stream, "not xml at all").await), "2001");
    assert_eq!(server.registry.invalid_commands(), 3);
    assert!(server.registry.domain("sneaky.com").is_none(), "nothing was made");
    // A second session past the limit of one: 2502, and the server closes it.
    let mut second = connect(&server).await;
    read_frame(&mut second).await.unwrap();
    assert_eq!(code(&exchange(&mut second, &login(&id, &pw)).await), "2502");
    assert!(read_frame(&mut second).await.map(|f| f.is_none()).unwrap_or(true), "closed after 2502");
    assert_eq!(code(&exchange(&mut stream, &command("<logout/>")).await), "1500");
    assert!(read_frame(&mut stream).await.map(|f| f.is_none()).unwrap_or(true), "closed after logout");
    assert_eq!(server.registry.invalid_answers(), 0, "{:?}", server.registry.last_invalid());
}

#[tokio::test]
async fn a_frame_claiming_too_much_closes_the_connection() {
    use tokio::io::AsyncWriteExt;
    let server = start(Options::default()).await;
    let mut stream = connect(&server).await;
    read_frame(&mut stream).await.unwrap();
    stream.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    let answer = tokio::time::timeout(std::time::Duration::from_secs(5), read_frame(&mut stream)).await.unwrap();
    assert!(matches!(answer, Ok(None) | Err(_)), "{answer:?}");
}

#[test]
fn the_binary_runs_on_its_own_and_prints_where_and_how() {
    use std::io::{BufRead, BufReader};
    let dir = std::env::temp_dir().join(format!("epp-test-server-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_provisio-epp-test-server"))
        .args(["--listen", "127.0.0.1:0", "--registrar", "tester:Secret-123", "--ca-out"])
        .arg(dir.join("ca.pem"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines: Vec<String> = BufReader::new(child.stdout.take().unwrap()).lines().take(5).map(Result::unwrap).collect();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(lines[0], "EPP_HOST=127.0.0.1", "{lines:?}");
    assert!(lines[1].starts_with("EPP_PORT="), "{lines:?}");
    assert_eq!(&lines[2..4], ["EPP_CLID=tester", "EPP_PW=Secret-123"]);
    assert!(std::fs::read_to_string(dir.join("ca.pem")).unwrap().starts_with("-----BEGIN CERTIFICATE-----"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn an_invalid_but_well_formed_command_still_gets_its_cltrid_back() {
    let server = start(Options::default()).await;
    let (id, pw) = server.registry.options().registrars[0].clone();
    let mut stream = connect(&server).await;
    read_frame(&mut stream).await.unwrap();
    assert_eq!(code(&exchange(&mut stream, &login(&id, &pw)).await), "1000");
    let bogus =
        "<info><domain:info xmlns:domain=\"urn:ietf:params:xml:ns:domain-1.0\"><domain:bogus/></domain:info></info>";
    let answer = exchange(&mut stream, &command(bogus)).await;
    assert_eq!(code(&answer), "2001");
    assert!(answer.contains("<clTRID>t-1</clTRID>"), "{answer}");
    // A verb the protocol does not know is 2000 (RFC 5730 §3).
    assert_eq!(code(&exchange(&mut stream, &command("<launch/>")).await), "2000");
}
