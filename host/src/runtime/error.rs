//! Typed errors of loading a plugin version and of one call. Every message names the
//! plugin (`name@version`) and the cause.

use crate::capabilities::GrantError;

/// Why a directory may not hold the name it claims.
#[derive(Debug, Clone, thiserror::Error)]
#[error("plugin {name}: {dir} claims the name, but {owner} already holds it; rename the plugin in {dir}/plugin.toml or remove that directory")]
pub struct NameTaken {
    pub name: String,
    pub dir: String,
    pub owner: String,
}

/// Why a plugin version could not be loaded. The previous live version stays.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot create the wasm engine: {0}")]
    Engine(String),
    #[error(transparent)]
    Manifest(#[from] crate::manifest::ManifestError),
    #[error("plugin {plugin}: cannot read component {message}")]
    Read { plugin: String, message: String },
    /// The directory's bytes are unchanged since they were rejected with `message`.
    #[error("{message}")]
    Repeated { message: String },
    #[error(transparent)]
    NameTaken(#[from] NameTaken),
    #[error("plugin {plugin}: this version was already loaded with component sha256 {recorded}…; these bytes are {found}… — bump plugin.version in plugin.toml to deploy new bytes")]
    VersionReused {
        plugin: String,
        recorded: String,
        found: String,
    },
    #[error("plugin {plugin}: not a valid component: {message}")]
    Compile { plugin: String, message: String },
    #[error(transparent)]
    Grant(#[from] GrantError),
    #[error("plugin {plugin} imports `{import}`, which no plugin may import ({why})")]
    ForbiddenImport {
        plugin: String,
        import: String,
        why: String,
    },
    #[error(
        "plugin {plugin} was built against contract strata:plugin@{version}; this host supports {supported}"
    )]
    UnsupportedContract {
        plugin: String,
        version: String,
        supported: String,
    },
    #[error(
        "plugin {plugin} is declared as a {kind} but does not export `{export}` (exports: {found})"
    )]
    WrongWorld {
        plugin: String,
        kind: String,
        export: String,
        found: String,
    },
    #[error("plugin {plugin}: linking failed: {message}")]
    Link { plugin: String, message: String },
    #[error("plugin {plugin}: smoke test {case:?} failed: {message}")]
    Smoke {
        plugin: String,
        case: String,
        message: String,
    },
    #[error("plugin {plugin}: {message}")]
    Other { plugin: String, message: String },
}

/// Why one call failed. The instance is discarded; the host and other plugins go on.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum CallError {
    #[error("plugin {0} is not loaded")]
    NotLoaded(String),
    #[error("plugin {0} is disabled by an operator")]
    Disabled(String),
    #[error("plugin {plugin} is a {kind}; this call needs {needed}")]
    WrongKind {
        plugin: String,
        kind: String,
        needed: String,
    },
    #[error("{plugin}: deadline of {ms} ms exceeded")]
    Deadline { plugin: String, ms: u64 },
    #[error("{plugin}: memory limit of {limit_mb} MiB exceeded")]
    MemoryLimit { plugin: String, limit_mb: usize },
    #[error("{plugin}: fuel budget of {fuel} instructions exhausted")]
    Fuel { plugin: String, fuel: u64 },
    #[error("{plugin}: wasm call stack exhausted (unbounded recursion?)")]
    StackOverflow { plugin: String },
    #[error("{plugin} panicked: {message}")]
    Panic { plugin: String, message: String },
    #[error("{plugin} trapped: {message}")]
    Trap { plugin: String, message: String },
    #[error("{plugin}: input of {size} bytes exceeds max_input_bytes = {limit}")]
    InputTooLarge {
        plugin: String,
        size: usize,
        limit: usize,
    },
    #[error("{plugin}: output of {size} bytes exceeds max_output_bytes = {limit}")]
    OutputTooLarge {
        plugin: String,
        size: usize,
        limit: usize,
    },
    #[error("{plugin}: invalid output: {reason}")]
    InvalidOutput { plugin: String, reason: String },
    #[error("{plugin} refused the input: {message}")]
    InvalidInput { plugin: String, message: String },
    #[error("{plugin} failed: {message}")]
    Failed { plugin: String, message: String },
    #[error("{plugin}: cannot instantiate: {message}")]
    Instantiate { plugin: String, message: String },
}

impl CallError {
    /// A short stable label for metrics and audit rows.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::NotLoaded(_) => "not_loaded",
            CallError::Disabled(_) => "disabled",
            CallError::WrongKind { .. } => "wrong_kind",
            CallError::Deadline { .. } => "deadline",
            CallError::MemoryLimit { .. } => "memory",
            CallError::Fuel { .. } => "fuel",
            CallError::StackOverflow { .. } => "stack_overflow",
            CallError::Panic { .. } => "panic",
            CallError::Trap { .. } => "trap",
            CallError::InputTooLarge { .. } => "input_too_large",
            CallError::OutputTooLarge { .. } => "output_too_large",
            CallError::InvalidOutput { .. } => "invalid_output",
            CallError::InvalidInput { .. } => "invalid_input",
            CallError::Failed { .. } => "failed",
            CallError::Instantiate { .. } => "instantiate",
        }
    }
}
