//! Swagger UI at `/docs/`, served from files compiled into the binary (nothing is fetched, at
//! build time or at run time).
//!
//! We serve it ourselves rather than through `utoipa-swagger-ui` for size: that crate embeds the
//! whole Swagger UI distribution, source maps and bundles the page never loads included (9.5 MB
//! of the 11.3 MB it added to the binary). `build.rs` extracts only the files the page loads from
//! the same vendored zip (`utoipa-swagger-ui-vendored`, a build-dependency only), and the
//! initializer is ours: it points the page at `/api/v1/openapi.json`, whose security schemes
//! (Basic, Bearer) make "Authorize" and "Try it out" work against the same origin.

use axum::Router;
use axum::http::{HeaderValue, header};
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
}

macro_rules! dist {
    ($file:literal) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/swagger-ui/", $file))
    };
}

/// Everything served under `/docs/`; anything else there is a 404 (the source maps included).
const ASSETS: [Asset; 8] = [
    Asset { name: "", content_type: HTML, cache_control: REVALIDATE, bytes: dist!("index.html") },
    Asset { name: "index.css", content_type: CSS, cache_control: KEEP, bytes: dist!("index.css") },
    Asset { name: "swagger-ui.css", content_type: CSS, cache_control: KEEP, bytes: dist!("swagger-ui.css") },
    Asset {
        name: "swagger-ui-bundle.js",
        content_type: JS,
        cache_control: KEEP,
        bytes: dist!("swagger-ui-bundle.js"),
    },
    Asset {
        name: "swagger-ui-standalone-preset.js",
        content_type: JS,
        cache_control: KEEP,
        bytes: dist!("swagger-ui-standalone-preset.js"),
    },
    Asset {
        name: "swagger-initializer.js",
        content_type: JS,
        cache_control: REVALIDATE,
        bytes: INITIALIZER.as_bytes(),
    },
    Asset {
        name: "favicon-32x32.png",
        content_type: PNG,
        cache_control: KEEP,
        bytes: dist!("favicon-32x32.png"),
    },
    Asset {
        name: "favicon-16x16.png",
        content_type: PNG,
        cache_control: KEEP,
        bytes: dist!("favicon-16x16.png"),
    },
];

impl Asset {
    fn response(&self) -> Response {
        (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(self.content_type)),
                (header::CACHE_CONTROL, HeaderValue::from_static(self.cache_control)),
                (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            ],
            self.bytes,
        )
            .into_response()
    }
}

/// The routes: `/docs` (a redirect to `/docs/`), `/docs/` and each file of [`ASSETS`].
pub fn router() -> Router {
    let bare = PREFIX.trim_end_matches('/');
    ASSETS
        .iter()
        .fold(Router::new().route(bare, get(|| async { Redirect::permanent(PREFIX) })), |router, asset| {
            router.route(&format!("{PREFIX}{}", asset.name), get(|| async { asset.response() }))
        })
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
        assert!(total < 2_000_000, "the embedded Swagger UI grew to {total} bytes");
    }
}
