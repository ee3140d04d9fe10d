//! `POST /api/discover`: Cloudflare's model catalog against the config (admin only).
//!
//! Body (optional): `{"accept": true}` or `{"accept": ["new", "changed", "removed"]}`
//! to apply the differences in the same call — written with compare-and-swap on the
//! config version that was compared, so an edit made meanwhile is a 409, not lost.
//! Without `accept` the call only reports. See [`crate::config::discovery`].

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::admin_keys::parse_strict;
use super::{Body, Ctx, Gateway, Limiter, json, read_json_body};
use crate::backend::Backend;
use crate::config::discovery::{AcceptParts, accept, diff, facts_from_search};
use crate::config::validate::validate;
use crate::config::{CONFIG_KEY, NS_CONFIG};
use crate::error::{Error, ErrorKind};
use crate::store::{Expect, Store};

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum AcceptArg {
    All(bool),
    Parts(Vec<Part>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Part {
    New,
    Changed,
    Removed,
}

#[derive(Debug, Default, Deserialize)]
struct DiscoverBody {
    #[serde(default)]
    accept: Option<AcceptArg>,
}

pub(super) async fn handle<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    req: Request<Body>,
    ctx: &mut Ctx<'_>,
) -> Result<Response<Body>, Error> {
    let body = read_json_body(req, 64 * 1024).await?;
    let b: DiscoverBody = parse_strict(&body).map_err(|e| {
        if e.param().is_none() || e.param() == Some("accept") {
            Error::invalid_param(
                "accept",
                "`accept` is true, false, or a list of \"new\", \"changed\", \"removed\".",
            )
        } else {
            e
        }
    })?;
    let parts = match b.accept {
        None | Some(AcceptArg::All(false)) => None,
        Some(AcceptArg::All(true)) => Some(AcceptParts {
            new: true,
            changed: true,
            removed: true,
        }),
        Some(AcceptArg::Parts(p)) => Some(AcceptParts {
            new: p.contains(&Part::New),
            changed: p.contains(&Part::Changed),
            removed: p.contains(&Part::Removed),
        }),
    };
    let Some(search) = &g.model_search else {
        return Err(Error::new(
            ErrorKind::Unavailable,
            "Discovery reads Cloudflare's model catalog: configure the Workers AI REST upstream \
             (CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN).",
        )
        .with_code("discovery_unavailable"));
    };
    let items = search.search().await?;
    let remote: Vec<_> = items.iter().filter_map(facts_from_search).collect();
    let skipped = items.len() - remote.len();
    let live = ctx.live.clone();
    let d = diff(&live.doc, &live.catalog, &remote);
    let mut accepted = None;
    let mut version = live.version;
    if let Some(parts) = parts {
        let mut doc = live.doc.clone();
        let out = accept(&mut doc, &d, parts);
        validate(&doc, &g.config.catalog, g.config.doc_rules())?;
        let bytes = serde_json::to_vec(&doc).map_err(|e| Error::internal(e.to_string()))?;
        let expect = if live.version == 0 {
            Expect::Absent
        } else {
            Expect::Version(live.version)
        };
        version = g
            .store
            .put(NS_CONFIG, CONFIG_KEY, Bytes::from(bytes), expect)
            .await
            .map_err(|e| {
                if e.kind() == ErrorKind::Conflict {
                    Error::new(
                        ErrorKind::Conflict,
                        "The config changed while discovery ran; run it again.",
                    )
                    .with_code("stale_version")
                } else {
                    e
                }
            })?;
        g.live.invalidate();
        accepted = Some(out);
    }
    Ok(json(
        StatusCode::OK,
        &json!({
            "object": "discovery",
            "listed": remote.len(),
            "skipped": skipped,
            "new": d.new,
            "changed": d.changed,
            "removed": d.removed,
            "accepted": accepted,
            "version": version,
        }),
    ))
}
