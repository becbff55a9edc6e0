//! `DomainName`: a validated identifier of a kind of record.

use std::{borrow::Borrow, fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize};

use crate::ModelError;

/// A domain (kind of record) such as `task` or `ticket`: 1 to 64 characters of `a-z`,
/// `0-9` and `_`, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct DomainName(String);

impl DomainName {
    pub const TASK: &'static str = "task";
    pub const TICKET: &'static str = "ticket";
    pub const JOURNAL: &'static str = "journal";
    pub const ATTENDANCE: &'static str = "attendance";
    pub const WORK_ORDER: &'static str = "work_order";
    pub const VOICE_NOTE: &'static str = "voice_note";

    /// The built-in domains, in the protocol's order.
    pub const BUILT_IN: [&'static str; 6] =
        [Self::TASK, Self::TICKET, Self::JOURNAL, Self::ATTENDANCE, Self::WORK_ORDER, Self::VOICE_NOTE];

    pub fn new(name: impl Into<String>) -> Result<Self, ModelError> {
        let name = name.into();
        if Self::is_valid(&name) { Ok(Self(name)) } else { Err(ModelError::InvalidDomainName(name)) }
    }

    pub fn is_valid(name: &str) -> bool {
        let mut chars = name.chars();
        matches!(chars.next(), Some('a'..='z'))
            && name.len() <= 64
            && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DomainName {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl AsRef<str> for DomainName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for DomainName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for DomainName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for DomainName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl<'de> Deserialize<'de> for DomainName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::new(s).map_err(serde::de::Error::custom)
    }
}
