//! Swagger UI at `/docs/`, served from files compiled into the binary (nothing is fetched, at
//! build time or at run time).
//!
//! We serve it ourselves rather than through `utoipa-swagger-ui` for size: that crate embeds the
//! whole Swagger UI distribution, source maps and bundles the page never loads included (9.5 MB
//! of the 11.3 MB it added to the binary). `build.rs` extracts only the files the page loads from
//! the same vendored zip (`utoipa-swagger-ui-vendored`, a build-dependency only), and the
//! initializer is ours: it points the page at `/api/v1/openapi.json`, whose security schemes
//! (Basic, Bearer) make "Authorize" and "Try it out" work against the same origin. The three
//! large files are embedded gzipped (1.8 → 0.5 MB) and sent as they are to clients that accept
//! gzip (every browser); any other client gets them decompressed.

use axum::Router;
use std::io::Read;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// Where the page lives; `PREFIX` without the slash redirects here.
const PREFIX: &str = "/docs/";

/// Our initializer (the distribution's points at the petstore): the same settings
/// `utoipa-swagger-ui` wrote for one document.
const INITIALIZER: &str = r##"window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/api/v1/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    layout: "StandaloneLayout",
  });
};
"##;

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const PNG: &str = "image/png";

/// The page and our initializer are revalidated each time; the distribution's files change
/// only with a new build, so a browser may keep them for a day.
const REVALIDATE: &str = "no-cache";
const KEEP: &str = "public, max-age=86400";

/// One file of the page.
struct Asset {
    /// The name under `/docs/` (`""` is the page itself).
    name: &'static str,
    content_type: &'static str,
    cache_control: &'static str,
    bytes: &'static [u8],
    /// `bytes` are gzip (built by `build.rs`), not the file itself.
    gzipped: bool,
}

macro_rules! dist {
    ($file:literal $(, $suffix:literal)?) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/swagger-ui/", $file $(, $suffix)?))
    };
}

macro_rules! asset {
    ($name:literal, $content_type:expr, $cache:expr, gzip) => {
        Asset {
            name: $name,
            content_type: $content_type,
            cache_control: $cache,
            bytes: dist!($name, ".gz"),
            gzipped: true,
        }
    };
    ($name:literal, $content_type:expr, $cache:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            cache_control: $cache,
            bytes: dist!($name),
            gzipped: false,
        }
    };
}

/// Everything served under `/docs/`; anything else there is a 404 (the source maps included).
static ASSETS: [Asset; 8] = [
    Asset {
        name: "",
        content_type: HTML,
        cache_control: REVALIDATE,
        bytes: dist!("index.html"),
        gzipped: false,
    },
    asset!("index.css", CSS, KEEP),
    asset!("swagger-ui.css", CSS, KEEP, gzip),
    asset!("swagger-ui-bundle.js", JS, KEEP, gzip),
    asset!("swagger-ui-standalone-preset.js", JS, KEEP, gzip),
    Asset {
        name: "swagger-initializer.js",
        content_type: JS,
        cache_control: REVALIDATE,
        bytes: INITIALIZER.as_bytes(),
        gzipped: false,
    },
    asset!("favicon-32x32.png", PNG, KEEP),
    asset!("favicon-16x16.png", PNG, KEEP),
];

impl Asset {
    fn response(&self, request: &HeaderMap) -> Response {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(self.cache_control));
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        if !self.gzipped {
            return (headers, self.bytes).into_response();
        }
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        if accepts_gzip(request) {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            return (headers, self.bytes).into_response();
        }
        let mut plain = Vec::new();
        match flate2::read::GzDecoder::new(self.bytes).read_to_end(&mut plain) {
            Ok(_) => (headers, plain).into_response(),
            // build.rs wrote these bytes with flate2; failing here means a broken build.
            Err(e) => {
                tracing::error!(file = self.name, error = %e, "the embedded Swagger UI file does not decompress");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}

/// Whether `Accept-Encoding` takes gzip (named, or `*`, without `q=0`).
fn accepts_gzip(request: &HeaderMap) -> bool {
    request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let refused =
                parts.any(|p| p.strip_prefix("q=").is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q == 0.0)));
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// The routes: `/docs` (a redirect to `/docs/`), `/docs/` and each file of [`ASSETS`].
pub fn router() -> Router {
    let bare = PREFIX.trim_end_matches('/');
    ASSETS.iter().fold(
        Router::new().route(bare, get(|| async { Redirect::permanent(PREFIX) })),
        |router, asset| {
            router.route(
                &format!("{PREFIX}{}", asset.name),
                get(move |request: HeaderMap| async move { asset.response(&request) }),
            )
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_files_we_serve() {
        let page = std::str::from_utf8(ASSETS[0].bytes).unwrap();
        let served: Vec<&str> = ASSETS.iter().map(|a| a.name).collect();
        let mut loaded = 0;
        for attr in ["href=\"", "src=\""] {
            for (_, rest) in page.match_indices(attr).map(|(i, _)| page.split_at(i + attr.len())) {
                let target = rest.split('"').next().unwrap().trim_start_matches("./");
                assert!(served.contains(&target), "index.html loads {target}, which is not served");
                loaded += 1;
            }
        }
        assert_eq!(loaded, 7, "index.html changed: {page}");
    }

    #[test]
    fn the_initializer_points_at_our_document_and_no_map_is_embedded() {
        assert!(INITIALIZER.contains("url: \"/api/v1/openapi.json\""));
        assert!(ASSETS.iter().all(|a| !a.name.ends_with(".map")));
        let total: usize = ASSETS.iter().map(|a| a.bytes.len()).sum();
        assert!(total < 700_000, "the embedded Swagger UI grew to {total} bytes");
    }

    #[test]
    fn gzip_is_sent_only_to_clients_that_accept_it() {
        let with = |value: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(value));
            accepts_gzip(&h)
        };
        assert!(with("gzip, deflate, br"));
        assert!(with("br;q=1.0, GZIP;q=0.5"));
        assert!(with("*"));
        assert!(!with("gzip;q=0"));
        assert!(!with("br, deflate"));
        assert!(!with("identity"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn every_gzipped_file_decompresses_to_what_the_page_needs() {
        for asset in ASSETS.iter().filter(|a| a.gzipped) {
            let mut plain = String::new();
            flate2::read::GzDecoder::new(asset.bytes).read_to_string(&mut plain).unwrap();
            assert!(plain.len() > 100_000, "{}: {} bytes", asset.name, plain.len());
        }
    }
}
