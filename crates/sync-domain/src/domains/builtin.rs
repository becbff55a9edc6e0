//! The six built-in domains of the protocol (section 3), with their data checks.

use serde::Deserialize;
use serde_json::Value;
use sync_model::{SyncMeta, SyncableModel, ValidationErrors};
use time::OffsetDateTime;

/// A point on Earth.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Location {
    pub lat: f64,
    pub lng: f64,
}

impl Location {
    fn check(&self, path: &str, errors: &mut ValidationErrors) {
        if !(-90.0..=90.0).contains(&self.lat) {
            errors.push(format!("{path}.lat"), "must be between -90 and 90");
        }
        if !(-180.0..=180.0).contains(&self.lng) {
            errors.push(format!("{path}.lng"), "must be between -180 and 180");
        }
    }
}

/// A comment on a ticket.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Comment {
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub text: String,
    #[serde(default)]
    pub author: Option<Value>,
}

fn check_title(title: &str, max_chars: usize, errors: &mut ValidationErrors) {
    let chars = title.chars().count();
    if title.trim().is_empty() {
        errors.push("data.title", "must not be empty");
    } else if chars > max_chars {
        errors.push("data.title", format!("must be at most {max_chars} characters (got {chars})"));
    }
}

/// A reference to a person or thing: a string id or a numeric one.
fn check_ref(value: Option<&Value>, path: &str, errors: &mut ValidationErrors) {
    if let Some(value) = value
        && !(value.is_null() || value.is_string() || value.is_i64() || value.is_u64())
    {
        errors.push(path, "must be a string or an integer id");
    }
}

/// The longest title any domain accepts.
const MAX_TITLE_CHARS: usize = 500;

/// A job for a technician.
#[derive(Debug, Deserialize, SyncableModel)]
#[sync(domain = "task", workflow = "task", critical_fields(status), validate = "Task::check")]
pub struct Task {
    #[serde(skip)]
    #[sync(meta)]
    pub meta: SyncMeta,
    pub title: String,
    pub status: String,
    pub description: Option<String>,
    pub assigned_to: Option<Value>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub due_at: Option<OffsetDateTime>,
    pub location: Option<Location>,
}

impl Task {
    fn check(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        check_title(&self.title, MAX_TITLE_CHARS, &mut errors);
        check_ref(self.assigned_to.as_ref(), "data.assigned_to", &mut errors);
        if let Some(location) = &self.location {
            location.check("data.location", &mut errors);
        }
        errors.into_result()
    }
}

/// A ticket's own urgency, `LOW` to `CRITICAL`.
const TICKET_PRIORITIES: [&str; 4] = ["LOW", "MEDIUM", "HIGH", "CRITICAL"];
/// The highest escalation level.
pub const MAX_ESCALATION_LEVEL: u8 = 5;

/// An issue raised from the field, escalated by supervisors.
#[derive(Debug, Deserialize, SyncableModel)]
#[sync(
    domain = "ticket",
    workflow = "ticket",
    critical_fields(escalation_level, priority, status, comments),
    priority_field = "priority",
    validate = "Ticket::check"
)]
pub struct Ticket {
    #[serde(skip)]
    #[sync(meta)]
    pub meta: SyncMeta,
    pub title: String,
    pub status: String,
    pub description: Option<String>,
    pub priority: Option<String>,
    #[serde(default)]
    pub escalation_level: u8,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub escalated_at: Option<OffsetDateTime>,
    pub escalated_by: Option<Value>,
    pub assigned_to: Option<Value>,
    #[serde(default)]
    pub comments: Vec<Comment>,
}

impl Ticket {
    fn check(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        check_title(&self.title, MAX_TITLE_CHARS, &mut errors);
        if let Some(priority) = &self.priority
            && !TICKET_PRIORITIES.iter().any(|p| p.eq_ignore_ascii_case(priority))
        {
            errors.push("data.priority", "must be one of LOW, MEDIUM, HIGH, CRITICAL");
        }
        if self.escalation_level > MAX_ESCALATION_LEVEL {
            errors.push("data.escalation_level", format!("must be 0 to {MAX_ESCALATION_LEVEL}"));
        }
        check_ref(self.escalated_by.as_ref(), "data.escalated_by", &mut errors);
        check_ref(self.assigned_to.as_ref(), "data.assigned_to", &mut errors);
        for (i, comment) in self.comments.iter().enumerate() {
            if comment.id.is_empty() {
                errors.push(format!("data.comments[{i}].id"), "must not be empty");
            }
        }
        errors.into_result()
    }
}

/// A technician's own notes.
#[derive(Debug, Deserialize, SyncableModel)]
#[sync(domain = "journal", validate = "Journal::check")]
pub struct Journal {
    #[serde(skip)]
    #[sync(meta)]
    pub meta: SyncMeta,
    pub title: String,
    pub notes: Option<String>,
    pub mood: Option<Value>,
}

impl Journal {
    fn check(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        check_title(&self.title, MAX_TITLE_CHARS, &mut errors);
        if let Some(mood) = &self.mood
            && !(mood.is_null() || mood.is_string() || mood.is_number())
        {
            errors.push("data.mood", "must be a string or a number");
        }
        errors.into_result()
    }
}

/// A check-in or check-out event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttendanceEvent {
    CheckIn,
    CheckOut,
}

/// A technician's check-in or check-out, verified by the organisation.
#[derive(Debug, Deserialize, SyncableModel)]
#[sync(
    domain = "attendance",
    workflow = "attendance",
    critical_fields(status),
    validate = "Attendance::check"
)]
pub struct Attendance {
    #[serde(skip)]
    #[sync(meta)]
    pub meta: SyncMeta,
    pub status: String,
    pub event: Option<AttendanceEvent>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub at: Option<OffsetDateTime>,
    pub location: Option<Location>,
}

impl Attendance {
    fn check(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if let Some(location) = &self.location {
            location.check("data.location", &mut errors);
        }
        errors.into_result()
    }
}

/// Work ordered from a vendor.
#[derive(Debug, Deserialize, SyncableModel)]
#[sync(domain = "work_order", validate = "WorkOrder::check")]
pub struct WorkOrder {
    #[serde(skip)]
    #[sync(meta)]
    pub meta: SyncMeta,
    pub title: String,
    pub status: Option<String>,
    pub vendor: Option<Value>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub due_at: Option<OffsetDateTime>,
}

impl WorkOrder {
    fn check(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        check_title(&self.title, MAX_TITLE_CHARS, &mut errors);
        check_ref(self.vendor.as_ref(), "data.vendor", &mut errors);
        errors.into_result()
    }
}

/// A recorded voice note; the audio itself lives elsewhere (`audio_ref`).
#[derive(Debug, Deserialize, SyncableModel)]
#[sync(domain = "voice_note", validate = "VoiceNote::check")]
pub struct VoiceNote {
    #[serde(skip)]
    #[sync(meta)]
    pub meta: SyncMeta,
    pub title: String,
    pub audio_ref: Option<String>,
    pub duration_ms: Option<u64>,
    pub transcript: Option<String>,
}

impl VoiceNote {
    fn check(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        check_title(&self.title, MAX_TITLE_CHARS, &mut errors);
        errors.into_result()
    }
}
