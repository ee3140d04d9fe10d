//! The web panel (`GET /`, `GET /ui/{file}`): a small single-page app embedded in the
//! binary at compile time (`crates/cng-core/ui/`), so the native server and the Worker
//! serve the same files with no build step and no CDN.
//!
//! Every file is sent with a strict Content-Security-Policy: scripts and styles only
//! from cng itself (no inline script, no `eval`), requests only to cng, images from cng
//! and `data:`/`blob:` (generated pictures), media from `blob:` (speech), no framing.
//! The panel keeps its key in `sessionStorage` and sends it as a bearer header; it sets
//! no cookie, so there is nothing for a cross-site request to ride on.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Response, StatusCode};

use super::Body;
use crate::error::{Error, ErrorKind};

/// The policy for every panel file.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; \
    font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// (file, media type, contents).
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../../ui/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../ui/app.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../ui/favicon.svg"),
    ),
];

pub(super) fn serve(file: &str) -> Result<Response<Body>, Error> {
    let Some((_, media, bytes)) = FILES.iter().find(|(name, _, _)| *name == file) else {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("The panel has no file `{file}`."),
        )
        .with_code("unknown_route"));
    };
    let mut r = Response::new(Body::Full(Bytes::from_static(bytes)));
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(media));
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    // Small files, and a new build must show at once: revalidate every time.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_its_script_from_a_file_and_has_no_inline_script() {
        let (_, _, html) = FILES[0];
        let html = std::str::from_utf8(html).unwrap_or_default();
        assert!(html.contains(r#"<script src="/ui/app.js" defer></script>"#));
        assert_eq!(html.matches("<script").count(), 1, "no inline script");
        assert!(!html.contains(" onclick="), "no inline handlers");
        assert!(!html.contains(" style="), "no inline styles");
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no CDN"
        );
    }

    #[test]
    fn unknown_files_are_404() {
        assert_eq!(serve("nope.js").unwrap_err().status().as_u16(), 404);
        let r = serve("app.js").unwrap();
        assert!(
            r.headers()[CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap_or_default()
                .contains("script-src 'self'")
        );
    }
}
