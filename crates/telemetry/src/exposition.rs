//! The Prometheus text exposition format (version 0.0.4).
//!
//! This module owns [`encode`], which writes gathered families with `# HELP` / `# TYPE`, escaped
//! label values and Go-compatible number formatting, and [`CONTENT_TYPE`] for the `/metrics`
//! response header.

use std::fmt::Write;

use crate::metrics::{FamilySnapshot, SnapshotValue};

/// The `Content-Type` of a `/metrics` response.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Formats a float the way Prometheus does (`+Inf`, `-Inf`, `NaN`, shortest round-trip digits).
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

fn escape_label_value(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_help(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn write_labels(labels: &[(String, String)], extra: Option<(&str, &str)>, out: &mut String) {
    if labels.is_empty() && extra.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (k, v) in labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).chain(extra) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(k);
        out.push_str("=\"");
        escape_label_value(v, out);
        out.push('"');
    }
    out.push('}');
}

/// Encodes families in the text format. Families without series are skipped.
pub fn encode(families: &[FamilySnapshot]) -> String {
    let mut out = String::with_capacity(4096);
    for fam in families.iter().filter(|f| !f.series.is_empty()) {
        out.push_str("# HELP ");
        out.push_str(&fam.name);
        out.push(' ');
        escape_help(&fam.help, &mut out);
        out.push('\n');
        let _ = writeln!(out, "# TYPE {} {}", fam.name, fam.kind.as_str());
        for s in &fam.series {
            match &s.value {
                SnapshotValue::Scalar(v) => {
                    out.push_str(&fam.name);
                    write_labels(&s.labels, None, &mut out);
                    let _ = writeln!(out, " {}", format_float(*v));
                }
                SnapshotValue::Histogram(h) => {
                    for (le, c) in &h.buckets {
                        let _ = write!(out, "{}_bucket", fam.name);
                        write_labels(&s.labels, Some(("le", &format_float(*le))), &mut out);
                        let _ = writeln!(out, " {c}");
                    }
                    let _ = write!(out, "{}_sum", fam.name);
                    write_labels(&s.labels, None, &mut out);
                    let _ = writeln!(out, " {}", format_float(h.sum));
                    let _ = write!(out, "{}_count", fam.name);
                    write_labels(&s.labels, None, &mut out);
                    let _ = writeln!(out, " {}", h.count);
                }
            }
        }
    }
    out
}
