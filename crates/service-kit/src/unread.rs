//! `Connection: close` on an HTTP/1.x response whose request body was not read to its end.
//!
//! A handler may answer before it reads the body (401 before the JSON, 413 on the declared
//! length). The connection cannot carry another request then — the unread bytes would be taken
//! for the next one — so hyper closes it after the response. Without saying so, a client that
//! pools connections may already have sent its next request on it, and sees the connection
//! reset (Python's "EOF occurred in violation of protocol"). Saying `Connection: close` makes
//! the client drop the connection itself, with no race. HTTP/2 streams are independent: nothing
//! to do there (and the header is forbidden).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, Version, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Body as _, Frame, SizeHint};

/// The middleware (see the module documentation).
pub async fn layer(req: Request, next: Next) -> Response {
    let http1 = req.version() < Version::HTTP_2;
    if !http1 || req.body().is_end_stream() {
        return next.run(req).await;
    }
    let ended = Arc::new(AtomicBool::new(false));
    let (parts, body) = req.into_parts();
    let body = Body::new(Tracked { inner: body, ended: ended.clone() });
    let mut response = next.run(Request::from_parts(parts, body)).await;
    if !ended.load(Ordering::Acquire) {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request body that records when it has been read to its end.
struct Tracked {
    inner: Body,
    ended: Arc<AtomicBool>,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.ended.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use axum::Router;
    use axum::routing::post;
    use tower::ServiceExt;

    use super::*;

    fn app() -> Router {
        Router::new()
            .route("/read", post(|body: Bytes| async move { body.len().to_string() }))
            .route("/ignore", post(|| async { "not read" }))
            .layer(axum::middleware::from_fn(layer))
    }

    async fn connection(path: &str, body: &'static str, version: Version) -> Option<HeaderValue> {
        let req = Request::post(path).version(version).body(Body::from(body)).unwrap();
        app().oneshot(req).await.unwrap().headers().get(header::CONNECTION).cloned()
    }

    #[tokio::test]
    async fn only_an_unread_http1_body_closes_the_connection() {
        assert_eq!(connection("/ignore", "payload", Version::HTTP_11).await.unwrap(), "close");
        assert_eq!(connection("/read", "payload", Version::HTTP_11).await, None);
        assert_eq!(connection("/ignore", "", Version::HTTP_11).await, None, "no body: nothing unread");
        assert_eq!(connection("/ignore", "payload", Version::HTTP_2).await, None, "forbidden in HTTP/2");
    }
}
