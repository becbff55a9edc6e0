//! OpenAPI schemas of the envelope's closed vocabularies (feature `openapi`).
//!
//! The protocol reads these words case-insensitively and writes them lowercase, so a schema
//! states them as a case-insensitive pattern (a JSON Schema `enum` would forbid `HIGH`, which
//! the server accepts) and lists the canonical spellings as examples.

use std::borrow::Cow;

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

use crate::Priority;

/// An anchored regular expression that matches exactly `words`, ignoring ASCII case, in the
/// common subset of ECMA-262 and Python syntax (no inline flags).
pub fn case_insensitive_pattern<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    let alternatives: Vec<String> = words
        .into_iter()
        .map(|word| {
            word.chars()
                .map(|c| {
                    if c.is_ascii_alphabetic() {
                        format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase())
                    } else if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                        c.to_string()
                    } else {
                        format!("\\{c}")
                    }
                })
                .collect()
        })
        .collect();
    format!("^(?:{})$", alternatives.join("|"))
}

/// The schema of a closed word list read case-insensitively.
pub fn word_schema(description: &str, words: &[&str]) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .pattern(Some(case_insensitive_pattern(words.iter().copied())))
        .examples(words.iter().map(|w| serde_json::Value::from(*w)))
        .into()
}

impl utoipa::PartialSchema for Priority {
    fn schema() -> RefOr<Schema> {
        let words: Vec<&str> = Priority::ALL.iter().map(|p| p.as_str()).collect();
        word_schema("`high`, `medium` or `low`, read case-insensitively and written lowercase.", &words)
    }
}

impl utoipa::ToSchema for Priority {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Priority")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_names_each_word_in_any_case_and_nothing_else() {
        let pattern = case_insensitive_pattern(["high", "most_recent"]);
        assert_eq!(pattern, "^(?:[Hh][Ii][Gg][Hh]|[Mm][Oo][Ss][Tt]_[Rr][Ee][Cc][Ee][Nn][Tt])$");
    }
}
