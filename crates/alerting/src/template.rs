//! The subset of Go's `text/template` that Prometheus alert labels and annotations use.
//!
//! This module owns [`Template`] (parsed once when a rule file loads, expanded at every
//! evaluation) and the Prometheus template functions recserve implements. Supported:
//!
//! - text with actions `{{ … }}`, trim markers `{{-` / `-}}`, comments `{{/* … */}}`;
//! - operands `$labels.name`, `$value`, `$externalLabels.name`, `$externalURL`, their dotted
//!   forms `.Labels.name`, `.Value`, `.ExternalLabels.name`, `.ExternalURL`, string and number
//!   literals;
//! - function calls and pipelines: `{{ humanize $value }}`, `{{ $value | humanize }}`,
//!   `{{ printf "%.2f" $value }}`, `{{ $value | printf "%.2f" }}`;
//! - functions `humanize`, `humanize1024`, `humanizePercentage`, `humanizeDuration`, `printf`,
//!   `toUpper`, `toLower`, `title`.
//!
//! Control structures (`if`, `range`, `with`, `define`, …) are refused when the rule file loads
//! with a message naming them. A missing label prints `<no value>` like Go does.

use std::fmt::Write as _;

use recserve_telemetry::LabelSet;

/// A template that failed to parse or to expand.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

/// What a template sees.
#[derive(Debug, Clone, Copy)]
pub struct TemplateData<'a> {
    /// The alert's series labels (`$labels`).
    pub labels: &'a LabelSet,
    /// The sample value (`$value`).
    pub value: f64,
    /// `$externalLabels`.
    pub external_labels: &'a LabelSet,
    /// `$externalURL`.
    pub external_url: &'a str,
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Labels(Option<String>),
    ExternalLabels(Option<String>),
    Value,
    ExternalUrl,
    Str(String),
    Num(f64),
}

#[derive(Debug, Clone, PartialEq)]
enum Command {
    Operand(Operand),
    Call(Func, Vec<Operand>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Func {
    Humanize,
    Humanize1024,
    HumanizePercentage,
    HumanizeDuration,
    Printf,
    ToUpper,
    ToLower,
    Title,
}

impl Func {
    fn by_name(name: &str) -> Option<Func> {
        Some(match name {
            "humanize" => Func::Humanize,
            "humanize1024" => Func::Humanize1024,
            "humanizePercentage" => Func::HumanizePercentage,
            "humanizeDuration" => Func::HumanizeDuration,
            "printf" => Func::Printf,
            "toUpper" => Func::ToUpper,
            "toLower" => Func::ToLower,
            "title" => Func::Title,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Action(Vec<Command>),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    source: String,
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Str(String),
    Num(f64),
}

impl Val {
    fn render(&self) -> String {
        match self {
            Val::Str(s) => s.clone(),
            Val::Num(v) => go_float(*v),
        }
    }

    fn as_float(&self, func: &str) -> Result<f64, TemplateError> {
        match self {
            Val::Num(v) => Ok(*v),
            Val::Str(s) => s.trim().parse::<f64>().map_err(|_| {
                TemplateError(format!("error calling {func}: strconv.ParseFloat: parsing {s:?}: invalid syntax"))
            }),
        }
    }
}

const KEYWORDS: [&str; 10] = ["if", "else", "end", "range", "with", "define", "template", "block", "break", "continue"];

impl Template {
    /// Parses `source`.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let mut nodes = Vec::new();
        let mut rest = source;
        let mut trim_next_left = false;
        while let Some(open) = rest.find("{{") {
            let mut text = &rest[..open];
            if trim_next_left {
                text = text.trim_start();
            }
            let mut inner = &rest[open + 2..];
            let trim_left = inner.starts_with("- ") || inner.starts_with("-\t") || inner.starts_with("-\n");
            if trim_left {
                text = text.trim_end();
                inner = &inner[1..];
            }
            if !text.is_empty() {
                nodes.push(Node::Text(text.to_string()));
            }
            let close = find_close(inner).ok_or_else(|| TemplateError("unclosed action: missing `}}`".into()))?;
            let mut body = &inner[..close];
            trim_next_left = false;
            if body.ends_with(" -") || body.ends_with("\t-") || body.ends_with("\n-") {
                body = &body[..body.len() - 1];
                trim_next_left = true;
            }
            let trimmed = body.trim();
            if !(trimmed.starts_with("/*") && trimmed.ends_with("*/")) {
                nodes.push(Node::Action(parse_pipeline(trimmed)?));
            }
            rest = &inner[close + 2..];
        }
        let text = if trim_next_left { rest.trim_start() } else { rest };
        if !text.is_empty() {
            nodes.push(Node::Text(text.to_string()));
        }
        Ok(Template { source: source.to_string(), nodes })
    }

    /// The text it was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Expands the template.
    pub fn expand(&self, data: &TemplateData<'_>) -> Result<String, TemplateError> {
        let mut out = String::new();
        for node in &self.nodes {
            match node {
                Node::Text(t) => out.push_str(t),
                Node::Action(cmds) => {
                    let mut piped: Option<Val> = None;
                    for cmd in cmds {
                        piped = Some(run_command(cmd, piped.take(), data)?);
                    }
                    if let Some(v) = piped {
                        out.push_str(&v.render());
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Finds the `}}` that closes an action, skipping string literals.
fn find_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Pipe,
}

fn tokenize(s: &str) -> Result<Vec<Token>, TemplateError> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '|' {
            out.push(Token::Pipe);
            i += 1;
        } else if c == '"' {
            let mut lit = String::new();
            i += 1;
            loop {
                let Some(&c) = chars.get(i) else {
                    return Err(TemplateError("unterminated quoted string".into()));
                };
                i += 1;
                match c {
                    '"' => break,
                    '\\' => {
                        let e =
                            chars.get(i).copied().ok_or_else(|| TemplateError("unterminated quoted string".into()))?;
                        i += 1;
                        lit.push(match e {
                            'n' => '\n',
                            't' => '\t',
                            '\\' => '\\',
                            '"' => '"',
                            other => return Err(TemplateError(format!("unknown escape sequence \\{other}"))),
                        });
                    }
                    c => lit.push(c),
                }
            }
            out.push(Token::Str(lit));
        } else if c == '`' {
            let start = i + 1;
            let end = chars[start..]
                .iter()
                .position(|&c| c == '`')
                .ok_or_else(|| TemplateError("unterminated raw quoted string".into()))?;
            out.push(Token::Str(chars[start..start + end].iter().collect()));
            i = start + end + 1;
        } else if c == '(' || c == ')' {
            return Err(TemplateError("parenthesized pipelines are not supported by recserve's templates".into()));
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && !matches!(chars[i], '|' | '"' | '(' | ')' | '`') {
                i += 1;
            }
            out.push(Token::Word(chars[start..i].iter().collect()));
        }
    }
    Ok(out)
}

fn parse_operand(tok: &Token) -> Result<Operand, TemplateError> {
    let w = match tok {
        Token::Str(s) => return Ok(Operand::Str(s.clone())),
        Token::Pipe => return Err(TemplateError("missing command before `|`".into())),
        Token::Word(w) => w,
    };
    if let Ok(n) = w.parse::<f64>() {
        return Ok(Operand::Num(n));
    }
    let (head, field) = match w.split_once('.') {
        Some((h, f)) if w.starts_with('$') => (h, Some(f)),
        _ if w.starts_with('.') => {
            let mut parts = w[1..].splitn(2, '.');
            let h = parts.next().unwrap_or("");
            return match (h, parts.next()) {
                ("Labels", f) => Ok(Operand::Labels(f.map(str::to_string))),
                ("ExternalLabels", f) => Ok(Operand::ExternalLabels(f.map(str::to_string))),
                ("Value", None) => Ok(Operand::Value),
                ("ExternalURL", None) => Ok(Operand::ExternalUrl),
                _ => Err(TemplateError(format!("can't evaluate field {h} in the alert template data"))),
            };
        }
        _ => (w.as_str(), None),
    };
    if let Some(f) = field
        && (f.is_empty() || f.contains('.'))
    {
        return Err(TemplateError(format!("bad field reference {w:?}")));
    }
    match head {
        "$labels" => Ok(Operand::Labels(field.map(str::to_string))),
        "$externalLabels" => Ok(Operand::ExternalLabels(field.map(str::to_string))),
        "$value" if field.is_none() => Ok(Operand::Value),
        "$externalURL" if field.is_none() => Ok(Operand::ExternalUrl),
        v if v.starts_with('$') => Err(TemplateError(format!("undefined variable {v:?}"))),
        _ => Err(TemplateError(format!("function {w:?} not defined"))),
    }
}

fn parse_pipeline(body: &str) -> Result<Vec<Command>, TemplateError> {
    if body.is_empty() {
        return Err(TemplateError("missing value for command".into()));
    }
    let tokens = tokenize(body)?;
    if let Some(Token::Word(first)) = tokens.first()
        && KEYWORDS.contains(&first.as_str())
    {
        return Err(TemplateError(format!("`{first}` actions are not supported by recserve's templates")));
    }
    if tokens.iter().any(|t| matches!(t, Token::Word(w) if w.contains(":=") || w == "=" )) {
        return Err(TemplateError("variable declarations are not supported by recserve's templates".into()));
    }
    let mut cmds = Vec::new();
    for part in tokens.split(|t| *t == Token::Pipe) {
        let Some(first) = part.first() else {
            return Err(TemplateError("missing command in pipeline".into()));
        };
        let cmd = match first {
            Token::Word(w) if Func::by_name(w).is_some() => {
                let f = Func::by_name(w).ok_or_else(|| TemplateError(format!("function {w:?} not defined")))?;
                let args = part[1..].iter().map(parse_operand).collect::<Result<Vec<_>, _>>()?;
                Command::Call(f, args)
            }
            Token::Word(w) if !w.starts_with('$') && !w.starts_with('.') && w.parse::<f64>().is_err() => {
                return Err(TemplateError(format!("function {w:?} not defined")));
            }
            tok => {
                if part.len() > 1 || !cmds.is_empty() {
                    return Err(TemplateError(format!("can't give argument to non-function {}", token_text(tok))));
                }
                Command::Operand(parse_operand(tok)?)
            }
        };
        cmds.push(cmd);
    }
    // Arity checks that do not depend on data.
    for (i, c) in cmds.iter().enumerate() {
        if let Command::Call(f, args) = c {
            let n = args.len() + usize::from(i > 0);
            let ok = match f {
                Func::Printf => n >= 1,
                _ => n == 1,
            };
            if !ok {
                return Err(TemplateError(format!("wrong number of args for {}: got {n}", func_name(*f))));
            }
            if *f == Func::Printf && i == 0 && !matches!(args.first(), Some(Operand::Str(_))) {
                return Err(TemplateError("printf needs a format string as its first argument".into()));
            }
        }
    }
    Ok(cmds)
}

fn token_text(t: &Token) -> String {
    match t {
        Token::Word(w) => w.clone(),
        Token::Str(s) => format!("{s:?}"),
        Token::Pipe => "|".into(),
    }
}

fn func_name(f: Func) -> &'static str {
    match f {
        Func::Humanize => "humanize",
        Func::Humanize1024 => "humanize1024",
        Func::HumanizePercentage => "humanizePercentage",
        Func::HumanizeDuration => "humanizeDuration",
        Func::Printf => "printf",
        Func::ToUpper => "toUpper",
        Func::ToLower => "toLower",
        Func::Title => "title",
    }
}

fn operand_value(op: &Operand, data: &TemplateData<'_>) -> Val {
    let label = |set: &LabelSet, name: &Option<String>| match name {
        Some(n) => Val::Str(set.get(n).map(str::to_string).unwrap_or_else(|| "<no value>".into())),
        None => Val::Str(format!("map[{}]", set.iter().map(|(k, v)| format!("{k}:{v}")).collect::<Vec<_>>().join(" "))),
    };
    match op {
        Operand::Labels(n) => label(data.labels, n),
        Operand::ExternalLabels(n) => label(data.external_labels, n),
        Operand::Value => Val::Num(data.value),
        Operand::ExternalUrl => Val::Str(data.external_url.to_string()),
        Operand::Str(s) => Val::Str(s.clone()),
        Operand::Num(n) => Val::Num(*n),
    }
}

fn run_command(cmd: &Command, piped: Option<Val>, data: &TemplateData<'_>) -> Result<Val, TemplateError> {
    let (f, args) = match cmd {
        Command::Operand(op) => return Ok(operand_value(op, data)),
        Command::Call(f, args) => (*f, args),
    };
    let mut vals: Vec<Val> = args.iter().map(|a| operand_value(a, data)).collect();
    vals.extend(piped);
    let name = func_name(f);
    let one = || vals.first().cloned().ok_or_else(|| TemplateError(format!("wrong number of args for {name}")));
    Ok(match f {
        Func::Humanize => Val::Str(humanize(one()?.as_float(name)?)),
        Func::Humanize1024 => Val::Str(humanize1024(one()?.as_float(name)?)),
        Func::HumanizePercentage => Val::Str(format!("{}%", go_g(one()?.as_float(name)? * 100.0, 4))),
        Func::HumanizeDuration => Val::Str(humanize_duration(one()?.as_float(name)?)),
        Func::ToUpper => Val::Str(one()?.render().to_uppercase()),
        Func::ToLower => Val::Str(one()?.render().to_lowercase()),
        Func::Title => Val::Str(title(&one()?.render())),
        Func::Printf => {
            let Some(Val::Str(fmt)) = vals.first() else {
                return Err(TemplateError("printf needs a format string as its first argument".into()));
            };
            Val::Str(sprintf(fmt, &vals[1..]))
        }
    })
}

fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_letter = false;
    for c in s.chars() {
        if !prev_letter && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_letter = c.is_alphanumeric() || c == '_' || c == '\'';
    }
    out
}

/// Prometheus's `humanize`: SI prefixes, 4 significant digits.
pub fn humanize(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return go_g(v, 4);
    }
    let mut v = v;
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", go_g(v, 4))
}

/// Prometheus's `humanize1024`: binary prefixes.
pub fn humanize1024(v: f64) -> String {
    if v.abs() <= 1.0 || !v.is_finite() {
        return go_g(v, 4);
    }
    let mut v = v;
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", go_g(v, 4))
}

/// Prometheus's `humanizeDuration` (seconds in, `1d 2h 3m 4s` out).
pub fn humanize_duration(v: f64) -> String {
    if !v.is_finite() {
        return go_g(v, 4);
    }
    if v == 0.0 {
        return format!("{}s", go_g(v, 4));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        let v = v.abs();
        let d = v as i64;
        let (s, m, h, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86400);
        return if days != 0 {
            format!("{sign}{days}d {h}h {m}m {s}s")
        } else if h != 0 {
            format!("{sign}{h}h {m}m {s}s")
        } else if m != 0 {
            format!("{sign}{m}m {s}s")
        } else {
            format!("{sign}{}s", go_g(v, 4))
        };
    }
    let mut v = v;
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", go_g(v, 4))
}

fn special(v: f64) -> Option<String> {
    if v.is_nan() {
        Some("NaN".into())
    } else if v.is_infinite() {
        Some(if v > 0.0 { "+Inf".into() } else { "-Inf".into() })
    } else {
        None
    }
}

/// Splits Rust's `{:e}` output into (mantissa, exponent).
fn split_exp(s: &str) -> (String, i32) {
    match s.split_once('e') {
        Some((m, e)) => (m.to_string(), e.parse().unwrap_or(0)),
        None => (s.to_string(), 0),
    }
}

fn go_exp(mantissa: &str, exp: i32) -> String {
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

/// Go's `%.<prec>g` (no `#` flag: trailing zeros removed).
pub fn go_g(v: f64, prec: usize) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let prec = prec.max(1);
    let (mant, exp) = split_exp(&format!("{:.*e}", prec - 1, v));
    if exp < -4 || exp >= prec as i32 {
        go_exp(&trim_zeros(&mant), exp)
    } else {
        let decimals = (prec as i32 - 1 - exp).max(0) as usize;
        trim_zeros(&format!("{v:.decimals$}"))
    }
}

/// Go's `%v` of a float64 (shortest representation; exponent form from 1e6 and below 1e-4).
pub fn go_float(v: f64) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let (mant, exp) = split_exp(&format!("{v:e}"));
    if !(-4..6).contains(&exp) {
        go_exp(&mant, exp)
    } else {
        let digits = mant.chars().filter(char::is_ascii_digit).count() as i32;
        let decimals = (digits - 1 - exp).max(0) as usize;
        format!("{v:.decimals$}")
    }
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`, the form of `value` in `/api/v1/alerts`.
pub fn go_e(v: f64) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let (mant, exp) = split_exp(&format!("{v:e}"));
    go_exp(&mant, exp)
}

fn trim_zeros(s: &str) -> String {
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s.to_string() }
}

/// A `printf` for the verbs templates use: `%s %v %d %f %e %g %q %%` with flags `-+0 `, width and
/// precision. Mismatched arguments print like Go (`%!f(string=abc)`).
fn sprintf(fmt: &str, args: &[Val]) -> String {
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    let mut next = 0;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flags = String::new();
        while let Some(&f) = chars.peek() {
            if matches!(f, '-' | '+' | '0' | ' ' | '#') {
                flags.push(f);
                chars.next();
            } else {
                break;
            }
        }
        let mut width = String::new();
        while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            width.push(d);
            chars.next();
        }
        let mut prec: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                p.push(d);
                chars.next();
            }
            prec = Some(p.parse().unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        next += 1;
        let body = match (verb, arg) {
            ('s' | 'v', Val::Str(s)) => match prec {
                Some(p) => s.chars().take(p).collect(),
                None => s.clone(),
            },
            ('q', Val::Str(s)) => format!("{s:?}"),
            ('v', Val::Num(v)) => go_float(*v),
            ('f' | 'F', Val::Num(v)) => special(*v).unwrap_or_else(|| format!("{:.*}", prec.unwrap_or(6), v)),
            ('e', Val::Num(v)) => special(*v).unwrap_or_else(|| {
                let (m, e) = split_exp(&format!("{:.*e}", prec.unwrap_or(6), v));
                go_exp(&m, e)
            }),
            ('g', Val::Num(v)) => match prec {
                Some(p) => go_g(*v, p),
                None => go_float(*v),
            },
            ('d', Val::Num(v)) if v.fract() == 0.0 && v.is_finite() => format!("{}", *v as i64),
            (verb, Val::Num(v)) => format!("%!{verb}(float64={})", go_float(*v)),
            (verb, Val::Str(s)) => format!("%!{verb}(string={s})"),
        };
        let body = if flags.contains('+') && matches!(arg, Val::Num(v) if *v >= 0.0) && verb != 'v' {
            format!("+{body}")
        } else {
            body
        };
        let w: usize = width.parse().unwrap_or(0);
        let len = body.chars().count();
        if len < w {
            let pad = w - len;
            if flags.contains('-') {
                out.push_str(&body);
                out.extend(std::iter::repeat_n(' ', pad));
            } else if flags.contains('0') && matches!(arg, Val::Num(_)) {
                let (sign, digits) = match body.strip_prefix(['-', '+']) {
                    Some(d) => (&body[..1], d),
                    None => ("", body.as_str()),
                };
                out.push_str(sign);
                out.extend(std::iter::repeat_n('0', pad));
                out.push_str(digits);
            } else {
                out.extend(std::iter::repeat_n(' ', pad));
                out.push_str(&body);
            }
        } else {
            out.push_str(&body);
        }
    }
    if next < args.len() {
        let extra: Vec<String> = args[next..]
            .iter()
            .map(|a| match a {
                Val::Str(s) => format!("string={s}"),
                Val::Num(v) => format!("float64={}", go_float(*v)),
            })
            .collect();
        let _ = write!(out, "%!(EXTRA {})", extra.join(", "));
    }
    out
}
