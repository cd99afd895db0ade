//! Execution tapes: the recorded brokered calls of an agent execution or of a pipeline
//! layer run (see `capabilities::tape`), stored for `strata replay execution`.

use super::error::q;
use super::{Db, DbError};
use crate::capabilities::tape::TapeEntry;
use crate::domain::now_ms;

/// What ran: an agent execution, or one pipeline layer run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TapeKind {
    Agent,
    Layer,
}

impl TapeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TapeKind::Agent => "agent",
            TapeKind::Layer => "layer",
        }
    }
}

/// One execution's tape.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionTape {
    /// The agent execution's id, or the layer run's.
    pub execution_id: String,
    pub kind: TapeKind,
    /// The plugin that ran (agent or layer) and its version.
    pub agent: String,
    pub agent_version: String,
    /// The task the agent was given, as its JSON text; for a layer run, its
    /// [`crate::runtime::call::LayerInput`] as JSON.
    pub input: String,
    /// What the agent returned, or the layer's `{output, events}` (`None`: it failed).
    pub output: Option<String>,
    pub tape: Vec<TapeEntry>,
    pub created_at: i64,
}

impl ExecutionTape {
    pub fn new(
        execution_id: &str,
        kind: TapeKind,
        agent: &str,
        agent_version: &str,
        input: &str,
        output: Option<&str>,
        tape: Vec<TapeEntry>,
    ) -> Self {
        ExecutionTape {
            execution_id: execution_id.into(),
            kind,
            agent: agent.into(),
            agent_version: agent_version.into(),
            input: input.into(),
            output: output.map(str::to_string),
            tape,
            created_at: now_ms(),
        }
    }
}

type Row = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    i64,
);

impl Db {
    /// Stores an execution's tape (once: a second tape for the same execution replaces it).
    pub async fn insert_execution_tape(&self, t: &ExecutionTape) -> Result<(), DbError> {
        const OP: &str = "insert_execution_tape";
        let tape = serde_json::to_string(&t.tape).expect("a tape serializes");
        on_pool!(self, |pool| {
            let mut tx = crate::db::begin_write(pool).await.map_err(q(OP))?;
            sqlx::query("DELETE FROM execution_tapes WHERE execution_id = $1")
                .bind(t.execution_id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(q(OP))?;
            sqlx::query(
                "INSERT INTO execution_tapes (execution_id, kind, agent, agent_version, input, \
                 output, tape, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(t.execution_id.as_str())
            .bind(t.kind.as_str())
            .bind(t.agent.as_str())
            .bind(t.agent_version.as_str())
            .bind(t.input.as_str())
            .bind(t.output.as_deref())
            .bind(tape.as_str())
            .bind(t.created_at)
            .execute(&mut *tx)
            .await
            .map_err(q(OP))?;
            tx.commit().await.map_err(q(OP))?;
        });
        Ok(())
    }

    /// The tape of execution `id`, if one was recorded.
    pub async fn get_execution_tape(&self, id: &str) -> Result<Option<ExecutionTape>, DbError> {
        const OP: &str = "get_execution_tape";
        let row: Option<Row> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT execution_id, kind, agent, agent_version, input, output, tape, created_at \
                 FROM execution_tapes WHERE execution_id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(q(OP))?
        });
        let Some((execution_id, kind, agent, agent_version, input, output, tape, created_at)) = row
        else {
            return Ok(None);
        };
        let kind = match kind.as_str() {
            "agent" => TapeKind::Agent,
            "layer" => TapeKind::Layer,
            other => {
                return Err(DbError::Corrupt {
                    op: OP,
                    reason: format!("the tape of execution {execution_id} has kind {other:?}"),
                })
            }
        };
        let tape = serde_json::from_str(&tape).map_err(|e| DbError::Corrupt {
            op: OP,
            reason: format!("the tape of execution {execution_id} is not a tape: {e}"),
        })?;
        Ok(Some(ExecutionTape {
            execution_id,
            kind,
            agent,
            agent_version,
            input,
            output,
            tape,
            created_at,
        }))
    }
}
