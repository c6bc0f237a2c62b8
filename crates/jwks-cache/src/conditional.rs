//! One GET under the HTTP caching rules, shared by the key set ([`crate::Provider`]) and the
//! discovery document ([`crate::Discovery`]): conditional on the kept response's validators,
//! the body read up to a limit, and a 304 that leaves the validators out taken as confirming
//! ours.

use http::HeaderValue;
use http::header::{ACCEPT, CONTENT_LENGTH, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};

/// The validators of the kept response.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Validators<'a> {
    pub(crate) etag: Option<&'a HeaderValue>,
    pub(crate) last_modified: Option<&'a HeaderValue>,
}

/// What the server answered.
#[derive(Debug)]
pub(crate) enum Answer {
    /// 200, the body within the limit; the request and response heads for the cache policy.
    Ok { request: http::request::Parts, response: http::response::Parts, body: Vec<u8> },
    /// 304; the heads for the cache policy's `after_response`.
    NotModified { request: http::request::Parts, response: http::response::Parts },
    /// Any other status.
    Status(u16),
    /// A body larger than the limit (declared or read).
    TooLarge,
}

/// GETs `url` (also as `uri`, for the cache policy) accepting `accept`, conditionally when
/// `kept` has validators, reading at most `limit` bytes of body.
pub(crate) async fn get(
    client: &reqwest::Client,
    url: &reqwest::Url,
    uri: &http::Uri,
    accept: &'static str,
    kept: Option<Validators<'_>>,
    limit: usize,
) -> Result<Answer, reqwest::Error> {
    let mut request = http::Request::new(());
    *request.uri_mut() = uri.clone();
    let headers = request.headers_mut();
    headers.insert(ACCEPT, HeaderValue::from_static(accept));
    if let Some(v) = kept {
        if let Some(etag) = v.etag {
            headers.insert(IF_NONE_MATCH, etag.clone());
        }
        if let Some(modified) = v.last_modified {
            headers.insert(IF_MODIFIED_SINCE, modified.clone());
        }
    }
    let (request, ()) = request.into_parts();
    let mut response = client.get(url.clone()).headers(request.headers.clone()).send().await?;
    let mut head = http::Response::new(()).into_parts().0;
    head.status = response.status();
    head.headers = response.headers().clone();
    if head.status == http::StatusCode::NOT_MODIFIED {
        // A 304 answers the conditions we sent, which came from our one kept response. Servers
        // may leave the validators out (RFC 9110 §15.4.5 does not require Last-Modified), and
        // the cache rules would then refuse to match it: a 304 with no validator at all
        // confirms ours.
        if let Some(v) = kept
            && !head.headers.contains_key(ETAG)
            && !head.headers.contains_key(LAST_MODIFIED)
        {
            if let Some(etag) = v.etag {
                head.headers.insert(ETAG, etag.clone());
            }
            if let Some(modified) = v.last_modified {
                head.headers.insert(LAST_MODIFIED, modified.clone());
            }
        }
        return Ok(Answer::NotModified { request, response: head });
    }
    if head.status != http::StatusCode::OK {
        return Ok(Answer::Status(head.status.as_u16()));
    }
    let declared = head.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Ok(Answer::TooLarge);
    }
    let mut body = Vec::with_capacity(declared.map_or(4096, |len| len as usize).min(limit));
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Ok(Answer::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer::Ok { request, response: head, body })
}
