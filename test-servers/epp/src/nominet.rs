//! Nominet's .uk registry, as its documentation describes it (cited as in
//! `docs/research/epp-nominet.md`):
//!
//! - login by tag (`#XX` for a two-character one) with a password of 14
//!   characters or more, declaring Nominet's extensions [N-cmd];
//! - `domain:create` ignores the authInfo and says so with a
//!   `std-warning-1.1` `ignored-field` [DRI]; no period means two years [N-myrp];
//! - contacts carry `contact-nom-ext-1.0` (trading name, registrant type,
//!   company number, opt-out, in that order) [NX];
//! - no RFC transfers: the holder *releases* a domain (or an account's
//!   domains) to another tag (`std-release-1.0`); the receiving tag takes it
//!   at once (1000) or, when it handshakes, answers a case
//!   (`std-handshake-1.0` accept/reject) after a 1001 [N-rel] [N-hs];
//! - poll messages in `std-notifications-1.2`: `rcData` to the receiver
//!   (with `caseId` when it must answer), `relData` to the releaser
//!   (`moved="Y"` once the domains left, none when the receiver refused),
//!   `cancData` when a domain is cancelled [N-notif].
//!
//! Nominet's own XSDs carry no licence, so `xsd/nominet-*.xsd` are ours,
//! written from the same element lists.

use roxmltree::Node;

use crate::{
    Options, Outcome, Refused, State, child, contact_create, contact_update, domain_create_with, esc, inf_data, now,
    push, sponsored, text,
};

pub(crate) const CONTACT_NOM_EXT: &str = "http://www.nominet.org.uk/epp/xml/contact-nom-ext-1.0";
pub(crate) const RELEASE: &str = "http://www.nominet.org.uk/epp/xml/std-release-1.0";
pub(crate) const HANDSHAKE: &str = "http://www.nominet.org.uk/epp/xml/std-handshake-1.0";
const NOTIFICATIONS: &str = "http://www.nominet.org.uk/epp/xml/std-notifications-1.2";
const WARNING: &str = "http://www.nominet.org.uk/epp/xml/std-warning-1.1";

/// The extensions a Nominet registry offers in its greeting.
pub(crate) const EXTENSIONS: [&str; 5] = [CONTACT_NOM_EXT, RELEASE, HANDSHAKE, NOTIFICATIONS, WARNING];

/// The warning a `domain:create` answer carries: .uk domains have no authInfo.
pub(crate) const IGNORED_AUTH_INFO: &str = "<warning:ignored-field xmlns:warning=\"http://www.nominet.org.uk/epp/xml/std-warning-1.1\" field-name=\"domain:authInfo\">Field 'authInfo' found; this field has been ignored.</warning:ignored-field>";

/// A contact's contact-nom-ext fields.
#[derive(Debug, Clone, Default)]
pub(crate) struct ContactExt {
    trad_name: Option<String>,
    kind: Option<String>,
    co_no: Option<String>,
    opt_out: Option<String>,
}

/// A release waiting for the receiving tag's answer.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    from: String,
    to: String,
    domains: Vec<String>,
}

pub(crate) fn domain_create(
    state: &mut State,
    registrar: &str,
    object: Node<'_, '_>,
    command: Node<'_, '_>,
) -> Outcome {
    domain_create_with(state, registrar, object, command, 2, false)
}

/// `contact:create` and `contact:update`, then the contact-nom-ext fields
/// from the command's `<extension>`.
pub(crate) fn contact_command(
    state: &mut State,
    registrar: &str,
    verb: &str,
    object: Node<'_, '_>,
    command: Node<'_, '_>,
) -> Outcome {
    let done = if verb == "create" {
        contact_create(state, registrar, object)?
    } else {
        contact_update(state, registrar, object)?
    };
    let fields = child(command, "extension")
        .and_then(|e| e.children().find(|n| n.is_element() && n.tag_name().namespace() == Some(CONTACT_NOM_EXT)));
    if let Some(fields) = fields
        && let Some(contact) = state.contacts.get_mut(&text(object, "id").unwrap_or_default())
    {
        let ext = &mut contact.nominet;
        for (name, slot) in [
            ("trad-name", &mut ext.trad_name),
            ("type", &mut ext.kind),
            ("co-no", &mut ext.co_no),
            ("opt-out", &mut ext.opt_out),
        ] {
            if let Some(value) = text(fields, name) {
                *slot = Some(value);
            }
        }
    }
    Ok(done)
}

/// A contact's `contact-nom-ext:infData`, fields in schema order.
pub(crate) fn contact_inf_data(ext: &ContactExt) -> String {
    let mut out = format!("<contact-nom-ext:infData xmlns:contact-nom-ext=\"{CONTACT_NOM_EXT}\">");
    for (name, value) in
        [("trad-name", &ext.trad_name), ("type", &ext.kind), ("co-no", &ext.co_no), ("opt-out", &ext.opt_out)]
    {
        if let Some(value) = value {
            out.push_str(&format!("<contact-nom-ext:{name}>{}</contact-nom-ext:{name}>", esc(value)));
        }
    }
    out.push_str("</contact-nom-ext:infData>");
    out
}

/// A tag as the registry writes it where a clID goes: `#XX` for a
/// two-character one (clID takes 3 to 16 characters), as it logs in.
pub(crate) fn client_id(tag: &str) -> String {
    if tag.chars().count() == 2 { format!("#{tag}") } else { tag.to_owned() }
}

/// `<update><r:release>`: `registrar` hands a domain (or every domain of an
/// account) to another tag.
pub(crate) fn release(state: &mut State, options: &Options, registrar: &str, object: Node<'_, '_>) -> Outcome {
    let tag = text(object, "registrarTag").unwrap_or_default();
    if !options.registrars.iter().any(|(id, _)| *id == tag) {
        return Err(Refused(2004));
    }
    let tag = client_id(&tag);
    if tag == registrar {
        return Err(Refused(2004));
    }
    let domains: Vec<String> = if let Some(name) = text(object, "domainName") {
        let name = name.to_lowercase();
        let domain = sponsored(state, registrar, &name)?;
        if domain.statuses.iter().any(|s| s.ends_with("TransferProhibited")) {
            return Err(Refused(2304));
        }
        vec![name]
    } else {
        let account = text(object, "registrant").unwrap_or_default();
        let held: Vec<String> = state
            .domains
            .values()
            .filter(|d| d.registrant == account && d.sponsor == registrar)
            .map(|d| d.name.clone())
            .collect();
        if held.is_empty() {
            return Err(Refused(2303));
        }
        held
    };
    if state.cases.values().any(|c| c.domains.iter().any(|d| domains.contains(d))) {
        // Already offered, waiting for the receiver.
        return Err(Refused(2304));
    }
    Ok(release_to(state, registrar, &tag, domains))
}

/// Moves `domains` from `from` to `to`, or opens a case when `to` handshakes.
fn release_to(state: &mut State, from: &str, to: &str, domains: Vec<String>) -> (u16, Option<String>) {
    if state.handshake.contains(to) {
        let case_id = format!("{}", state.id());
        let names = name_list(&domains);
        push(
            state,
            to,
            "Registrar Change Authorisation Request",
            format!(
                "<n:rcData xmlns:n=\"{NOTIFICATIONS}\"><n:orig>{}</n:orig><n:registrarTag>{}</n:registrarTag><n:caseId>{case_id}</n:caseId>{names}</n:rcData>",
                esc(from),
                esc(to)
            ),
        );
        state.cases.insert(case_id.clone(), Case { from: from.to_owned(), to: to.to_owned(), domains });
        return (
            1001,
            Some(format!(
                "<r:releasePending xmlns:r=\"{RELEASE}\">Release to {} pending: handshake case {case_id}</r:releasePending>",
                esc(to)
            )),
        );
    }
    move_domains(state, from, to, &domains);
    (1000, None)
}

/// The domains change tag (with their contacts); the receiver is told with
/// the domains' data, the releaser that they left.
fn move_domains(state: &mut State, from: &str, to: &str, domains: &[String]) {
    let at = now();
    for name in domains {
        let Some(domain) = state.domains.get_mut(name) else { continue };
        domain.sponsor = to.to_owned();
        domain.transferred = Some(at);
        domain.updated = Some(at);
        let mut contacts: Vec<String> = domain.contacts.iter().map(|(_, id)| id.clone()).collect();
        contacts.push(domain.registrant.clone());
        for id in contacts {
            if let Some(contact) = state.contacts.get_mut(&id) {
                contact.sponsor = to.to_owned();
            }
        }
    }
    let data: String = domains
        .iter()
        .filter_map(|n| state.domains.get(n))
        .map(|d| inf_data(state, d, to, true, true, false))
        .collect();
    push(
        state,
        to,
        "Registrar Change Notification",
        format!(
            "<n:rcData xmlns:n=\"{NOTIFICATIONS}\"><n:orig>{}</n:orig><n:registrarTag>{}</n:registrarTag><n:domainListData noDomains=\"{}\">{data}</n:domainListData></n:rcData>",
            esc(from),
            esc(to),
            domains.len()
        ),
    );
    // The account (the registrant's) moved with its domains.
    let account = domains.first().and_then(|n| state.domains.get(n)).map(|d| d.registrant.clone());
    let data = rel_data(from, to, domains, account.as_deref().map(|a| (a, "Y")));
    push(state, from, "Domains Released Notification", data);
}

fn name_list(domains: &[String]) -> String {
    let names: String = domains.iter().map(|d| format!("<n:domainName>{}</n:domainName>", esc(d))).collect();
    format!("<n:domainListData noDomains=\"{}\">{names}</n:domainListData>", domains.len())
}

/// A `relData`: the account that moved (its id, `moved`) when the domains left.
fn rel_data(from: &str, to: &str, domains: &[String], account: Option<(&str, &str)>) -> String {
    let account = match account {
        Some((id, moved)) => format!("<n:accountId moved=\"{moved}\">{}</n:accountId>", esc(id)),
        None => String::new(),
    };
    format!(
        "<n:relData xmlns:n=\"{NOTIFICATIONS}\">{account}<n:from>{}</n:from><n:registrarTag>{}</n:registrarTag>{}</n:relData>",
        esc(from),
        esc(to),
        name_list(domains)
    )
}

/// `<update><h:accept>` or `<h:reject>`: the receiving tag answers a case.
pub(crate) fn handshake(state: &mut State, registrar: &str, object: Node<'_, '_>) -> Outcome {
    let case_id = text(object, "caseId").unwrap_or_default();
    let case = state.cases.get(&case_id).cloned().ok_or(Refused(2303))?;
    if case.to != registrar {
        return Err(Refused(2201));
    }
    state.cases.remove(&case_id);
    if object.tag_name().name() == "accept" {
        // Domains released or cancelled meanwhile are left out.
        let still: Vec<String> = case
            .domains
            .iter()
            .filter(|d| state.domains.get(*d).is_some_and(|d| d.sponsor == case.from))
            .cloned()
            .collect();
        move_domains(state, &case.from, &case.to, &still);
    } else {
        push(
            state,
            &case.from,
            "Registrar Change Handshake Rejected Notification",
            rel_data(&case.from, &case.to, &case.domains, None),
        );
    }
    let names: String = case.domains.iter().map(|d| format!("<h:domainName>{}</h:domainName>", esc(d))).collect();
    Ok((
        1000,
        Some(format!(
            "<h:hanData xmlns:h=\"{HANDSHAKE}\"><h:caseId>{}</h:caseId><h:domainListData noDomains=\"{}\">{names}</h:domainListData></h:hanData>",
            esc(&case_id),
            case.domains.len()
        )),
    ))
}

impl crate::Registry {
    /// Nominet: the domain's holder releases it to `tag` (as its own
    /// registrar would): 1000 when it moved, 1001 when `tag` must answer a
    /// handshake first; `None` when no such domain exists.
    pub fn release(&self, name: &str, tag: &str) -> Option<u16> {
        let mut state = self.state.lock().expect("lock");
        let from = state.domains.get(name)?.sponsor.clone();
        Some(release_to(&mut state, &from, &client_id(tag), vec![name.to_owned()]).0)
    }

    /// Nominet: whether `tag` answers releases by handshake from now on.
    pub fn set_handshake(&self, tag: &str, handshake: bool) {
        let mut state = self.state.lock().expect("lock");
        if handshake {
            state.handshake.insert(client_id(tag));
        } else {
            state.handshake.remove(&client_id(tag));
        }
    }

    /// Nominet: the cases waiting for `tag`'s answer, with their domains.
    pub fn open_cases(&self, tag: &str) -> Vec<(String, Vec<String>)> {
        let state = self.state.lock().expect("lock");
        state
            .cases
            .iter()
            .filter(|(_, c)| c.to == client_id(tag))
            .map(|(id, c)| (id.clone(), c.domains.clone()))
            .collect()
    }

    /// Nominet: the registry cancels a domain (its registration lapsed, or
    /// by policy); the sponsor is told by a `cancData` message.
    pub fn cancel_domain(&self, name: &str) -> bool {
        let mut state = self.state.lock().expect("lock");
        let Some(domain) = state.domains.remove(name) else { return false };
        push(
            &mut state,
            &domain.sponsor,
            "Domain name Cancellation Notification",
            format!(
                "<n:cancData xmlns:n=\"{NOTIFICATIONS}\"><n:domainName>{}</n:domainName><n:orig>nominet</n:orig></n:cancData>",
                esc(&domain.name)
            ),
        );
        true
    }

    /// A contact's contact-nom-ext registrant type and trading name.
    pub fn contact_type(&self, id: &str) -> Option<(Option<String>, Option<String>)> {
        let state = self.state.lock().expect("lock");
        state.contacts.get(id).map(|c| (c.nominet.kind.clone(), c.nominet.trad_name.clone()))
    }
}
