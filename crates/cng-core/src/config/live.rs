//! The config the gateway serves with: the stored document, parsed once per version.
//!
//! Every request that needs the config asks [`LiveCache::get`]. With a TTL of 0 (the
//! native server) that reads the stored record — one primary-key lookup — and
//! re-parses only when its version changed, so a `PUT /api/config` applies to the very
//! next request on every process sharing the store. With a TTL above 0 (the Worker,
//! where each store read is a KV read) the store is consulted at most once per TTL per
//! instance, so a change applies within TTL plus the store's own propagation delay.
//! Parsing never happens on the request path twice for the same version (the
//! reference product rebuilt its maps on every request because its cache never hit).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use super::validate::{effective_catalog, from_value};
use super::{CONFIG_KEY, Endpoint, GatewayDoc, ModelOverride, NS_CONFIG};
use crate::alias::AliasTable;
use crate::auth::Role;
use crate::catalog::{Catalog, ModelInfo, Task};
use crate::error::Error;
use crate::store::Store;

/// A parsed config document, ready to route with.
#[derive(Debug)]
pub struct LiveConfig {
    /// The stored record's version; 0 when nothing is stored (the defaults).
    pub version: u64,
    pub doc: GatewayDoc,
    pub aliases: AliasTable,
    /// The host's table plus the document's entries, less removed models.
    pub catalog: Arc<Catalog>,
    enabled: Option<HashSet<String>>,
    /// Why the stored document was not used, when it could not be read.
    pub problem: Option<String>,
}

impl LiveConfig {
    /// Builds the routing view of `doc`.
    pub fn build(version: u64, doc: GatewayDoc, base: &Catalog) -> Self {
        let catalog = effective_catalog(&doc, base);
        let aliases = AliasTable::new(doc.aliases.iter().map(|(a, t)| {
            // Aliases may name a model by its short name; route by the id.
            let id = catalog
                .get(t)
                .or_else(|| catalog.get_short(t))
                .map_or(t, |m| &m.id);
            (a.clone(), id.clone())
        }));
        let enabled = doc.models.enabled.as_ref().map(|list| {
            list.iter()
                .map(|n| {
                    catalog
                        .get(n)
                        .or_else(|| catalog.get_short(n))
                        .map_or_else(|| n.clone(), |m| m.id.clone())
                })
                .collect()
        });
        Self {
            version,
            doc,
            aliases,
            catalog: Arc::new(catalog),
            enabled,
            problem: None,
        }
    }

    /// May requests use the model `id`? Removed models are gone from the catalog; a
    /// Workers AI id the catalog lacks is served unless an `enabled` list excludes it.
    pub fn is_enabled(&self, id: &str) -> bool {
        if self.doc.models.removed.iter().any(|r| r == id) {
            return false;
        }
        self.enabled.as_ref().is_none_or(|s| s.contains(id))
    }

    /// True when an explicit `models.enabled` list is set.
    pub fn has_enabled_list(&self) -> bool {
        self.enabled.is_some()
    }

    pub fn override_for(&self, id: &str) -> Option<&ModelOverride> {
        self.doc.models.overrides.get(id)
    }

    /// Applies the per-model overrides to a catalog entry: `max_tokens` becomes a
    /// clamp on output (and the default when the client sends none), `context_window`
    /// replaces the catalog's, `price` the catalog's prices.
    pub fn apply_overrides(&self, m: &mut ModelInfo) {
        let Some(o) = self.override_for(&m.id) else {
            return;
        };
        if let Some(max) = o.max_tokens {
            m.max_output_tokens = Some(m.max_output_tokens.map_or(max, |c| c.min(max)));
            m.default_max_tokens = Some(m.default_max_tokens.map_or(max, |d| d.min(max)));
        }
        if let Some(c) = o.context_window {
            m.context_window = Some(c);
        }
        if let Some(p) = &o.price {
            m.price = p.clone();
        }
    }

    /// The default model for the endpoint serving `tasks`, if the config sets one.
    pub fn default_for(&self, tasks: &[Task]) -> Option<&str> {
        let e = Endpoint::for_tasks(tasks)?;
        self.doc.defaults.get(&e).map(String::as_str)
    }

    /// The requests-per-minute limit for a key of `role` that sets none itself.
    pub fn default_rpm(&self, role: Role) -> Option<u32> {
        match role {
            Role::Client => self.doc.rate_limits.client_rpm,
            Role::Admin => self.doc.rate_limits.admin_rpm,
        }
    }
}

/// The cached [`LiveConfig`] (see the module docs for the freshness bound).
#[derive(Debug)]
pub struct LiveCache {
    ttl_seconds: u64,
    slot: Mutex<Option<Cached>>,
}

#[derive(Debug, Clone)]
struct Cached {
    live: Arc<LiveConfig>,
    checked_at: u64,
}

impl LiveCache {
    /// A cache that consults the store at most once per `ttl_seconds` (0 = always).
    pub fn new(ttl_seconds: u64) -> Self {
        Self {
            ttl_seconds,
            slot: Mutex::new(None),
        }
    }

    fn cached(&self) -> Option<Cached> {
        match self.slot.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn set(&self, c: Cached) {
        match self.slot.lock() {
            Ok(mut g) => *g = Some(c),
            Err(p) => *p.into_inner() = Some(c),
        }
    }

    /// Forgets the cached document (after this instance wrote a new one).
    pub fn invalidate(&self) {
        match self.slot.lock() {
            Ok(mut g) => *g = None,
            Err(p) => *p.into_inner() = None,
        }
    }

    /// The config to serve with at `now` (Unix seconds). `aliases` and `base` are the
    /// host's defaults, used while nothing is stored.
    pub async fn get<S: Store>(
        &self,
        store: &S,
        now: u64,
        aliases: &AliasTable,
        base: &Catalog,
    ) -> Result<Arc<LiveConfig>, Error> {
        let cached = self.cached();
        if let Some(c) = &cached {
            if self.ttl_seconds > 0 && now < c.checked_at.saturating_add(self.ttl_seconds) {
                return Ok(c.live.clone());
            }
        }
        let stored = store.get(NS_CONFIG, CONFIG_KEY).await?;
        let version = stored.as_ref().map_or(0, |s| s.version);
        if let Some(c) = cached.filter(|c| c.live.version == version) {
            self.set(Cached {
                live: c.live.clone(),
                checked_at: now,
            });
            return Ok(c.live);
        }
        let live = match stored {
            None => LiveConfig::build(0, GatewayDoc::with_aliases(aliases), base),
            Some(rec) => match serde_json::from_slice(&rec.value)
                .map_err(|e| Error::internal(e.to_string()))
                .and_then(from_value::<GatewayDoc>)
            {
                Ok(doc) => LiveConfig::build(rec.version, doc, base),
                Err(e) => {
                    // Never stop serving over a bad record: keep the defaults, say why.
                    let mut live =
                        LiveConfig::build(rec.version, GatewayDoc::with_aliases(aliases), base);
                    live.problem = Some(format!(
                        "the stored config (version {}) could not be read, defaults are in use: {}",
                        rec.version,
                        e.message()
                    ));
                    live
                }
            },
        };
        let live = Arc::new(live);
        self.set(Cached {
            live: live.clone(),
            checked_at: now,
        });
        Ok(live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Expect, MemoryStore};
    use bytes::Bytes;
    use futures_util::FutureExt;

    fn get(cache: &LiveCache, store: &MemoryStore, now: u64) -> Arc<LiveConfig> {
        cache
            .get(store, now, &AliasTable::default(), Catalog::builtin())
            .now_or_never()
            .unwrap()
            .unwrap()
    }

    fn put(store: &MemoryStore, doc: serde_json::Value) {
        store
            .put(
                NS_CONFIG,
                CONFIG_KEY,
                Bytes::from(doc.to_string()),
                Expect::Any,
            )
            .now_or_never()
            .unwrap()
            .unwrap();
    }

    #[test]
    fn parses_once_per_version_and_sees_changes_at_once_without_ttl() {
        let store = MemoryStore::new();
        let cache = LiveCache::new(0);
        let a = get(&cache, &store, 1);
        assert_eq!(a.version, 0);
        assert!(a.aliases.get("gpt-4o").is_some());
        let b = get(&cache, &store, 2);
        assert!(
            Arc::ptr_eq(&a, &b),
            "same version: the parsed config is reused"
        );
        put(
            &store,
            serde_json::json!({"aliases": {"fast": "llama-3.1-8b-instruct"}}),
        );
        let c = get(&cache, &store, 3);
        assert!(c.version > 0);
        assert_eq!(
            c.aliases.get("fast"),
            Some("@cf/meta/llama-3.1-8b-instruct")
        );
        assert!(c.aliases.get("gpt-4o").is_none());
    }

    #[test]
    fn ttl_bounds_how_stale_a_cached_config_may_be() {
        let store = MemoryStore::new();
        let cache = LiveCache::new(5);
        assert_eq!(get(&cache, &store, 100).version, 0);
        put(&store, serde_json::json!({}));
        assert_eq!(get(&cache, &store, 104).version, 0, "within the TTL");
        assert!(get(&cache, &store, 105).version > 0, "TTL over: re-read");
    }

    #[test]
    fn an_unreadable_record_falls_back_to_defaults_and_says_so() {
        let store = MemoryStore::new();
        put(
            &store,
            serde_json::json!({"images": {"cache_ttl_seconds": "soon"}}),
        );
        let live = get(&LiveCache::new(0), &store, 1);
        assert!(
            live.problem
                .as_deref()
                .unwrap()
                .contains("images.cache_ttl_seconds")
        );
        assert!(live.aliases.get("gpt-4o").is_some());
    }

    #[test]
    fn overrides_clamp_output() {
        let doc: GatewayDoc = serde_json::from_value(serde_json::json!({
            "models": {"overrides": {"@cf/meta/llama-3.1-8b-instruct": {"max_tokens": 64}}}
        }))
        .unwrap();
        let live = LiveConfig::build(3, doc, Catalog::builtin());
        let mut m = live
            .catalog
            .get("@cf/meta/llama-3.1-8b-instruct")
            .unwrap()
            .clone();
        live.apply_overrides(&mut m);
        assert_eq!(m.max_output_tokens, Some(64));
        assert_eq!(m.default_max_tokens, Some(64));
    }
}
