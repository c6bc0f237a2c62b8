//! RFC 9457 (formerly 7807) `application/problem+json` errors.
//!
//! Handlers return [`Problem`]s; [`normalize`] (installed on every router by
//! [`crate::server`]) turns *every* error response into one — axum's extractor rejections,
//! 404s, 405s, 413s, timeouts and panics included — and stamps it with the request id. Problem
//! `type`s are stable URNs (`urn:demo:problem:<slug>`) that clients may match on; 5xx bodies
//! never carry internals (log them instead).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde::Serialize;

use crate::request_id::RequestId;

/// The media type of problem documents.
pub const CONTENT_TYPE: &str = "application/problem+json";
/// Prefix of every problem `type`.
pub const TYPE_PREFIX: &str = "urn:demo:problem:";
/// Longest rejection message from a 4xx body that is passed on as `detail`.
const MAX_DETAIL: usize = 512;

/// A problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `urn:demo:problem:<slug>`: stable, safe to match on.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short, fixed summary of the problem type.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// What went wrong with this request, for the client. Never internals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The request id, to quote when asking for help; the logs carry the same id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl Problem {
    /// A problem of type `slug` with a fixed title.
    pub fn new(status: StatusCode, slug: &str, title: &str) -> Self {
        Self {
            type_uri: format!("{TYPE_PREFIX}{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: None,
            instance: None,
            request_id: None,
        }
    }

    /// Adds a detail for the client.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// 400, `bad-request`.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", "The request is malformed").with_detail(detail)
    }

    /// 404, `not-found`.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "No such resource")
    }

    /// 500, `internal`. Log the cause before returning it: the client learns nothing more.
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error")
    }

    /// 503, `unavailable`.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable").with_detail(detail)
    }

    /// The default problem for a bare status code.
    pub fn for_status(status: StatusCode) -> Self {
        let (slug, title) = match status {
            StatusCode::BAD_REQUEST => ("bad-request", "The request is malformed"),
            StatusCode::UNAUTHORIZED => ("unauthorized", "Authentication required"),
            StatusCode::FORBIDDEN => ("forbidden", "Not allowed"),
            StatusCode::NOT_FOUND => ("not-found", "No such resource"),
            StatusCode::METHOD_NOT_ALLOWED => ("method-not-allowed", "Method not allowed"),
            StatusCode::NOT_ACCEPTABLE => ("not-acceptable", "Not acceptable"),
            StatusCode::REQUEST_TIMEOUT => ("request-timeout", "The request took too long"),
            StatusCode::CONFLICT => ("conflict", "Conflict"),
            StatusCode::PAYLOAD_TOO_LARGE => ("payload-too-large", "The request body is too large"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported-media-type", "Unsupported content type"),
            StatusCode::UNPROCESSABLE_ENTITY => ("unprocessable", "The request cannot be processed"),
            StatusCode::TOO_MANY_REQUESTS => ("too-many-requests", "Too many requests"),
            StatusCode::SERVICE_UNAVAILABLE => ("unavailable", "Service unavailable"),
            StatusCode::GATEWAY_TIMEOUT => ("timeout", "The request timed out"),
            s if s.is_server_error() => ("internal", "Internal error"),
            _ => ("error", "Request failed"),
        };
        Self::new(status, slug, title)
    }

    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn render(&self) -> Response {
        let body = serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = self.status_code();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        response
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = self.render();
        // normalize() re-renders with the request id and path; the extension says it may.
        response.extensions_mut().insert(self);
        response
    }
}

/// A response extension that tells [`normalize`] to leave an error response as it is: for the
/// few documents whose shape is fixed elsewhere (the `readyz` status report).
#[derive(Debug, Clone, Copy)]
pub struct Passthrough;

/// Middleware: every 4xx/5xx response leaves as problem+json with the request id.
///
/// * a [`Problem`] from a handler gets `instance` and `request_id` filled in;
/// * other 4xx bodies (axum's rejections: "missing field `x`…") become the `detail` if short
///   and textual — they describe the client's input, not our internals;
/// * other 5xx bodies are dropped: whatever they say stays in the logs.
pub async fn normalize(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let request_id = request.extensions().get::<RequestId>().map(|r| r.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.extensions().get::<Passthrough>().is_some()
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let mut problem = match parts.extensions.remove::<Problem>() {
        Some(p) => p,
        None => {
            let mut p = Problem::for_status(status);
            if status.is_client_error() {
                let is_text = parts
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("text/plain"));
                if is_text && let Ok(collected) = body.collect().await {
                    let bytes = collected.to_bytes();
                    if bytes.len() <= MAX_DETAIL
                        && let Ok(text) = std::str::from_utf8(&bytes)
                        && !text.trim().is_empty()
                    {
                        p.detail = Some(text.trim().to_owned());
                    }
                }
            }
            p
        }
    };
    problem.instance = Some(path);
    problem.request_id = request_id;
    let mut out = problem.render();
    // Keep headers such as WWW-Authenticate, Allow and Retry-After.
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().append(name.clone(), value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_status_gives_stable_types() {
        assert_eq!(Problem::for_status(StatusCode::NOT_FOUND).type_uri, "urn:demo:problem:not-found");
        assert_eq!(Problem::for_status(StatusCode::BAD_GATEWAY).type_uri, "urn:demo:problem:internal");
        let json = serde_json::to_value(Problem::bad_request("x")).unwrap();
        assert_eq!(json["type"], "urn:demo:problem:bad-request");
        assert_eq!(json["status"], 400);
        assert!(json.get("instance").is_none());
    }
}
