//! Column mapping flags shared by `score`, `backtest` and `fit`.

use crate::input::ColumnMap;
use std::path::PathBuf;

#[derive(clap::Args, Clone, Default, Debug)]
pub struct MapArgs {
    /// Fill lead fields from other columns: FIELD=COLUMN pairs, comma-separated or
    /// repeated (`--map employees=headcount,timeline=timeline_days`). A FIELD that is not
    /// a lead field renames the column's attribute. Columns not mapped keep the built-in
    /// names (docs/plugins.md lists them); all others become attributes.
    #[arg(long = "map", value_name = "FIELD=COLUMN")]
    pub map: Vec<String>,
    /// A file of FIELD=COLUMN lines (`#` starts a comment), applied with --map.
    #[arg(long, value_name = "FILE")]
    pub map_file: Option<PathBuf>,
}

impl MapArgs {
    pub fn column_map(&self) -> anyhow::Result<ColumnMap> {
        ColumnMap::from_args(&self.map, self.map_file.as_deref())
            .map_err(|e| anyhow::anyhow!("column mapping: {e}"))
    }
}
