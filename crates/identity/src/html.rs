//! The few server-rendered pages (sign-in and consent, errors, sign-out). Plain HTML forms: no
//! JavaScript, no external resources, every interpolated value escaped; one `<main>` with
//! headings, labelled fields, errors announced (`role=alert`) and tied to the fields
//! (`aria-describedby`), and a visible keyboard focus.
//!
//! Four pages do not justify a template engine; `escape` is the one rule that matters here.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Escapes text for HTML element content and double-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;line-height:1.5;max-width:30rem;margin:2rem auto;padding:0 1rem;\
color:#1f2328;background:#fff}h1{font-size:1.5rem;line-height:1.25;margin:0 0 .75rem}h2{font-size:1.1rem;margin:1.5rem 0 .5rem}\
.context{display:grid;grid-template-columns:max-content 1fr;gap:.1rem 1rem;margin:0 0 1rem;color:#3d444d}\
.context dt{font-weight:600}.context dd{margin:0}.id,.scope-name{font-family:ui-monospace,monospace;font-size:.85em;color:#59636e}\
label{display:block;margin:.8rem 0 .2rem;font-weight:600}\
input[type=text],input[type=password]{box-sizing:border-box;width:100%;padding:.5rem;font:inherit;border:1px solid #6e7781;border-radius:4px}\
input[aria-invalid=true]{border:2px solid #b00020}.scopes{padding-left:1.25rem}.scopes li{margin:.35rem 0}\
.error{color:#8a0016;background:#fdecee;border-left:4px solid #b00020;padding:.5rem .75rem}.note{color:#3d444d;font-size:.95rem}\
.actions{display:flex;gap:.75rem;margin-top:1.5rem}button{padding:.6rem 1.4rem;font-size:1rem;border-radius:4px;\
border:2px solid #1a5fb4;background:#fff;color:#1a5fb4;cursor:pointer;font:inherit}button[value=allow]{background:#1a5fb4;color:#fff}\
:focus-visible{outline:3px solid #000;outline-offset:3px}";

/// The Content-Security-Policy of every page: nothing may load, no script may run, only our
/// one inline stylesheet (by its hash, so an injected `<style>` or `style=` would not apply),
/// no framing, no `<base>`.
fn content_security_policy() -> &'static HeaderValue {
    static CSP: std::sync::LazyLock<HeaderValue> = std::sync::LazyLock::new(|| {
        use base64::Engine as _;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, STYLE.as_bytes());
        let hash = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
        let policy =
            format!("default-src 'none'; style-src 'sha256-{hash}'; frame-ancestors 'none'; base-uri 'none'");
        // Base64 and ASCII: always a valid header value.
        HeaderValue::from_str(&policy).unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
    });
    &CSP
}

/// A complete page with the security headers every page of ours carries: no caching, no
/// framing, no referrer, a CSP that allows nothing but our inline style and forms to ourselves
/// and (after submission) the redirect the server chose. `body` is the content of `<main>`.
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head><body>\n<main>\n{body}\n</main>\n</body></html>\n",
        title = escape(title),
    );
    // Our pages are the answer even for 4xx/5xx: not rewritten into problem+json.
    let mut response = (status, axum::Extension(service_kit::problem::Passthrough), html).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CONTENT_SECURITY_POLICY, content_security_policy().clone());
    response
}

/// An error shown to the person, not redirected (the client or its redirect URI is not
/// trustworthy, or the form is not ours).
pub fn error_page(status: StatusCode, message: &str) -> Response {
    page(
        status,
        "Sign-in error",
        &format!(
            "<h1>Sign-in cannot continue</h1>\n<p class=\"error\" role=\"alert\">{}</p>\n\
             <p>Go back to the application and start again.</p>",
            escape(message)
        ),
    )
}

/// Why the sign-in form is shown again.
#[derive(Debug, Clone, Copy)]
pub struct FormError<'a> {
    /// What the person reads (and a screen reader announces).
    pub message: &'a str,
    /// The username and password were wrong: the fields are marked invalid.
    pub fields_invalid: bool,
}

/// What the sign-in and consent form shows.
#[derive(Debug, Clone)]
pub struct LoginView<'a> {
    /// The application's display name (its `client_id` when it has none).
    pub app_name: &'a str,
    /// Its `client_id`, shown beside a display name: names are not unique, ids are.
    pub client_id: &'a str,
    /// The tenant the request is for (a name, or an id when no name is known).
    pub tenant: &'a str,
    /// The requested scopes: name and, where known, a description.
    pub scopes: Vec<(&'a str, Option<&'a str>)>,
    /// The authorization request's parameters and the CSRF token, as hidden fields.
    pub hidden: &'a [(&'a str, &'a str)],
    /// A session exists: no password fields.
    pub signed_in_as: Option<&'a str>,
    /// The username to fill in again after a failed sign-in.
    pub username: Option<&'a str>,
    /// Why the form is shown again.
    pub error: Option<FormError<'a>>,
}

/// Appends `hidden` as `<input type="hidden">` fields.
fn push_hidden(body: &mut String, hidden: &[(&str, &str)]) {
    for (name, value) in hidden {
        body.push_str(&format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
            escape(name),
            escape(value)
        ));
    }
}

/// The id of the error message that the fields' `aria-describedby` point at.
const ERROR_ID: &str = "signin-error";

/// The sign-in and consent form. Its focus order is the reading order: username, password,
/// Allow, Deny. The hidden fields keep the exact form `<input type="hidden" name=".." value="..">`
/// that headless clients (the demo CLI, the tests) scrape.
pub fn login_page(status: StatusCode, view: &LoginView<'_>) -> Response {
    let app = escape(view.app_name);
    let mut body = format!(
        "<h1>Sign in to continue to {app}</h1>\n<dl class=\"context\">\n<dt>Application</dt><dd>{app}"
    );
    if view.app_name != view.client_id {
        body.push_str(&format!(" <span class=\"id\">(client ID {})</span>", escape(view.client_id)));
    }
    body.push_str(&format!("</dd>\n<dt>Tenant</dt><dd>{}</dd>\n</dl>\n", escape(view.tenant)));
    if let Some(error) = &view.error {
        body.push_str(&format!(
            "<p id=\"{ERROR_ID}\" class=\"error\" role=\"alert\">{}</p>\n",
            escape(error.message)
        ));
    }
    body.push_str("<form method=\"post\" action=\"/authorize\">\n");
    push_hidden(&mut body, view.hidden);
    body.push_str("<h2>Your account</h2>\n");
    match view.signed_in_as {
        Some(user) => body.push_str(&format!("<p>Signed in as <strong>{}</strong>.</p>\n", escape(user))),
        None => {
            let value = view.username.map(|u| format!(" value=\"{}\"", escape(u))).unwrap_or_default();
            let mut described = String::new();
            if let Some(error) = &view.error {
                described.push_str(&format!(" aria-describedby=\"{ERROR_ID}\""));
                if error.fields_invalid {
                    described.push_str(" aria-invalid=\"true\"");
                }
            }
            body.push_str(&format!(
                "<label for=\"username\">Username</label>\n\
                 <input type=\"text\" id=\"username\" name=\"username\"{value} autocomplete=\"username\" \
                 autocapitalize=\"none\" spellcheck=\"false\" required{described}>\n\
                 <label for=\"password\">Password</label>\n\
                 <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" \
                 required{described}>\n"
            ));
        }
    }
    body.push_str(&format!("<h2 id=\"scopes-heading\">{app} asks to</h2>\n<ul class=\"scopes\" aria-labelledby=\"scopes-heading\">\n"));
    for (scope, description) in &view.scopes {
        match description {
            Some(text) => body.push_str(&format!(
                "<li>{} <span class=\"scope-name\">({})</span></li>\n",
                escape(text),
                escape(scope)
            )),
            None => body.push_str(&format!("<li><span class=\"scope-name\">{}</span></li>\n", escape(scope))),
        }
    }
    body.push_str(&format!(
        "</ul>\n<p class=\"note\">Allow only if you trust {app}. Deny sends you back to it without signing in.</p>\n\
         <div class=\"actions\"><button type=\"submit\" name=\"action\" value=\"allow\">Allow</button>\
         <button type=\"submit\" name=\"action\" value=\"deny\" formnovalidate>Deny</button></div>\n</form>"
    ));
    page(status, &format!("Sign in to {}", view.app_name), &body)
}

/// The sign-out confirmation (RP-initiated logout without a valid `id_token_hint`).
pub fn logout_confirm_page(hidden: &[(&str, &str)]) -> Response {
    let mut body = String::from("<h1>Sign out?</h1>\n<form method=\"post\" action=\"/end_session\">\n");
    push_hidden(&mut body, hidden);
    body.push_str("<button type=\"submit\" name=\"action\" value=\"logout\">Sign out</button>\n</form>");
    page(StatusCode::OK, "Sign out", &body)
}

/// Shown after signing out when there is nowhere registered to return to.
pub fn logged_out_page() -> Response {
    page(StatusCode::OK, "Signed out", "<h1>You are signed out</h1>\n<p>You can close this window.</p>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_neutralises_markup_and_attribute_breakouts() {
        assert_eq!(
            escape(r#""><script>alert('x')</script>&"#),
            "&quot;&gt;&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;"
        );
        assert_eq!(escape("plain-text_1.2"), "plain-text_1.2");
    }
}
