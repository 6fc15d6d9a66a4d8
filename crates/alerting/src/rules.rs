//! Rule files in the Prometheus format: parsing, validation with the line and column of every
//! error, and the loaded groups the evaluator runs.
//!
//! This module owns [`RuleGroup`], [`Rule`], [`RuleFiles`] and [`Diagnostic`]. A file is parsed
//! by `serde_norway` into a YAML value (syntax errors carry their position), then walked by hand
//! so that every problem is reported, each at the line of the key it concerns (positions from
//! [`crate::yamlpos`]): unknown keys, missing `alert`/`record`/`expr`, bad durations, bad label
//! and annotation names, templates that do not parse, expressions that do not parse or use
//! PromQL outside recserve's subset, and repeated group names. Recording rules (`record:`) are
//! supported: the evaluator writes their result as series.

use std::fmt;
use std::path::{Path, PathBuf};

use recserve_telemetry::store::{SeriesStore, StoreConfig};
use recserve_telemetry::{QueryError, promql};
use serde_norway::Value;

use crate::template::Template;
use crate::time::parse_duration;
use crate::yamlpos::{Positions, Seg};

/// One problem in a rule file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// The file (as given).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
    }
}

/// Whether a rule alerts or records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    /// `alert:`.
    Alerting,
    /// `record:`.
    Recording,
}

/// One rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Alerting or recording.
    pub kind: RuleKind,
    /// The alert name or the recorded metric name.
    pub name: String,
    /// The PromQL expression.
    pub expr: String,
    /// `for` in milliseconds (0 for recording rules).
    pub for_ms: u64,
    /// `keep_firing_for` in milliseconds.
    pub keep_firing_for_ms: u64,
    /// Labels (values are templates), group labels first then the rule's, sorted by name.
    pub labels: Vec<(String, Template)>,
    /// Annotations (templates), sorted by name.
    pub annotations: Vec<(String, Template)>,
    /// Line of the rule in its file.
    pub line: usize,
}

/// One group of rules, evaluated in order at one timestamp every `interval`.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleGroup {
    /// The file the group came from.
    pub file: String,
    /// The group name (unique within its file).
    pub name: String,
    /// `interval` in milliseconds (`None`: the evaluator's default).
    pub interval_ms: Option<u64>,
    /// `limit` (0: none): more alerts than this fail the rule, as in Prometheus.
    pub limit: usize,
    /// The rules in order.
    pub rules: Vec<Rule>,
}

/// The groups of one or more rule files, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleFiles {
    /// The files, as given.
    pub files: Vec<String>,
    /// All groups.
    pub groups: Vec<RuleGroup>,
}

/// Where rules come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleSource {
    /// A file read (and re-read on reload) from disk.
    File(PathBuf),
    /// Text compiled into the binary (e.g. [`crate::default_rules`]), with the name it is shown as.
    Embedded {
        /// Shown as the group's file.
        name: String,
        /// The YAML text.
        text: String,
    },
}

impl RuleFiles {
    /// Loads every source; all diagnostics of all files are returned together.
    pub fn load(sources: &[RuleSource]) -> Result<RuleFiles, Vec<Diagnostic>> {
        let mut out = RuleFiles::default();
        let mut diags = Vec::new();
        for src in sources {
            let parsed = match src {
                RuleSource::File(path) => check_file(path).map(|f| f.groups),
                RuleSource::Embedded { name, text } => parse_rules(name, text),
            };
            let name = match src {
                RuleSource::File(p) => p.display().to_string(),
                RuleSource::Embedded { name, .. } => name.clone(),
            };
            match parsed {
                Ok(groups) => {
                    out.files.push(name);
                    out.groups.extend(groups);
                }
                Err(d) => diags.extend(d),
            }
        }
        if diags.is_empty() { Ok(out) } else { Err(diags) }
    }

    /// Number of rules across all groups.
    pub fn rule_count(&self) -> usize {
        self.groups.iter().map(|g| g.rules.len()).sum()
    }
}

/// Reads and validates one rule file (what `recserve rules check FILE` runs).
pub fn check_file(path: &Path) -> Result<RuleFiles, Vec<Diagnostic>> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic { file: name.clone(), line: 0, column: 0, message: format!("cannot read the file: {e}") }]
    })?;
    let groups = parse_rules(&name, &text)?;
    Ok(RuleFiles { files: vec![name], groups })
}

/// Whether `s` is a valid Prometheus label name.
pub fn is_valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `s` is a valid Prometheus metric name.
pub fn is_valid_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Checks an expression against recserve's PromQL subset: it must parse, use only supported
/// constructs, and yield an instant vector or a scalar.
pub fn check_expr(expr: &str) -> Result<(), String> {
    // Evaluating over an empty store walks every branch of the expression without data.
    let empty = SeriesStore::new(StoreConfig::default());
    match promql::instant_query(&empty, expr, 0) {
        Ok(v) => match v {
            promql::Value::Vector(_) | promql::Value::Scalar(_) => Ok(()),
            promql::Value::Matrix(_) => {
                Err("invalid expression type \"range vector\": a rule needs an instant vector or a scalar".into())
            }
            promql::Value::String(_) => {
                Err("invalid expression type \"string\": a rule needs an instant vector or a scalar".into())
            }
        },
        Err(e @ (QueryError::Parse(_) | QueryError::Unsupported(_))) => Err(e.to_string()),
        Err(_) => Ok(()),
    }
}

struct Checker<'a> {
    file: &'a str,
    pos: Positions,
    diags: Vec<Diagnostic>,
}

fn key_path(base: &[Seg], key: &str) -> Vec<Seg> {
    let mut p = base.to_vec();
    p.push(Seg::Key(key.to_string()));
    p
}

fn index_path(base: &[Seg], key: &str, i: usize) -> Vec<Seg> {
    let mut p = key_path(base, key);
    p.push(Seg::Index(i));
    p
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

impl Checker<'_> {
    fn err(&mut self, path: &[Seg], message: impl Into<String>) {
        let (line, column) = self.pos.find(path);
        self.diags.push(Diagnostic { file: self.file.to_string(), line, column, message: message.into() });
    }

    /// The entries of a mapping with string keys; reports keys outside `allowed`.
    fn mapping<'v>(&mut self, v: &'v Value, path: &[Seg], what: &str, allowed: &[&str]) -> Vec<(String, &'v Value)> {
        let Value::Mapping(m) = v else {
            self.err(path, format!("{what} must be a mapping, got {}", kind_of(v)));
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, val) in m {
            let Some(k) = scalar_string(k) else {
                self.err(path, format!("{what} has a key that is not a string"));
                continue;
            };
            if !allowed.is_empty() && !allowed.contains(&k.as_str()) {
                self.err(
                    &key_path(path, &k),
                    format!("unknown key {k:?} in {what} (expected one of: {})", allowed.join(", ")),
                );
                continue;
            }
            out.push((k, val));
        }
        out
    }

    fn string(&mut self, v: &Value, path: &[Seg], what: &str) -> Option<String> {
        match scalar_string(v) {
            Some(s) => Some(s),
            None => {
                self.err(path, format!("{what} must be a string, got {}", kind_of(v)));
                None
            }
        }
    }

    fn duration(&mut self, v: &Value, path: &[Seg], what: &str) -> Option<u64> {
        let s = self.string(v, path, what)?;
        match parse_duration(&s) {
            Ok(ms) => Some(ms),
            Err(e) => {
                self.err(path, format!("{what}: {e}"));
                None
            }
        }
    }

    /// A `labels:` or `annotations:` mapping of templates.
    fn templates(&mut self, v: &Value, path: &[Seg], what: &str) -> Vec<(String, Template)> {
        let mut out = Vec::new();
        for (k, val) in self.mapping(v, path, what, &[]) {
            let p = key_path(path, &k);
            if !is_valid_label_name(&k) {
                self.err(&p, format!("invalid {} name: {k:?}", what.trim_end_matches('s')));
                continue;
            }
            let Some(text) = self.string(val, &p, &format!("{what} value {k:?}")) else { continue };
            match Template::parse(&text) {
                Ok(t) => out.push((k, t)),
                Err(e) => self.err(&p, format!("template of {} {k:?}: {e}", what.trim_end_matches('s'))),
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// A scalar as text (YAML numbers and booleans are accepted where Prometheus takes strings).
fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Parses and validates the text of one rule file named `file`.
pub fn parse_rules(file: &str, text: &str) -> Result<Vec<RuleGroup>, Vec<Diagnostic>> {
    let root: Value = match serde_norway::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
            return Err(vec![Diagnostic { file: file.to_string(), line, column, message: format!("YAML: {e}") }]);
        }
    };
    let mut c = Checker { file, pos: Positions::scan(text), diags: Vec::new() };
    let mut groups = Vec::new();
    if root.is_null() {
        return Ok(groups);
    }
    let top = c.mapping(&root, &[], "the file", &["groups"]);
    let groups_v = top.iter().find(|(k, _)| k == "groups").map(|(_, v)| *v);
    let list = match groups_v {
        None | Some(Value::Null) => &[][..],
        Some(Value::Sequence(s)) => s.as_slice(),
        Some(other) => {
            c.err(&[Seg::Key("groups".into())], format!("groups must be a list, got {}", kind_of(other)));
            &[][..]
        }
    };
    let mut names: Vec<String> = Vec::new();
    for (gi, g) in list.iter().enumerate() {
        let gp = index_path(&[], "groups", gi);
        let entries = c.mapping(g, &gp, "a group", &["name", "interval", "limit", "labels", "rules", "query_offset"]);
        let mut group =
            RuleGroup { file: file.to_string(), name: String::new(), interval_ms: None, limit: 0, rules: Vec::new() };
        let mut group_labels: Vec<(String, Template)> = Vec::new();
        let mut rules_v: Option<&Value> = None;
        for (k, v) in &entries {
            let p = key_path(&gp, k);
            match k.as_str() {
                "name" => {
                    if let Some(n) = c.string(v, &p, "the group name") {
                        group.name = n;
                    }
                }
                "interval" => group.interval_ms = c.duration(v, &p, "interval"),
                "query_offset" => {
                    c.err(&p, "query_offset is not supported by recserve's evaluator");
                }
                "limit" => match v.as_u64() {
                    Some(n) => group.limit = n as usize,
                    None => c.err(&p, format!("limit must be a non-negative integer, got {}", kind_of(v))),
                },
                "labels" => group_labels = c.templates(v, &p, "labels"),
                _ => rules_v = Some(*v),
            }
        }
        if group.name.is_empty() {
            c.err(&gp, "group name must not be empty");
        } else if names.contains(&group.name) {
            c.err(&key_path(&gp, "name"), format!("groupname: {:?} is repeated in the same file", group.name));
        } else {
            names.push(group.name.clone());
        }
        if group.interval_ms == Some(0) {
            c.err(&key_path(&gp, "interval"), "interval must be greater than zero");
        }
        let rules = match rules_v {
            None | Some(Value::Null) => &[][..],
            Some(Value::Sequence(s)) => s.as_slice(),
            Some(other) => {
                c.err(&key_path(&gp, "rules"), format!("rules must be a list, got {}", kind_of(other)));
                &[][..]
            }
        };
        for (ri, r) in rules.iter().enumerate() {
            if let Some(rule) = parse_rule(&mut c, r, &index_path(&gp, "rules", ri), &group_labels) {
                group.rules.push(rule);
            }
        }
        groups.push(group);
    }
    if c.diags.is_empty() {
        Ok(groups)
    } else {
        c.diags.sort_by_key(|d| (d.line, d.column));
        Err(c.diags)
    }
}

fn parse_rule(c: &mut Checker<'_>, r: &Value, rp: &[Seg], group_labels: &[(String, Template)]) -> Option<Rule> {
    let before = c.diags.len();
    let entries =
        c.mapping(r, rp, "a rule", &["alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"]);
    let (line, _) = c.pos.find(rp);
    let get = |k: &str| entries.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
    let alert = get("alert").and_then(|v| c.string(v, &key_path(rp, "alert"), "alert"));
    let record = get("record").and_then(|v| c.string(v, &key_path(rp, "record"), "record"));
    let (kind, name) = match (alert, record) {
        (Some(_), Some(_)) => {
            c.err(rp, "only one of 'record' and 'alert' must be set");
            return None;
        }
        (None, None) => {
            c.err(rp, "one of 'record' or 'alert' must be set");
            return None;
        }
        (Some(a), None) => (RuleKind::Alerting, a),
        (None, Some(r)) => (RuleKind::Recording, r),
    };
    if name.is_empty() {
        c.err(rp, "the alert or record name must not be empty");
    }
    if kind == RuleKind::Recording && !is_valid_metric_name(&name) {
        c.err(&key_path(rp, "record"), format!("invalid recording rule name: {name:?}"));
    }
    let expr = match get("expr") {
        None => {
            c.err(rp, "field 'expr' must be set in rule");
            String::new()
        }
        Some(v) => {
            let p = key_path(rp, "expr");
            let e = c.string(v, &p, "expr").unwrap_or_default();
            if e.trim().is_empty() {
                c.err(&p, "field 'expr' must not be empty");
            } else if let Err(msg) = check_expr(&e) {
                c.err(&p, format!("expr: {msg}"));
            }
            e
        }
    };
    let mut rule = Rule {
        kind,
        name,
        expr,
        for_ms: 0,
        keep_firing_for_ms: 0,
        labels: group_labels.to_vec(),
        annotations: Vec::new(),
        line,
    };
    for (k, v) in &entries {
        let p = key_path(rp, k);
        match (k.as_str(), kind) {
            ("for" | "keep_firing_for" | "annotations", RuleKind::Recording) => {
                c.err(&p, format!("invalid field '{k}' in recording rule"));
            }
            ("for", _) => rule.for_ms = c.duration(v, &p, "for").unwrap_or(0),
            ("keep_firing_for", _) => rule.keep_firing_for_ms = c.duration(v, &p, "keep_firing_for").unwrap_or(0),
            ("annotations", _) => rule.annotations = c.templates(v, &p, "annotations"),
            ("labels", _) => {
                for (name, t) in c.templates(v, &p, "labels") {
                    if name == "__name__" {
                        c.err(&key_path(&p, &name), format!("label {name:?} cannot be set by a rule"));
                    }
                    rule.labels.retain(|(n, _)| *n != name);
                    rule.labels.push((name, t));
                }
                rule.labels.sort_by(|a, b| a.0.cmp(&b.0));
            }
            _ => {}
        }
    }
    (c.diags.len() == before).then_some(rule)
}
