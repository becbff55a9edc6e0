//! What simulated technicians write: valid records of the built-in domains, edited along
//! each domain's workflow (PROTOCOL.md section 3).

use rand::Rng;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The built-in domains.
pub const DOMAINS: [&str; 6] = ["task", "ticket", "journal", "attendance", "work_order", "voice_note"];

/// The data of a new record of `domain`, in its workflow's start status.
pub fn new_data(domain: &str, author: &str, at: OffsetDateTime, rng: &mut impl Rng) -> Value {
    let n: u32 = rng.random_range(0..100_000);
    match domain {
        "task" => json!({
            "title": format!("Inspect pump {n}"),
            "status": "ASSIGNED",
            "description": "Check pressure, seals and the inlet filter; photograph the nameplate.",
            "assigned_to": author,
            "location": location(rng),
        }),
        "ticket" => json!({
            "title": format!("Leak reported at site {n}"),
            "status": "NEW",
            "priority": "MEDIUM",
            "escalation_level": 0,
            "comments": [],
        }),
        "attendance" => json!({
            "status": "PENDING",
            "event": "check_in",
            "at": rfc3339(at),
            "location": location(rng),
        }),
        "work_order" => json!({
            "title": format!("Replace valve {n}"),
            "status": "open",
            "vendor": "Acme Valves",
        }),
        "voice_note" => json!({
            "title": format!("Site note {n}"),
            "audio_ref": format!("s3://notes/{n}.m4a"),
            "duration_ms": rng.random_range(1_000..120_000),
        }),
        _ => json!({"title": format!("Shift notes {n}"), "notes": "All clear.", "mood": "ok"}),
    }
}

/// An edit of `current` (a record of `domain`): a legal workflow step now and then, and a
/// changed field or two.
pub fn edit_data(
    domain: &str,
    current: &Value,
    author: &str,
    at: OffsetDateTime,
    rng: &mut impl Rng,
) -> Value {
    let mut data = current.as_object().cloned().unwrap_or_default();
    let n: u32 = rng.random_range(0..100_000);
    step_status(domain, &mut data, rng);
    match domain {
        "task" => {
            data.insert("description".into(), json!(format!("Reading {n} by {author}")));
        }
        "ticket" => {
            let level = data.get("escalation_level").and_then(Value::as_i64).unwrap_or(0);
            if level < 5 && rng.random_bool(0.2) {
                data.insert("escalation_level".into(), json!(level + 1));
                data.insert("escalated_at".into(), json!(rfc3339(at)));
                data.insert("escalated_by".into(), json!(author));
            }
            let mut comments = data.get("comments").and_then(Value::as_array).cloned().unwrap_or_default();
            if comments.len() < 20 {
                comments.push(json!({
                    "id": format!("{author}-{n}"),
                    "at": rfc3339(at),
                    "text": format!("Checked again ({n})"),
                    "author": author,
                }));
                data.insert("comments".into(), Value::Array(comments));
            }
        }
        "attendance" => {
            data.insert("location".into(), location(rng));
        }
        "work_order" => {
            data.insert("status".into(), json!(if rng.random_bool(0.5) { "open" } else { "in_progress" }));
            data.insert("vendor".into(), json!(format!("Vendor {}", n % 7)));
        }
        "voice_note" => {
            data.insert("transcript".into(), json!(format!("Pressure {n} kPa, seals fine.")));
        }
        _ => {
            data.insert("notes".into(), json!(format!("Update {n} from {author}")));
            data.insert("mood".into(), json!(["ok", "tired", "great"][rng.random_range(0..3)]));
        }
    }
    Value::Object(data)
}

/// Moves `status` one step along the domain's workflow, half of the time, never into a
/// terminal state (so that the record stays editable).
fn step_status(domain: &str, data: &mut Map<String, Value>, rng: &mut impl Rng) {
    let Some(workflow) = sync_state_machine::workflow(domain) else { return };
    let Some(status) = data.get("status").and_then(Value::as_str) else { return };
    let options: Vec<&str> =
        workflow.next(status).iter().copied().filter(|s| !workflow.is_terminal(s)).collect();
    if !options.is_empty() && rng.random_bool(0.5) {
        let chosen = options[rng.random_range(0..options.len())];
        data.insert("status".into(), json!(chosen));
    }
}

fn location(rng: &mut impl Rng) -> Value {
    json!({"lat": rng.random_range(-60.0..60.0_f64), "lng": rng.random_range(-170.0..170.0_f64)})
}

/// RFC 3339 text of a time (seconds precision, as phones send it).
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.replace_nanosecond(0).unwrap_or(at).format(&Rfc3339).unwrap_or_default()
}
