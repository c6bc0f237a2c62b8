//! Finding a dotted key path's line in a YAML text: serde_norway's `Value` keeps no positions.
//!
//! The same indentation walk as `service_kit::config::line_of` (copied rather than depended on:
//! service-kit brings axum and sqlx, which this crate must not link). Enough for the block-style
//! YAML compose files use; flow style (`{a: 1}`) finds the enclosing key's line.

/// The 1-based line where the dotted `key` (`a.b[2].c`) is set, if found. A path that cannot be
/// followed to the end gives the line of its deepest part that can.
pub(crate) fn line_of(text: &str, key: &str) -> Option<usize> {
    let mut segments = Vec::new();
    for part in key.split('.') {
        let (name, rest) = part.split_once('[').unwrap_or((part, ""));
        if !name.is_empty() {
            segments.push(Seg::Key(name));
        }
        for index in rest.split('[').filter(|s| !s.is_empty()) {
            segments.push(Seg::Index(index.trim_end_matches(']').parse().ok()?));
        }
    }
    // Tokens: (line, indent, text). A list item `- a: 1` is a dash token followed by a key
    // token two columns to its right, which is how YAML nests it.
    let mut tokens: Vec<(usize, usize, Option<&str>)> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let mut rest = line.trim_start();
        if rest.is_empty() || rest.starts_with('#') {
            continue;
        }
        let mut indent = line.len() - rest.len();
        while let Some(after) = rest.strip_prefix("- ").or_else(|| (rest == "-").then_some("")) {
            tokens.push((number + 1, indent, None));
            let trimmed = after.trim_start();
            indent += 2 + (after.len() - trimmed.len());
            rest = trimmed;
        }
        if !rest.is_empty() {
            tokens.push((number + 1, indent, Some(rest)));
        }
    }
    let (mut start, mut parent) = (0usize, None::<usize>);
    let mut found = None;
    for seg in segments {
        let in_scope = |t: &(usize, usize, Option<&str>)| parent.is_none_or(|p| t.1 > p);
        let Some(child) = tokens.get(start).filter(|t| in_scope(t)).map(|t| t.1) else { break };
        let scope = tokens[start..].iter().enumerate().take_while(|(_, t)| in_scope(t));
        let mut items = 0;
        let hit = scope.filter(|(_, t)| t.1 == child).find(|(_, t)| match (seg, t.2) {
            (Seg::Key(k), Some(text)) => {
                let text = text.trim_start_matches(['"', '\'']);
                text.strip_prefix(k).is_some_and(|r| r.trim_start_matches(['"', '\'']).starts_with(':'))
            }
            (Seg::Index(n), None) => {
                items += 1;
                items == n + 1
            }
            _ => false,
        });
        let Some((offset, token)) = hit else { break };
        found = Some(token.0);
        start += offset + 1;
        parent = Some(token.1);
    }
    found
}

#[derive(Debug, Clone, Copy)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// A serde_path_to_error path as a dotted key path (`services.kms.ports[0]`).
pub(crate) fn key_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    if out == "?" { String::new() } else { out }
}

/// `base` + `.key` (or just `key` at the top).
pub(crate) fn join(base: &str, key: &str) -> String {
    if base.is_empty() { key.to_owned() } else { format!("{base}.{key}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "services:\n  kms:\n    image: x\n    ports:\n      - \"8081\"\n      - target: 1\n        published: 2\n  db:\n    image: y\n";

    #[test]
    fn finds_keys_and_list_items() {
        assert_eq!(line_of(DOC, "services.kms.image"), Some(3));
        assert_eq!(line_of(DOC, "services.kms.ports[0]"), Some(5));
        assert_eq!(line_of(DOC, "services.kms.ports[1].published"), Some(7));
        assert_eq!(line_of(DOC, "services.db.image"), Some(9));
    }

    #[test]
    fn a_missing_tail_gives_the_deepest_line_found() {
        assert_eq!(line_of(DOC, "services.db.nope"), Some(8));
        assert_eq!(line_of(DOC, "nothing"), None);
    }
}
