//! A problem found in `spec.config`, with the path it was found at.

/// A problem with one place in `spec.config`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// Where, as a path from `spec.config` (e.g. `spec.config.load_assignment.endpoints[0]`).
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Root of every path reported for `spec.config`.
pub const CONFIG_PATH: &str = "spec.config";
