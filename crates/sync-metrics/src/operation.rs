//! The operations a recorder keys its series by, and the kinds of sync a device makes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::MetricsError;

/// A sync operation as the recorder counts it (the `operation` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Push,
    Pull,
    Partial,
    Resolve,
}

impl Operation {
    pub const ALL: [Operation; 4] =
        [Operation::Push, Operation::Pull, Operation::Partial, Operation::Resolve];

    pub const fn as_str(self) -> &'static str {
        match self {
            Operation::Push => "push",
            Operation::Pull => "pull",
            Operation::Partial => "partial",
            Operation::Resolve => "resolve",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Operation {
    type Err = MetricsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Operation::ALL
            .into_iter()
            .find(|op| op.as_str() == s)
            .ok_or_else(|| MetricsError::UnknownOperation(s.to_owned()))
    }
}

/// What a device did in one sync (protocol section 7: "a sync is one push or pull").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncKind {
    Push,
    Pull,
}

impl SyncKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            SyncKind::Push => "push",
            SyncKind::Pull => "pull",
        }
    }
}

impl fmt::Display for SyncKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SyncKind {
    type Err = MetricsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "push" => Ok(SyncKind::Push),
            "pull" => Ok(SyncKind::Pull),
            _ => Err(MetricsError::UnknownSyncKind(s.to_owned())),
        }
    }
}

impl From<SyncKind> for Operation {
    fn from(kind: SyncKind) -> Self {
        match kind {
            SyncKind::Push => Operation::Push,
            SyncKind::Pull => Operation::Pull,
        }
    }
}
