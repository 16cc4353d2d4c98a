//! The dashboard: `GET /` and its assets, embedded in the binary so the page needs nothing
//! from the internet (no CDN, no build step). The page itself (`dashboard/app.js`) draws the
//! key space, the routing table and lookups as SVG from the JSON API; docs/dashboard.md says
//! what each part shows.
//!
//! Every response says `Cache-Control: no-cache` with an `ETag`: the browser keeps its copy
//! but asks each time whether it is still the one, so a new binary's page is never hidden
//! behind an old cached one, and an unchanged asset costs a 304 with no body.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// One embedded file of the page.
#[derive(Debug, Clone, Copy)]
struct Asset {
    /// Where the page asks for it.
    path: &'static str,
    /// Its `Content-Type`.
    content_type: &'static str,
    /// Its bytes, embedded at build time.
    body: &'static [u8],
}

/// The page's files. `index.html` names the others by these paths.
const ASSETS: [Asset; 3] = [
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("dashboard/index.html"),
    },
    Asset {
        path: "/assets/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("dashboard/app.js"),
    },
    Asset {
        path: "/assets/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("dashboard/style.css"),
    },
];

/// What the page may load and where it may connect: only its own origin. It has no inline
/// script or style, so a script injected through data shown in the page could not run.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The routes of the dashboard: `GET /` (the page) and `GET /assets/...` (its script and
/// style sheet), for merging into the API's router whatever its state type.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new();
    for asset in ASSETS {
        let etag = etag_of(asset.body);
        router = router.route(
            asset.path,
            get(move |headers: HeaderMap| async move { respond(asset, &etag, &headers) }),
        );
    }
    router
}

/// A strong validator for `body`: its FNV-1a 64-bit hash, quoted as RFC 9110 wants.
fn etag_of(body: &[u8]) -> String {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = body.iter().fold(FNV_OFFSET, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME)
    });
    format!("\"{hash:016x}\"")
}

/// True when the request's `If-None-Match` names `etag` (or is `*`).
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

/// The response for one asset: its body, or 304 when the browser's copy is current.
fn respond(asset: Asset, etag: &str, headers: &HeaderMap) -> Response {
    let etag_value = HeaderValue::from_str(etag).expect("an ETag is quoted hex digits");
    let common = [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::ETAG, etag_value),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
    ];
    if not_modified(headers, etag) {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        common,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        )],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asset(path: &str) -> Asset {
        *ASSETS
            .iter()
            .find(|a| a.path == path)
            .expect("asset exists")
    }

    #[test]
    fn each_asset_is_served_with_its_content_type_and_cache_headers() {
        for (path, kind) in [
            ("/", "text/html"),
            ("/assets/app.js", "text/javascript"),
            ("/assets/style.css", "text/css"),
        ] {
            let a = asset(path);
            let r = respond(a, &etag_of(a.body), &HeaderMap::new());
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            let h = r.headers();
            let ct = h[header::CONTENT_TYPE].to_str().unwrap();
            assert!(ct.starts_with(kind), "{path}: content type {ct}");
            assert_eq!(h[header::CACHE_CONTROL], "no-cache", "{path}");
            assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
            assert!(h.contains_key(header::ETAG), "{path}");
        }
    }

    #[test]
    fn a_current_copy_gets_304_and_a_stale_one_the_body() {
        let a = asset("/assets/app.js");
        let etag = etag_of(a.body);
        let mut current = HeaderMap::new();
        current.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&format!("\"0000000000000000\", W/{etag}")).unwrap(),
        );
        assert_eq!(
            respond(a, &etag, &current).status(),
            StatusCode::NOT_MODIFIED
        );
        let mut stale = HeaderMap::new();
        stale.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"0000000000000000\""),
        );
        assert_eq!(respond(a, &etag, &stale).status(), StatusCode::OK);
    }

    #[test]
    fn etags_differ_between_assets() {
        let tags: Vec<String> = ASSETS.iter().map(|a| etag_of(a.body)).collect();
        assert_ne!(tags[0], tags[1]);
        assert_ne!(tags[1], tags[2]);
    }

    #[test]
    fn the_page_asks_only_for_embedded_assets_and_nothing_off_site() {
        let html = std::str::from_utf8(asset("/").body).unwrap();
        let mut asked = 0;
        for part in html.split(['"', '\'']) {
            if part.starts_with("/assets/") {
                assert!(
                    ASSETS.iter().any(|a| a.path == part),
                    "index.html asks for {part}, which is not embedded"
                );
                asked += 1;
            }
        }
        assert_eq!(asked, 2, "index.html should load app.js and style.css");
        for a in ASSETS {
            let text = std::str::from_utf8(a.body).unwrap();
            for url in text.match_indices("http") {
                let rest = &text[url.0..];
                // The SVG namespace is a name, not something fetched.
                assert!(
                    !rest.starts_with("https://") && !rest.starts_with("http://")
                        || rest.starts_with("http://www.w3.org/2000/svg"),
                    "{} loads something off site: {}",
                    a.path,
                    &rest[..rest.len().min(60)]
                );
            }
        }
    }
}
