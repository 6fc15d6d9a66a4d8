//! The alerting crate's rule-file parser and validator (`rules::parse_rules`, what
//! `recserve rules check FILE` and the rule loader run): YAML, Prometheus's group and rule
//! fields, durations, label and annotation templates, each expression checked against the
//! PromQL subset. Diagnostics must point inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use recserve_alerting::rules::parse_rules;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(diagnostics) = parse_rules("fuzz.rules.yml", text) {
        assert!(!diagnostics.is_empty(), "an error without a diagnostic");
        // Lines as YAML counts them: CR LF, a lone CR or LF, NEL, LS and PS each end a line.
        let breaks = text.replace("\r\n", "\n");
        let lines =
            1 + breaks.chars().filter(|c| matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')).count();
        for d in &diagnostics {
            // Line 0 means "the whole file"; otherwise the line exists (YAML may point just past the end).
            assert!(d.line <= lines + 1, "diagnostic at line {} of a {lines}-line file: {}", d.line, d.message);
        }
    }
});
