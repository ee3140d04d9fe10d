//! `cng keys create|list|revoke`: key management straight on the data store.

use cng_core::auth::{self, NewKey};
use cng_core::ids::Clock;

use crate::cli::KeysCommand;
use crate::services::{OsClock, OsEntropy};
use crate::store::SqliteStore;

/// Runs a keys command; returns the lines to print, or an error message.
pub async fn run(cmd: KeysCommand) -> Result<Vec<String>, String> {
    let err = |e: cng_core::Error| e.message().to_string();
    match cmd {
        KeysCommand::Create {
            name,
            role,
            models,
            rpm,
            expires_in_days,
            data,
        } => {
            let store = SqliteStore::open(&data.data).map_err(err)?;
            let expires = expires_in_days.map(|d| OsClock.unix_seconds() + d * 86_400);
            let new = NewKey {
                name,
                role,
                models,
                rpm,
                expires,
            };
            let (key, rec) = auth::create_key(&store, &OsEntropy, &OsClock, new)
                .await
                .map_err(err)?;
            Ok(vec![
                format!(
                    "Created {} key `{}`. Store it now: it is not shown again.",
                    role_name(rec.role),
                    rec.name
                ),
                key,
            ])
        }
        KeysCommand::List { data } => {
            let store = SqliteStore::open(&data.data).map_err(err)?;
            let keys = auth::list_keys(&store).await.map_err(err)?;
            let mut lines = vec![format!(
                "{:<24} {:<7} {:<12} {:<12} {:<9} {:<6} MODELS",
                "NAME", "ROLE", "CREATED", "EXPIRES", "DISABLED", "RPM"
            )];
            for k in keys {
                lines.push(format!(
                    "{:<24} {:<7} {:<12} {:<12} {:<9} {:<6} {}",
                    k.name,
                    role_name(k.role),
                    k.created,
                    k.expires.map_or("-".into(), |e| e.to_string()),
                    k.disabled,
                    k.rpm.map_or("-".into(), |r| r.to_string()),
                    k.models.map_or("*".into(), |m| m.join(",")),
                ));
            }
            Ok(lines)
        }
        KeysCommand::Revoke { name, data } => {
            let store = SqliteStore::open(&data.data).map_err(err)?;
            if auth::revoke_key(&store, &name).await.map_err(err)? {
                Ok(vec![format!("Revoked `{name}`.")])
            } else {
                Err(format!("No key named `{name}`."))
            }
        }
    }
}

fn role_name(r: auth::Role) -> &'static str {
    match r {
        auth::Role::Admin => "admin",
        auth::Role::Client => "client",
    }
}
