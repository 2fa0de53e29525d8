//! Every frame checked against the EPP XML Schemas of RFC 5730-5733, 5910
//! and 3915 (`xsd/`, the RFCs' own; `xsd/README.md` says where they come
//! from and the three places restored to the RFCs' text; `nominet-*.xsd`
//! are ours, for Nominet's extensions),
//! with libxml2, a validator nobody here wrote.
//!
//! libxml2's contexts are not thread-safe, so one thread owns them and
//! answers requests in turn.

use std::sync::mpsc;

use libxml::parser::Parser;
use libxml::schemas::{SchemaParserContext, SchemaValidationContext};
use tokio::sync::oneshot;

const FILES: &[(&str, &str)] = &[
    ("all.xsd", include_str!("../xsd/all.xsd")),
    ("epp-1.0.xsd", include_str!("../xsd/epp-1.0.xsd")),
    ("eppcom-1.0.xsd", include_str!("../xsd/eppcom-1.0.xsd")),
    ("domain-1.0.xsd", include_str!("../xsd/domain-1.0.xsd")),
    ("host-1.0.xsd", include_str!("../xsd/host-1.0.xsd")),
    ("contact-1.0.xsd", include_str!("../xsd/contact-1.0.xsd")),
    ("secDNS-1.1.xsd", include_str!("../xsd/secDNS-1.1.xsd")),
    ("rgp-1.0.xsd", include_str!("../xsd/rgp-1.0.xsd")),
    ("nominet-contact-nom-ext-1.0.xsd", include_str!("../xsd/nominet-contact-nom-ext-1.0.xsd")),
    ("nominet-std-release-1.0.xsd", include_str!("../xsd/nominet-std-release-1.0.xsd")),
    ("nominet-std-handshake-1.0.xsd", include_str!("../xsd/nominet-std-handshake-1.0.xsd")),
    ("nominet-std-notifications-1.2.xsd", include_str!("../xsd/nominet-std-notifications-1.2.xsd")),
    ("nominet-std-warning-1.1.xsd", include_str!("../xsd/nominet-std-warning-1.1.xsd")),
];

type Request = (String, oneshot::Sender<Result<(), String>>);

/// A handle on the validating thread.
#[derive(Debug, Clone)]
pub struct Validator {
    requests: mpsc::Sender<Request>,
}

impl Validator {
    /// Starts the thread; the schemas are written to a private directory it
    /// keeps (libxml2 follows their imports by file name).
    pub fn start() -> Validator {
        let (requests, incoming) = mpsc::channel::<Request>();
        let (ready, started) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("epp-schema".into())
            .spawn(move || {
                let dir = tempfile::tempdir().expect("a directory for the schemas");
                for (name, text) in FILES {
                    std::fs::write(dir.path().join(name), text).expect("the schemas are written");
                }
                let path = dir.path().join("all.xsd");
                let mut parser = SchemaParserContext::from_file(path.to_str().expect("a UTF-8 path"));
                let mut context = SchemaValidationContext::from_parser(&mut parser).expect("the EPP schemas parse");
                let _ = ready.send(());
                while let Ok((xml, reply)) = incoming.recv() {
                    let _ = reply.send(check(&mut context, &xml));
                }
            })
            .expect("the schema thread starts");
        let _ = started.recv();
        Validator { requests }
    }

    /// `Ok` if `xml` is a valid EPP frame, else the validator's messages.
    pub async fn check(&self, xml: &str) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.requests.send((xml.to_owned(), reply)).map_err(|_| "the schema thread stopped".to_owned())?;
        answer.await.map_err(|_| "the schema thread stopped".to_owned())?
    }
}

fn check(context: &mut SchemaValidationContext, xml: &str) -> Result<(), String> {
    // No DTD, no entities from elsewhere: a frame is the document, whole.
    if xml.contains("<!DOCTYPE") || xml.contains("<!ENTITY") {
        return Err("a frame may not carry a document type declaration".into());
    }
    let document = Parser::default().parse_string(xml).map_err(|err| format!("not well-formed XML: {err:?}"))?;
    context.validate_document(&document).map_err(|errors| {
        errors.into_iter().filter_map(|e| e.message).map(|m| m.trim().to_owned()).collect::<Vec<_>>().join("; ")
    })
}
