use recserve_alerting::template::{Template, TemplateData, go_e, go_float, humanize, humanize_duration};
use recserve_telemetry::LabelSet;

use crate::ls;

fn expand(src: &str, labels: &LabelSet, value: f64) -> String {
    let ext = LabelSet::new();
    let data = TemplateData { labels, value, external_labels: &ext, external_url: "http://x" };
    Template::parse(src).unwrap().expand(&data).unwrap()
}

#[test]
fn labels_values_and_functions() {
    let l = ls(&[("model", "ranker"), ("version", "3")]);
    assert_eq!(expand("{{ $labels.model }} v{{$labels.version}} is slow", &l, 0.25), "ranker v3 is slow");
    assert_eq!(expand("value {{ $value }}", &l, 0.25), "value 0.25");
    assert_eq!(expand("{{ $value }}", &l, 1e6), "1e+06");
    assert_eq!(expand("{{ $value }}", &l, 123456.0), "123456");
    assert_eq!(expand("{{ $value | humanize }}", &l, 1234567.0), "1.235M");
    assert_eq!(expand("{{ humanize $value }}", &l, 0.0012), "1.2m");
    assert_eq!(expand("{{ printf \"%.2f\" $value }}", &l, 0.12345), "0.12");
    assert_eq!(expand("{{ $value | printf \"%.1f%%\" }}", &l, 99.44), "99.4%");
    assert_eq!(expand("{{ $value | humanizePercentage }}", &l, 0.0512), "5.12%");
    assert_eq!(expand("{{ .Labels.model }}={{ .Value }}", &l, 2.0), "ranker=2");
    assert_eq!(expand("[{{ $labels.missing }}]", &l, 0.0), "[<no value>]");
    assert_eq!(expand("a {{- \" b \" -}} c", &l, 0.0), "a b c");
    assert_eq!(expand("{{/* note */}}x{{ $labels.model | toUpper }}", &l, 0.0), "xRANKER");
    assert_eq!(expand("{{ $externalURL }}/alerts", &l, 0.0), "http://x/alerts");
}

#[test]
fn humanize_like_prometheus() {
    assert_eq!(humanize(0.0), "0");
    assert_eq!(humanize(1000.0), "1k");
    assert_eq!(humanize(-2_500_000.0), "-2.5M");
    assert_eq!(humanize(0.5), "500m");
    assert_eq!(humanize_duration(0.25), "250ms");
    assert_eq!(humanize_duration(90.0), "1m 30s");
    assert_eq!(humanize_duration(1.5), "1.5s");
    assert_eq!(humanize_duration(90061.0), "1d 1h 1m 1s");
    assert_eq!(go_float(0.1 + 0.2), "0.30000000000000004");
    assert_eq!(go_float(0.00001), "1e-05");
    assert_eq!(go_e(1.0), "1e+00");
    assert_eq!(go_e(0.25), "2.5e-01");
}

#[test]
fn parse_errors_are_reported() {
    for (src, needle) in [
        ("{{ $labels.x ", "unclosed action"),
        ("{{ if $value }}x{{ end }}", "`if` actions are not supported"),
        ("{{ $foo }}", "undefined variable"),
        ("{{ nosuch $value }}", "function \"nosuch\" not defined"),
        ("{{ humanize }}", "wrong number of args"),
        ("{{ \"abc }}", "unclosed action"),
        ("{{ `abc }}", "unclosed action"),
    ] {
        let err = Template::parse(src).expect_err(src);
        assert!(err.0.contains(needle), "{src}: {err}");
    }
}

#[test]
fn runtime_errors_are_errors_not_panics() {
    let l = ls(&[("model", "ranker")]);
    let ext = LabelSet::new();
    let data = TemplateData { labels: &l, value: 1.0, external_labels: &ext, external_url: "" };
    let err = Template::parse("{{ $labels.model | humanize }}").unwrap().expand(&data).unwrap_err();
    assert!(err.0.contains("error calling humanize"), "{err}");
    // printf with a mismatched verb prints like Go instead of failing.
    assert_eq!(expand("{{ printf \"%d\" $labels.model }}", &l, 0.0), "%!d(string=ranker)");
}
