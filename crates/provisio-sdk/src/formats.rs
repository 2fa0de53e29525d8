//! Custom string formats and the typed values that carry them.
//!
//! Each format has a checker (used by schema validation, so errors carry the
//! field's JSON path) and, where a value is worth typing, a newtype whose
//! schema names the format and whose deserializer normalises it (an IDN
//! domain becomes punycode, for instance).

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize};

/// A format checker.
pub type FormatCheck = fn(&str) -> bool;

/// Format names and their checkers, registered with the validator.
pub const FORMATS: &[(&str, FormatCheck)] = &[
    ("domain-name", is_domain_name),
    ("hostname", is_hostname),
    ("email", is_email),
    ("phone", is_phone),
    ("country-code", is_country_code),
    ("ip", is_ip),
    ("url", is_url),
    ("username", is_username),
    ("password", is_password),
    ("db-identifier", is_db_identifier),
];

/// A short explanation of each format, used in field error messages.
pub fn describe(format: &str) -> Option<&'static str> {
    Some(match format {
        "domain-name" => "must be a domain name such as example.com",
        "hostname" => "must be a host name such as ns1.example.com",
        "email" => "must be an email address",
        "phone" => "must be an E.164 phone number such as +442071234567",
        "country-code" => "must be an ISO 3166 alpha-2 country code such as GB",
        "ip" => "must be an IPv4 or IPv6 address",
        "url" => "must be an absolute URL",
        "username" => "must be 1-16 characters: a lowercase letter, then lowercase letters or digits",
        "password" => "must be 8-128 characters with a lowercase letter, an uppercase letter and a digit",
        "db-identifier" => "must be 1-63 characters: a lowercase letter, then lowercase letters, digits or _",
        "date-time" => "must be an RFC 3339 date-time",
        _ => return None,
    })
}

/// Converts a domain name to its ASCII (punycode) lowercase form, if valid.
///
/// Needs at least two labels; each label is 1-63 letters, digits or hyphens,
/// not starting or ending with a hyphen; the whole name is at most 253 bytes.
pub fn normalize_domain_name(input: &str) -> Option<String> {
    let trimmed = input.strip_suffix('.').unwrap_or(input);
    if trimmed.is_empty() || trimmed.chars().any(char::is_whitespace) {
        return None;
    }
    let ascii = idna::domain_to_ascii(trimmed).ok()?;
    let ascii = ascii.to_ascii_lowercase();
    if ascii.len() > 253 {
        return None;
    }
    let labels: Vec<&str> = ascii.split('.').collect();
    if labels.len() < 2 || !labels.iter().all(|label| is_ldh_label(label)) {
        return None;
    }
    // The top-level label is never all digits (that would be an IP address).
    if labels.last()?.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(ascii)
}

fn is_ldh_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// A domain name (IDN accepted, stored as punycode).
pub fn is_domain_name(value: &str) -> bool {
    normalize_domain_name(value).is_some()
}

/// A host name: a domain name, or a single label such as `localhost`.
pub fn is_hostname(value: &str) -> bool {
    is_domain_name(value) || (is_ldh_label(value) && value.len() <= 63)
}

/// A pragmatic email check: `local@domain` with a valid domain.
pub fn is_email(value: &str) -> bool {
    let Some((local, domain)) = value.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c))
        && is_domain_name(domain)
}

/// An E.164 phone number: `+`, a country code not starting with 0, at most 15 digits.
pub fn is_phone(value: &str) -> bool {
    let Some(digits) = value.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}

/// An ISO 3166-1 alpha-2 country code (upper case).
pub fn is_country_code(value: &str) -> bool {
    value.len() == 2 && COUNTRY_CODES.split(' ').any(|code| code == value)
}

/// An IPv4 or IPv6 address.
pub fn is_ip(value: &str) -> bool {
    value.parse::<IpAddr>().is_ok()
}

/// An absolute URL.
pub fn is_url(value: &str) -> bool {
    url::Url::parse(value).is_ok_and(|url| url.has_host() || url.scheme() == "mailto")
}

/// A hosting account username: a lowercase letter, then up to 15 lowercase letters or digits.
pub fn is_username(value: &str) -> bool {
    let mut bytes = value.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && value.len() <= 16
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// A password: 8-128 characters, at least one lowercase, one uppercase letter and one digit.
pub fn is_password(value: &str) -> bool {
    let n = value.chars().count();
    (8..=128).contains(&n)
        && value.chars().any(|c| c.is_lowercase())
        && value.chars().any(|c| c.is_uppercase())
        && value.chars().any(|c| c.is_ascii_digit())
        && !value.chars().any(char::is_control)
}

/// A database or login name safe to quote anywhere: a lowercase letter, then
/// up to 62 lowercase letters, digits or `_`.
pub fn is_db_identifier(value: &str) -> bool {
    let mut bytes = value.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && value.len() <= 63
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// ISO 3166-1 alpha-2, officially assigned codes, plus `XK` (Kosovo, used by registries).
const COUNTRY_CODES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS \
BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM \
FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP \
KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV \
MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD \
SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC \
VE VG VI VN VU WF WS YE YT ZA ZM ZW XK";

/// Defines a string newtype with a format: its schema names the format, and
/// deserialising checks (and where needed normalises) the value.
macro_rules! formatted_string {
    ($(#[$meta:meta])* $name:ident, $format:literal, $normalize:expr) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Checks and normalises a value.
            pub fn parse(value: &str) -> Result<Self, FormatError> {
                let normalize: fn(&str) -> Option<String> = $normalize;
                normalize(value).map($name).ok_or(FormatError { format: $format })
            }

            /// The value as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                $name::parse(&raw).map_err(serde::de::Error::custom)
            }
        }

        impl JsonSchema for $name {
            fn inline_schema() -> bool {
                true
            }

            fn schema_name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({ "type": "string", "format": $format })
            }
        }
    };
}

/// A value that broke its format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("value {}", describe(self.format).unwrap_or("has the wrong format"))]
pub struct FormatError {
    /// The format's name.
    pub format: &'static str,
}

fn keep_if(check: fn(&str) -> bool) -> impl Fn(&str) -> Option<String> {
    move |value| check(value).then(|| value.to_owned())
}

formatted_string!(
    /// A domain name, normalised to lowercase punycode (`bücher.de` becomes `xn--bcher-kva.de`).
    DomainName, "domain-name", normalize_domain_name
);
formatted_string!(
    /// A host name such as `ns1.example.com`, stored lowercase.
    Hostname, "hostname", |value| is_hostname(value).then(|| value.trim_end_matches('.').to_ascii_lowercase())
);
formatted_string!(
    /// An email address; its domain is normalised like [`DomainName`].
    Email, "email", |value| {
        let (local, domain) = value.rsplit_once('@')?;
        let domain = normalize_domain_name(domain)?;
        let email = format!("{local}@{domain}");
        is_email(&email).then_some(email)
    }
);
formatted_string!(
    /// An E.164 phone number such as `+442071234567`.
    Phone, "phone", |value| keep_if(is_phone)(value)
);
impl Phone {
    /// The number as EPP and registrar APIs write it, the country calling
    /// code apart: `+44.2071234567` (RFC 5733 `e164StringType`).
    pub fn dotted(&self) -> String {
        let digits = self.as_str().trim_start_matches('+');
        // Calling codes are 1 (+1, +7), 2 or 3 digits long (ITU-T E.164 assignments).
        let code_len = match digits.as_bytes() {
            [b'1' | b'7', ..] => 1,
            [a, b, ..] => {
                let two = (a - b'0') * 10 + (b - b'0');
                let two_digit = matches!(
                    two,
                    20 | 27 | 30..=34 | 36 | 39 | 40 | 41 | 43..=49 | 51..=58 | 60..=66 | 81 | 82 | 84 | 86 | 90..=95 | 98
                );
                if two_digit { 2 } else { 3 }
            }
            _ => 1,
        }
        .min(digits.len());
        format!("+{}.{}", &digits[..code_len], &digits[code_len..])
    }

    /// A number written `+44.2071234567` (or already E.164).
    pub fn from_dotted(text: &str) -> Result<Phone, FormatError> {
        Phone::parse(&text.replace(['.', ' '], ""))
    }
}

formatted_string!(
    /// An ISO 3166-1 alpha-2 country code such as `GB`.
    CountryCode, "country-code", |value| keep_if(is_country_code)(value)
);
formatted_string!(
    /// An IPv4 or IPv6 address in its canonical text form.
    IpAddress, "ip", |value| value.parse::<IpAddr>().ok().map(|ip| ip.to_string())
);
formatted_string!(
    /// An absolute URL.
    Url, "url", |value| keep_if(is_url)(value)
);
formatted_string!(
    /// A hosting account username.
    Username, "username", |value| keep_if(is_username)(value)
);
formatted_string!(
    /// A database or database login name.
    DbIdentifier, "db-identifier", |value| keep_if(is_db_identifier)(value)
);

/// A random password from the operating system's CSPRNG that meets the
/// password rules: `len` (at least 12) letters and digits, with at least
/// one lowercase, one uppercase letter and one digit. Safe to quote in SQL.
pub fn generate_password(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let len = len.max(12);
    // 256 is not a multiple of the alphabet: biased top values are dropped,
    // and more are drawn until the password has its length.
    let unbiased = 256 - 256 % ALPHABET.len();
    loop {
        let mut password = String::with_capacity(len);
        while password.len() < len {
            let mut bytes = vec![0u8; len];
            getrandom::fill(&mut bytes).expect("the operating system's random source works");
            password.extend(
                bytes
                    .iter()
                    .filter(|b| (**b as usize) < unbiased)
                    .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char),
            );
            password.truncate(len);
        }
        if is_password(&password) {
            return password;
        }
    }
}

/// A password chosen by a client: never printed by `Debug`, marked secret in schemas.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    /// Checks a password against the rules.
    pub fn parse(value: &str) -> Result<Self, FormatError> {
        if is_password(value) { Ok(Password(value.to_owned())) } else { Err(FormatError { format: "password" }) }
    }

    /// The password itself; call only where it must be sent.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

impl<'de> Deserialize<'de> for Password {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Password::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Password {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("Password")
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "format": "password", "writeOnly": true, "x-secret": true })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_names() {
        assert_eq!(normalize_domain_name("Example.COM").as_deref(), Some("example.com"));
        assert_eq!(normalize_domain_name("bücher.de").as_deref(), Some("xn--bcher-kva.de"));
        assert_eq!(normalize_domain_name("example.com.").as_deref(), Some("example.com"));
        for bad in ["not a domain", "example", "-bad.com", "bad-.com", "a..b", "", "1.2.3.4", "under_score.com"] {
            assert!(!is_domain_name(bad), "{bad} accepted");
        }
        assert!(!is_domain_name(&format!("{}.com", "a".repeat(64))));
    }

    #[test]
    fn emails_phones_countries() {
        assert!(is_email("a@example.com"));
        assert!(is_email("first.last+tag@sub.example.co.uk"));
        assert!(!is_email("a@b"));
        assert!(!is_email("no-at-sign"));
        assert!(!is_email(".a@example.com"));
        assert_eq!(Email::parse("ann@BÜCHER.de").unwrap().as_str(), "ann@xn--bcher-kva.de");
        assert!(is_phone("+442071234567"));
        assert!(!is_phone("442071234567"));
        assert!(!is_phone("+0123"));
        assert!(!is_phone("+44 20 7123 4567"));
        assert!(is_country_code("GB") && is_country_code("XK"));
        assert!(!is_country_code("UK") && !is_country_code("gb") && !is_country_code("GBR"));
    }

    #[test]
    fn identifiers_and_passwords() {
        assert!(is_username("alice") && is_username("a1"));
        assert!(!is_username("Alice") && !is_username("1abc") && !is_username("averyveryverylongname"));
        assert!(is_db_identifier("shop_db1"));
        assert!(!is_db_identifier("x\"; drop table users; --"));
        assert!(is_password("Sup3rSecret"));
        assert!(!is_password("short1A") && !is_password("alllowercase1"));
        assert_eq!(format!("{:?}", Password::parse("Sup3rSecret").unwrap()), "Password([redacted])");
        let generated = generate_password(20);
        assert!(is_password(&generated) && generated.len() == 20, "{generated}");
        assert_ne!(generated, generate_password(20));
    }

    #[test]
    fn ips_and_urls() {
        assert!(is_ip("192.0.2.1") && is_ip("2001:db8::1"));
        assert!(!is_ip("300.1.1.1"));
        assert!(is_url("https://example.com/login?x=1"));
        assert!(!is_url("example.com"));
        assert!(is_hostname("ns1.example.com") && is_hostname("localhost"));
    }
}

#[cfg(test)]
mod phone_tests {
    use super::*;

    #[test]
    fn phones_are_written_with_the_country_code_apart() {
        assert_eq!(Phone::parse("+442071234567").unwrap().dotted(), "+44.2071234567");
        assert_eq!(Phone::parse("+14155550100").unwrap().dotted(), "+1.4155550100");
        assert_eq!(Phone::parse("+3531234567").unwrap().dotted(), "+353.1234567");
        assert_eq!(Phone::from_dotted("+44.2071234567").unwrap().as_str(), "+442071234567");
    }
}
