//! Test plugin: reads the lead back through the `crm` capability. Host tests run it
//! without granting `crm`, and expect instantiation or the call to be refused.

use strata_sdk::{crm, export_scorer, Lead, PluginError, Score, Scorer};

struct UngrantedCrm;

impl Scorer for UngrantedCrm {
    fn score(lead: Lead) -> Result<Score, PluginError> {
        match crm::get_lead(&lead.id) {
            Ok(found) => Ok(Score::builder(50.0)
                .reasoning(format!("crm answered: lead found = {}", found.is_some()))
                .build()),
            Err(e) => Err(PluginError::Failed(format!("crm refused: {e:?}"))),
        }
    }
}

export_scorer!(UngrantedCrm);
