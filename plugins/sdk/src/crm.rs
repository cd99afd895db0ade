//! Read access to the CRM. Calling any of these makes the component import
//! `strata:plugin/crm`, so the plugin must declare the `crm` capability.

use crate::bindings::scorer::strata::plugin::crm as host;
use crate::{CapabilityError, Lead, StoredScore};

/// The lead with id `id`, if it exists.
pub fn get_lead(id: &str) -> Result<Option<Lead>, CapabilityError> {
    host::get_lead(id)
}

/// Past scores of a lead, newest first, at most `limit` (the host caps it).
pub fn list_scores(lead_id: &str, limit: u32) -> Result<Vec<StoredScore>, CapabilityError> {
    host::list_scores(lead_id, limit)
}
