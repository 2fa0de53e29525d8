//! Redaction of secrets from everything that is printed, logged or stored.
//!
//! Two rules apply together: any configured secret value is replaced wherever
//! it appears (also percent- and JSON-escaped), and values under
//! secret-looking keys (`password`, `api_key`, `Authorization`, ...) are
//! replaced in logged requests and debug data.
//!
//! Redaction is for what people read (logs, attempt records, messages,
//! debug), never for data the engine acts on: a database named
//! `postgres_fan` on a server whose admin password is `postgres` must stay
//! `postgres_fan` in the result. Secret values shorter than
//! [`MIN_SUBSTRING_SECRET`] are replaced only where they stand alone (a whole
//! token, not part of a longer name), so a one-letter password does
//! not shred every log line.

use serde_json::Value;

/// What replaces a secret.
pub const REDACTED: &str = "[REDACTED]";

/// Secret values at least this long (in bytes) are replaced wherever they
/// appear; shorter ones only where they stand alone.
pub const MIN_SUBSTRING_SECRET: usize = 6;

/// Replaces secrets in text and JSON.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Redactor {
    /// Secret values and their escaped forms, longest first.
    needles: Vec<String>,
    /// Short secret values (and escaped forms), replaced only as whole tokens.
    short: Vec<String>,
}

impl Redactor {
    /// A redactor for these secret values (empty values are ignored).
    pub fn new<I, S>(secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut redactor = Redactor::default();
        for secret in secrets {
            redactor.add(secret.as_ref());
        }
        redactor
    }

    /// Adds one more secret value.
    pub fn add(&mut self, secret: &str) {
        if secret.is_empty() {
            return;
        }
        let json_escaped = serde_json::to_string(secret).unwrap_or_default();
        let json_escaped = json_escaped.trim_matches('"').to_owned();
        let percent: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        let list = if secret.len() < MIN_SUBSTRING_SECRET { &mut self.short } else { &mut self.needles };
        // As XML text and attribute values write it (`&` `<` `>`, quotes too).
        let xml_text = secret.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
        let xml_attribute = xml_text.replace('"', "&quot;").replace('\'', "&apos;");
        for needle in [secret.to_owned(), json_escaped, percent, percent_encode_all(secret), xml_text, xml_attribute] {
            if !needle.is_empty() && !list.contains(&needle) {
                list.push(needle);
            }
        }
        list.sort_by_key(|needle| std::cmp::Reverse(needle.len()));
    }

    /// Text with every secret value replaced.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), REDACTED);
            }
        }
        for needle in &self.short {
            if out.contains(needle.as_str()) {
                out = replace_standalone(&out, needle);
            }
        }
        out
    }

    /// JSON with every secret value replaced in keys' values (not in keys).
    pub fn value(&self, value: &mut Value) {
        match value {
            Value::String(s) => {
                let redacted = self.text(s);
                if redacted != *s {
                    *s = redacted;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| self.value(item)),
            Value::Object(map) => map.values_mut().for_each(|item| self.value(item)),
            Value::Number(n) if self.needles.iter().chain(&self.short).any(|needle| *needle == n.to_string()) => {
                *value = Value::String(REDACTED.to_owned());
            }
            _ => {}
        }
    }

    /// JSON with secret values replaced, and also everything under a
    /// secret-looking key.
    pub fn value_and_keys(&self, value: &mut Value) {
        redact_keys(value);
        self.value(value);
    }
}

/// `text` with `needle` replaced where it is a whole token: not touching a
/// letter, digit, `_` or `-` (parts of names) on either side.
fn replace_standalone(text: &str, needle: &str) -> String {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut before: Option<char> = None;
    while let Some(at) = rest.find(needle) {
        let prefix = &rest[..at];
        let previous = prefix.chars().next_back().or(before);
        let after = rest[at + needle.len()..].chars().next();
        out.push_str(prefix);
        if word(previous) || word(after) {
            out.push_str(needle);
        } else {
            out.push_str(REDACTED);
        }
        before = needle.chars().next_back();
        rest = &rest[at + needle.len()..];
    }
    out.push_str(rest);
    out
}

/// Whether a field or header name usually holds a credential.
pub fn is_secret_key(key: &str) -> bool {
    let key: String = key.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
    const EXACT: &[&str] =
        &["key", "pass", "passwd", "pwd", "auth", "cookie", "setcookie", "pin", "eppcode", "authcode"];
    const CONTAINS: &[&str] = &[
        "password",
        "secret",
        "token",
        "apikey",
        "privatekey",
        "authorization",
        "credential",
        "accesskey",
        "signature",
        "session",
    ];
    EXACT.contains(&key.as_str()) || CONTAINS.iter().any(|part| key.contains(part))
}

/// Replaces the values of secret-looking keys anywhere in a JSON document.
pub fn redact_keys(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                // Everything under a secret key goes, lists and objects included.
                if is_secret_key(key) && !item.is_null() {
                    *item = Value::String(REDACTED.to_owned());
                } else {
                    redact_keys(item);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_keys),
        _ => {}
    }
}

/// Redacts `key=value` pairs of a query string or form body whose key looks secret.
pub fn redact_form(body: &str) -> String {
    body.split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if is_secret_key(&percent_decode(key)) => format!("{key}={REDACTED}"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("{text}=").as_bytes())
        .next()
        .map(|(key, _)| key.into_owned())
        .unwrap_or_else(|| text.to_owned())
}

fn percent_encode_all(secret: &str) -> String {
    // The path-segment form (spaces as %20), which differs from form encoding.
    secret
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replaces_values_in_text_and_escaped_forms() {
        let redactor = Redactor::new(["s3cr3t/\"key\" +x"]);
        assert_eq!(redactor.text("k=s3cr3t/\"key\" +x"), "k=[REDACTED]");
        assert_eq!(redactor.text("k=s3cr3t%2F%22key%22+%2Bx"), "k=[REDACTED]");
        assert_eq!(redactor.text(r#"{"k":"s3cr3t/\"key\" +x"}"#), r#"{"k":"[REDACTED]"}"#);
        assert_eq!(redactor.text("k=s3cr3t%2F%22key%22%20%2Bx"), "k=[REDACTED]");
        // As XML writes it, in text and in attributes.
        let xml = Redactor::new(["N3w&Pass<w0rd>'x\""]);
        assert_eq!(xml.text("<passwd>N3w&amp;Pass&lt;w0rd&gt;'x\"</passwd>"), "<passwd>[REDACTED]</passwd>");
        assert_eq!(xml.text("v=\"N3w&amp;Pass&lt;w0rd&gt;&apos;x&quot;\""), "v=\"[REDACTED]\"");
    }

    #[test]
    fn redacts_json_values_and_secret_keys() {
        let redactor = Redactor::new(["hunter22"]);
        let mut doc = json!({"note": "pw is hunter22", "nested": [{"Password": "other"}], "api_key": "zzz", "user": "ann",
                              "n": 12345, "tokens": ["a", "b"], "secret": {"value": "x"}});
        redactor.value_and_keys(&mut doc);
        assert_eq!(
            doc,
            json!({"note": "pw is [REDACTED]", "nested": [{"Password": "[REDACTED]"}], "api_key": "[REDACTED]",
                   "user": "ann", "n": 12345, "tokens": "[REDACTED]", "secret": "[REDACTED]"})
        );
        let numeric = Redactor::new(["12345"]);
        let mut doc = json!({"n": 12345});
        numeric.value(&mut doc);
        assert_eq!(doc, json!({"n": "[REDACTED]"}));
    }

    #[test]
    fn short_secrets_are_replaced_only_where_they_stand_alone() {
        let redactor = Redactor::new(["x", "pg1"]);
        assert_eq!(redactor.text("password x for box"), "password [REDACTED] for box");
        assert_eq!(redactor.text(r#"{"p":"pg1","db":"pg1_shop"}"#), r#"{"p":"[REDACTED]","db":"pg1_shop"}"#);
        assert_eq!(redactor.text("user:x@host"), "user:[REDACTED]@host");
        let mut doc = json!({"database": "xylophone", "password": "x"});
        redactor.value(&mut doc);
        assert_eq!(doc, json!({"database": "xylophone", "password": "[REDACTED]"}));
        // Long ones go wherever they appear, as before.
        assert_eq!(Redactor::new(["postgres"]).text("postgres_fan"), "[REDACTED]_fan");
    }

    #[test]
    fn secret_key_names() {
        for key in ["password", "api_key", "X-Api-Key", "Authorization", "access_token", "client_secret", "key"] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in ["username", "domain", "keyboard_layout", "package_name"] {
            assert!(!is_secret_key(key), "{key}");
        }
        assert_eq!(redact_form("user=ann&password=x%20y&token=t"), "user=ann&password=[REDACTED]&token=[REDACTED]");
    }
}
