//! Variable interpolation as the compose specification defines it, on values only (never keys):
//!
//! | form               | unset          | set but empty  | set            |
//! |--------------------|----------------|----------------|----------------|
//! | `$VAR`, `${VAR}`   | **error**      | empty          | value          |
//! | `${VAR:-default}`  | default        | default        | value          |
//! | `${VAR-default}`   | default        | empty          | value          |
//! | `${VAR:?message}`  | error(message) | error(message) | value          |
//! | `${VAR?message}`   | error(message) | empty          | value          |
//! | `${VAR:+alt}`      | empty          | empty          | alt            |
//! | `${VAR+alt}`       | empty          | alt            | alt            |
//!
//! `$$` is a literal `$`. Defaults may themselves hold `${…}` (`${A:-${B:-x}}`). An unset
//! variable with no default is an error where compose substitutes an empty string with a warning.

use serde_norway::Value;

/// Why a string could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// `$VAR` / `${VAR}` with VAR unset.
    Missing(String),
    /// `${VAR:?message}` / `${VAR?message}` triggered.
    Required { var: String, message: String },
    /// Not a valid `$` expression.
    Malformed(String),
}

/// Interpolates one string; `lookup` gives a variable's value.
pub(crate) fn interpolate(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, Failure> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body_and_tail) = after.strip_prefix('{') {
            let end = closing_brace(body_and_tail)
                .ok_or_else(|| Failure::Malformed(format!("`${{` without its closing `}}` in {input:?}")))?;
            out.push_str(&braced(&body_and_tail[..end], lookup)?);
            rest = &body_and_tail[end + 1..];
        } else {
            let len = name_len(after);
            if len == 0 {
                return Err(Failure::Malformed(format!(
                    "`$` not followed by a variable name in {input:?} (write `$$` for a literal `$`)"
                )));
            }
            let var = &after[..len];
            out.push_str(&lookup(var).ok_or_else(|| Failure::Missing(var.to_owned()))?);
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The length of the variable name at the start of `s` (`[A-Za-z_][A-Za-z0-9_]*`).
fn name_len(s: &str) -> usize {
    let mut len = 0;
    for (i, c) in s.char_indices() {
        let ok = c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit());
        if !ok {
            break;
        }
        len = i + c.len_utf8();
    }
    len
}

/// The index of the `}` closing a `${`, counting nested `${ … }`.
fn closing_brace(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'$') => i += 1,
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

/// The inside of `${…}`.
fn braced(body: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, Failure> {
    let len = name_len(body);
    let var = &body[..len];
    if var.is_empty() {
        return Err(Failure::Malformed(format!("`${{{body}}}` does not start with a variable name")));
    }
    let op = &body[len..];
    let value = lookup(var);
    let empty = value.as_deref().is_none_or(str::is_empty);
    let nested = |s: &str| interpolate(s, lookup);
    let required = |message: &str, triggered: bool| match (triggered, &value) {
        (true, _) => Err(Failure::Required {
            var: var.to_owned(),
            message: if message.is_empty() { format!("{var} is required") } else { nested(message)? },
        }),
        (false, v) => Ok(v.clone().unwrap_or_default()),
    };
    if op.is_empty() {
        return value.ok_or_else(|| Failure::Missing(var.to_owned()));
    }
    if let Some(default) = op.strip_prefix(":-") {
        return if empty { nested(default) } else { Ok(value.unwrap_or_default()) };
    }
    if let Some(default) = op.strip_prefix('-') {
        return match value {
            None => nested(default),
            Some(v) => Ok(v),
        };
    }
    if let Some(message) = op.strip_prefix(":?") {
        return required(message, empty);
    }
    if let Some(message) = op.strip_prefix('?') {
        return required(message, value.is_none());
    }
    if let Some(alt) = op.strip_prefix(":+") {
        return if empty { Ok(String::new()) } else { nested(alt) };
    }
    if let Some(alt) = op.strip_prefix('+') {
        return if value.is_none() { Ok(String::new()) } else { nested(alt) };
    }
    Err(Failure::Malformed(format!(
        "`${{{body}}}`: expected `}}`, `:-`, `-`, `:?`, `?`, `:+` or `+` after the variable name"
    )))
}

/// Interpolates every string value of `doc` (not the keys), calling `fail(path, failure)` for
/// the first failure. Paths are dotted (`services.kms.ports[0]`).
pub(crate) fn interpolate_tree<E>(
    doc: &mut Value,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    fail: &dyn Fn(&str, Failure) -> E,
) -> Result<(), E> {
    match doc {
        Value::String(s) if s.contains('$') => {
            *s = interpolate(s, lookup).map_err(|f| fail(path, f))?;
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_tree(item, &format!("{path}[{i}]"), lookup, fail)?;
            }
        }
        Value::Mapping(map) => {
            for (key, value) in map.iter_mut() {
                let key = super::lines::join(path, &scalar_text(key));
                interpolate_tree(value, &key, lookup, fail)?;
            }
        }
        Value::Tagged(tagged) => interpolate_tree(&mut tagged.value, path, lookup, fail)?,
        _ => {}
    }
    Ok(())
}

/// A scalar as text (mapping keys, numbers as strings).
pub(crate) fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_owned(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn run(input: &str) -> Result<String, Failure> {
        let lookup = |k: &str| match k {
            "SET" => Some("value".to_owned()),
            "EMPTY" => Some(String::new()),
            "PORT" => Some("8081".to_owned()),
            _ => None,
        };
        interpolate(input, &lookup)
    }

    #[test]
    fn plain_and_braced() {
        assert_eq!(run("$SET").unwrap(), "value");
        assert_eq!(run("${SET}").unwrap(), "value");
        assert_eq!(run("a-$SET-b").unwrap(), "a-value-b");
        assert_eq!(run("127.0.0.1:${PORT}:$PORT").unwrap(), "127.0.0.1:8081:8081");
        assert_eq!(run("$SET.x").unwrap(), "value.x");
        assert_eq!(run("${EMPTY}").unwrap(), "");
        assert_eq!(run("no dollars").unwrap(), "no dollars");
    }

    #[test]
    fn defaults_distinguish_unset_from_empty() {
        assert_eq!(run("${UNSET:-d}").unwrap(), "d");
        assert_eq!(run("${EMPTY:-d}").unwrap(), "d");
        assert_eq!(run("${SET:-d}").unwrap(), "value");
        assert_eq!(run("${UNSET-d}").unwrap(), "d");
        assert_eq!(run("${EMPTY-d}").unwrap(), "");
        assert_eq!(run("${UNSET:-}").unwrap(), "");
        assert_eq!(run("${UNSET:-a b:c}").unwrap(), "a b:c");
    }

    #[test]
    fn nested_defaults() {
        assert_eq!(run("${UNSET:-${SET}}").unwrap(), "value");
        assert_eq!(run("${UNSET:-${ALSO_UNSET:-x}}-y").unwrap(), "x-y");
    }

    #[test]
    fn required_forms() {
        assert_eq!(
            run("${UNSET:?give it}"),
            Err(Failure::Required { var: "UNSET".into(), message: "give it".into() })
        );
        assert!(matches!(run("${EMPTY:?m}"), Err(Failure::Required { .. })));
        assert_eq!(run("${EMPTY?m}").unwrap(), "");
        assert!(matches!(run("${UNSET?m}"), Err(Failure::Required { .. })));
        assert_eq!(run("${SET:?m}").unwrap(), "value");
    }

    #[test]
    fn alternatives() {
        assert_eq!(run("${SET:+alt}").unwrap(), "alt");
        assert_eq!(run("${EMPTY:+alt}").unwrap(), "");
        assert_eq!(run("${EMPTY+alt}").unwrap(), "alt");
        assert_eq!(run("${UNSET+alt}").unwrap(), "");
    }

    #[test]
    fn dollar_dollar_is_a_literal_dollar() {
        assert_eq!(run("$$").unwrap(), "$");
        assert_eq!(run("$${SET}").unwrap(), "${SET}");
        assert_eq!(run("a$$b$SET").unwrap(), "a$bvalue");
        assert_eq!(run("${UNSET:-$$}").unwrap(), "$");
    }

    #[test]
    fn missing_and_malformed() {
        assert_eq!(run("$UNSET"), Err(Failure::Missing("UNSET".into())));
        assert_eq!(run("x ${UNSET} y"), Err(Failure::Missing("UNSET".into())));
        assert!(matches!(run("${SET"), Err(Failure::Malformed(_))));
        assert!(matches!(run("$"), Err(Failure::Malformed(_))));
        assert!(matches!(run("$1"), Err(Failure::Malformed(_))));
        assert!(matches!(run("${}"), Err(Failure::Malformed(_))));
        assert!(matches!(run("${SET%x}"), Err(Failure::Malformed(_))));
    }

    #[test]
    fn keys_are_not_interpolated() {
        let mut doc: Value = serde_norway::from_str("$KEY: $SET\nlist: [\"${UNSET:-d}\"]\n").unwrap();
        let lookup = |k: &str| (k == "SET").then(|| "v".to_owned());
        interpolate_tree(&mut doc, "", &lookup, &|p, f| format!("{p}: {f:?}")).unwrap();
        assert_eq!(doc["$KEY"], Value::String("v".into()));
        assert_eq!(doc["list"][0], Value::String("d".into()));
        let mut doc: Value = serde_norway::from_str("a:\n  b: [x, $NOPE]\n").unwrap();
        let err = interpolate_tree(&mut doc, "", &lookup, &|p, f| format!("{p}: {f:?}")).unwrap_err();
        assert_eq!(err, "a.b[1]: Missing(\"NOPE\")");
    }
}
