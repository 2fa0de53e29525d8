//! The page shell: one stylesheet, one script, a skip link, the staff
//! navigation and the signed-in user with a logout button.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use provisio_store::models::Scope;

use crate::session::StaffSession;

fn shell(title: &str, nav: Markup, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Provisio" }
                link rel="stylesheet" href="/assets/console.css";
                script src="/assets/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                (nav)
                main id="main" { (main) }
            }
        }
    }
}

/// A staff page with the navigation.
pub fn staff(title: &str, session: &StaffSession, main: Markup) -> Markup {
    let nav = html! {
        header.top {
            a.brand href="/" { "Provisio" }
            nav aria-label="Main" {
                ul {
                    li { a href="/" { "Dashboard" } }
                    li { a href="/fleet" { "Fleet" } }
                    li { a href="/configurations" { "Configurations" } }
                    li { a href="/products" { "Products" } }
                    li { a href="/services" { "Services" } }
                    li { a href="/jobs" { "Jobs" } }
                    li { a href="/events" { "Events" } }
                    li { a href="/reports" { "Reports" } }
                    li { a href="/audit" { "Audit" } }
                    @if session.scope >= Scope::Admin { li { a href="/webhooks" { "Webhooks" } } li { a href="/access" { "Access" } } li { a href="/workbench" { "Workbench" } } }
                }
            }
            form.signout method="post" action="/logout" {
                input type="hidden" name="_csrf" value=(session.csrf);
                span.who { (session.name) " (" (session.scope.as_str()) ")" }
                " "
                button type="submit" { "Sign out" }
            }
        }
    };
    shell(title, nav, html! { h1 { (title) } (main) })
}

/// A client-area page.
pub fn client(title: &str, main: Markup) -> Markup {
    let nav = html! {
        header.top {
            a.brand href="/client" { "My services" }
        }
    };
    shell(title, nav, html! { h1 { (title) } (main) })
}

/// A page with no navigation (sign-in, errors).
pub fn bare(title: &str, main: Markup) -> Markup {
    shell(title, html! { header.top { span.brand { "Provisio" } } }, html! { h1 { (title) } (main) })
}

/// Why a request was refused, shown as an error page.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    /// A refusal with a status and a sentence for the reader.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Refusal { status, message: message.into() }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error_page(self.status, &self.message)
    }
}

/// An error as a page.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    (status, Html(bare(title, html! { p.notice.bad role="alert" { (message) } }).into_string())).into_response()
}

/// A page as a response.
pub fn respond(status: StatusCode, page: Markup) -> Response {
    (status, Html(page.into_string())).into_response()
}
