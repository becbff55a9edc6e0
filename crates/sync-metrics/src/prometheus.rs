//! The Prometheus text exposition format (0.0.4) of a recorder's series, rendered by hand.

use std::borrow::Cow;
use std::fmt::Write;
use std::time::Duration;

use crate::SeriesSnapshot;

/// The `Content-Type` of [`crate::SyncRecorder::render_prometheus`]'s output.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The quantiles of the summary family.
const QUANTILES: [f64; 3] = [0.5, 0.95, 0.99];

/// Escapes a label value: backslash, double quote and line feed, as the format requires.
pub fn escape_label_value(value: &str) -> Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(value);
    }
    let mut escaped = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    Cow::Owned(escaped)
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // Writing into a String cannot fail.
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn labels(&mut self, s: &SeriesSnapshot) {
        let _ = write!(
            self.0,
            "tenant=\"{}\",domain=\"{}\",operation=\"{}\"",
            escape_label_value(&s.tenant),
            escape_label_value(&s.domain),
            s.operation.as_str()
        );
    }

    /// `name{tenant,domain,operation[,extra]} value`
    fn sample(&mut self, name: &str, s: &SeriesSnapshot, extra: Option<(&str, &str)>, value: impl Value) {
        let _ = write!(self.0, "{name}{{");
        self.labels(s);
        if let Some((label, label_value)) = extra {
            let _ = write!(self.0, ",{label}=\"{label_value}\"");
        }
        self.0.push_str("} ");
        value.write(&mut self.0);
        self.0.push('\n');
    }
}

trait Value {
    fn write(self, out: &mut String);
}

impl Value for u64 {
    fn write(self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl Value for f64 {
    fn write(self, out: &mut String) {
        if self.is_nan() {
            out.push_str("NaN");
        } else if self.is_infinite() {
            out.push_str(if self > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            let _ = write!(out, "{self}");
        }
    }
}

type CounterField = fn(&SeriesSnapshot) -> u64;

const COUNTERS: [(&str, &str, CounterField); 7] = [
    ("sync_operations_total", "Sync operations recorded, successful or not.", SeriesSnapshot::count),
    ("sync_operations_succeeded_total", "Sync operations that succeeded.", |s| s.successes),
    ("sync_operations_failed_total", "Sync operations that failed, were cancelled or panicked.", |s| {
        s.failures
    }),
    ("sync_conflicts_total", "Conflicts met by sync operations.", |s| s.conflicts),
    ("sync_items_total", "Records moved by sync operations.", |s| s.items),
    ("sync_bytes_raw_total", "Bytes the operations would have sent uncompressed and as full records.", |s| {
        s.bytes_raw
    }),
    ("sync_bytes_sent_total", "Bytes the operations sent on the wire.", |s| s.bytes_sent),
];

/// Renders every series; families in a fixed order, series in the order given.
pub(crate) fn render(series: &[SeriesSnapshot], overflowed_samples: u64) -> String {
    let mut out = Out(String::with_capacity(256 + series.len() * 2048));
    for (name, help, field) in COUNTERS {
        out.family(name, "counter", help);
        for s in series {
            out.sample(name, s, None, field(s));
        }
    }

    let name = "sync_operation_duration_seconds";
    out.family(name, "histogram", "Duration of sync operations.");
    for s in series {
        let buckets = s.buckets();
        for &(bound, cumulative) in &buckets {
            let le = match bound {
                Some(bound) => {
                    let mut le = String::new();
                    seconds(bound).write(&mut le);
                    le
                }
                None => "+Inf".to_owned(),
            };
            out.sample(&format!("{name}_bucket"), s, Some(("le", &le)), cumulative);
        }
        out.sample(&format!("{name}_sum"), s, None, seconds(s.duration_sum));
        // The histogram's own count, so that `_count` always equals the `+Inf` bucket.
        out.sample(&format!("{name}_count"), s, None, s.histogram_count());
    }

    let name = "sync_operation_duration_quantile_seconds";
    out.family(
        name,
        "summary",
        "Quantiles of the duration of sync operations since the recorder started (within 6.25 %).",
    );
    for s in series {
        for q in QUANTILES {
            let value = s.quantile(q).map_or(f64::NAN, seconds);
            let mut label = String::new();
            q.write(&mut label);
            out.sample(name, s, Some(("quantile", &label)), value);
        }
        out.sample(&format!("{name}_sum"), s, None, seconds(s.duration_sum));
        out.sample(&format!("{name}_count"), s, None, s.histogram_count());
    }

    let name = "sync_metrics_overflowed_samples_total";
    out.family(
        name,
        "counter",
        "Samples recorded under tenant and domain `_overflow` because the recorder held max_series keys.",
    );
    let _ = writeln!(out.0, "{name} {overflowed_samples}");
    out.0
}
