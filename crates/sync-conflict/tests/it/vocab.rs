//! The protocol's words: parsing, display and serde agree.

use sync_conflict::{ConflictError, ConflictStatus, Policy, Resolution, Winner};

#[test]
fn policies_round_trip_through_every_form() {
    for policy in Policy::ALL {
        let word = policy.to_string();
        assert_eq!(word.parse::<Policy>().unwrap(), *policy);
        assert_eq!(word.to_uppercase().parse::<Policy>().unwrap(), *policy);
        assert_eq!(serde_json::to_value(policy).unwrap(), word.as_str());
        assert_eq!(serde_json::from_value::<Policy>(word.as_str().into()).unwrap(), *policy);
    }
    let words: Vec<&str> = Policy::ALL.iter().map(|p| p.as_str()).collect();
    assert_eq!(
        words,
        ["client_wins", "server_wins", "most_recent_wins", "field_merge", "preserve_escalation", "manual"]
    );
}

#[test]
fn resolutions_and_winners_use_the_logs_words() {
    let r: Vec<&str> = Resolution::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(r, ["resolved", "manual_required", "failed"]);
    let w: Vec<String> = Winner::ALL.iter().map(|w| w.to_string()).collect();
    assert_eq!(w, ["client", "server", "merged", "none"]);
    assert_eq!("MERGED".parse::<Winner>().unwrap(), Winner::Merged);
    assert_eq!(serde_json::to_string(&Resolution::ManualRequired).unwrap(), "\"manual_required\"");
    let s: Vec<&str> = ConflictStatus::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(s, ["pending", "resolved", "auto"]);
    assert_eq!(serde_json::from_str::<ConflictStatus>("\"Pending\"").unwrap(), ConflictStatus::Pending);
    assert_eq!(
        "all".parse::<ConflictStatus>().unwrap_err(),
        ConflictError::UnknownConflictStatus("all".into())
    );
}

#[test]
fn unknown_words_are_errors_not_panics() {
    let err = "last_writer_wins".parse::<Policy>().unwrap_err();
    assert_eq!(err, ConflictError::UnknownPolicy("last_writer_wins".into()));
    assert_eq!(err.code(), "validation");
    assert!("".parse::<Winner>().is_err());
    assert!("done".parse::<Resolution>().is_err());
    assert!(serde_json::from_str::<Policy>("\"nope\"").is_err());
    assert!(serde_json::from_str::<Policy>("3").is_err());
}

#[test]
fn record_state_needs_an_object() {
    let err = sync_conflict::RecordState::from_json(serde_json::json!([1]), crate::at(0), "d").unwrap_err();
    assert_eq!(err.to_string(), "record data must be a JSON object, found an array");
}
