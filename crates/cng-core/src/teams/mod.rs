//! Team tokens: the "one gateway key per team" use case, done safely.
//!
//! A team has the models and providers it may use, an optional daily budget (requests
//! or tokens), an optional expiry, and a token that can be rotated with a grace period
//! during which the previous token still works (so a team can roll its deployments).
//!
//! Storage (any [`Store`]): `teams/{id}` the [`TeamRecord`] (token *hashes* only, never
//! a token), `team_tokens/{sha256 hex}` → team id for the lookup on each request, and
//! `team_usage/{id}:{day}` the day's spend, updated by compare-and-swap ([`budget`]) so
//! two concurrent requests can never both take the last unit.

pub mod budget;
pub mod token;

use serde::{Deserialize, Serialize};

use crate::auth::{Principal, Role};

pub use budget::{Admission, admit, book_tokens};
pub use token::{authenticate, create, rotate};

/// The store namespace of team records.
pub const NS_TEAMS: &str = "teams";
/// Token hash → team id.
pub const NS_TEAM_TOKENS: &str = "team_tokens";
/// Per-day spend.
pub const NS_TEAM_USAGE: &str = "team_usage";
/// How long a rotated-out token keeps working unless the rotation says otherwise.
pub const DEFAULT_GRACE_SECONDS: u64 = 3600;
/// The longest grace a rotation may ask for (a week).
pub const MAX_GRACE_SECONDS: u64 = 7 * 24 * 3600;

/// What a budget counts (closed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetUnit {
    Requests,
    Tokens,
}

/// A daily allowance, reset at 00:00 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    pub unit: BudgetUnit,
    pub per_day: u64,
}

/// What an admin sets when creating or updating a team.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TeamSpec {
    /// `[a-z0-9-]`, 1..=64: the team's id in URLs and usage records.
    pub id: String,
    /// Model names (as sent, or the ids they resolve to) the team may use; `None`: all.
    pub models: Option<Vec<String>>,
    /// Configured provider names the team may reach; `None`: all.
    pub providers: Option<Vec<String>>,
    pub budget: Option<Budget>,
    /// Unix seconds after which the team's tokens stop working.
    pub expires_at: Option<u64>,
}

/// A rotated-out token that still works until `valid_until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousToken {
    pub hash: String,
    pub valid_until: u64,
}

/// A team as stored: its spec and its token hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamRecord {
    #[serde(flatten)]
    pub spec: TeamSpec,
    pub token_hash: String,
    pub previous: Option<PreviousToken>,
    pub created_at: u64,
    pub rotated_at: Option<u64>,
}

impl TeamRecord {
    /// The caller a team token authenticates as: a client (never an admin) limited to
    /// the team's models; usage is booked to `team:{id}`.
    pub fn principal(&self) -> Principal {
        Principal {
            name: format!("team:{}", self.spec.id),
            role: Role::Client,
            models: self.spec.models.clone(),
            rpm: None,
            spoof: false,
            providers: self.spec.providers.clone(),
        }
    }

    /// May the team reach the configured provider `provider`?
    pub fn may_use_provider(&self, provider: &str) -> bool {
        self.spec
            .providers
            .as_ref()
            .is_none_or(|list| list.iter().any(|p| p == provider))
    }

    /// What `GET /api/teams` shows: everything but the hashes.
    pub fn public_view(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.spec.id,
            "models": self.spec.models,
            "providers": self.spec.providers,
            "budget": self.spec.budget,
            "expires_at": self.spec.expires_at,
            "created_at": self.created_at,
            "rotated_at": self.rotated_at,
            "previous_token_valid_until": self.previous.as_ref().map(|p| p.valid_until),
        })
    }
}
