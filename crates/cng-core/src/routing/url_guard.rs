//! The SSRF guard on upstream URLs.
//!
//! Rules, enforced when an admin saves the config (so a bad URL is a 400 naming the
//! field, never a surprise at request time):
//! - the URL is absolute, `https`, with a host and no userinfo, query or fragment;
//! - `http` is accepted only for a loopback host (`localhost`, `127.0.0.0/8`, `::1`)
//!   and only when the operator set [`UrlPolicy::allow_loopback_http`] (tests, a local
//!   fake upstream) — never for a remote host, which would send keys in clear text;
//! - nothing from a request is ever turned into an [`UpstreamUrl`]: the type can only
//!   be built here, from config text.

use std::net::IpAddr;

/// A URL fit for logs and `/health`: without userinfo, query or fragment (where
/// credentials hide).
pub fn redact_url(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or(url);
    match no_query.split_once("://") {
        Some((scheme, rest)) => {
            let host_path = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            format!("{scheme}://{host_path}")
        }
        None => no_query.to_string(),
    }
}

use crate::error::Error;

/// What the operator allows beyond `https`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    /// Accept `http://` to a loopback host (`CNG_ALLOW_LOOPBACK_HTTP=1`).
    pub allow_loopback_http: bool,
}

/// An upstream base URL that passed the guard (no trailing `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl(String);

impl UpstreamUrl {
    /// Checks `raw` (from the config field `field`) against the rules above.
    pub fn parse(field: &str, raw: &str, policy: UrlPolicy) -> Result<Self, Error> {
        let bad = |why: &str| Error::invalid_param(field, format!("`{field}` {why}"));
        let uri: http::Uri = raw
            .trim()
            .parse()
            .map_err(|_| bad("is not a valid absolute URL"))?;
        let scheme = uri
            .scheme_str()
            .ok_or_else(|| bad("must be an absolute https:// URL"))?;
        let authority = uri.authority().ok_or_else(|| bad("must name a host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("may not carry credentials in the URL (userinfo)"));
        }
        if uri.query().is_some() || raw.contains('#') {
            return Err(bad("may not have a query or fragment"));
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(bad("must name a host"));
        }
        match scheme {
            "https" => {}
            "http" if is_loopback(host) && policy.allow_loopback_http => {}
            "http" if is_loopback(host) => {
                return Err(bad(
                    "uses http://, allowed for loopback hosts only with CNG_ALLOW_LOOPBACK_HTTP=1",
                ));
            }
            "http" => {
                return Err(bad(
                    "must use https:// (http:// only for loopback test hosts)",
                ));
            }
            _ => return Err(bad("must use https://")),
        }
        Ok(Self(raw.trim().trim_end_matches('/').to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for UpstreamUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {

    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn redacted_urls_keep_scheme_host_and_path_only() {
        assert_eq!(
            super::redact_url("https://user:pw@api.example.com/v1?key=s3cret#x"),
            "https://api.example.com/v1"
        );
        assert_eq!(
            super::redact_url("localhost:8000/v1?token=t"),
            "localhost:8000/v1"
        );
    }

    const STRICT: UrlPolicy = UrlPolicy {
        allow_loopback_http: false,
    };
    const TESTS: UrlPolicy = UrlPolicy {
        allow_loopback_http: true,
    };

    #[test]
    fn https_passes_and_loses_its_trailing_slash() {
        let u = UpstreamUrl::parse("f", "https://gateway.ai.cloudflare.com/v1/", STRICT).unwrap();
        assert_eq!(u.as_str(), "https://gateway.ai.cloudflare.com/v1");
    }

    #[test]
    fn http_only_for_loopback_and_only_when_allowed() {
        for ok in [
            "http://127.0.0.1:8080/v1",
            "http://localhost:1",
            "http://[::1]:9/x",
        ] {
            assert!(UpstreamUrl::parse("f", ok, TESTS).is_ok(), "{ok}");
            let e = UpstreamUrl::parse("f", ok, STRICT).unwrap_err();
            assert!(e.message().contains("CNG_ALLOW_LOOPBACK_HTTP"), "{ok}");
        }
        let e = UpstreamUrl::parse("providers.x.base_url", "http://api.openai.com/v1", TESTS)
            .unwrap_err();
        assert_eq!(e.param(), Some("providers.x.base_url"));
        assert!(e.message().contains("https://"));
    }

    #[test]
    fn refuses_the_usual_tricks() {
        for bad in [
            "ftp://example.com",
            "file:///etc/passwd",
            "https://user:pw@example.com",
            "https://example.com/?x=1",
            "https://example.com/#frag",
            "/relative/path",
            "example.com",
            "",
            "http://169.254.169.254/latest",
            "http://127.0.0.1.evil.example/",
        ] {
            assert!(UpstreamUrl::parse("f", bad, TESTS).is_err(), "{bad}");
        }
    }
}
