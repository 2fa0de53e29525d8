//! Staff pages. Each handler takes a [`crate::session::StaffSession`] (no
//! session: to the sign-in page) and calls `require` with the scope a
//! change needs; forms carry the session's CSRF token.

pub mod access;
pub mod configurations;
pub mod dashboard;
pub mod fleet;
pub mod jobs;
pub mod products;
pub mod reports;
pub mod services;
pub mod webhooks;
pub mod workbench;

use maud::{Markup, html};
use serde_json::Value;

/// A JSON value as a page shows it.
pub(crate) fn cell(value: &Value) -> Markup {
    match value {
        Value::Null => html! { span.muted { "—" } },
        Value::String(s) => html! { (s) },
        Value::Bool(b) => html! { (if *b { "yes" } else { "no" }) },
        Value::Number(n) => html! { (n.to_string()) },
        other => html! { code { (other.to_string()) } },
    }
}

/// A status as a badge (colour and word, never colour alone).
pub(crate) fn status(status: &str) -> Markup {
    html! { span class={ "status status-" (status) } { (status) } }
}

/// Unix milliseconds as a readable UTC time.
pub(crate) fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_read_as_utc_dates() {
        assert_eq!(super::when(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(super::when(951_782_400_000 + 3_723_000), "2000-02-29 01:02:03 UTC");
    }
}
