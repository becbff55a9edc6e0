//! The pull cursor: an opaque string built on the change sequence.

/// A pull cursor: an opaque string built on the change sequence (`c1.` and the sequence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Cursor(pub i64);

impl Cursor {
    const PREFIX: &'static str = "c1.";

    /// Most digits of a cursor's sequence (the OpenAPI pattern `^c1\.[0-9]{1,18}$` says the same).
    pub const MAX_DIGITS: usize = 18;

    /// Parses a cursor the server handed out: `c1.` and 1 to 18 decimal digits, nothing else
    /// (no sign, no spaces).
    pub fn parse(s: &str) -> Option<Self> {
        let digits = s.strip_prefix(Self::PREFIX)?;
        if digits.is_empty() || digits.len() > Self::MAX_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        digits.parse().ok().map(Self)
    }

    pub fn seq(self) -> i64 {
        self.0
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", Self::PREFIX, self.0)
    }
}
