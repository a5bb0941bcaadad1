//! The agent's one error type.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot use {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("ssh key '{path}' {why}")]
    Key { path: String, why: String },
    #[error("ignored cancel request on '{subject}': {why}")]
    BadCancel { subject: String, why: String },
    #[error("message bus error: {0}")]
    Nats(String),
    #[error(
        "cannot start ansible-runner ({program}): {source}; check --ansible-runner or run scripts/setup"
    )]
    Runner {
        program: String,
        #[source]
        source: std::io::Error,
    },
}
