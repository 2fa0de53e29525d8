//! An EPP test registry: RFC 5730 (the protocol), 5731 (domains), 5732
//! (hosts), 5733 (contacts) over RFC 5734's transport (TLS, each frame led by
//! a 4-byte big-endian length that counts itself, a greeting on connect).
//!
//! Every frame it receives and every frame it sends is validated against
//! the IETF XML Schemas ([`schema`]); an invalid command is answered 2001 and
//! changes nothing, and an invalid answer is counted ([`Registry::invalid_answers`])
//! so tests can insist there are none.
//!
//! It keeps registrars (clID and password, a session limit each), domains
//! with their contacts, name servers, statuses, authInfo and expiry, hosts,
//! contacts, the transfer state machine (request, query, approve, reject,
//! cancel, approval by the server after a delay) and a poll queue per
//! registrar. It can be made slow, or to drop the connection after doing a
//! command but before answering it (the answer is lost, the change is not).
//!
//! With [`Options::nominet`] it behaves as Nominet's .uk registry ([`nominet`]):
//! tags as clIDs, its extensions in the greeting, release and handshake
//! instead of RFC transfers, and its notifications by poll.

mod nominet;
pub mod schema;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Datelike, Months, SecondsFormat, Utc};
use roxmltree::Node;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

pub use schema::Validator;

const EPP: &str = "urn:ietf:params:xml:ns:epp-1.0";
const DOMAIN: &str = "urn:ietf:params:xml:ns:domain-1.0";
const CONTACT: &str = "urn:ietf:params:xml:ns:contact-1.0";
const HOST: &str = "urn:ietf:params:xml:ns:host-1.0";
const SEC_DNS: &str = "urn:ietf:params:xml:ns:secDNS-1.1";
const RGP: &str = "urn:ietf:params:xml:ns:rgp-1.0";
use nominet::{CONTACT_NOM_EXT, HANDSHAKE, RELEASE};
/// The largest frame read (a frame claiming more closes the connection).
pub const MAX_FRAME: usize = 1024 * 1024;

/// How a registry starts.
#[derive(Debug, Clone)]
pub struct Options {
    /// Registrars: clID and password.
    pub registrars: Vec<(String, String)>,
    /// Sessions one registrar may hold at once (more: 2502, closed).
    pub max_sessions: usize,
    /// How long a transfer waits for the losing registrar before the
    /// registry approves it.
    pub transfer_after: Duration,
    /// How long each command takes to answer.
    pub command_delay: Duration,
    /// The server's name in its greeting.
    pub name: String,
    /// Behave as Nominet's .uk registry (see [`nominet`]).
    pub nominet: bool,
    /// Nominet mode: tags that answer a release to them by handshake
    /// (Nominet's "Always handshake" option); the others accept at once.
    pub handshake_tags: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            registrars: vec![
                ("provisio".into(), provisio_test_server_kit::random_secret(16)),
                ("other-registrar".into(), provisio_test_server_kit::random_secret(16)),
            ],
            max_sessions: 4,
            transfer_after: Duration::from_secs(5),
            command_delay: Duration::ZERO,
            name: "Provisio EPP test registry".into(),
            nominet: false,
            handshake_tags: Vec::new(),
        }
    }
}

impl Options {
    /// A Nominet .uk registry with two tags whose passwords are 16
    /// characters (Nominet asks for at least 14).
    pub fn nominet() -> Options {
        Options {
            registrars: vec![
                ("PROVISIO-TAG".into(), provisio_test_server_kit::random_secret(16)),
                ("OTHER-TAG".into(), provisio_test_server_kit::random_secret(16)),
            ],
            name: "Provisio EPP test registry (Nominet .uk)".into(),
            nominet: true,
            ..Options::default()
        }
    }
}

#[derive(Debug, Clone)]
struct Transfer {
    status: &'static str,
    gaining: String,
    requested: DateTime<Utc>,
    losing: String,
    act_date: DateTime<Utc>,
    years: u32,
}

#[derive(Debug, Clone)]
struct Domain {
    name: String,
    roid: String,
    registrant: String,
    contacts: Vec<(String, String)>,
    ns: Vec<String>,
    statuses: BTreeSet<String>,
    sponsor: String,
    creator: String,
    created: DateTime<Utc>,
    updated: Option<DateTime<Utc>>,
    expires: DateTime<Utc>,
    transferred: Option<DateTime<Utc>>,
    auth: String,
    transfer: Option<Transfer>,
    ds: Vec<String>,
}

#[derive(Debug, Clone, Default)]
struct Contact {
    id: String,
    roid: String,
    name: String,
    org: String,
    street: Vec<String>,
    city: String,
    sp: String,
    pc: String,
    cc: String,
    voice: String,
    email: String,
    auth: String,
    sponsor: String,
    created: Option<DateTime<Utc>>,
    /// Nominet's contact-nom-ext fields.
    nominet: nominet::ContactExt,
}

#[derive(Debug, Clone)]
struct Host {
    name: String,
    roid: String,
    addrs: Vec<(String, String)>,
    sponsor: String,
    created: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct Message {
    id: u64,
    date: DateTime<Utc>,
    text: String,
    res_data: String,
}

#[derive(Debug, Default)]
struct State {
    next: u64,
    domains: BTreeMap<String, Domain>,
    contacts: BTreeMap<String, Contact>,
    hosts: BTreeMap<String, Host>,
    polls: BTreeMap<String, VecDeque<Message>>,
    sessions: BTreeMap<String, usize>,
    /// Commands (by verb: `renew`, `create`, `poll:ack`...) whose next answer is dropped.
    drop_next: Vec<String>,
    /// Commands refused with 2400 (nothing done) while listed.
    failing: BTreeSet<String>,
    /// Nominet: open handshake cases, by case id.
    cases: BTreeMap<String, nominet::Case>,
    /// Nominet: tags that answer releases to them by handshake.
    handshake: BTreeSet<String>,
}

impl State {
    fn id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }
    fn roid(&mut self, suffix: &str) -> String {
        format!("{}-{suffix}", self.id())
    }
}

/// A registry: state, options, and the schema validator.
#[derive(Debug, Clone)]
pub struct Registry {
    options: Arc<Options>,
    state: Arc<Mutex<State>>,
    validator: Validator,
    invalid_commands: Arc<AtomicU64>,
    invalid_answers: Arc<AtomicU64>,
    last_invalid: Arc<Mutex<Option<String>>>,
    delay: Arc<Mutex<Duration>>,
    transactions: Arc<AtomicU64>,
}

/// A logged-in session: whose, and the extensions it declared.
#[derive(Debug, Clone)]
struct Login {
    registrar: String,
    extensions: Vec<String>,
}

/// The answer to one frame, and whether the session ends after it.
struct Answer {
    xml: String,
    close: bool,
    verb: String,
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn esc(text: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(text)
}

/// The RFC 5730 text of each result code.
fn message(code: u16) -> &'static str {
    match code {
        1000 => "Command completed successfully",
        1001 => "Command completed successfully; action pending",
        1300 => "Command completed successfully; no messages",
        1301 => "Command completed successfully; ack to dequeue",
        1500 => "Command completed successfully; ending session",
        2000 => "Unknown command",
        2001 => "Command syntax error",
        2002 => "Command use error",
        2003 => "Required parameter missing",
        2004 => "Parameter value range error",
        2005 => "Parameter value syntax error",
        2100 => "Unimplemented protocol version",
        2101 => "Unimplemented command",
        2102 => "Unimplemented option",
        2103 => "Unimplemented extension",
        2104 => "Billing failure",
        2105 => "Object is not eligible for renewal",
        2106 => "Object is not eligible for transfer",
        2200 => "Authentication error",
        2201 => "Authorization error",
        2202 => "Invalid authorization information",
        2300 => "Object pending transfer",
        2301 => "Object not pending transfer",
        2302 => "Object exists",
        2303 => "Object does not exist",
        2304 => "Object status prohibits operation",
        2305 => "Object association prohibits operation",
        2306 => "Parameter value policy error",
        2307 => "Unimplemented object service",
        2308 => "Data management policy violation",
        2400 => "Command failed",
        2500 => "Command failed; server closing connection",
        2501 => "Authentication error; server closing connection",
        2502 => "Session limit exceeded; server closing connection",
        _ => "Command failed",
    }
}

fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|c| c.is_element() && c.tag_name().name() == name)
}

fn children<'a, 'i>(node: Node<'a, 'i>, name: &'a str) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    node.children().filter(move |c| c.is_element() && c.tag_name().name() == name)
}

fn text(node: Node<'_, '_>, name: &str) -> Option<String> {
    child(node, name).map(|c| c.text().unwrap_or_default().trim().to_owned())
}

/// The code for a frame the schemas refuse: 2000 when its command's verb
/// is not one the protocol defines, 2001 (syntax error) otherwise (RFC 5730 §3).
fn refusal_code(frame: &str) -> u16 {
    const VERBS: [&str; 10] =
        ["login", "logout", "check", "info", "create", "delete", "renew", "transfer", "update", "poll"];
    let unknown = roxmltree::Document::parse(frame).ok().is_some_and(|d| {
        d.descendants()
            .find(|n| n.has_tag_name("command"))
            .and_then(|c| c.children().find(|n| n.is_element() && !n.has_tag_name("clTRID")))
            .is_some_and(|verb| !VERBS.contains(&verb.tag_name().name()))
    });
    if unknown { 2000 } else { 2001 }
}

/// A failed command: its code (and the reason, for the answer's `msg`).
struct Refused(u16);

type Outcome = Result<(u16, Option<String>), Refused>;

impl Registry {
    /// A registry; the validator starts with it.
    pub fn new(options: Options) -> Registry {
        let delay = options.command_delay;
        let registry = Registry {
            options: Arc::new(options),
            state: Arc::default(),
            validator: Validator::start(),
            invalid_commands: Arc::default(),
            invalid_answers: Arc::default(),
            last_invalid: Arc::default(),
            delay: Arc::new(Mutex::new(delay)),
            transactions: Arc::default(),
        };
        registry.state.lock().expect("lock").handshake =
            registry.options.handshake_tags.iter().map(|t| nominet::client_id(t)).collect();
        registry
    }

    /// The options (credentials included).
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Commands refused as invalid against the schemas.
    pub fn invalid_commands(&self) -> u64 {
        self.invalid_commands.load(Ordering::Relaxed)
    }

    /// Answers of ours that broke the schemas (a bug here; tests want 0).
    pub fn invalid_answers(&self) -> u64 {
        self.invalid_answers.load(Ordering::Relaxed)
    }

    /// What the validator said of the last invalid frame.
    pub fn last_invalid(&self) -> Option<String> {
        self.last_invalid.lock().expect("lock").clone()
    }

    /// Makes every command take `delay` to answer (after it took effect).
    pub fn set_command_delay(&self, delay: Duration) {
        *self.delay.lock().expect("lock") = delay;
    }

    /// The next command `verb` (`renew`, `create`, `transfer`...) takes
    /// effect, then its connection drops without an answer.
    pub fn drop_answer_to(&self, verb: &str) {
        self.state.lock().expect("lock").drop_next.push(verb.to_owned());
    }

    /// Commands `verb` (`poll:ack`, `renew`...) fail with 2400, doing
    /// nothing, until [`Registry::stop_failing`].
    pub fn fail(&self, verb: &str) {
        self.state.lock().expect("lock").failing.insert(verb.to_owned());
    }

    /// Commands `verb` work again.
    pub fn stop_failing(&self, verb: &str) {
        self.state.lock().expect("lock").failing.remove(verb);
    }

    /// A domain's sponsor and expiry, if it exists.
    pub fn domain(&self, name: &str) -> Option<(String, DateTime<Utc>)> {
        let state = self.state.lock().expect("lock");
        state.domains.get(name).map(|d| (d.sponsor.clone(), d.expires))
    }

    /// A domain's name servers, registrant id and statuses.
    pub fn domain_details(&self, name: &str) -> Option<(Vec<String>, String, Vec<String>)> {
        let state = self.state.lock().expect("lock");
        state.domains.get(name).map(|d| (d.ns.clone(), d.registrant.clone(), d.statuses.iter().cloned().collect()))
    }

    /// A domain's authInfo password.
    pub fn auth_info(&self, name: &str) -> Option<String> {
        self.state.lock().expect("lock").domains.get(name).map(|d| d.auth.clone())
    }

    /// A contact's email.
    pub fn contact_email(&self, id: &str) -> Option<String> {
        self.state.lock().expect("lock").contacts.get(id).map(|c| c.email.clone())
    }

    /// Messages waiting for `registrar`.
    pub fn queued(&self, registrar: &str) -> usize {
        self.state.lock().expect("lock").polls.get(registrar).map_or(0, VecDeque::len)
    }

    /// Sessions open per registrar.
    pub fn sessions(&self, registrar: &str) -> usize {
        self.state.lock().expect("lock").sessions.get(registrar).copied().unwrap_or(0)
    }

    /// Registers `name` for `registrar` directly (another registrar's
    /// customer, made outside the protocol), with `auth` as its authInfo.
    pub fn add_domain(&self, registrar: &str, name: &str, auth: &str) {
        let mut state = self.state.lock().expect("lock");
        let roid = state.roid("DOM");
        let contact_roid = state.roid("CON");
        let contact = format!("cid{}", state.id());
        state.contacts.insert(
            contact.clone(),
            Contact {
                id: contact.clone(),
                roid: contact_roid,
                name: "Someone Else".into(),
                city: "Leeds".into(),
                cc: "GB".into(),
                email: "someone@example.net".into(),
                auth: "contact-auth".into(),
                sponsor: registrar.into(),
                created: Some(now()),
                ..Contact::default()
            },
        );
        let created = now();
        state.domains.insert(
            name.to_owned(),
            Domain {
                name: name.to_owned(),
                roid,
                registrant: contact,
                contacts: Vec::new(),
                ns: Vec::new(),
                statuses: BTreeSet::new(),
                sponsor: registrar.to_owned(),
                creator: registrar.to_owned(),
                created,
                updated: None,
                expires: created.checked_add_months(Months::new(12)).unwrap_or(created),
                transferred: None,
                auth: auth.to_owned(),
                transfer: None,
                ds: Vec::new(),
            },
        );
    }

    /// Another registrar asks to take `name` away (with its authInfo):
    /// the sponsor is told by poll, and the registry approves it after
    /// `transfer_after` unless the sponsor rejects it.
    pub fn request_transfer_away(&self, name: &str, gaining: &str) -> bool {
        let mut state = self.state.lock().expect("lock");
        let Some(domain) = state.domains.get(name).cloned() else { return false };
        let at = now();
        let transfer = Transfer {
            status: "pending",
            gaining: gaining.to_owned(),
            requested: at,
            losing: domain.sponsor.clone(),
            act_date: at + chrono::Duration::from_std(self.options.transfer_after).unwrap_or_default(),
            years: 1,
        };
        let data = trn_data(&domain, &transfer);
        state.domains.get_mut(name).expect("exists").transfer = Some(transfer);
        state.domains.get_mut(name).expect("exists").statuses.insert("pendingTransfer".into());
        push(&mut state, &domain.sponsor, "Transfer requested.", data);
        true
    }

    /// Serves on `listener` over TLS until the task is dropped.
    pub fn serve(&self, listener: TcpListener, tls: &provisio_test_server_kit::Tls) -> tokio::task::JoinHandle<()> {
        let acceptor = tls.acceptor();
        let registry = self.clone();
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else { continue };
                let (registry, acceptor) = (registry.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let handshake = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(socket)).await;
                    if let Ok(Ok(stream)) = handshake {
                        registry.session(stream).await;
                    }
                });
            }
        })
    }

    async fn session<S: AsyncRead + AsyncWrite + Unpin>(&self, mut stream: S) {
        let greeting = self.greeting();
        if self.send(&mut stream, &greeting).await.is_err() {
            return;
        }
        let mut login: Option<Login> = None;
        loop {
            let frame = match tokio::time::timeout(Duration::from_secs(600), read_frame(&mut stream)).await {
                Ok(Ok(Some(frame))) => frame,
                _ => break,
            };
            let answer = self.answer(&frame, &mut login).await;
            let drop_it = {
                let mut state = self.state.lock().expect("lock");
                let armed = state.drop_next.iter().position(|v| *v == answer.verb);
                armed.map(|at| state.drop_next.remove(at)).is_some()
            };
            if drop_it {
                break;
            }
            let delay = *self.delay.lock().expect("lock");
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if self.send(&mut stream, &answer.xml).await.is_err() || answer.close {
                break;
            }
        }
        if let Some(Login { registrar, .. }) = login {
            let mut state = self.state.lock().expect("lock");
            if let Some(count) = state.sessions.get_mut(&registrar) {
                *count = count.saturating_sub(1);
            }
        }
        let _ = stream.shutdown().await;
    }

    /// Sends a frame, after checking it against the schemas.
    async fn send<S: AsyncWrite + Unpin>(&self, stream: &mut S, xml: &str) -> std::io::Result<()> {
        if let Err(why) = self.validator.check(xml).await {
            self.invalid_answers.fetch_add(1, Ordering::Relaxed);
            *self.last_invalid.lock().expect("lock") = Some(format!("answer: {why}\n{xml}"));
        }
        write_frame(stream, xml).await
    }

    /// The extensions this registry serves.
    fn extensions(&self) -> Vec<&'static str> {
        if self.options.nominet {
            // Nominet .uk serves secDNS but not RFC 3915 (a domain in redemption is renewed).
            let mut served = vec![SEC_DNS];
            served.extend(nominet::EXTENSIONS);
            served
        } else {
            vec![SEC_DNS, RGP]
        }
    }

    fn greeting(&self) -> String {
        let extensions: String = self.extensions().iter().map(|e| format!("<extURI>{e}</extURI>")).collect();
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?><epp xmlns=\"{EPP}\"><greeting><svID>{}</svID><svDate>{}</svDate><svcMenu><version>1.0</version><lang>en</lang><objURI>{DOMAIN}</objURI><objURI>{CONTACT}</objURI><objURI>{HOST}</objURI><svcExtension>{extensions}</svcExtension></svcMenu><dcp><access><all/></access><statement><purpose><admin/><prov/></purpose><recipient><ours/><public/></recipient><retention><stated/></retention></statement></dcp></greeting></epp>",
            esc(&self.options.name),
            stamp(now())
        )
    }

    async fn answer(&self, frame: &str, login: &mut Option<Login>) -> Answer {
        if let Err(why) = self.validator.check(frame).await {
            self.invalid_commands.fetch_add(1, Ordering::Relaxed);
            *self.last_invalid.lock().expect("lock") = Some(format!("command: {why}\n{frame}"));
            // The client's clTRID is echoed when the frame is at least well-formed (RFC 5730 §2.6).
            let cl_trid = roxmltree::Document::parse(frame).ok().and_then(|d| {
                d.descendants().find(|n| n.has_tag_name("clTRID")).and_then(|n| n.text()).map(|t| t.trim().to_owned())
            });
            let code = refusal_code(frame);
            return Answer {
                xml: response(code, cl_trid.as_deref(), None, None, None, &self.sv_trid()),
                close: false,
                verb: String::new(),
            };
        }
        let Ok(document) = roxmltree::Document::parse(frame) else {
            return Answer {
                xml: response(2001, None, None, None, None, &self.sv_trid()),
                close: false,
                verb: String::new(),
            };
        };
        let epp = document.root_element();
        if child(epp, "hello").is_some() {
            return Answer { xml: self.greeting(), close: false, verb: "hello".into() };
        }
        let Some(command) = child(epp, "command") else {
            return Answer {
                xml: response(2000, None, None, None, None, &self.sv_trid()),
                close: false,
                verb: String::new(),
            };
        };
        let cl_trid = text(command, "clTRID");
        let Some(verb) = command.children().find(|c| c.is_element() && c.tag_name().name() != "clTRID") else {
            // A command without a verb is malformed (RFC 5730 §3).
            let code = 2001;
            return Answer {
                xml: response(code, cl_trid.as_deref(), None, None, None, &self.sv_trid()),
                close: false,
                verb: String::new(),
            };
        };
        let name = verb.tag_name().name();
        // Poll's two operations are told apart (`poll:req`, `poll:ack`).
        let verb_name = match verb.attribute("op") {
            Some(op) if name == "poll" => format!("poll:{op}"),
            _ => name.to_owned(),
        };
        let done = |code: u16, data: Option<String>, msg_q: Option<String>| {
            response(code, cl_trid.as_deref(), data, msg_q, None, &self.sv_trid())
        };
        match (name, login.as_ref()) {
            ("login", Some(_)) => return Answer { xml: done(2002, None, None), close: false, verb: verb_name },
            ("login", None) => {
                let (code, close) = self.login(verb, login);
                return Answer { xml: done(code, None, None), close, verb: verb_name };
            }
            (_, None) => return Answer { xml: done(2002, None, None), close: false, verb: verb_name },
            ("logout", Some(_)) => return Answer { xml: done(1500, None, None), close: true, verb: verb_name },
            _ => {}
        }
        let session = login.clone().expect("logged in");
        let registrar = session.registrar.clone();
        // An extension used must have been declared at login (Nominet asks
        // for it; RFC 5730 leaves the code open: 2103, unimplemented extension).
        let used_undeclared =
            verb.descendants().chain(child(command, "extension").into_iter().flat_map(|e| e.descendants())).any(|n| {
                n.is_element()
                    && n.tag_name().namespace().is_some_and(|ns| {
                        ![EPP, DOMAIN, CONTACT, HOST].contains(&ns) && !session.extensions.iter().any(|e| e == ns)
                    })
            });
        if used_undeclared {
            return Answer { xml: done(2103, None, None), close: false, verb: verb_name };
        }
        let mut state = self.state.lock().expect("lock");
        if state.failing.contains(&verb_name) {
            return Answer { xml: done(2400, None, None), close: false, verb: verb_name };
        }
        settle_transfers(&mut state);
        let outcome = match name {
            "poll" => {
                let (code, data, msg_q) = poll(&mut state, &registrar, verb);
                return Answer { xml: done(code, data, msg_q), close: false, verb: verb_name };
            }
            _ => self.object_command(&mut state, &session, name, verb, command),
        };
        let queued = state.polls.get(&registrar).map(VecDeque::len).unwrap_or(0);
        let msg_q = (queued > 0).then(|| {
            let first = state.polls[&registrar].front().map(|m| m.id).unwrap_or(0);
            format!("<msgQ count=\"{queued}\" id=\"{first}\"/>")
        });
        let xml = match outcome {
            Ok((code, data)) => {
                let extension = self.answer_extension(&state, &session, name, verb, code);
                response(code, cl_trid.as_deref(), data, msg_q, extension, &self.sv_trid())
            }
            Err(Refused(code)) => done(code, None, None),
        };
        Answer { xml, close: false, verb: verb_name }
    }

    fn sv_trid(&self) -> String {
        format!("PTR-{}", self.transactions.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn login(&self, verb: Node<'_, '_>, login: &mut Option<Login>) -> (u16, bool) {
        let (cl_id, pw) = (text(verb, "clID").unwrap_or_default(), text(verb, "pw").unwrap_or_default());
        if self.options.nominet {
            // A two-character tag logs in as `#XX` (the schema wants 3 or
            // more), and a password is at least 14 characters [N-cmd].
            // It is written `#XX` wherever a clID appears, as at login.
            if pw.chars().count() < 14 {
                return (2200, false);
            }
        }
        let tag = cl_id.strip_prefix('#').filter(|_| self.options.nominet).unwrap_or(&cl_id);
        if !self.options.registrars.iter().any(|(id, password)| id == tag && *password == pw) {
            return (2200, false);
        }
        if let Some(options) = child(verb, "options")
            && text(options, "version").as_deref() != Some("1.0")
        {
            return (2100, false);
        }
        if let Some(svcs) = child(verb, "svcs") {
            let offered = [DOMAIN, CONTACT, HOST];
            if children(svcs, "objURI").any(|u| !offered.contains(&u.text().unwrap_or_default().trim())) {
                return (2307, false);
            }
            let extensions = self.extensions();
            if let Some(ext) = child(svcs, "svcExtension")
                && children(ext, "extURI").any(|u| !extensions.contains(&u.text().unwrap_or_default().trim()))
            {
                return (2103, false);
            }
        }
        let declared: Vec<String> = child(verb, "svcs")
            .and_then(|svcs| child(svcs, "svcExtension"))
            .into_iter()
            .flat_map(|ext| children(ext, "extURI"))
            .map(|u| u.text().unwrap_or_default().trim().to_owned())
            .collect();
        let mut state = self.state.lock().expect("lock");
        let sessions = state.sessions.entry(cl_id.clone()).or_default();
        if *sessions >= self.options.max_sessions {
            return (2502, true);
        }
        *sessions += 1;
        *login = Some(Login { registrar: cl_id, extensions: declared });
        (1000, false)
    }

    fn object_command(
        &self,
        state: &mut State,
        session: &Login,
        verb: &str,
        node: Node<'_, '_>,
        command: Node<'_, '_>,
    ) -> Outcome {
        let registrar = session.registrar.as_str();
        let Some(object) = node.children().find(Node::is_element) else { return Err(Refused(2001)) };
        let nominet = self.options.nominet;
        match (object.tag_name().namespace(), verb) {
            // .uk moves domains by release and handshake, not RFC transfers.
            (Some(DOMAIN), "transfer") if nominet => Err(Refused(2101)),
            (Some(DOMAIN), "create") if nominet => nominet::domain_create(state, registrar, object, command),
            (Some(CONTACT), "create" | "update") if nominet => {
                nominet::contact_command(state, registrar, verb, object, command)
            }
            (Some(RELEASE), "update") if nominet => nominet::release(state, &self.options, registrar, object),
            (Some(HANDSHAKE), "update") if nominet => nominet::handshake(state, registrar, object),
            (Some(DOMAIN), "check") => Ok((1000, Some(domain_check(state, object)))),
            (Some(DOMAIN), "info") => domain_info(state, registrar, object),
            (Some(DOMAIN), "create") => domain_create(state, registrar, object, command),
            (Some(DOMAIN), "delete") => domain_delete(state, registrar, object),
            (Some(DOMAIN), "renew") => domain_renew(state, registrar, object),
            (Some(DOMAIN), "update") => domain_update(state, registrar, object, command),
            (Some(DOMAIN), "transfer") => {
                let op = node.attribute("op").unwrap_or_default().to_owned();
                domain_transfer(state, registrar, &op, object, self.options.transfer_after)
            }
            (Some(CONTACT), "check") => Ok((1000, Some(contact_check(state, object)))),
            (Some(CONTACT), "create") => contact_create(state, registrar, object),
            (Some(CONTACT), "info") => contact_info(state, registrar, object),
            (Some(CONTACT), "update") => contact_update(state, registrar, object),
            (Some(CONTACT), "delete") => contact_delete(state, registrar, object),
            (Some(HOST), "check") => Ok((1000, Some(host_check(state, object)))),
            (Some(HOST), "create") => host_create(state, registrar, object),
            (Some(HOST), "info") => host_info(state, object),
            (Some(HOST), "delete") => host_delete(state, registrar, object),
            (Some(DOMAIN | CONTACT | HOST), _) => Err(Refused(2101)),
            _ => Err(Refused(2307)),
        }
    }

    /// What an answer carries in its `<extension>`: Nominet's warning that
    /// a domain's authInfo was ignored, and a contact's contact-nom-ext data
    /// for sessions that declared it.
    fn answer_extension(
        &self,
        state: &State,
        session: &Login,
        verb: &str,
        node: Node<'_, '_>,
        code: u16,
    ) -> Option<String> {
        if !self.options.nominet || code >= 2000 {
            return None;
        }
        let object = node.children().find(Node::is_element)?;
        match (object.tag_name().namespace(), verb) {
            (Some(DOMAIN), "create") => Some(nominet::IGNORED_AUTH_INFO.to_owned()),
            (Some(CONTACT), "info") if session.extensions.iter().any(|e| e == CONTACT_NOM_EXT) => {
                let contact = state.contacts.get(&text(object, "id").unwrap_or_default())?;
                Some(nominet::contact_inf_data(&contact.nominet))
            }
            _ => None,
        }
    }
}

/// An EPP response: result, then msgQ, resData, extension and trID, in schema order.
fn response(
    code: u16,
    cl_trid: Option<&str>,
    data: Option<String>,
    msg_q: Option<String>,
    extension: Option<String>,
    sv_trid: &str,
) -> String {
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?><epp xmlns=\"{EPP}\"><response><result code=\"{code}\"><msg>{}</msg></result>",
        message(code)
    );
    if let Some(msg_q) = msg_q {
        out.push_str(&msg_q);
    }
    if let Some(data) = data {
        out.push_str(&format!("<resData>{data}</resData>"));
    }
    if let Some(extension) = extension {
        out.push_str(&format!("<extension>{extension}</extension>"));
    }
    out.push_str("<trID>");
    if let Some(cl_trid) = cl_trid {
        out.push_str(&format!("<clTRID>{}</clTRID>", esc(cl_trid)));
    }
    out.push_str(&format!("<svTRID>{sv_trid}</svTRID></trID></response></epp>"));
    out
}

fn push(state: &mut State, registrar: &str, text: &str, res_data: String) {
    let id = state.id();
    state.polls.entry(registrar.to_owned()).or_default().push_back(Message {
        id,
        date: now(),
        text: text.to_owned(),
        res_data,
    });
}

fn trn_data(domain: &Domain, transfer: &Transfer) -> String {
    format!(
        "<domain:trnData xmlns:domain=\"{DOMAIN}\"><domain:name>{}</domain:name><domain:trStatus>{}</domain:trStatus><domain:reID>{}</domain:reID><domain:reDate>{}</domain:reDate><domain:acID>{}</domain:acID><domain:acDate>{}</domain:acDate><domain:exDate>{}</domain:exDate></domain:trnData>",
        esc(&domain.name),
        transfer.status,
        esc(&transfer.gaining),
        stamp(transfer.requested),
        esc(&transfer.losing),
        stamp(transfer.act_date),
        stamp(add_years(domain.expires, transfer.years)),
    )
}

fn add_years(at: DateTime<Utc>, years: u32) -> DateTime<Utc> {
    at.checked_add_months(Months::new(12 * years)).unwrap_or(at)
}

/// Transfers whose time has come are approved by the registry.
fn settle_transfers(state: &mut State) {
    let at = now();
    let due: Vec<String> = state
        .domains
        .values()
        .filter(|d| d.transfer.as_ref().is_some_and(|t| t.status == "pending" && t.act_date <= at))
        .map(|d| d.name.clone())
        .collect();
    for name in due {
        complete_transfer(state, &name, "serverApproved");
    }
}

fn complete_transfer(state: &mut State, name: &str, how: &'static str) {
    let Some(domain) = state.domains.get_mut(name) else { return };
    let Some(mut transfer) = domain.transfer.take() else { return };
    transfer.status = how;
    transfer.act_date = now();
    domain.expires = add_years(domain.expires, transfer.years);
    domain.sponsor = transfer.gaining.clone();
    domain.transferred = Some(now());
    domain.statuses.remove("pendingTransfer");
    domain.auth = provisio_test_server_kit::random_secret(12);
    domain.transfer = Some(Transfer { years: 0, ..transfer.clone() });
    let data = trn_data(domain, &Transfer { years: 0, ..transfer.clone() });
    push(state, &transfer.gaining, "Transfer completed.", data.clone());
    push(state, &transfer.losing, "Transfer completed.", data);
}

fn poll(state: &mut State, registrar: &str, verb: Node<'_, '_>) -> (u16, Option<String>, Option<String>) {
    let queue = state.polls.entry(registrar.to_owned()).or_default();
    match verb.attribute("op") {
        Some("req") => match queue.front() {
            None => (1300, None, None),
            Some(first) => {
                let msg_q = format!(
                    "<msgQ count=\"{}\" id=\"{}\"><qDate>{}</qDate><msg>{}</msg></msgQ>",
                    queue.len(),
                    first.id,
                    stamp(first.date),
                    esc(&first.text)
                );
                (1301, Some(first.res_data.clone()), Some(msg_q))
            }
        },
        Some("ack") => {
            let id: u64 = verb.attribute("msgID").and_then(|m| m.parse().ok()).unwrap_or(0);
            let Some(position) = queue.iter().position(|m| m.id == id) else { return (2303, None, None) };
            queue.remove(position);
            let msg_q = queue.front().map(|next| format!("<msgQ count=\"{}\" id=\"{}\"/>", queue.len(), next.id));
            (1000, None, msg_q)
        }
        _ => (2005, None, None),
    }
}

/// Whether `name` is a name this registry accepts: LDH labels, two or more.
fn valid_domain(name: &str) -> bool {
    let labels: Vec<&str> = name.split('.').collect();
    labels.len() >= 2
        && name.len() <= 253
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

fn domain_check(state: &State, object: Node<'_, '_>) -> String {
    let rows: String = children(object, "name")
        .map(|n| {
            let name = n.text().unwrap_or_default().trim().to_lowercase();
            let taken = state.domains.contains_key(&name);
            let reason = if taken {
                "<domain:reason>In use</domain:reason>"
            } else if !valid_domain(&name) {
                "<domain:reason>Invalid domain name</domain:reason>"
            } else {
                ""
            };
            let avail = u8::from(!taken && valid_domain(&name));
            format!("<domain:cd><domain:name avail=\"{avail}\">{}</domain:name>{reason}</domain:cd>", esc(&name))
        })
        .collect();
    format!("<domain:chkData xmlns:domain=\"{DOMAIN}\">{rows}</domain:chkData>")
}

fn auth_of(object: Node<'_, '_>) -> Option<String> {
    child(object, "authInfo").and_then(|a| text(a, "pw"))
}

fn domain_info(state: &State, registrar: &str, object: Node<'_, '_>) -> Outcome {
    let name = text(object, "name").unwrap_or_default().to_lowercase();
    // Which hosts to show (RFC 5731 §3.1.2): delegated, subordinate, both or none.
    let hosts = child(object, "name").and_then(|n| n.attribute("hosts")).unwrap_or("all");
    let (show_delegated, show_subordinate) = match hosts {
        "del" => (true, false),
        "sub" => (false, true),
        "none" => (false, false),
        _ => (true, true),
    };
    let domain = state.domains.get(&name).ok_or(Refused(2303))?;
    // An empty authInfo (a .uk domain has none) opens nothing.
    let full =
        domain.sponsor == registrar || auth_of(object).is_some_and(|pw| !domain.auth.is_empty() && pw == domain.auth);
    Ok((1000, Some(inf_data(state, domain, registrar, full, show_delegated, show_subordinate))))
}

/// A domain's `domain:infData` as `registrar` may see it: all of it when
/// `full`, else the name, statuses and sponsor.
fn inf_data(
    state: &State,
    domain: &Domain,
    registrar: &str,
    full: bool,
    show_delegated: bool,
    show_subordinate: bool,
) -> String {
    let name = &domain.name;
    let sponsor = domain.sponsor == registrar;
    let statuses: String = if domain.statuses.is_empty() {
        "<domain:status s=\"ok\"/>".into()
    } else {
        domain.statuses.iter().map(|s| format!("<domain:status s=\"{s}\"/>")).collect()
    };
    let mut out = format!(
        "<domain:infData xmlns:domain=\"{DOMAIN}\"><domain:name>{}</domain:name><domain:roid>{}</domain:roid>{statuses}",
        esc(name),
        domain.roid
    );
    if full {
        out.push_str(&format!("<domain:registrant>{}</domain:registrant>", esc(&domain.registrant)));
        for (kind, id) in &domain.contacts {
            out.push_str(&format!("<domain:contact type=\"{kind}\">{}</domain:contact>", esc(id)));
        }
        if show_delegated && !domain.ns.is_empty() {
            let ns: String = domain.ns.iter().map(|h| format!("<domain:hostObj>{}</domain:hostObj>", esc(h))).collect();
            out.push_str(&format!("<domain:ns>{ns}</domain:ns>"));
        }
        let subordinate: Vec<&Host> = state.hosts.values().filter(|h| h.name.ends_with(&format!(".{name}"))).collect();
        for host in subordinate.into_iter().filter(|_| show_subordinate) {
            out.push_str(&format!("<domain:host>{}</domain:host>", esc(&host.name)));
        }
    }
    out.push_str(&format!("<domain:clID>{}</domain:clID>", esc(&domain.sponsor)));
    if full {
        out.push_str(&format!(
            "<domain:crID>{}</domain:crID><domain:crDate>{}</domain:crDate>",
            esc(&domain.creator),
            stamp(domain.created)
        ));
        if let Some(updated) = domain.updated {
            out.push_str(&format!("<domain:upDate>{}</domain:upDate>", stamp(updated)));
        }
        out.push_str(&format!("<domain:exDate>{}</domain:exDate>", stamp(domain.expires)));
        if let Some(transferred) = domain.transferred {
            out.push_str(&format!("<domain:trDate>{}</domain:trDate>", stamp(transferred)));
        }
        // Only the sponsor sees the authInfo (RFC 5731 §3.1.2).
        if sponsor && !domain.auth.is_empty() {
            out.push_str(&format!("<domain:authInfo><domain:pw>{}</domain:pw></domain:authInfo>", esc(&domain.auth)));
        }
    }
    out.push_str("</domain:infData>");
    out
}

fn period_years(object: Node<'_, '_>) -> Result<u32, Refused> {
    period_years_or(object, 1)
}

/// The period asked, in years; `default` when none is given.
fn period_years_or(object: Node<'_, '_>, default: u32) -> Result<u32, Refused> {
    let Some(period) = child(object, "period") else { return Ok(default) };
    let value: u32 = period.text().unwrap_or_default().trim().parse().map_err(|_| Refused(2005))?;
    let years = match period.attribute("unit") {
        Some("m") if value.is_multiple_of(12) => value / 12,
        Some("m") => return Err(Refused(2306)),
        _ => value,
    };
    if !(1..=10).contains(&years) {
        return Err(Refused(2004));
    }
    Ok(years)
}

fn domain_create(state: &mut State, registrar: &str, object: Node<'_, '_>, command: Node<'_, '_>) -> Outcome {
    domain_create_with(state, registrar, object, command, 1, true)
}

/// A domain create: `default_years` when no period is given; the authInfo
/// kept, or ignored (Nominet .uk).
fn domain_create_with(
    state: &mut State,
    registrar: &str,
    object: Node<'_, '_>,
    command: Node<'_, '_>,
    default_years: u32,
    keep_auth: bool,
) -> Outcome {
    let name = text(object, "name").unwrap_or_default().to_lowercase();
    if !valid_domain(&name) {
        return Err(Refused(2005));
    }
    if state.domains.contains_key(&name) {
        return Err(Refused(2302));
    }
    let years = period_years_or(object, default_years)?;
    let registrant = text(object, "registrant").ok_or(Refused(2003))?;
    if !state.contacts.contains_key(&registrant) {
        return Err(Refused(2303));
    }
    let contacts: Vec<(String, String)> = children(object, "contact")
        .map(|c| (c.attribute("type").unwrap_or_default().to_owned(), c.text().unwrap_or_default().trim().to_owned()))
        .collect();
    if contacts.iter().any(|(_, id)| !state.contacts.contains_key(id)) {
        return Err(Refused(2303));
    }
    let ns = nameservers(state, child(object, "ns"))?;
    let auth = auth_of(object).ok_or(Refused(2003))?;
    let auth = if keep_auth { auth } else { String::new() };
    let ds = ds_records(command);
    let roid = state.roid("DOM");
    let created = now();
    let expires = add_years(created, years);
    state.domains.insert(
        name.clone(),
        Domain {
            name: name.clone(),
            roid,
            registrant,
            contacts,
            ns,
            statuses: BTreeSet::new(),
            sponsor: registrar.to_owned(),
            creator: registrar.to_owned(),
            created,
            updated: None,
            expires,
            transferred: None,
            auth,
            transfer: None,
            ds,
        },
    );
    Ok((
        1000,
        Some(format!(
            "<domain:creData xmlns:domain=\"{DOMAIN}\"><domain:name>{}</domain:name><domain:crDate>{}</domain:crDate><domain:exDate>{}</domain:exDate></domain:creData>",
            esc(&name),
            stamp(created),
            stamp(expires)
        )),
    ))
}

/// Name servers as host objects: each must exist (RFC 5731 §2.1).
fn nameservers(state: &State, ns: Option<Node<'_, '_>>) -> Result<Vec<String>, Refused> {
    let Some(ns) = ns else { return Ok(Vec::new()) };
    let mut hosts = Vec::new();
    for host in children(ns, "hostObj") {
        let name = host.text().unwrap_or_default().trim().to_lowercase();
        if !state.hosts.contains_key(&name) {
            return Err(Refused(2303));
        }
        hosts.push(name);
    }
    for attr in children(ns, "hostAttr") {
        hosts.push(text(attr, "hostName").unwrap_or_default().to_lowercase());
    }
    Ok(hosts)
}

fn ds_records(command: Node<'_, '_>) -> Vec<String> {
    command
        .descendants()
        .filter(|n| n.is_element() && n.tag_name().namespace() == Some(SEC_DNS) && n.tag_name().name() == "dsData")
        .map(|ds| {
            ["keyTag", "alg", "digestType", "digest"]
                .iter()
                .map(|k| text(ds, k).unwrap_or_default())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn sponsored<'a>(state: &'a mut State, registrar: &str, name: &str) -> Result<&'a mut Domain, Refused> {
    let domain = state.domains.get_mut(name).ok_or(Refused(2303))?;
    if domain.sponsor != registrar {
        return Err(Refused(2201));
    }
    Ok(domain)
}

fn domain_delete(state: &mut State, registrar: &str, object: Node<'_, '_>) -> Outcome {
    let name = text(object, "name").unwrap_or_default().to_lowercase();
    let domain = sponsored(state, registrar, &name)?;
    if domain.statuses.iter().any(|s| s == "clientDeleteProhibited" || s == "serverDeleteProhibited") {
        return Err(Refused(2304));
    }
    if domain.transfer.as_ref().is_some_and(|t| t.status == "pending") {
        return Err(Refused(2304));
    }
    state.domains.remove(&name);
    Ok((1000, None))
}

fn domain_renew(state: &mut State, registrar: &str, object: Node<'_, '_>) -> Outcome {
    let name = text(object, "name").unwrap_or_default().to_lowercase();
    let years = period_years(object)?;
    let current = text(object, "curExpDate").unwrap_or_default();
    let domain = sponsored(state, registrar, &name)?;
    if domain
        .statuses
        .iter()
        .any(|s| matches!(s.as_str(), "clientRenewProhibited" | "serverRenewProhibited" | "pendingTransfer"))
    {
        return Err(Refused(2304));
    }
    // The date must be the current expiry's: a renew sent twice fails the second time.
    let expires = domain.expires;
    if current != format!("{:04}-{:02}-{:02}", expires.year(), expires.month(), expires.day()) {
        return Err(Refused(2306));
    }
    let renewed = add_years(expires, years);
    if renewed > add_years(now(), 10) {
        return Err(Refused(2306));
    }
    domain.expires = renewed;
    domain.updated = Some(now());
    Ok((
        1000,
        Some(format!(
            "<domain:renData xmlns:domain=\"{DOMAIN}\"><domain:name>{}</domain:name><domain:exDate>{}</domain:exDate></domain:renData>",
            esc(&name),
            stamp(renewed)
        )),
    ))
}

fn domain_update(state: &mut State, registrar: &str, object: Node<'_, '_>, command: Node<'_, '_>) -> Outcome {
    let name = text(object, "name").unwrap_or_default().to_lowercase();
    let add_ns = child(object, "add").map(|a| nameservers(state, child(a, "ns"))).transpose()?.unwrap_or_default();
    let rem_ns = child(object, "rem").map(|r| nameservers_named(child(r, "ns"))).unwrap_or_default();
    let chg = child(object, "chg");
    let new_registrant = chg.and_then(|c| text(c, "registrant"));
    if let Some(id) = &new_registrant
        && !state.contacts.contains_key(id)
    {
        return Err(Refused(2303));
    }
    let add_contacts: Vec<(String, String)> = child(object, "add")
        .map(|a| {
            children(a, "contact")
                .map(|c| {
                    (c.attribute("type").unwrap_or_default().to_owned(), c.text().unwrap_or_default().trim().to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    if add_contacts.iter().any(|(_, id)| !state.contacts.contains_key(id)) {
        return Err(Refused(2303));
    }
    let rem_contacts: Vec<(String, String)> = child(object, "rem")
        .map(|r| {
            children(r, "contact")
                .map(|c| {
                    (c.attribute("type").unwrap_or_default().to_owned(), c.text().unwrap_or_default().trim().to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    let statuses = |part: &str| -> Vec<String> {
        child(object, part)
            .map(|p| children(p, "status").filter_map(|s| s.attribute("s").map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let (add_status, rem_status) = (statuses("add"), statuses("rem"));
    let ds = ds_records(command);
    let domain = sponsored(state, registrar, &name)?;
    // Nothing changes during a transfer or under the server's lock; only the
    // client's own lock may be lifted while it is set (RFC 5731 §2.3).
    if domain.statuses.contains("pendingTransfer") || domain.statuses.contains("serverUpdateProhibited") {
        return Err(Refused(2304));
    }
    if domain.statuses.contains("clientUpdateProhibited") && !rem_status.iter().any(|s| s == "clientUpdateProhibited") {
        return Err(Refused(2304));
    }
    if add_status.iter().chain(&rem_status).any(|s| !s.starts_with("client")) {
        return Err(Refused(2306));
    }
    for host in &add_ns {
        if domain.ns.contains(host) {
            return Err(Refused(2302));
        }
    }
    domain.ns.retain(|h| !rem_ns.contains(h));
    domain.ns.extend(add_ns);
    domain.contacts.retain(|c| !rem_contacts.contains(c));
    domain.contacts.extend(add_contacts);
    for status in rem_status {
        domain.statuses.remove(&status);
    }
    domain.statuses.extend(add_status);
    if let Some(registrant) = new_registrant {
        domain.registrant = registrant;
    }
    if let Some(pw) = chg.and_then(auth_of) {
        domain.auth = pw;
    }
    if !ds.is_empty() {
        domain.ds = ds;
    }
    domain.updated = Some(now());
    Ok((1000, None))
}

fn nameservers_named(ns: Option<Node<'_, '_>>) -> Vec<String> {
    ns.map(|ns| {
        children(ns, "hostObj")
            .map(|h| h.text().unwrap_or_default().trim().to_lowercase())
            .chain(children(ns, "hostAttr").map(|a| text(a, "hostName").unwrap_or_default().to_lowercase()))
            .collect()
    })
    .unwrap_or_default()
}

fn domain_transfer(state: &mut State, registrar: &str, op: &str, object: Node<'_, '_>, after: Duration) -> Outcome {
    let name = text(object, "name").unwrap_or_default().to_lowercase();
    let domain = state.domains.get(&name).cloned().ok_or(Refused(2303))?;
    let pending = domain.transfer.as_ref().is_some_and(|t| t.status == "pending");
    let trn = |state: &State| {
        let d = &state.domains[&name];
        d.transfer.as_ref().map(|t| trn_data(d, t))
    };
    match op {
        "request" => {
            if domain.sponsor == registrar {
                return Err(Refused(2106));
            }
            if auth_of(object).is_none_or(|pw| pw != domain.auth) {
                return Err(Refused(2202));
            }
            if pending {
                return Err(Refused(2300));
            }
            if domain.statuses.iter().any(|s| s.ends_with("TransferProhibited")) {
                return Err(Refused(2304));
            }
            let years = period_years(object)?;
            let at = now();
            let transfer = Transfer {
                status: "pending",
                gaining: registrar.to_owned(),
                requested: at,
                losing: domain.sponsor.clone(),
                act_date: at + chrono::Duration::from_std(after).unwrap_or_default(),
                years,
            };
            let data = trn_data(&domain, &transfer);
            let stored = state.domains.get_mut(&name).expect("exists");
            stored.transfer = Some(transfer);
            stored.statuses.insert("pendingTransfer".into());
            push(state, &domain.sponsor, "Transfer requested.", data.clone());
            Ok((1001, Some(data)))
        }
        "query" => {
            let involved = domain.sponsor == registrar
                || domain.transfer.as_ref().is_some_and(|t| t.gaining == registrar)
                || auth_of(object).is_some_and(|pw| pw == domain.auth);
            if !involved {
                return Err(Refused(2201));
            }
            trn(state).map(|data| (1000, Some(data))).ok_or(Refused(2301))
        }
        "approve" | "reject" => {
            if domain.sponsor != registrar {
                return Err(Refused(2201));
            }
            if !pending {
                return Err(Refused(2301));
            }
            if op == "approve" {
                complete_transfer(state, &name, "clientApproved");
            } else {
                let stored = state.domains.get_mut(&name).expect("exists");
                let mut transfer = stored.transfer.take().expect("pending");
                transfer.status = "clientRejected";
                transfer.act_date = now();
                stored.statuses.remove("pendingTransfer");
                let data = trn_data(stored, &transfer);
                stored.transfer = Some(transfer.clone());
                push(state, &transfer.gaining, "Transfer rejected.", data);
            }
            Ok((1000, trn(state)))
        }
        "cancel" => {
            if !domain.transfer.as_ref().is_some_and(|t| t.gaining == registrar && t.status == "pending") {
                return Err(Refused(2301));
            }
            let stored = state.domains.get_mut(&name).expect("exists");
            if let Some(transfer) = stored.transfer.as_mut() {
                transfer.status = "clientCancelled";
            }
            stored.statuses.remove("pendingTransfer");
            Ok((1000, trn(state)))
        }
        _ => Err(Refused(2005)),
    }
}

fn contact_check(state: &State, object: Node<'_, '_>) -> String {
    let rows: String = children(object, "id")
        .map(|n| {
            let id = n.text().unwrap_or_default().trim().to_owned();
            let taken = state.contacts.contains_key(&id);
            let reason = if taken { "<contact:reason>In use</contact:reason>" } else { "" };
            format!(
                "<contact:cd><contact:id avail=\"{}\">{}</contact:id>{reason}</contact:cd>",
                u8::from(!taken),
                esc(&id)
            )
        })
        .collect();
    format!("<contact:chkData xmlns:contact=\"{CONTACT}\">{rows}</contact:chkData>")
}

fn read_postal(contact: &mut Contact, object: Node<'_, '_>) {
    if let Some(postal) = child(object, "postalInfo") {
        if let Some(name) = text(postal, "name") {
            contact.name = name;
        }
        contact.org = text(postal, "org").unwrap_or_default();
        if let Some(addr) = child(postal, "addr") {
            contact.street = children(addr, "street").map(|s| s.text().unwrap_or_default().trim().to_owned()).collect();
            contact.city = text(addr, "city").unwrap_or_default();
            contact.sp = text(addr, "sp").unwrap_or_default();
            contact.pc = text(addr, "pc").unwrap_or_default();
            contact.cc = text(addr, "cc").unwrap_or_default();
        }
    }
    if let Some(voice) = text(object, "voice") {
        contact.voice = voice;
    }
    if let Some(email) = text(object, "email") {
        contact.email = email;
    }
}

fn contact_create(state: &mut State, registrar: &str, object: Node<'_, '_>) -> Outcome {
    let id = text(object, "id").unwrap_or_default();
    if state.contacts.contains_key(&id) {
        return Err(Refused(2302));
    }
    let mut contact =
        Contact { id: id.clone(), sponsor: registrar.to_owned(), created: Some(now()), ..Contact::default() };
    read_postal(&mut contact, object);
    contact.auth = auth_of(object).unwrap_or_default();
    contact.roid = state.roid("CON");
    let created = contact.created.unwrap_or_else(now);
    state.contacts.insert(id.clone(), contact);
    Ok((
        1000,
        Some(format!(
            "<contact:creData xmlns:contact=\"{CONTACT}\"><contact:id>{}</contact:id><contact:crDate>{}</contact:crDate></contact:creData>",
            esc(&id),
            stamp(created)
        )),
    ))
}

fn contact_info(state: &State, registrar: &str, object: Node<'_, '_>) -> Outcome {
    let id = text(object, "id").unwrap_or_default();
    let c = state.contacts.get(&id).ok_or(Refused(2303))?;
    if c.sponsor != registrar && auth_of(object).is_none_or(|pw| pw != c.auth) {
        return Err(Refused(2201));
    }
    let street: String = c.street.iter().map(|s| format!("<contact:street>{}</contact:street>", esc(s))).collect();
    let optional = |name: &str, value: &str| {
        if value.is_empty() { String::new() } else { format!("<contact:{name}>{}</contact:{name}>", esc(value)) }
    };
    Ok((
        1000,
        Some(format!(
            "<contact:infData xmlns:contact=\"{CONTACT}\"><contact:id>{}</contact:id><contact:roid>{}</contact:roid><contact:status s=\"ok\"/><contact:postalInfo type=\"int\"><contact:name>{}</contact:name>{}<contact:addr>{street}<contact:city>{}</contact:city>{}{}<contact:cc>{}</contact:cc></contact:addr></contact:postalInfo>{}<contact:email>{}</contact:email><contact:clID>{}</contact:clID><contact:crID>{}</contact:crID><contact:crDate>{}</contact:crDate><contact:authInfo><contact:pw>{}</contact:pw></contact:authInfo></contact:infData>",
            esc(&c.id),
            c.roid,
            esc(&c.name),
            optional("org", &c.org),
            esc(&c.city),
            optional("sp", &c.sp),
            optional("pc", &c.pc),
            esc(&c.cc),
            optional("voice", &c.voice),
            esc(&c.email),
            esc(&c.sponsor),
            esc(&c.sponsor),
            stamp(c.created.unwrap_or_else(now)),
            esc(&c.auth),
        )),
    ))
}

fn contact_update(state: &mut State, registrar: &str, object: Node<'_, '_>) -> Outcome {
    let id = text(object, "id").unwrap_or_default();
    let contact = state.contacts.get_mut(&id).ok_or(Refused(2303))?;
    if contact.sponsor != registrar {
        return Err(Refused(2201));
    }
    if let Some(chg) = child(object, "chg") {
        read_postal(contact, chg);
    }
    Ok((1000, None))
}

fn contact_delete(state: &mut State, registrar: &str, object: Node<'_, '_>) -> Outcome {
    let id = text(object, "id").unwrap_or_default();
    let contact = state.contacts.get(&id).ok_or(Refused(2303))?;
    if contact.sponsor != registrar {
        return Err(Refused(2201));
    }
    if state.domains.values().any(|d| d.registrant == id || d.contacts.iter().any(|(_, c)| *c == id)) {
        return Err(Refused(2305));
    }
    state.contacts.remove(&id);
    Ok((1000, None))
}

fn host_check(state: &State, object: Node<'_, '_>) -> String {
    let rows: String = children(object, "name")
        .map(|n| {
            let name = n.text().unwrap_or_default().trim().to_lowercase();
            let taken = state.hosts.contains_key(&name);
            format!("<host:cd><host:name avail=\"{}\">{}</host:name></host:cd>", u8::from(!taken), esc(&name))
        })
        .collect();
    format!("<host:chkData xmlns:host=\"{HOST}\">{rows}</host:chkData>")
}

fn host_create(state: &mut State, registrar: &str, object: Node<'_, '_>) -> Outcome {
    let name = text(object, "name").unwrap_or_default().to_lowercase();
    if !valid_domain(&name) {
        return Err(Refused(2005));
    }
    if state.hosts.contains_key(&name) {
        return Err(Refused(2302));
    }
    let addrs: Vec<(String, String)> = children(object, "addr")
        .map(|a| (a.text().unwrap_or_default().trim().to_owned(), a.attribute("ip").unwrap_or("v4").to_owned()))
        .collect();
    // Addresses only for hosts inside a domain of this registry (RFC 5732 §3.2.1).
    let subordinate = state.domains.keys().any(|d| name.ends_with(&format!(".{d}")));
    if subordinate && addrs.is_empty() {
        return Err(Refused(2003));
    }
    if !subordinate && !addrs.is_empty() {
        return Err(Refused(2306));
    }
    let roid = state.roid("HOST");
    let created = now();
    state.hosts.insert(name.clone(), Host { name: name.clone(), roid, addrs, sponsor: registrar.to_owned(), created });
    Ok((
        1000,
        Some(format!(
            "<host:creData xmlns:host=\"{HOST}\"><host:name>{}</host:name><host:crDate>{}</host:crDate></host:creData>",
            esc(&name),
            stamp(created)
        )),
    ))
}

fn host_info(state: &State, object: Node<'_, '_>) -> Outcome {
    let name = text(object, "name").unwrap_or_default().to_lowercase();
    let host = state.hosts.get(&name).ok_or(Refused(2303))?;
    let linked = state.domains.values().any(|d| d.ns.contains(&name));
    let status = if linked { "<host:status s=\"linked\"/>" } else { "<host:status s=\"ok\"/>" };
    let addrs: String =
        host.addrs.iter().map(|(ip, v)| format!("<host:addr ip=\"{v}\">{}</host:addr>", esc(ip))).collect();
    Ok((
        1000,
        Some(format!(
            "<host:infData xmlns:host=\"{HOST}\"><host:name>{}</host:name><host:roid>{}</host:roid>{status}{addrs}<host:clID>{}</host:clID><host:crID>{}</host:crID><host:crDate>{}</host:crDate></host:infData>",
            esc(&host.name),
            host.roid,
            esc(&host.sponsor),
            esc(&host.sponsor),
            stamp(host.created)
        )),
    ))
}

fn host_delete(state: &mut State, registrar: &str, object: Node<'_, '_>) -> Outcome {
    let name = text(object, "name").unwrap_or_default().to_lowercase();
    let host = state.hosts.get(&name).ok_or(Refused(2303))?;
    if host.sponsor != registrar {
        return Err(Refused(2201));
    }
    if state.domains.values().any(|d| d.ns.contains(&name)) {
        return Err(Refused(2305));
    }
    state.hosts.remove(&name);
    Ok((1000, None))
}

/// Reads one frame: a 4-byte big-endian length that counts itself, then
/// the XML. `None` at a clean end of stream.
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> std::io::Result<Option<String>> {
    let mut header = [0u8; 4];
    match reader.read_exact(&mut header).await {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err),
    }
    let total = u32::from_be_bytes(header) as usize;
    if !(5..=MAX_FRAME).contains(&total) {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("a frame of {total} bytes")));
    }
    let mut body = vec![0u8; total - 4];
    reader.read_exact(&mut body).await?;
    String::from_utf8(body).map(Some).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"))
}

/// Writes one frame (length prefix counting itself, then the XML).
pub async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, xml: &str) -> std::io::Result<()> {
    let total = u32::try_from(xml.len() + 4).map_err(|_| std::io::Error::other("frame too large"))?;
    let mut frame = Vec::with_capacity(xml.len() + 4);
    frame.extend_from_slice(&total.to_be_bytes());
    frame.extend_from_slice(xml.as_bytes());
    writer.write_all(&frame).await?;
    writer.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_names_are_ldh_with_two_labels() {
        assert!(valid_domain("example.com"));
        assert!(valid_domain("xn--bcher-kva.de"));
        assert!(!valid_domain("com"));
        assert!(!valid_domain("-bad.com"));
        assert!(!valid_domain("UPPER.com"));
    }

    #[test]
    fn responses_carry_the_rfc_texts() {
        let xml = response(2303, Some("abc"), None, None, None, "PTR-1");
        assert!(xml.contains("<result code=\"2303\"><msg>Object does not exist</msg></result>"), "{xml}");
        assert!(xml.contains("<clTRID>abc</clTRID><svTRID>PTR-1</svTRID>"));
    }
}
