//! `GET /badge/{model}.svg`: a shields-style badge saying whether a model answered
//! recently — "up" (green), "failing" (red) or "no recent calls" (grey) over the
//! config's `badges.window_seconds`. Public unless `badges.public` is false (then any
//! key may read it). `?label=` replaces the left-hand text. It shows nothing but the
//! model's health: no counts, keys or errors.

use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};

use super::admin_status::Health;
use super::admin_usage::query_pairs;
use super::{Body, Ctx, Gateway, Limiter};
use crate::backend::Backend;
use crate::error::Error;
use crate::store::Store;
use crate::usage::{Counters, UsageQuery};

/// Longest label drawn.
const MAX_LABEL: usize = 48;

pub(super) async fn handle<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    req: Request<Body>,
    ctx: &mut Ctx<'_>,
    model: &str,
) -> Result<Response<Body>, Error> {
    let badges = &ctx.live.doc.badges;
    if !badges.public {
        let p = g.authenticate(req.headers()).await?;
        ctx.log.key_name = Some(p.name);
    }
    let label = query_pairs(&req)
        .into_iter()
        .find(|(k, _)| k == "label")
        .map(|(_, v)| v)
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| model.to_string());
    let label: String = label.chars().take(MAX_LABEL).collect();
    let Ok(resolved) = ctx.live.aliases.resolve(model, &ctx.live.catalog) else {
        return Ok(svg(StatusCode::NOT_FOUND, &label, "unknown model", GREY));
    };
    if !ctx.live.is_enabled(&resolved.model.id) {
        return Ok(svg(StatusCode::NOT_FOUND, &label, "not served", GREY));
    }
    let now = g.services.clock.unix_seconds();
    let window = badges.window_seconds;
    let q = UsageQuery {
        from: now.saturating_sub(window),
        to: now,
        key: None,
        model: Some(resolved.model.id.clone()),
    };
    let mut c = Counters::default();
    for (_, b) in g.usage.query(&q).await? {
        c.merge(&b);
    }
    let health = Health::of(c.last_ok, c.last_error, now, window);
    let color = match health {
        Health::Up => GREEN,
        Health::Failing => RED,
        Health::Idle => GREY,
    };
    Ok(svg(StatusCode::OK, &label, health.label(), color))
}

const GREEN: &str = "#2da44e";
const RED: &str = "#cf222e";
const GREY: &str = "#6e7781";

fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            c if c.is_control() => String::new(),
            c => c.to_string(),
        })
        .collect()
}

/// Text width at 11 px Verdana, roughly (shields measures; 7 px a character is close
/// enough for ids and short words).
fn width(s: &str) -> usize {
    s.chars().count() * 7 + 10
}

/// A flat two-part badge.
pub fn render(label: &str, message: &str, color: &str) -> String {
    let (lw, mw) = (width(label), width(message));
    let total = lw + mw;
    let (l, m) = (escape(label), escape(message));
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" aria-label="{l}: {m}"><title>{l}: {m}</title><rect width="{lw}" height="20" fill="#555"/><rect x="{lw}" width="{mw}" height="20" fill="{color}"/><g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11"><text x="{lx}" y="14">{l}</text><text x="{mx}" y="14">{m}</text></g></svg>"##,
        lx = lw / 2,
        mx = lw + mw / 2,
    )
}

fn svg(status: StatusCode, label: &str, message: &str, color: &str) -> Response<Body> {
    let body = render(label, message, color);
    let mut r = Response::new(Body::from(body.into_bytes()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"));
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    h.insert(
        http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped() {
        let s = render("<script>", "up", GREEN);
        assert!(s.contains("&lt;script&gt;"));
        assert!(!s.contains("<script>"));
        assert!(s.starts_with("<svg"));
    }
}
