//! `strata keys create|list|revoke`.

use crate::config::Config;
use crate::db::{Db, Role};

#[derive(clap::Subcommand)]
pub enum KeysCommand {
    /// Create a key; it is printed once and only its hash is stored.
    Create {
        /// What the key may do (each role includes the ones before it).
        #[arg(long, value_enum, default_value_t = RoleArg::Reader)]
        role: RoleArg,
        /// A label for the key, shown by `keys list`.
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// List keys (never the secrets).
    List,
    /// Revoke a key by id or prefix.
    Revoke {
        /// The key's id (from `keys list`) or a unique prefix of it.
        id: String,
    },
}

/// `--role`: the roles of [`Role`], listed in `--help`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    /// Read-only endpoints.
    Reader,
    /// Reader, plus scoring, jobs and other writes on data; publishing plugins.
    Operator,
    /// Everything, including key management and plugin review.
    Admin,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Reader => Role::Reader,
            RoleArg::Operator => Role::Operator,
            RoleArg::Admin => Role::Admin,
        }
    }
}

pub async fn run(cmd: KeysCommand, config: Config) -> anyhow::Result<()> {
    let db = Db::connect(&config.database.url, &Default::default()).await?;
    db.migrate().await?;
    match cmd {
        KeysCommand::Create { role, name } => {
            let role = Role::from(role);
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
