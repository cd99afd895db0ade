//! The fitted plugin as files: the generic scorecard component with the model written
//! into its model buffer, a manifest with smoke tests, and the model as JSON for people.
//!
//! The generic component is `host/assets/scorecard.wasm`, built from `plugins/scorecard`
//! by `plugins/build.sh` (which refreshes the copy) and committed, so `cargo build` needs
//! no wasm toolchain and `strata fit` needs none either: patching is a copy of the bytes
//! with the buffer's contents replaced, same length, so the component's structure is
//! untouched. Before patching, the buffer is located and checked with `wasmparser`: the
//! marker occurs exactly once, inside a data segment of a core module that holds the
//! whole buffer.

use scorecard::buffer::{self, CAPACITY, MAGIC};
use scorecard::model::Model;
use sha2::{Digest, Sha256};
use std::path::Path;
use wasmparser::{Parser, Payload};

/// The generic scorecard component (no model).
pub static GENERIC: &[u8] = include_bytes!("../../assets/scorecard.wasm");

#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error("the scorecard component has {0} model markers; exactly one is needed")]
    Markers(usize),
    #[error("the scorecard component's model marker is not inside a data segment holding the whole buffer")]
    NotInData,
    #[error("the scorecard component does not parse: {0}")]
    Parse(#[from] wasmparser::BinaryReaderError),
    #[error("{0}")]
    Fill(String),
    #[error("model as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("writing {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// Where the model buffer starts in `component`, checked as the module doc says.
pub fn locate(component: &[u8]) -> Result<usize, ComponentError> {
    let hits: Vec<usize> = component
        .windows(MAGIC.len())
        .enumerate()
        .filter(|(_, w)| *w == MAGIC)
        .map(|(i, _)| i)
        .collect();
    if hits.len() != 1 {
        return Err(ComponentError::Markers(hits.len()));
    }
    let at = hits[0];
    let base = component.as_ptr() as usize;
    for payload in Parser::new(0).parse_all(component) {
        if let Payload::DataSection(reader) = payload? {
            for data in reader {
                let data = data?;
                let start = data.data.as_ptr() as usize - base;
                if start <= at && at + CAPACITY <= start + data.data.len() {
                    return Ok(at);
                }
            }
        }
    }
    Err(ComponentError::NotInData)
}

/// A copy of `component` carrying `model`.
pub fn patch(component: &[u8], model: &Model) -> Result<Vec<u8>, ComponentError> {
    let at = locate(component)?;
    let payload = serde_json::to_vec(model)?;
    let mut out = component.to_vec();
    buffer::fill(&mut out[at..at + CAPACITY], &payload).map_err(ComponentError::Fill)?;
    Ok(out)
}

/// The model a patched component carries, read back from its bytes.
pub fn model_of(component: &[u8]) -> Result<Option<Model>, ComponentError> {
    let at = locate(component)?;
    let len = u32::from_le_bytes(
        component[at + 16..at + buffer::HEADER]
            .try_into()
            .expect("4 bytes"),
    ) as usize;
    if len == 0 {
        return Ok(None);
    }
    let start = at + buffer::HEADER;
    Ok(Some(serde_json::from_slice(
        &component[start..start + len],
    )?))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes `bytes` to `path` by a rename, so a host watching the directory never sees a
/// half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ComponentError> {
    let io = |source| ComponentError::Io {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use scorecard::model::{Feature, Kind, Platt, FORMAT};

    fn model() -> Model {
        Model {
            format: FORMAT,
            intercept: 0.25,
            platt: Platt { a: 1.0, b: 0.0 },
            features: vec![Feature {
                column: "Lead Origin".into(),
                factor: None,
                kind: Kind::Categorical {
                    levels: vec!["API".into()],
                },
                weights: vec![0.5, 0.0, -0.5],
            }],
        }
    }

    #[test]
    fn the_generic_component_has_one_marker_inside_a_data_segment_and_no_model() {
        locate(GENERIC).unwrap();
        assert_eq!(model_of(GENERIC).unwrap(), None);
    }

    #[test]
    fn patching_keeps_the_length_and_the_model_reads_back() {
        let patched = patch(GENERIC, &model()).unwrap();
        assert_eq!(patched.len(), GENERIC.len());
        assert_eq!(model_of(&patched).unwrap(), Some(model()));
        assert_ne!(sha256_hex(&patched), sha256_hex(GENERIC));
        // Only the buffer changed.
        let at = locate(GENERIC).unwrap();
        assert_eq!(patched[..at], GENERIC[..at]);
        assert_eq!(patched[at + CAPACITY..], GENERIC[at + CAPACITY..]);
    }

    #[test]
    fn a_component_with_two_markers_is_refused() {
        let mut twice = GENERIC.to_vec();
        twice.extend_from_slice(&MAGIC);
        assert!(matches!(locate(&twice), Err(ComponentError::Markers(2))));
    }
}
