//! Line and column of each key and sequence item of a block-style YAML document.
//!
//! `serde_norway` reports positions for syntax errors only; rule validation needs the position
//! of every key it complains about. This module owns a small indentation scanner that records
//! the 1-based `(line, column)` of each mapping key and sequence item by path
//! (`groups[0].rules[2].expr`). It understands block mappings and sequences (including
//! `- key: value` items and sequences at their parent key's indentation), skips comments,
//! block scalars and multi-line values; content in flow style (`{…}`, `[…]`) gets the position
//! of its key. Lookups fall back to the nearest ancestor that has a position.

use std::collections::HashMap;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Seg {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// Positions by path.
#[derive(Debug, Default)]
pub(crate) struct Positions {
    map: HashMap<Vec<Seg>, (usize, usize)>,
}

#[derive(Debug)]
enum Kind {
    Map,
    Seq { next: usize },
}

#[derive(Debug)]
struct Frame {
    indent: usize,
    kind: Kind,
    path: Vec<Seg>,
}

/// Removes a trailing ` # comment` outside quotes.
fn strip_comment(s: &str) -> &str {
    let b = s.as_bytes();
    let (mut sq, mut dq) = (false, false);
    for i in 0..b.len() {
        match b[i] {
            b'\'' if !dq => sq = !sq,
            b'"' if !sq => dq = !dq,
            b'#' if !sq && !dq && (i == 0 || b[i - 1] == b' ' || b[i - 1] == b'\t') => return s[..i].trim_end(),
            _ => {}
        }
    }
    s.trim_end()
}

/// Splits `key: value` (or `key:`) into the key and the value text; `None` when `s` is no key.
fn split_key(s: &str) -> Option<(String, &str)> {
    if s.starts_with(['{', '[', '|', '>', '&', '*', '!']) {
        return None;
    }
    if let Some(q) = s.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let end = s[1..].find(q)? + 1;
        let rest = s[end + 1..].trim_start();
        let value = rest.strip_prefix(':')?;
        if !(value.is_empty() || value.starts_with([' ', '\t'])) {
            return None;
        }
        return Some((s[1..end].to_string(), value.trim()));
    }
    let b = s.as_bytes();
    for i in 0..b.len() {
        if b[i] == b':' && (i + 1 == b.len() || b[i + 1] == b' ' || b[i + 1] == b'\t') {
            return Some((s[..i].trim_end().to_string(), s[i + 1..].trim()));
        }
    }
    None
}

impl Positions {
    /// Scans `text`.
    pub(crate) fn scan(text: &str) -> Positions {
        let mut pos = Positions::default();
        let mut stack: Vec<Frame> = Vec::new();
        // A key or item whose value starts on a later line: (path, indent of the key or dash).
        let mut pending: Option<(Vec<Seg>, usize)> = None;
        // Lines indented deeper than this belong to a value already seen.
        let mut skip_deeper: Option<usize> = None;
        for (lineno, raw) in text.lines().enumerate() {
            let line = lineno + 1;
            let indent = raw.len() - raw.trim_start_matches(' ').len();
            let content = strip_comment(&raw[indent..]);
            if content.is_empty()
                || content.starts_with("---")
                || content.starts_with("...")
                || content.starts_with('%')
            {
                continue;
            }
            if let Some(d) = skip_deeper {
                if indent > d {
                    continue;
                }
                skip_deeper = None;
            }
            let is_item = content == "-" || content.starts_with("- ");
            while stack.last().is_some_and(|f| f.indent > indent) {
                stack.pop();
            }
            if let Some((path, parent)) = pending.take()
                && (indent > parent || (indent == parent && is_item))
            {
                let kind = if is_item { Kind::Seq { next: 0 } } else { Kind::Map };
                stack.push(Frame { indent, kind, path });
            }
            Self::line(&mut pos, &mut stack, &mut pending, &mut skip_deeper, line, indent, content);
        }
        pos
    }

    #[allow(clippy::too_many_arguments)]
    fn line(
        pos: &mut Positions,
        stack: &mut Vec<Frame>,
        pending: &mut Option<(Vec<Seg>, usize)>,
        skip_deeper: &mut Option<usize>,
        line: usize,
        col: usize,
        content: &str,
    ) {
        if content == "-" || content.starts_with("- ") {
            // A sequence item at `col`.
            let Some(top) = stack.last_mut().filter(|f| f.indent == col) else {
                return;
            };
            let Kind::Seq { next } = &mut top.kind else {
                return;
            };
            let mut path = top.path.clone();
            path.push(Seg::Index(*next));
            *next += 1;
            pos.map.insert(path.clone(), (line, col + 1));
            let rest = content[1..].trim_start();
            let rest_col = col + (content.len() - rest.len());
            if rest.is_empty() {
                *pending = Some((path, col));
            } else if rest == "-" || rest.starts_with("- ") {
                stack.push(Frame { indent: rest_col, kind: Kind::Seq { next: 0 }, path });
                Self::line(pos, stack, pending, skip_deeper, line, rest_col, rest);
            } else if split_key(rest).is_some() {
                stack.push(Frame { indent: rest_col, kind: Kind::Map, path });
                Self::line(pos, stack, pending, skip_deeper, line, rest_col, rest);
            } else {
                *skip_deeper = Some(col);
            }
            return;
        }
        let Some((key, value)) = split_key(content) else {
            return;
        };
        while stack.last().is_some_and(|f| f.indent == col && matches!(f.kind, Kind::Seq { .. })) {
            stack.pop();
        }
        if stack.is_empty() && col == 0 {
            stack.push(Frame { indent: 0, kind: Kind::Map, path: Vec::new() });
        }
        let Some(top) = stack.last().filter(|f| f.indent == col && matches!(f.kind, Kind::Map)) else {
            return;
        };
        let mut path = top.path.clone();
        path.push(Seg::Key(key));
        pos.map.insert(path.clone(), (line, col + 1));
        if value.is_empty() {
            *pending = Some((path, col));
        } else {
            *skip_deeper = Some(col);
        }
    }

    /// The position of `path`, or of its nearest ancestor that has one; `(1, 1)` at worst.
    pub(crate) fn find(&self, path: &[Seg]) -> (usize, usize) {
        let mut p = path;
        loop {
            if let Some(&lc) = self.map.get(p) {
                return lc;
            }
            if p.is_empty() {
                return (1, 1);
            }
            p = &p[..p.len() - 1];
        }
    }
}
