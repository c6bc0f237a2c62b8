//! The few server-rendered pages (sign-in and consent, errors, sign-out). Plain HTML forms: no
//! JavaScript, no external resources, every interpolated value escaped.
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

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#222}\
h1{font-size:1.4rem}label{display:block;margin:.8rem 0 .2rem}input[type=text],input[type=password]{width:100%;padding:.4rem}\
button{margin:1rem .5rem 0 0;padding:.5rem 1rem}.error{color:#a00}.scopes li{font-family:monospace}";

/// A complete page with the security headers every page of ours carries: no caching, no
/// framing, no referrer, a CSP that allows nothing but our inline style and forms to ourselves
/// and (after submission) the redirect the server chose.
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head><body>\n{body}\n</body></html>\n",
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
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    response
}

/// An error shown to the person, not redirected (the client or its redirect URI is not
/// trustworthy, or the form is not ours).
pub fn error_page(status: StatusCode, message: &str) -> Response {
    page(
        status,
        "Sign-in error",
        &format!(
            "<h1>Sign-in cannot continue</h1>\n<p class=\"error\">{}</p>\n\
             <p>Go back to the application and start again.</p>",
            escape(message)
        ),
    )
}

/// The sign-in and consent form. `hidden` are the authorization request's parameters and the
/// CSRF token; `signed_in_as` skips the password fields when a session exists.
pub fn login_page(
    status: StatusCode,
    client_id: &str,
    scopes: &[String],
    hidden: &[(&str, &str)],
    signed_in_as: Option<&str>,
    error: Option<&str>,
) -> Response {
    let mut body = format!("<h1>Sign in to continue to {}</h1>\n", escape(client_id));
    if let Some(error) = error {
        body.push_str(&format!("<p class=\"error\" role=\"alert\">{}</p>\n", escape(error)));
    }
    body.push_str("<form method=\"post\" action=\"/authorize\">\n");
    for (name, value) in hidden {
        body.push_str(&format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
            escape(name),
            escape(value)
        ));
    }
    match signed_in_as {
        Some(user) => body.push_str(&format!("<p>Signed in as <strong>{}</strong>.</p>\n", escape(user))),
        None => body.push_str(
            "<label for=\"username\">Username</label>\
             <input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\" required>\n\
             <label for=\"password\">Password</label>\
             <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\n",
        ),
    }
    body.push_str(&format!("<p>{} asks for:</p>\n<ul class=\"scopes\">\n", escape(client_id)));
    for scope in scopes {
        body.push_str(&format!("<li>{}</li>\n", escape(scope)));
    }
    body.push_str(
        "</ul>\n<button type=\"submit\" name=\"action\" value=\"allow\">Allow</button>\
         <button type=\"submit\" name=\"action\" value=\"deny\" formnovalidate>Deny</button>\n</form>",
    );
    page(status, "Sign in", &body)
}

/// The sign-out confirmation (RP-initiated logout without a valid `id_token_hint`).
pub fn logout_confirm_page(hidden: &[(&str, &str)]) -> Response {
    let mut body = String::from("<h1>Sign out?</h1>\n<form method=\"post\" action=\"/end_session\">\n");
    for (name, value) in hidden {
        body.push_str(&format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
            escape(name),
            escape(value)
        ));
    }
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
