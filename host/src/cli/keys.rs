//! `strata keys create|list|revoke`.

use crate::config::Config;
use crate::db::{Db, Role};

#[derive(clap::Subcommand)]
pub enum KeysCommand {
    /// Create a key; it is printed once and only its hash is stored.
    Create {
        #[arg(long, default_value = "reader")]
        role: String,
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// List keys (never the secrets).
    List,
    /// Revoke a key by id or prefix.
    Revoke { id: String },
}

pub async fn run(cmd: KeysCommand, config: Config) -> anyhow::Result<()> {
    let db = Db::connect(&config.database.url, &Default::default()).await?;
    db.migrate().await?;
    match cmd {
        KeysCommand::Create { role, name } => {
            let role: Role = role.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
            let (rec, secret) = crate::server::auth::create_key(&db, &name, role).await?;
            eprintln!(
                "created {} key {:?} (id {}); store it now, it is not shown again:",
                rec.role.as_str(),
                rec.name,
                rec.id
            );
            println!("{secret}");
        }
        KeysCommand::List => {
            for k in db.list_api_keys().await? {
                println!(
                    "{}  {:<8} {:<20} {}…  {}",
                    k.id,
                    k.role.as_str(),
                    k.name,
                    k.prefix,
                    if k.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    }
                );
            }
        }
        KeysCommand::Revoke { id } => {
            if db.revoke_api_key(&id).await? {
                println!("revoked {id}");
            } else {
                anyhow::bail!(
                    "no active key with id {id:?} (give the full id `strata keys list` shows)"
                );
            }
        }
    }
    db.close().await;
    Ok(())
}
