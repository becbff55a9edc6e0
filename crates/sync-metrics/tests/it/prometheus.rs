//! The Prometheus text exposition: families, labels, escaping, histogram consistency.

use std::time::Duration;

use proptest::prelude::*;
use sync_metrics::{
    Operation, PROMETHEUS_CONTENT_TYPE, RecorderConfig, Sample, SyncRecorder, Usage, escape_label_value,
};

fn recorder() -> SyncRecorder {
    let config =
        RecorderConfig { duration_buckets_seconds: vec![0.01, 0.1, 1.0], ..RecorderConfig::default() };
    SyncRecorder::with_config(&config).unwrap()
}

#[test]
fn renders_every_family_with_its_labels() {
    let recorder = recorder();
    let usage = Usage { items: 5, conflicts: 1, bytes_raw: 1000, bytes_sent: 250 };
    recorder.record("acme", "task", Operation::Push, &Sample::success(Duration::from_millis(50), usage));
    recorder.record("acme", "task", Operation::Push, &Sample::failure(Duration::from_millis(1500)));
    let text = recorder.render_prometheus();

    let expected_lines = [
        "# TYPE sync_operations_total counter",
        r#"sync_operations_total{tenant="acme",domain="task",operation="push"} 2"#,
        r#"sync_operations_succeeded_total{tenant="acme",domain="task",operation="push"} 1"#,
        r#"sync_operations_failed_total{tenant="acme",domain="task",operation="push"} 1"#,
        r#"sync_conflicts_total{tenant="acme",domain="task",operation="push"} 1"#,
        r#"sync_items_total{tenant="acme",domain="task",operation="push"} 5"#,
        r#"sync_bytes_raw_total{tenant="acme",domain="task",operation="push"} 1000"#,
        r#"sync_bytes_sent_total{tenant="acme",domain="task",operation="push"} 250"#,
        "# TYPE sync_operation_duration_seconds histogram",
        r#"sync_operation_duration_seconds_bucket{tenant="acme",domain="task",operation="push",le="0.01"} 0"#,
        r#"sync_operation_duration_seconds_bucket{tenant="acme",domain="task",operation="push",le="0.1"} 1"#,
        r#"sync_operation_duration_seconds_bucket{tenant="acme",domain="task",operation="push",le="1"} 1"#,
        r#"sync_operation_duration_seconds_bucket{tenant="acme",domain="task",operation="push",le="+Inf"} 2"#,
        r#"sync_operation_duration_seconds_sum{tenant="acme",domain="task",operation="push"} 1.55"#,
        r#"sync_operation_duration_seconds_count{tenant="acme",domain="task",operation="push"} 2"#,
        "# TYPE sync_operation_duration_quantile_seconds summary",
        r#"sync_operation_duration_quantile_seconds_count{tenant="acme",domain="task",operation="push"} 2"#,
        "# TYPE sync_metrics_overflowed_samples_total counter",
        "sync_metrics_overflowed_samples_total 0",
    ];
    let lines: Vec<&str> = text.lines().collect();
    for expected in expected_lines {
        assert!(lines.contains(&expected), "missing `{expected}` in\n{text}");
    }
    assert!(text.ends_with('\n'));
    assert_eq!(PROMETHEUS_CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
}

#[test]
fn quantile_lines_are_close() {
    let recorder = recorder();
    recorder.record(
        "t",
        "d",
        Operation::Pull,
        &Sample::success(Duration::from_millis(200), Usage::default()),
    );
    let text = recorder.render_prometheus();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("sync_operation_duration_quantile_seconds{") && l.contains(r#"quantile="0.95""#)
        })
        .unwrap();
    let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((value - 0.2).abs() / 0.2 <= 0.0625, "{line}");
}

#[test]
fn an_empty_recorder_renders_headers_only() {
    let text = SyncRecorder::new().render_prometheus();
    assert!(
        text.lines().all(|l| l.starts_with('#') || l == "sync_metrics_overflowed_samples_total 0"),
        "{text}"
    );
}

#[test]
fn label_values_are_escaped() {
    assert_eq!(escape_label_value("plain"), "plain");
    assert_eq!(escape_label_value(r#"a"b\c"#), r#"a\"b\\c"#);
    assert_eq!(escape_label_value("line\nbreak"), r"line\nbreak");
    assert_eq!(escape_label_value("ünïcødé {}=,"), "ünïcødé {}=,");

    let recorder = recorder();
    recorder.record(
        "evil\"}\n# TYPE x counter",
        "task\\",
        Operation::Resolve,
        &Sample::failure(Duration::ZERO),
    );
    let text = recorder.render_prometheus();
    assert!(text.contains(r#"sync_operations_total{tenant="evil\"}\n# TYPE x counter",domain="task\\",operation="resolve"} 1"#), "{text}");
    assert!(!text.lines().any(|l| l == "# TYPE x counter"));
}

type Labels = Vec<(String, String)>;

/// A small parser of the text format's sample lines: name, label values unescaped, value.
fn parse_sample(line: &str) -> Option<(String, Labels, String)> {
    let open = line.find('{')?;
    let name = line[..open].to_owned();
    let mut labels = Vec::new();
    let mut rest = &line[open + 1..];
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Some((name, labels, after.trim_start().to_owned()));
        }
        rest = rest.strip_prefix(',').unwrap_or(rest);
        let eq = rest.find("=\"")?;
        let label = rest[..eq].to_owned();
        let mut value = String::new();
        let mut chars = rest[eq + 2..].char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break eq + 2 + i + 1,
                c => value.push(c),
            }
        };
        labels.push((label, value));
        rest = &rest[end..];
    }
}

proptest! {
    #[test]
    fn any_label_value_round_trips(tenant in "\\PC*", domain in "[a-z\"\\\\\n]{0,8}") {
        let recorder = recorder();
        recorder.record(&tenant, &domain, Operation::Partial, &Sample::failure(Duration::from_millis(3)));
        let text = recorder.render_prometheus();
        let samples: Vec<_> = text.lines().filter(|l| !l.starts_with('#') && l.contains('{')).collect();
        prop_assert!(!samples.is_empty());
        for line in samples {
            let (name, labels, value) = parse_sample(line).unwrap();
            prop_assert!(name.starts_with("sync_"));
            prop_assert_eq!(&labels[0], &("tenant".to_owned(), tenant.clone()));
            prop_assert_eq!(&labels[1], &("domain".to_owned(), domain.clone()));
            prop_assert_eq!(&labels[2], &("operation".to_owned(), "partial".to_owned()));
            prop_assert!(value == "NaN" || value.parse::<f64>().is_ok() || value == "+Inf");
        }
    }
}
