//! Request ids: taken from `x-request-id` when the caller sent a sane one, otherwise a new
//! UUIDv7; stored in the request's extensions, echoed in the response header, recorded in the
//! request's tracing span and in problem documents.
//!
//! tower-http's `SetRequestId` accepts any inbound value; this middleware validates it first,
//! because the id is copied into logs and error bodies.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

/// The header carrying the id.
pub const HEADER: &str = "x-request-id";

/// The id of the current request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn accept(value: &HeaderValue) -> Option<Self> {
        let s = value.to_str().ok()?;
        let sane = (1..=64).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        sane.then(|| Self(s.to_owned()))
    }
}

/// Middleware: see the module documentation.
pub async fn layer(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(HEADER)
        .and_then(RequestId::accept)
        .unwrap_or_else(|| RequestId(uuid::Uuid::now_v7().to_string()));
    let header = HeaderValue::from_str(id.as_str()).ok();
    request.extensions_mut().insert(id);
    let mut response = next.run(request).await;
    if let Some(value) = header {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_ids_are_replaced() {
        assert!(RequestId::accept(&HeaderValue::from_static("abc-123_x.y")).is_some());
        assert!(RequestId::accept(&HeaderValue::from_static("a b")).is_none());
        assert!(RequestId::accept(&HeaderValue::from_static("{\"json\":1}")).is_none());
        let long = "a".repeat(65);
        assert!(RequestId::accept(&HeaderValue::from_str(&long).unwrap()).is_none());
    }
}
