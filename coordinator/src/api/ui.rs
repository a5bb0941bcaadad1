//! The web UI: plain HTML, CSS and JavaScript modules from `dashboards/ui/`, compiled
//! into the binary so a coordinator serves its own UI with nothing to install. `/`
//! redirects to `/ui/`; every other path under `/ui/` is an asset or a 404. File names
//! carry no content hash, so browsers revalidate each time (`no-cache`) and get a 304
//! for an unchanged asset by its ETag.
//!
//! For work on the UI, `DROVER_UI_DIR=dashboards/ui` makes the coordinator read the same
//! files from that directory at each request instead, so an edit needs no rebuild.

use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{Response as HttpResponse, StatusCode, header};
use warp::reply::Response;

/// One embedded file: its path under `/ui/`, content type and bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_bytes!(concat!("../../../dashboards/ui/", $path)),
        }
    };
}

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

const ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("app.css", CSS),
    asset!("favicon.svg", SVG),
    asset!("js/main.js", JS),
    asset!("js/api.js", JS),
    asset!("js/router.js", JS),
    asset!("js/format.js", JS),
    asset!("js/live.js", JS),
    asset!("js/log_view.js", JS),
    asset!("js/charts.js", JS),
    asset!("js/pages/signin.js", JS),
    asset!("js/pages/jobs.js", JS),
    asset!("js/pages/job.js", JS),
    asset!("js/pages/statistics.js", JS),
    asset!("js/pages/agents.js", JS),
    asset!("js/pages/alerts.js", JS),
];

/// The UI's own code only: no inline script or style, no other origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

pub fn routes() -> BoxedFilter<(Response,)> {
    let root = warp::path::end().and(warp::get()).map(|| redirect("/ui/"));
    let assets = warp::path("ui")
        .and(warp::get())
        .and(warp::path::full())
        .and(warp::path::tail())
        .and(warp::header::optional::<String>("if-none-match"))
        .map(
            |full: warp::path::FullPath, tail: warp::path::Tail, etag: Option<String>| {
                if full.as_str() == "/ui" {
                    return redirect("/ui/");
                }
                let wanted = match tail.as_str() {
                    "" => "index.html",
                    other => other,
                };
                serve(wanted, etag.as_deref())
            },
        );
    root.or(assets).unify().boxed()
}

fn redirect(to: &'static str) -> Response {
    HttpResponse::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, to)
        .body(&b""[..])
        .map_or_else(|_| Response::default(), |r| r.map(Into::into))
}

/// ETags of the assets, by index in [`ASSETS`], computed once.
fn etags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{}\"", &hex::encode(Sha256::digest(a.body))[..20]))
            .collect()
    })
}

/// `DROVER_UI_DIR`, read once: where to read the UI's files from instead of the binary.
fn ui_dir() -> Option<&'static std::path::Path> {
    static DIR: OnceLock<Option<std::path::PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| std::env::var_os("DROVER_UI_DIR").map(Into::into))
        .as_deref()
}

fn serve(path: &str, if_none_match: Option<&str>) -> Response {
    let Some(index) = ASSETS.iter().position(|a| a.path == path) else {
        return HttpResponse::builder()
            .status(StatusCode::NOT_FOUND)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .header(header::CACHE_CONTROL, "no-store")
            .body(format!("no UI file '{path}'\n"))
            .map_or_else(|_| Response::default(), |r| r.map(Into::into));
    };
    let asset = &ASSETS[index];
    // Only names from the table reach the file system.
    let (body, etag): (Bytes, String) = match ui_dir() {
        Some(dir) => {
            // A development aid only; the read is small, but it must not hold up the
            // async worker's other tasks meanwhile (the coordinator's runtime is
            // multi-threaded).
            let body = tokio::task::block_in_place(|| std::fs::read(dir.join(asset.path)))
                .unwrap_or_default();
            let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&body))[..20]);
            (body.into(), etag)
        }
        None => (Bytes::from_static(asset.body), etags()[index].clone()),
    };
    let etag = &etag;
    let unchanged = if_none_match.is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let builder = HttpResponse::builder()
        .header(header::ETAG, etag.as_str())
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY)
        .header(header::REFERRER_POLICY, "no-referrer");
    let response = if unchanged {
        builder.status(StatusCode::NOT_MODIFIED).body(Bytes::new())
    } else {
        builder
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, asset.content_type)
            .body(body)
    };
    response.map_or_else(|_| Response::default(), |r| r.map(Into::into))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_the_type_of_its_extension() {
        for asset in ASSETS {
            let expected = match asset.path.rsplit('.').next() {
                Some("html") => HTML,
                Some("css") => CSS,
                Some("js") => JS,
                Some("svg") => SVG,
                other => panic!("no content type for {other:?}"),
            };
            assert_eq!(asset.content_type, expected, "{}", asset.path);
            assert!(!asset.body.is_empty(), "{} is empty", asset.path);
        }
    }

    #[test]
    fn assets_by_path_and_revalidation() {
        let index = serve("index.html", None);
        assert_eq!(index.status(), StatusCode::OK);
        assert_eq!(index.headers()[header::CONTENT_TYPE], HTML);
        let script = serve("js/main.js", None);
        assert_eq!(script.headers()[header::CONTENT_TYPE], JS);
        assert_eq!(script.headers()[header::CACHE_CONTROL], "no-cache");
        let etag = script.headers()[header::ETAG]
            .to_str()
            .expect("etag")
            .to_owned();
        assert_eq!(
            serve("js/main.js", Some(&etag)).status(),
            StatusCode::NOT_MODIFIED
        );
        assert_eq!(
            serve("js/main.js", Some("\"stale\"")).status(),
            StatusCode::OK
        );
        assert_eq!(serve("../Cargo.toml", None).status(), StatusCode::NOT_FOUND);
        assert_eq!(redirect("/ui/").headers()[header::LOCATION], "/ui/");
    }
}
