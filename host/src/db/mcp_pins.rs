//! MCP tool pins (`mcp_tool_pins`): per plugin, the hash and definition of each MCP tool
//! its grant covered when it was pinned ([`crate::mcp::pins`]).

use super::error::q;
use super::{Db, DbError};

/// One pinned tool of one plugin.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct McpToolPin {
    pub plugin: String,
    pub server: String,
    pub tool: String,
    /// Hex SHA-256 of the canonical JSON of `definition` ([`crate::mcp::pins::tool_sha256`]).
    pub sha256: String,
    /// The pinned definition: `{name, description, input_schema}`.
    #[schema(value_type = Object)]
    pub definition: serde_json::Value,
    /// Id of the API key that pinned it (none: pinned by the host itself).
    pub pinned_by: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub pinned_at: i64,
}

#[derive(sqlx::FromRow)]
struct Row {
    plugin: String,
    server: String,
    tool: String,
    sha256: String,
    definition: String,
    pinned_by: Option<String>,
    pinned_at: i64,
}

impl Row {
    fn into_pin(self, op: &'static str) -> Result<McpToolPin, DbError> {
        let definition = serde_json::from_str(&self.definition).map_err(|e| DbError::Corrupt {
            op,
            reason: format!(
                "MCP tool pin {}/{}/{}: definition is not JSON: {e}",
                self.plugin, self.server, self.tool
            ),
        })?;
        Ok(McpToolPin {
            plugin: self.plugin,
            server: self.server,
            tool: self.tool,
            sha256: self.sha256,
            definition,
            pinned_by: self.pinned_by,
            pinned_at: self.pinned_at,
        })
    }
}

const COLUMNS: &str = "plugin, server, tool, sha256, definition, pinned_by, pinned_at";

impl Db {
    /// Replaces every pin of `plugin` with `pins` (whose `plugin` must be `plugin`), in
    /// one transaction: a reader sees the old set or the new one, never a mix. An empty
    /// `pins` removes the plugin's pins.
    pub async fn replace_mcp_tool_pins(
        &self,
        plugin: &str,
        pins: &[McpToolPin],
    ) -> Result<(), DbError> {
        const OP: &str = "replace_mcp_tool_pins";
        if plugin.trim().is_empty() {
            return Err(DbError::InvalidInput {
                op: OP,
                reason: "empty plugin name".into(),
            });
        }
        if let Some(p) = pins.iter().find(|p| p.plugin != plugin) {
            return Err(DbError::InvalidInput {
                op: OP,
                reason: format!(
                    "a pin of plugin {:?} among the pins of {plugin:?}",
                    p.plugin
                ),
            });
        }
        on_pool!(self, |pool| {
            let mut tx = crate::db::begin_write(pool).await.map_err(q(OP))?;
            sqlx::query("DELETE FROM mcp_tool_pins WHERE plugin = $1")
                .bind(plugin)
                .execute(&mut *tx)
                .await
                .map_err(q(OP))?;
            for p in pins {
                sqlx::query(
                    "INSERT INTO mcp_tool_pins (plugin, server, tool, sha256, definition, \
                     pinned_by, pinned_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(plugin)
                .bind(p.server.as_str())
                .bind(p.tool.as_str())
                .bind(p.sha256.as_str())
                .bind(p.definition.to_string())
                .bind(p.pinned_by.as_deref())
                .bind(p.pinned_at)
                .execute(&mut *tx)
                .await
                .map_err(q(OP))?;
            }
            tx.commit().await.map_err(q(OP))?;
        });
        Ok(())
    }

    /// The pins of `plugin`, or of every plugin when `None`; sorted by plugin, server, tool.
    pub async fn list_mcp_tool_pins(
        &self,
        plugin: Option<&str>,
    ) -> Result<Vec<McpToolPin>, DbError> {
        const OP: &str = "list_mcp_tool_pins";
        let sql = format!(
            "SELECT {COLUMNS} FROM mcp_tool_pins WHERE ($1 IS NULL OR plugin = $1) \
             ORDER BY plugin, server, tool"
        );
        let rows: Vec<Row> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(plugin)
                .fetch_all(pool)
                .await
                .map_err(q(OP))?
        });
        rows.into_iter().map(|r| r.into_pin(OP)).collect()
    }

    /// Removes the pins of `plugin` (every tool, or only `server`/`tool` when given);
    /// returns how many were removed.
    pub async fn delete_mcp_tool_pins(
        &self,
        plugin: &str,
        tool: Option<(&str, &str)>,
    ) -> Result<u64, DbError> {
        const OP: &str = "delete_mcp_tool_pins";
        let (server, tool) = match tool {
            Some((s, t)) => (Some(s), Some(t)),
            None => (None, None),
        };
        let n = on_pool!(self, |pool| {
            sqlx::query(
                "DELETE FROM mcp_tool_pins WHERE plugin = $1 \
                 AND ($2 IS NULL OR server = $2) AND ($3 IS NULL OR tool = $3)",
            )
            .bind(plugin)
            .bind(server)
            .bind(tool)
            .execute(pool)
            .await
            .map_err(q(OP))?
            .rows_affected()
        });
        Ok(n)
    }
}
