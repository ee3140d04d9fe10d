#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]
//! Team tokens: create, authenticate, rotate with grace, expiry, and budgets that hold
//! under concurrent requests.

use std::sync::Arc;

use bytes::Bytes;
use cng_core::ErrorKind;
use cng_core::auth::Role;
use cng_core::error::Error;
use cng_core::ids::CountingEntropy;
use cng_core::store::{Expect, MemoryStore, Store, Versioned};
use cng_core::teams::{self, Budget, BudgetUnit, TeamSpec};

const NOON: u64 = 1_700_000_000 - 1_700_000_000 % 86_400 + 43_200;

fn spec(id: &str, budget: Option<Budget>) -> TeamSpec {
    TeamSpec {
        id: id.into(),
        models: Some(vec!["fast".into()]),
        providers: Some(vec!["openai".into()]),
        budget,
        expires_at: None,
    }
}

#[tokio::test]
async fn a_created_token_authenticates_as_a_limited_client() {
    let store = MemoryStore::new();
    let (rec, token) = teams::create(&store, &CountingEntropy::default(), NOON, spec("red", None))
        .await
        .unwrap();
    assert!(token.starts_with("cngt-"));
    let got = teams::authenticate(&store, NOON, &token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, rec);
    let p = got.principal();
    assert_eq!(p.role, Role::Client);
    assert_eq!(p.name, "team:red");
    assert!(p.may_use("fast", "@cf/x") && !p.may_use("slow", "@cf/y"));
    assert!(got.may_use_provider("openai") && !got.may_use_provider("anthropic"));
    // The stored record never holds the token.
    let raw = store.get(teams::NS_TEAMS, "red").await.unwrap().unwrap();
    assert!(!String::from_utf8_lossy(&raw.value).contains(&token));
    assert!(!got.public_view().to_string().contains(&rec.token_hash));
    // Other strings are not team tokens.
    assert!(
        teams::authenticate(&store, NOON, "cng-abc")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        teams::authenticate(&store, NOON, "cngt-unknown")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn duplicate_ids_and_bad_specs_are_refused() {
    let store = MemoryStore::new();
    let e = CountingEntropy::default();
    teams::create(&store, &e, NOON, spec("red", None))
        .await
        .unwrap();
    let err = teams::create(&store, &e, NOON, spec("red", None))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    let err = teams::create(&store, &e, NOON, spec("Red Team", None))
        .await
        .unwrap_err();
    assert_eq!(err.param(), Some("id"));
    let zero = Budget {
        unit: BudgetUnit::Requests,
        per_day: 0,
    };
    let err = teams::create(&store, &e, NOON, spec("blue", Some(zero)))
        .await
        .unwrap_err();
    assert_eq!(err.param(), Some("budget.per_day"));
}

#[tokio::test]
async fn rotation_keeps_the_old_token_for_the_grace_period_only() {
    let store = MemoryStore::new();
    let e = CountingEntropy::default();
    let (_, first) = teams::create(&store, &e, NOON, spec("red", None))
        .await
        .unwrap();
    let (_, second) = teams::rotate(&store, &e, NOON, "red", 600).await.unwrap();
    assert_ne!(first, second);
    assert!(
        teams::authenticate(&store, NOON + 599, &first)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        teams::authenticate(&store, NOON + 599, &second)
            .await
            .unwrap()
            .is_some()
    );
    let err = teams::authenticate(&store, NOON + 600, &first)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication);
    assert!(err.message().contains("rotated"));
    // A second rotation ends the first token at once, whatever its grace said.
    let (_, third) = teams::rotate(&store, &e, NOON + 10, "red", 600)
        .await
        .unwrap();
    assert!(
        teams::authenticate(&store, NOON + 11, &first)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        teams::authenticate(&store, NOON + 11, &second)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        teams::authenticate(&store, NOON + 11, &third)
            .await
            .unwrap()
            .is_some()
    );
    let err = teams::rotate(&store, &e, NOON, "red", 10 * 86_400)
        .await
        .unwrap_err();
    assert_eq!(err.param(), Some("grace_seconds"));
    let err = teams::rotate(&store, &e, NOON, "nobody", 0)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn expired_teams_are_401() {
    let store = MemoryStore::new();
    let mut s = spec("red", None);
    s.expires_at = Some(NOON + 5);
    let (_, token) = teams::create(&store, &CountingEntropy::default(), NOON, s)
        .await
        .unwrap();
    assert!(
        teams::authenticate(&store, NOON + 4, &token)
            .await
            .unwrap()
            .is_some()
    );
    let err = teams::authenticate(&store, NOON + 5, &token)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication);
    assert_eq!(err.code(), Some("team_expired"));
}

#[tokio::test]
async fn a_requests_budget_answers_429_with_retry_after_until_midnight() {
    let store = MemoryStore::new();
    let b = Budget {
        unit: BudgetUnit::Requests,
        per_day: 2,
    };
    let (rec, _) = teams::create(
        &store,
        &CountingEntropy::default(),
        NOON,
        spec("red", Some(b)),
    )
    .await
    .unwrap();
    assert_eq!(
        teams::admit(&store, &rec, NOON).await.unwrap().remaining,
        Some(1)
    );
    assert_eq!(
        teams::admit(&store, &rec, NOON).await.unwrap().remaining,
        Some(0)
    );
    let err = teams::admit(&store, &rec, NOON).await.unwrap_err();
    assert_eq!(err.status(), http::StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(err.code(), Some("team_budget_exceeded"));
    assert_eq!(err.retry_after(), Some(43_200));
    assert!(err.message().contains("2 requests"));
    // The next UTC day starts afresh.
    assert!(teams::admit(&store, &rec, NOON + 43_200).await.is_ok());
}

#[tokio::test]
async fn a_tokens_budget_is_charged_after_the_answer() {
    let store = MemoryStore::new();
    let b = Budget {
        unit: BudgetUnit::Tokens,
        per_day: 100,
    };
    let (rec, _) = teams::create(
        &store,
        &CountingEntropy::default(),
        NOON,
        spec("red", Some(b)),
    )
    .await
    .unwrap();
    assert_eq!(
        teams::admit(&store, &rec, NOON).await.unwrap().remaining,
        Some(100)
    );
    teams::book_tokens(&store, &rec, NOON, 60).await.unwrap();
    assert_eq!(
        teams::admit(&store, &rec, NOON).await.unwrap().remaining,
        Some(40)
    );
    teams::book_tokens(&store, &rec, NOON, 60).await.unwrap();
    let err = teams::admit(&store, &rec, NOON).await.unwrap_err();
    assert!(err.message().contains("100 tokens"));
}

/// A store that yields between operations, so concurrent tasks interleave their
/// read-modify-write cycles and the compare-and-swap has to do its job.
struct Interleaving(MemoryStore);

impl Store for Interleaving {
    async fn get(&self, ns: &str, key: &str) -> Result<Option<Versioned>, Error> {
        let v = self.0.get(ns, key).await;
        tokio::task::yield_now().await;
        v
    }
    async fn put(&self, ns: &str, key: &str, value: Bytes, expect: Expect) -> Result<u64, Error> {
        tokio::task::yield_now().await;
        self.0.put(ns, key, value, expect).await
    }
    async fn delete(&self, ns: &str, key: &str, expect: Expect) -> Result<bool, Error> {
        self.0.delete(ns, key, expect).await
    }
    async fn list(&self, ns: &str) -> Result<Vec<(String, Versioned)>, Error> {
        self.0.list(ns).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_never_overspend() {
    let store = Arc::new(Interleaving(MemoryStore::new()));
    let b = Budget {
        unit: BudgetUnit::Requests,
        per_day: 10,
    };
    let (rec, _) = teams::create(
        &*store,
        &CountingEntropy::default(),
        NOON,
        spec("red", Some(b)),
    )
    .await
    .unwrap();
    let tasks: Vec<_> = (0..60)
        .map(|_| {
            let (store, rec) = (store.clone(), rec.clone());
            tokio::spawn(async move { teams::admit(&*store, &rec, NOON).await })
        })
        .collect();
    let mut admitted = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => admitted += 1,
            Err(e) if e.kind() == ErrorKind::QuotaExceeded => refused += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!((admitted, refused), (10, 50));
}
