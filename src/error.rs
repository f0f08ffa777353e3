//! The crate's one error type: every failure is a typed value with context.

use thiserror::Error;

/// Everything that can go wrong in kiln, each variant carrying what a user needs to act on it.
#[derive(Debug, Error)]
pub enum Error {
    /// Two shapes that an op or a layer needed to agree do not.
    #[error("shape mismatch in {context}: {detail}")]
    Shape {
        /// Where the mismatch was found (an op or a layer name).
        context: String,
        /// The shapes involved and what was expected.
        detail: String,
    },
    /// A model spec (the layer list) that does not parse.
    #[error("model spec error at position {position}: {message}\n  {spec}\n  {marker}^")]
    Spec {
        /// The whole spec as given.
        spec: String,
        /// Byte offset of the problem.
        position: usize,
        /// Spaces up to `position`, so the caret points at the problem.
        marker: String,
        /// What is wrong there.
        message: String,
    },
    /// A configuration value outside its domain (batch size 0, a negative learning rate, ...).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A dataset file that is missing, malformed or inconsistent.
    #[error("data error in {path}: {message}")]
    Data {
        /// The file (or embedded set) concerned.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// No wgpu adapter matched the request.
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),
    /// wgpu reported a validation, out-of-memory or internal error, or the device was lost.
    #[error("GPU error during {context}: {message}")]
    Gpu {
        /// What kiln was doing when the error was reported.
        context: String,
        /// wgpu's own message.
        message: String,
    },
    /// A feature that this build or this backend does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Training produced NaN or infinite values where they must be finite.
    #[error("non-finite values: {0}")]
    NonFinite(String),
    /// The graph is malformed (an internal invariant was broken by the caller).
    #[error("graph error: {0}")]
    Graph(String),
    /// A file could not be read or written.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The path concerned.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Shorthand used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A shape error with its context.
    pub fn shape(context: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Shape {
            context: context.into(),
            detail: detail.into(),
        }
    }

    /// A GPU error with its context.
    pub fn gpu(context: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Error::Gpu {
            context: context.into(),
            message: message.to_string(),
        }
    }

    /// A data error naming the file.
    pub fn data(path: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Data {
            path: path.into(),
            message: message.into(),
        }
    }
}
