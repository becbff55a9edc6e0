//! The closed vocabularies of the protocol: `Policy`, `Resolution`, `Winner`, `ConflictStatus`.
//!
//! With the feature `graphql` each is also a GraphQL enum whose values are the protocol's
//! words (`client_wins`, not `CLIENT_WINS`), so that a GraphQL result reads as the REST JSON.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ConflictError;

/// Defines a closed word list: `as_str`, `ALL`, Display, FromStr (ASCII case-insensitive),
/// and serde as the snake_case word.
macro_rules! words {
    ($(#[$meta:meta])* $name:ident, $err:ident { $($(#[$vmeta:meta])* $variant:ident => $word:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
        pub enum $name {
            $($(#[$vmeta])* #[cfg_attr(feature = "graphql", graphql(name = $word))] $variant,)+
        }

        impl $name {
            /// Every value, in the protocol's order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The protocol's word.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ConflictError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str().eq_ignore_ascii_case(s))
                    .ok_or_else(|| ConflictError::$err(s.to_owned()))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        /// The word list read case-insensitively (feature `openapi`).
        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let words: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                let description = format!(
                    "One of `{}`, read case-insensitively and written lowercase.",
                    words.join("`, `")
                );
                sync_model::openapi::word_schema(&description, &words)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }
    };
}

words! {
    /// A conflict policy (PROTOCOL.md 4.1/4.2).
    Policy, UnknownPolicy {
        /// The client's full state wins.
        ClientWins => "client_wins",
        /// The server's full state wins.
        ServerWins => "server_wins",
        /// The later `modified_at` wins; equal times: the greater device id.
        MostRecentWins => "most_recent_wins",
        /// Three-way merge against the base; both-changed fields by most_recent_wins.
        FieldMerge => "field_merge",
        /// `field_merge`, and the ticket's critical fields never move backwards.
        PreserveEscalation => "preserve_escalation",
        /// The stored record stays; an admin decides.
        Manual => "manual",
    }
}

words! {
    /// The result of a conflict as the conflict log records it.
    Resolution, UnknownResolution {
        Resolved => "resolved",
        ManualRequired => "manual_required",
        Failed => "failed",
    }
}

words! {
    /// Whose state stands after a conflict.
    Winner, UnknownWinner {
        Client => "client",
        Server => "server",
        Merged => "merged",
        None => "none",
    }
}

words! {
    /// Where a logged conflict stands.
    ConflictStatus, UnknownConflictStatus {
        /// A manual conflict waiting for an admin.
        Pending => "pending",
        /// A manual conflict an admin resolved.
        Resolved => "resolved",
        /// Resolved automatically by the policy when it happened.
        Auto => "auto",
    }
}

impl Policy {
    /// Whether the policy resolves conflicts by itself (everything but `manual`).
    pub const fn is_automatic(self) -> bool {
        !matches!(self, Policy::Manual)
    }

    /// Whether the policy merges field by field (and so needs the base version).
    pub const fn is_merge(self) -> bool {
        matches!(self, Policy::FieldMerge | Policy::PreserveEscalation)
    }
}
