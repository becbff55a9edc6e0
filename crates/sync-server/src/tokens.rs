//! `token create --expires-in` durations and the output of `token list`.

use anyhow::Context;
use serde_json::{Value, json};
use sync_domain::store::TokenRow;
use time::format_description::well_known::Rfc3339;

use crate::error::CliError;

/// The longest `--expires-in` accepted (ten years).
const MAX_LIFETIME_SECONDS: i64 = 10 * 366 * 24 * 3600;

/// Parses a lifetime like `90s`, `15m`, `12h` or `30d` into microseconds (for clap).
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let expected = || format!("`{text}` is not a duration like 90s, 15m, 12h or 30d");
    let split = text.len().checked_sub(1).filter(|&i| text.is_char_boundary(i)).ok_or_else(expected)?;
    let (number, unit) = text.split_at(split);
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(expected());
    }
    let seconds_per: i64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 24 * 3600,
        _ => return Err(expected()),
    };
    let seconds = number
        .parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(seconds_per))
        .filter(|s| *s <= MAX_LIFETIME_SECONDS)
        .ok_or_else(|| format!("`{text}` is longer than ten years"))?;
    if seconds == 0 {
        return Err("a token's lifetime must be at least 1s".into());
    }
    Ok(seconds * 1_000_000)
}

/// A stored time as RFC 3339 (UTC, whole seconds).
fn time(micros: i64) -> String {
    sync_domain::micros::to_datetime(micros - micros.rem_euclid(1_000_000))
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| micros.to_string())
}

fn units(row: &TokenRow) -> Result<Option<Vec<String>>, CliError> {
    Ok(row.units_list().with_context(|| format!("stored units of token {}", row.id))?)
}

/// `token list --format text`: a header and one aligned line per token.
pub fn text(rows: &[TokenRow], now: i64) -> String {
    let mut lines = vec![
        ["ID", "USER", "ROLE", "UNITS", "CREATED", "EXPIRES", "LAST USED", "REVOKED"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for row in rows {
        let units = match units(row) {
            Ok(Some(units)) => units.join(","),
            Ok(None) => "all".to_owned(),
            Err(_) => "?".to_owned(),
        };
        let expires = match row.expires_at {
            None => "never".to_owned(),
            Some(at) if at <= now => format!("{} (expired)", time(at)),
            Some(at) => time(at),
        };
        let revoked = match (row.revoked, row.revoked_at) {
            (false, _) => "no".to_owned(),
            (true, Some(at)) => time(at),
            (true, None) => "yes".to_owned(),
        };
        lines.push(vec![
            row.id.clone(),
            row.user_id.clone(),
            row.role.to_string(),
            units,
            time(row.created_at),
            expires,
            row.last_used_at.map_or_else(|| "never".to_owned(), time),
            revoked,
        ]);
    }
    let columns = lines[0].len();
    let widths: Vec<usize> =
        (0..columns).map(|c| lines.iter().map(|l| l[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for line in &lines {
        let cells: Vec<String> =
            line.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `token list --format json`: an array of objects, times as RFC 3339 or null.
pub fn json(rows: &[TokenRow]) -> Result<String, CliError> {
    let items = rows
        .iter()
        .map(|row| {
            Ok(json!({
                "id": row.id,
                "tenant": row.tenant_id,
                "user": row.user_id,
                "role": row.role.as_str(),
                "units": units(row)?,
                "created_at": time(row.created_at),
                "expires_at": row.expires_at.map(time),
                "last_used_at": row.last_used_at.map(time),
                "revoked": row.revoked,
                "revoked_at": row.revoked_at.map(time),
            }))
        })
        .collect::<Result<Vec<Value>, CliError>>()?;
    let mut text = serde_json::to_string_pretty(&items).context("serialising the token list")?;
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::parse_duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(90_000_000));
        assert_eq!(parse_duration("15m"), Ok(900_000_000));
        assert_eq!(parse_duration("12h"), Ok(12 * 3_600_000_000));
        assert_eq!(parse_duration("30d"), Ok(30 * 86_400_000_000));
        for bad in ["", "s", "10", "10x", "-5s", "1.5h", "0s", "99999999999999999999d", "4000d", "1 h", "é"]
        {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
