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

const NOMINET: &str = "http://www.nominet.org.uk/epp/xml/";

fn nominet_login(id: &str, pw: &str, extensions: &[&str]) -> String {
    let ext: String = extensions.iter().map(|e| format!("<extURI>{NOMINET}{e}</extURI>")).collect();
    command(&format!(
        "<login><clID>{id}</clID><pw>{pw}</pw><options><version>1.0</version><lang>en</lang></options><svcs><objURI>urn:ietf:params:xml:ns:domain-1.0</objURI><objURI>urn:ietf:params:xml:ns:contact-1.0</objURI><objURI>urn:ietf:params:xml:ns:host-1.0</objURI><svcExtension>{ext}</svcExtension></svcs></login>"
    ))
}

const ALL: [&str; 5] =
    ["contact-nom-ext-1.0", "std-release-1.0", "std-handshake-1.0", "std-notifications-1.2", "std-warning-1.1"];

/// Nominet mode, as its documentation describes .uk: extensions offered and
/// required at login, tags and 14-character passwords, contacts with
/// contact-nom-ext (in schema order, or 2001), domains without authInfo (a
/// warning says so), no RFC transfers, releases that move at once or wait
/// for a handshake, and the notifications each side polls. Every frame in
/// and out validates against the schemas (ours for Nominet's namespaces).
#[tokio::test]
async fn nominet_mode_releases_domains_by_tag_with_handshakes_and_notifications() {
    let server = start(Options::nominet()).await;
    let (tag, pw) = server.registry.options().registrars[0].clone();
    let (other, other_pw) = server.registry.options().registrars[1].clone();
    let mut us = connect(&server).await;
    let greeting = read_frame(&mut us).await.unwrap().unwrap();
    for ext in ALL {
        assert!(greeting.contains(&format!("{NOMINET}{ext}")), "{ext} offered: {greeting}");
    }
    assert!(!greeting.contains("rgp-1.0"), ".uk has no RFC 3915 restore");
    // A password under 14 characters is refused even when it is the right one's prefix.
    assert_eq!(code(&exchange(&mut us, &nominet_login(&tag, &pw[..13], &ALL)).await), "2200");
    // Logged in without the contact extension: using it is 2103.
    assert_eq!(code(&exchange(&mut us, &nominet_login(&tag, &pw, &["std-release-1.0"])).await), "1000");
    let contact = |ext: &str| {
        command(&format!(
            "<create><contact:create xmlns:contact=\"urn:ietf:params:xml:ns:contact-1.0\"><contact:id>ANN-1</contact:id><contact:postalInfo type=\"loc\"><contact:name>Ann Lee</contact:name><contact:addr><contact:street>1 High St</contact:street><contact:city>Oxford</contact:city><contact:pc>OX1 1AA</contact:pc><contact:cc>GB</contact:cc></contact:addr></contact:postalInfo><contact:email>ann@example.com</contact:email><contact:authInfo><contact:pw>contactPw1</contact:pw></contact:authInfo></contact:create></create><extension><contact-nom-ext:create xmlns:contact-nom-ext=\"{NOMINET}contact-nom-ext-1.0\">{ext}</contact-nom-ext:create></extension>"
        ))
    };
    let ext = "<contact-nom-ext:trad-name>Lee Tea</contact-nom-ext:trad-name><contact-nom-ext:type>STRA</contact-nom-ext:type>";
    assert_eq!(code(&exchange(&mut us, &contact(ext)).await), "2103");
    exchange(&mut us, &command("<logout/>")).await;
    let mut us = connect(&server).await;
    read_frame(&mut us).await.unwrap();
    assert_eq!(code(&exchange(&mut us, &nominet_login(&tag, &pw, &ALL)).await), "1000");
    // The extension's fields in the wrong order (type before trad-name) are a syntax error.
    let swapped = "<contact-nom-ext:type>STRA</contact-nom-ext:type><contact-nom-ext:trad-name>Lee Tea</contact-nom-ext:trad-name>";
    assert_eq!(code(&exchange(&mut us, &contact(swapped)).await), "2001");
    assert_eq!(code(&exchange(&mut us, &contact(ext)).await), "1000");
    assert_eq!(server.registry.contact_type("ANN-1"), Some((Some("STRA".into()), Some("Lee Tea".into()))));
    let info = exchange(&mut us, &command("<info><contact:info xmlns:contact=\"urn:ietf:params:xml:ns:contact-1.0\"><contact:id>ANN-1</contact:id></contact:info></info>")).await;
    assert!(info.contains("<contact-nom-ext:type>STRA</contact-nom-ext:type>"), "{info}");
    // A domain without a period is registered for two years; its authInfo is ignored, with a warning.
    let create = |name: &str| {
        command(&format!(
            "<create><domain:create xmlns:domain=\"urn:ietf:params:xml:ns:domain-1.0\"><domain:name>{name}</domain:name><domain:registrant>ANN-1</domain:registrant><domain:authInfo><domain:pw>ignored-pw</domain:pw></domain:authInfo></domain:create></create>"
        ))
    };
    let made = exchange(&mut us, &create("lee-tea.co.uk")).await;
    assert_eq!(code(&made), "1000", "{made}");
    assert!(made.contains("ignored-field") && made.contains("domain:authInfo"), "{made}");
    let (_, expires) = server.registry.domain("lee-tea.co.uk").unwrap();
    assert!(expires > chrono::Utc::now() + chrono::Duration::days(700), "two years by default");
    assert_eq!(server.registry.auth_info("lee-tea.co.uk").as_deref(), Some(""));
    // No RFC transfers in .uk.
    let transfer = "<transfer op=\"request\"><domain:transfer xmlns:domain=\"urn:ietf:params:xml:ns:domain-1.0\"><domain:name>lee-tea.co.uk</domain:name><domain:authInfo><domain:pw>x</domain:pw></domain:authInfo></domain:transfer></transfer>";
    assert_eq!(code(&exchange(&mut us, &command(transfer)).await), "2101");
    // An empty authInfo opens nothing to another tag.
    let mut them = connect(&server).await;
    read_frame(&mut them).await.unwrap();
    assert_eq!(code(&exchange(&mut them, &nominet_login(&format!("#{}", "XX"), &other_pw, &ALL)).await), "2200");
    assert_eq!(code(&exchange(&mut them, &nominet_login(&other, &other_pw, &ALL)).await), "1000");
    let peek = exchange(&mut them, &command("<info><domain:info xmlns:domain=\"urn:ietf:params:xml:ns:domain-1.0\"><domain:name>lee-tea.co.uk</domain:name><domain:authInfo><domain:pw></domain:pw></domain:authInfo></domain:info></info>")).await;
    assert!(!peek.contains("ANN-1"), "no registrant without the sponsor's rights: {peek}");

    // Releases: a tag that is not ours, or our own, or an unknown domain are refused.
    let release = |name: &str, to: &str| {
        command(&format!(
            "<update><r:release xmlns:r=\"{NOMINET}std-release-1.0\"><r:domainName>{name}</r:domainName><r:registrarTag>{to}</r:registrarTag></r:release></update>"
        ))
    };
    assert_eq!(code(&exchange(&mut them, &release("lee-tea.co.uk", &other)).await), "2004");
    assert_eq!(code(&exchange(&mut them, &release("lee-tea.co.uk", &tag)).await), "2201", "not theirs to release");
    assert_eq!(code(&exchange(&mut us, &release("nobody.co.uk", &other)).await), "2303");
    // To a tag that handshakes: 1001, a case for them, nothing moves yet.
    server.registry.set_handshake(&other, true);
    let pending = exchange(&mut us, &release("lee-tea.co.uk", &other)).await;
    assert_eq!(code(&pending), "1001", "{pending}");
    assert!(pending.contains("releasePending"), "{pending}");
    let offered = exchange(&mut them, &command("<poll op=\"req\"/>")).await;
    assert!(offered.contains("Registrar Change Authorisation Request") && offered.contains("<n:caseId>"), "{offered}");
    let case = offered.split("<n:caseId>").nth(1).unwrap().split('<').next().unwrap().to_owned();
    assert_eq!(server.registry.domain("lee-tea.co.uk").unwrap().0, tag, "still ours until they answer");
    // Only the receiver may answer; they reject: the releaser is told, without `moved`.
    let answer = |verb: &str| {
        command(&format!(
            "<update><h:{verb} xmlns:h=\"{NOMINET}std-handshake-1.0\"><h:caseId>{case}</h:caseId></h:{verb}></update>"
        ))
    };
    assert_eq!(code(&exchange(&mut us, &answer("accept")).await), "2201");
    let rejected = exchange(&mut them, &answer("reject")).await;
    assert!(rejected.contains("<h:hanData"), "{rejected}");
    let told = exchange(&mut us, &command("<poll op=\"req\"/>")).await;
    assert!(told.contains("Handshake Rejected") && told.contains("relData") && !told.contains("moved="), "{told}");
    // Without the handshake the domain moves at once: rcData with its data
    // to them, relData moved="Y" to us.
    server.registry.set_handshake(&other, false);
    assert_eq!(code(&exchange(&mut us, &release("lee-tea.co.uk", &other)).await), "1000");
    assert_eq!(server.registry.domain("lee-tea.co.uk").unwrap().0, other);
    let ack = |id: &str| command(&format!("<poll op=\"ack\" msgID=\"{id}\"/>"));
    let id = told.split("<msgQ count=\"").nth(1).unwrap().split("id=\"").nth(1).unwrap().split('"').next().unwrap();
    assert_eq!(code(&exchange(&mut us, &ack(id)).await), "1000");
    let gone = exchange(&mut us, &command("<poll op=\"req\"/>")).await;
    assert!(gone.contains("Domains Released Notification") && gone.contains("moved=\"Y\""), "{gone}");
    let _ = exchange(&mut them, &command("<poll op=\"ack\" msgID=\"0\"/>")).await;
    // The registry cancels a domain: its sponsor hears of it.
    assert!(server.registry.cancel_domain("lee-tea.co.uk"));
    assert!(server.registry.queued(&other) >= 2);
    assert_eq!(
        server.registry.invalid_commands(),
        1,
        "only the swapped extension: {:?}",
        server.registry.last_invalid()
    );
    assert_eq!(server.registry.invalid_answers(), 0, "{:?}", server.registry.last_invalid());
}
