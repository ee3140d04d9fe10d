//! Daily budgets, enforced atomically.
//!
//! The day's spend is one record, `team_usage/{id}:{day}`, changed only by
//! compare-and-swap: read the spend and its version, write the new spend expecting that
//! version, start again on a conflict. Two requests racing for the last unit cannot both
//! win. Natively the store is the embedded database; in the Worker the record lives
//! only in the store's Durable Object, which serialises the compare-and-swap across
//! isolates and locations (see docs/worker.md).
//!
//! - A *requests* budget takes its unit at admission ([`admit`]) and refuses at the
//!   limit.
//! - A *tokens* budget is checked at admission (refused once spent) and charged after
//!   the answer with what the upstream reported ([`book_tokens`]); one request may run
//!   over the limit by its own size, never more.

use bytes::Bytes;

use super::{BudgetUnit, NS_TEAM_USAGE, TeamRecord};
use crate::error::{Error, ErrorKind};
use crate::store::{Expect, Store};

const DAY: u64 = 86_400;
/// Compare-and-swap attempts before giving up with a 503 (only under extreme
/// contention on one team).
const MAX_ATTEMPTS: u32 = 32;

/// The outcome of an admitted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Units left today after this admission (`None`: no budget).
    pub remaining: Option<u64>,
}

fn usage_key(team: &str, now: u64) -> String {
    format!("{team}:{}", now / DAY)
}

fn spent_error(rec: &TeamRecord, per_day: u64, unit: BudgetUnit, now: u64) -> Error {
    let reset_in = DAY - now % DAY;
    let unit = match unit {
        BudgetUnit::Requests => "requests",
        BudgetUnit::Tokens => "tokens",
    };
    Error::new(
        ErrorKind::QuotaExceeded,
        format!(
            "The team `{}` has spent its budget of {per_day} {unit} for today; it resets at 00:00 UTC (in {reset_in} s).",
            rec.spec.id
        ),
    )
    .with_code("team_budget_exceeded")
    .with_retry_after(reset_in)
}

async fn read(store: &impl Store, key: &str) -> Result<(u64, Expect), Error> {
    Ok(match store.get(NS_TEAM_USAGE, key).await? {
        None => (0, Expect::Absent),
        Some(v) => {
            let n = std::str::from_utf8(&v.value)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            (n, Expect::Version(v.version))
        }
    })
}

/// Adds `amount` to today's spend, refusing (without writing) when `refuse_at` says the
/// spend before this addition is already too high.
async fn add(
    store: &impl Store,
    key: &str,
    amount: u64,
    refuse: impl Fn(u64) -> bool,
) -> Result<Option<u64>, Error> {
    for _ in 0..MAX_ATTEMPTS {
        let (spent, expect) = read(store, key).await?;
        if refuse(spent) {
            return Ok(None);
        }
        let next = spent.saturating_add(amount);
        match store
            .put(NS_TEAM_USAGE, key, Bytes::from(next.to_string()), expect)
            .await
        {
            Ok(_) => return Ok(Some(next)),
            Err(e) if e.kind() == ErrorKind::Conflict => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::new(
        ErrorKind::Unavailable,
        "the team budget is under heavy contention; retry shortly",
    ))
}

/// Admits one request of `rec` at `now`, or answers 429 `team_budget_exceeded` with
/// `retry-after` until the next UTC midnight.
pub async fn admit(store: &impl Store, rec: &TeamRecord, now: u64) -> Result<Admission, Error> {
    let Some(b) = rec.spec.budget else {
        return Ok(Admission { remaining: None });
    };
    let key = usage_key(&rec.spec.id, now);
    match b.unit {
        BudgetUnit::Requests => match add(store, &key, 1, |spent| spent >= b.per_day).await? {
            Some(spent) => Ok(Admission {
                remaining: Some(b.per_day.saturating_sub(spent)),
            }),
            None => Err(spent_error(rec, b.per_day, b.unit, now)),
        },
        BudgetUnit::Tokens => {
            let (spent, _) = read(store, &key).await?;
            if spent >= b.per_day {
                return Err(spent_error(rec, b.per_day, b.unit, now));
            }
            Ok(Admission {
                remaining: Some(b.per_day - spent),
            })
        }
    }
}

/// Books the tokens an answer used against a tokens budget (no-op otherwise).
pub async fn book_tokens(
    store: &impl Store,
    rec: &TeamRecord,
    now: u64,
    tokens: u64,
) -> Result<(), Error> {
    if rec
        .spec
        .budget
        .is_some_and(|b| b.unit == BudgetUnit::Tokens)
        && tokens > 0
    {
        add(store, &usage_key(&rec.spec.id, now), tokens, |_| false).await?;
    }
    Ok(())
}
