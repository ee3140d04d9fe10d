//! Creating, authenticating and rotating team tokens.
//!
//! Tokens are `cngt-` + base64url(32 random bytes); only their SHA-256 is stored.
//! Rotation is a compare-and-swap on the team record, so two rotations at once cannot
//! both win (the loser gets a 409 and its new token never becomes valid).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::{MAX_GRACE_SECONDS, NS_TEAM_TOKENS, NS_TEAMS, PreviousToken, TeamRecord, TeamSpec};
use crate::error::{Error, ErrorKind};
use crate::ids::Entropy;
use crate::store::{Expect, Store};

/// The prefix that tells a team token from a key.
pub const TOKEN_PREFIX: &str = "cngt-";

/// SHA-256 of a token, lowercase hex.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn new_token(entropy: &(impl Entropy + ?Sized)) -> String {
    let mut buf = [0u8; 32];
    entropy.fill(&mut buf);
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(buf))
}

fn check_spec(spec: &TeamSpec) -> Result<(), Error> {
    let id_ok = (1..=64).contains(&spec.id.len())
        && spec
            .id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !id_ok {
        return Err(Error::invalid_param(
            "id",
            "`id` must be 1-64 characters of a-z, 0-9 and `-`",
        ));
    }
    if spec.budget.is_some_and(|b| b.per_day == 0) {
        return Err(Error::invalid_param(
            "budget.per_day",
            "`budget.per_day` must be at least 1 (leave `budget` out for no budget)",
        ));
    }
    Ok(())
}

fn encode(rec: &TeamRecord) -> Result<Bytes, Error> {
    serde_json::to_vec(rec)
        .map(Bytes::from)
        .map_err(|_| Error::internal("a team record could not be serialised"))
}

/// Reads a team and its version.
pub async fn load(store: &impl Store, id: &str) -> Result<Option<(TeamRecord, u64)>, Error> {
    let Some(v) = store.get(NS_TEAMS, id).await? else {
        return Ok(None);
    };
    let rec = serde_json::from_slice(&v.value)
        .map_err(|_| Error::internal(format!("the stored team `{id}` is unreadable")))?;
    Ok(Some((rec, v.version)))
}

/// Creates a team; returns it and its token (shown once). 409 when the id is taken.
pub async fn create(
    store: &impl Store,
    entropy: &(impl Entropy + ?Sized),
    now: u64,
    spec: TeamSpec,
) -> Result<(TeamRecord, String), Error> {
    check_spec(&spec)?;
    let token = new_token(entropy);
    let rec = TeamRecord {
        spec,
        token_hash: token_hash(&token),
        previous: None,
        created_at: now,
        rotated_at: None,
    };
    store
        .put(
            NS_TEAM_TOKENS,
            &rec.token_hash,
            Bytes::from(rec.spec.id.clone()),
            Expect::Absent,
        )
        .await?;
    store
        .put(NS_TEAMS, &rec.spec.id, encode(&rec)?, Expect::Absent)
        .await
        .map_err(|e| {
            if e.kind() == ErrorKind::Conflict {
                Error::new(
                    ErrorKind::Conflict,
                    format!("a team `{}` exists already", rec.spec.id),
                )
                .with_code("team_exists")
            } else {
                e
            }
        })?;
    Ok((rec, token))
}

/// The team a token belongs to, if it is the current token or a rotated-out one still
/// in its grace period; 401 for an expired team. `Ok(None)`: not a team token.
pub async fn authenticate(
    store: &impl Store,
    now: u64,
    token: &str,
) -> Result<Option<TeamRecord>, Error> {
    if !token.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    let hash = token_hash(token);
    let Some(id) = store.get(NS_TEAM_TOKENS, &hash).await? else {
        return Ok(None);
    };
    let id = String::from_utf8_lossy(&id.value).into_owned();
    let Some((rec, _)) = load(store, &id).await? else {
        return Ok(None);
    };
    let current = rec.token_hash == hash;
    let in_grace = rec
        .previous
        .as_ref()
        .is_some_and(|p| p.hash == hash && now < p.valid_until);
    if !current && !in_grace {
        return Err(Error::new(
            ErrorKind::Authentication,
            "This team token was rotated and its grace period is over; use the team's new token.",
        )
        .with_code("token_rotated"));
    }
    if rec.spec.expires_at.is_some_and(|t| now >= t) {
        return Err(Error::new(
            ErrorKind::Authentication,
            format!("The team `{id}` expired; an admin can extend `expires_at`."),
        )
        .with_code("team_expired"));
    }
    Ok(Some(rec))
}

/// Rotates a team's token: the new token is valid at once, the current one for
/// `grace_seconds` more (at most [`MAX_GRACE_SECONDS`]), and any older one stops now.
pub async fn rotate(
    store: &impl Store,
    entropy: &(impl Entropy + ?Sized),
    now: u64,
    id: &str,
    grace_seconds: u64,
) -> Result<(TeamRecord, String), Error> {
    if grace_seconds > MAX_GRACE_SECONDS {
        return Err(Error::invalid_param(
            "grace_seconds",
            format!("`grace_seconds` may be at most {MAX_GRACE_SECONDS} (a week)"),
        ));
    }
    let Some((mut rec, version)) = load(store, id).await? else {
        return Err(Error::new(ErrorKind::NotFound, format!("No team `{id}`.")));
    };
    let token = new_token(entropy);
    let new_hash = token_hash(&token);
    store
        .put(
            NS_TEAM_TOKENS,
            &new_hash,
            Bytes::from(id.to_string()),
            Expect::Absent,
        )
        .await?;
    let older = rec.previous.take();
    rec.previous = Some(PreviousToken {
        hash: std::mem::replace(&mut rec.token_hash, new_hash),
        valid_until: now.saturating_add(grace_seconds),
    });
    rec.rotated_at = Some(now);
    store
        .put(NS_TEAMS, id, encode(&rec)?, Expect::Version(version))
        .await?;
    if let Some(older) = older {
        store
            .delete(NS_TEAM_TOKENS, &older.hash, Expect::Any)
            .await?;
    }
    Ok((rec, token))
}
