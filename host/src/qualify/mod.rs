//! Lead qualification: read the lead from the CRM, judge it with an agent or a scorer,
//! store the score, write the verdict back — as `[qualify]` configures it.
//!
//! * [`settings`] — `[qualify]`: the agent, its model and fallback scorer.
//! * [`mapping`] — `[qualify.crm]`: the CRM's tools, argument templates and field
//!   mapping, checked against the MCP server's input schemas.
//! * [`presets`] — ready mappings (Frappe CRM).
//! * [`link`] — the host's calls to the CRM's MCP server, audited as `host`.
//! * [`run`] — one qualification, keyed by its job.

pub mod link;
pub mod mapping;
pub mod presets;
pub mod run;
pub mod settings;

pub use link::{CrmLink, LinkError, WriteBack};
pub use mapping::{CrmMapping, MappingError, Verdict};
pub use run::{stored_result, Qualification, QualifyError};
pub use settings::QualifySettings;
