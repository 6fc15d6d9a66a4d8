use std::process::Command;

use recserve_alerting::rules::{RuleKind, check_expr, parse_rules};
use recserve_alerting::{Diagnostic, RuleFiles, RuleSource, check_file, default_rules};

fn diags(text: &str) -> Vec<Diagnostic> {
    parse_rules("f.yml", text).expect_err("expected diagnostics")
}

#[test]
fn parses_groups_and_rules() {
    let text = r#"
groups:
  - name: serving
    interval: 30s
    limit: 10
    rules:
      - alert: HighErrors
        expr: sum by (model) (rate(recserve_requests_total{outcome="error"}[5m])) > 1
        for: 5m
        keep_firing_for: 1m30s
        labels:
          severity: critical
        annotations:
          summary: "{{ $labels.model }} fails"
      - record: model:requests:rate5m
        expr: sum by (model) (rate(recserve_requests_total[5m]))
        labels:
          source: rule
  - name: other
    rules: []
"#;
    let groups = parse_rules("f.yml", text).unwrap();
    assert_eq!(groups.len(), 2);
    let g = &groups[0];
    assert_eq!((g.name.as_str(), g.interval_ms, g.limit, g.file.as_str()), ("serving", Some(30_000), 10, "f.yml"));
    let a = &g.rules[0];
    assert_eq!(a.kind, RuleKind::Alerting);
    assert_eq!((a.name.as_str(), a.for_ms, a.keep_firing_for_ms, a.line), ("HighErrors", 300_000, 90_000, 7));
    assert_eq!(a.labels.len(), 1);
    assert_eq!(a.labels[0].0, "severity");
    assert_eq!(a.annotations[0].1.source(), "{{ $labels.model }} fails");
    let r = &g.rules[1];
    assert_eq!((r.kind, r.name.as_str(), r.line), (RuleKind::Recording, "model:requests:rate5m", 15));
    assert_eq!(groups[1].interval_ms, None);
}

#[test]
fn every_error_is_reported_at_its_line() {
    let text = r#"groups:
  - name: g
    interval: 5x
    rules:
      - alert: A
        expr: up > 1
        for: ten minutes
      - alert: B
      - expr: up
      - alert: C
        expr: rate(up[5m]
        labels:
          bad-name: x
      - alert: D
        expr: topk(3, up)
        annotations:
          summary: "{{ $labels.x "
      - alert: E
        expr: up
        colour: red
      - record: bad name
        expr: up
        for: 1m
  - name: g
    rules: []
"#;
    let d = diags(text);
    let got: Vec<(usize, &str)> = d.iter().map(|d| (d.line, d.message.as_str())).collect();
    let expect_at = |line: usize, needle: &str| {
        assert!(
            got.iter().any(|(l, m)| *l == line && m.contains(needle)),
            "no diagnostic at line {line} containing {needle:?}; got {got:#?}"
        );
    };
    expect_at(3, "not a valid duration string");
    expect_at(7, "not a valid duration string");
    expect_at(8, "field 'expr' must be set");
    expect_at(9, "one of 'record' or 'alert' must be set");
    expect_at(11, "parse error");
    expect_at(13, "invalid label name");
    expect_at(15, "does not support");
    expect_at(17, "template of annotation \"summary\"");
    expect_at(20, "unknown key \"colour\"");
    expect_at(21, "invalid recording rule name");
    expect_at(23, "invalid field 'for' in recording rule");
    expect_at(24, "is repeated in the same file");
    assert_eq!(d.len(), 12, "{got:#?}");
    // Display is file:line:col: message.
    let first = d[0].to_string();
    assert!(first.starts_with("f.yml:3:5: interval: "), "{first}");
}

#[test]
fn yaml_syntax_errors_carry_their_position() {
    let d = diags("groups:\n  - name: a\n    rules: [\n  - b: {\n");
    assert_eq!(d.len(), 1);
    assert!(d[0].message.starts_with("YAML: "), "{}", d[0]);
    assert!(d[0].line >= 3, "{}", d[0]);
}

#[test]
fn sequences_at_the_parent_indentation_and_quoted_keys_are_located() {
    let text = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    \"fore\": 1m\n";
    let d = diags(text);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!((d[0].line, d[0].column), (6, 5), "{}", d[0]);
}

#[test]
fn expressions_are_checked_against_the_subset() {
    assert!(check_expr("sum by (model) (rate(x[5m])) > 0").is_ok());
    assert!(check_expr("1 > bool 0").is_ok());
    assert!(check_expr("label_replace(up, \"a\", \"b\", \"c\", \"d\")").unwrap_err().contains("does not support"));
    assert!(check_expr("up[5m]").unwrap_err().contains("range vector"), "{:?}", check_expr("up[5m]"));
    assert!(check_expr("up +").unwrap_err().contains("parse error"));
}

#[test]
fn check_file_reads_and_reports_unreadable_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.yml");
    std::fs::write(&path, "groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: up == 0\n").unwrap();
    let files = check_file(&path).unwrap();
    assert_eq!(files.rule_count(), 1);
    let missing = check_file(&dir.path().join("missing.yml")).unwrap_err();
    assert!(missing[0].message.contains("cannot read"), "{}", missing[0]);
}

#[test]
fn bundled_rules_load_and_have_summary_and_runbook() {
    let files =
        RuleFiles::load(&[RuleSource::Embedded { name: "bundled".into(), text: default_rules().into() }]).unwrap();
    assert!(files.rule_count() >= 11, "{}", files.rule_count());
    let names: Vec<&str> = files.groups.iter().flat_map(|g| &g.rules).map(|r| r.name.as_str()).collect();
    for want in [
        "RecserveModelLatencyOverBudget",
        "RecserveHighErrorRatio",
        "RecserveQueueSaturated",
        "RecserveRequestsRejected",
        "RecserveHighCpu",
        "RecserveMemoryGrowth",
        "RecserveLogRecordsDropped",
        "RecserveFeatureDrift",
        "RecserveCtrDropped",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for r in files.groups.iter().flat_map(|g| &g.rules) {
        let keys: Vec<&str> = r.annotations.iter().map(|(k, _)| k.as_str()).collect();
        assert!(
            keys.contains(&"summary") && keys.contains(&"runbook_url") && keys.contains(&"description"),
            "{}",
            r.name
        );
        assert!(r.labels.iter().any(|(k, _)| k == "severity"), "{}", r.name);
    }
}

/// promtool when installed; fails when RECSERVE_REQUIRE_PROMTOOL=1 and it is missing.
fn promtool() -> Option<&'static str> {
    let found = Command::new("promtool").arg("--version").output().is_ok_and(|o| o.status.success());
    if found {
        return Some("promtool");
    }
    assert!(
        std::env::var("RECSERVE_REQUIRE_PROMTOOL").as_deref() != Ok("1"),
        "promtool is required (RECSERVE_REQUIRE_PROMTOOL=1) but not installed"
    );
    println!("skipping: promtool is not installed");
    None
}

#[test]
fn bundled_rules_pass_promtool() {
    let Some(promtool) = promtool() else { return };
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/rules/recserve.rules.yml");
    let out = Command::new(promtool).args(["check", "rules", path]).output().unwrap();
    assert!(
        out.status.success(),
        "promtool check rules failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The embedded copy is the file.
    assert_eq!(std::fs::read_to_string(path).unwrap(), default_rules());
}

#[test]
fn promtool_agrees_on_a_broken_file() {
    let Some(promtool) = promtool() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yml");
    let text = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up >\n";
    std::fs::write(&path, text).unwrap();
    let out = Command::new(promtool).args(["check", "rules", path.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success());
    let ours = check_file(&path).unwrap_err();
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0].line, 5, "{}", ours[0]);
}
