//! Charges team token budgets with what each answer used.
//!
//! A usage sink in front of the real one: an event of a team (`team:{id}`) with token
//! counts books them against the team's `tokens` budget (`cng_core::teams::book_tokens`,
//! a compare-and-swap on the store), in a task of its own so the request never waits
//! for it. The gateway is set after it is built (it owns the store and is built with
//! this sink), hence the `OnceLock`.

use std::sync::{Arc, OnceLock, Weak};

use cng_core::Error;
use cng_core::teams;
use cng_core::usage::{
    BoxFuture, BucketKey, Counters, SharedSink, UsageEvent, UsageQuery, UsageSink,
};

use crate::serve::NativeGateway;

/// See the module docs.
pub struct TeamTokens {
    inner: SharedSink,
    gateway: OnceLock<Weak<NativeGateway>>,
}

impl TeamTokens {
    pub fn new(inner: SharedSink) -> Self {
        Self {
            inner,
            gateway: OnceLock::new(),
        }
    }

    /// Connects the gateway whose store holds the teams.
    pub fn attach(&self, gateway: &Arc<NativeGateway>) {
        let _ = self.gateway.set(Arc::downgrade(gateway));
    }
}

impl UsageSink for TeamTokens {
    fn record(&self, event: UsageEvent) {
        let tokens = event.input_tokens.unwrap_or(0) + event.output_tokens.unwrap_or(0);
        if let (Some(id), true, Some(gateway)) = (
            event.key.strip_prefix("team:"),
            tokens > 0,
            self.gateway.get().and_then(Weak::upgrade),
        ) {
            let (id, at) = (id.to_string(), event.at);
            tokio::spawn(async move {
                let store = gateway.store();
                match teams::token::load(store, &id).await {
                    Ok(Some((rec, _))) => {
                        if let Err(e) = teams::book_tokens(store, &rec, at, tokens).await {
                            tracing::warn!(team = %id, error = %e.message(), "team tokens not booked");
                        }
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(team = %id, error = %e.message(), "team not readable"),
                }
            });
        }
        self.inner.record(event);
    }

    fn query<'a>(
        &'a self,
        q: &'a UsageQuery,
    ) -> BoxFuture<'a, Result<Vec<(BucketKey, Counters)>, Error>> {
        self.inner.query(q)
    }
}
