//! The crate's error type and the field-path validation errors domains report.

use std::fmt;

/// Errors of this crate: parsing the closed vocabularies of the sync envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error(
        "unknown sync status `{0}` (expected synced, pending_sync, sync_error, pending_delete or conflict)"
    )]
    UnknownSyncStatus(String),
    #[error("unknown priority `{0}` (expected high, medium or low)")]
    UnknownPriority(String),
    #[error("invalid domain name `{0}`: use 1 to 64 characters of a-z, 0-9 and _, starting with a letter")]
    InvalidDomainName(String),
    #[error(transparent)]
    Validation(#[from] ValidationErrors),
}

/// One problem with one field, named by its path from the change (`data.title`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem a domain found in one record, in the order found.
///
/// Displayed as `path: message` entries joined by `; `, which is the message the push
/// response carries for an `invalid` outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors {
    errors: Vec<FieldError>,
}

impl ValidationErrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// A single error.
    pub fn single(path: impl Into<String>, message: impl Into<String>) -> Self {
        let mut errors = Self::new();
        errors.push(path, message);
        errors
    }

    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError { path: path.into(), message: message.into() });
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }

    /// `Ok(())` when nothing was pushed, else `Err(self)`.
    pub fn into_result(self) -> Result<(), Self> {
        if self.errors.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}
