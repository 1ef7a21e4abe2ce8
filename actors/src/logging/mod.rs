//! The `tracing` subscriber of the `floe` binary: lines on stderr, filtered by `--log` (a
//! level such as `info`, or directives such as `floe=debug,actix=warn`), human-readable or,
//! with `--log-format json`, one JSON object per line (`json`). Records of the `log` crate
//! (actix) are forwarded to it.

use std::io::IsTerminal;

use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

mod json;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum LogFormat {
    /// Human-readable text, coloured on a terminal.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields` (the message
    /// and the event's fields) and `spans`, for log shippers.
    Json,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoggingError {
    /// The filter does not parse.
    #[error("invalid log filter `{filter}`: {reason}")]
    Filter {
        /// The filter given.
        filter: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A global subscriber (or `log` logger) is already installed.
    #[error("logging is already initialised: {0}")]
    AlreadyInitialized(String),
}

/// Installs the global subscriber with `filter`, writing text. Call once, early in `main`.
pub fn init_logging(filter: &str) -> Result<(), LoggingError> {
    init_logging_as(filter, LogFormat::Text)
}

/// Installs the global subscriber with `filter`, writing `format`. Call once, early in
/// `main`.
pub fn init_logging_as(filter: &str, format: LogFormat) -> Result<(), LoggingError> {
    let env_filter = EnvFilter::try_new(filter).map_err(|e| LoggingError::Filter {
        filter: filter.to_owned(),
        reason: e.to_string(),
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.event_format(json::JsonLines).try_init(),
    }
    .map_err(|e| LoggingError::AlreadyInitialized(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_filter_then_init_then_second_init() {
        assert!(matches!(
            init_logging("floe=loud=yes"),
            Err(LoggingError::Filter { .. })
        ));
        // The only test in this binary that installs a subscriber.
        init_logging("warn,floe_actors=debug").unwrap();
        assert!(matches!(
            init_logging("info"),
            Err(LoggingError::AlreadyInitialized(_))
        ));
    }
}
