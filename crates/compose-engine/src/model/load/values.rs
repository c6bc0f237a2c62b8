//! Scalar values as compose writes them: strings, lists, booleans and numbers (also from the
//! strings interpolation leaves), `KEY=VALUE` maps, Go-style durations, restart policies.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_norway::Value;

use super::ctx::Ctx;
use crate::model::Restart;
use crate::model::error::ModelError;
use crate::model::interpolate::scalar_text;
use crate::model::lines::join;

/// A Go-style duration: `1s`, `1m30s`, `500ms`, `1.5s`.
pub(super) fn duration(ctx: &Ctx, path: &str, raw: &str) -> Result<Duration, ModelError> {
    let bad = || ctx.invalid(path, format!("`{raw}` is not a duration"), "write it like 1s, 500ms, 1m30s");
    let mut total = 0f64;
    let mut rest = raw.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let value: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

pub(super) fn restart(ctx: &Ctx, path: &str, raw: &str) -> Result<Restart, ModelError> {
    Ok(match raw {
        "no" => Restart::No,
        "always" => Restart::Always,
        "unless-stopped" => Restart::UnlessStopped,
        "on-failure" => Restart::OnFailure(None),
        other => match other.strip_prefix("on-failure:").and_then(|n| n.parse().ok()) {
            Some(n) => Restart::OnFailure(Some(n)),
            None => {
                return Err(ctx.invalid(
                    path,
                    format!("unknown restart policy `{other}`"),
                    "use \"no\", always, on-failure[:N] or unless-stopped",
                ));
            }
        },
    })
}

/// A scalar as a string (strings, numbers, booleans).
pub(super) fn scalar(ctx: &Ctx, path: &str, v: Value) -> Result<String, ModelError> {
    match v {
        Value::String(s) => Ok(s),
        Value::Number(_) | Value::Bool(_) => Ok(scalar_text(&v)),
        _ => Err(ctx.invalid(path, "expected a string", "write a single value here")),
    }
}

/// A string or a list of strings, as a list.
pub(super) fn strings(ctx: &Ctx, path: &str, v: Value) -> Result<Vec<String>, ModelError> {
    match v {
        Value::Sequence(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| scalar(ctx, &format!("{path}[{i}]"), item))
            .collect(),
        other => Ok(vec![scalar(ctx, path, other)?]),
    }
}

/// `command:`/`entrypoint:`: exec form only.
pub(super) fn argv(ctx: &Ctx, path: &str, v: Value) -> Result<Option<Vec<String>>, ModelError> {
    match v {
        Value::Null => Ok(None),
        v @ Value::Sequence(_) => strings(ctx, path, v).map(Some),
        Value::String(_) => Err(ctx.unsupported(path, "the string form of command/entrypoint", "write it as a list (exec form), e.g. [\"serve\", \"--config\", \"/etc/app/config.yml\"]: there is no shell to split it")),
        _ => Err(ctx.invalid(path, "expected a list of strings", "write it as a list (exec form)")),
    }
}

/// A boolean, also from the strings `true`/`false` interpolation leaves.
pub(super) fn flag(ctx: &Ctx, path: &str, v: Option<Value>) -> Result<Option<bool>, ModelError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(Value::String(s)) if s == "true" => Ok(Some(true)),
        Some(Value::String(s)) if s == "false" => Ok(Some(false)),
        Some(_) => Err(ctx.invalid(path, "expected true or false", "write true or false")),
    }
}

/// A non-negative number, also from a string interpolation left.
pub(super) fn number<T: TryFrom<u64>>(ctx: &Ctx, path: &str, v: Value) -> Result<T, ModelError> {
    let n = match &v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    n.and_then(|n| T::try_from(n).ok()).ok_or_else(|| {
        ctx.invalid(
            path,
            format!("`{}` is not a valid number here", scalar_text(&v)),
            "write a non-negative integer in range",
        )
    })
}

/// `KEY: value` or `- KEY=value` maps; `null` values (and bare `- KEY`) are an error unless
/// `lookup` gives one.
fn key_values(
    ctx: &Ctx,
    path: &str,
    v: Option<Value>,
    missing: &dyn Fn(&str, &str) -> Result<String, ModelError>,
) -> Result<BTreeMap<String, String>, ModelError> {
    let mut out = BTreeMap::new();
    match v {
        None | Some(Value::Null) => {}
        Some(Value::Mapping(map)) => {
            for (k, v) in map {
                let key = scalar_text(&k);
                let kp = join(path, &key);
                let value = match v {
                    Value::Null => missing(&kp, &key)?,
                    v => scalar(ctx, &kp, v)?,
                };
                out.insert(key, value);
            }
        }
        Some(Value::Sequence(items)) => {
            for (i, item) in items.into_iter().enumerate() {
                let ip = format!("{path}[{i}]");
                let entry = scalar(ctx, &ip, item)?;
                let (key, value) = match entry.split_once('=') {
                    Some((k, v)) => (k.to_owned(), v.to_owned()),
                    None => (entry.clone(), missing(&ip, &entry)?),
                };
                out.insert(key, value);
            }
        }
        Some(_) => {
            return Err(ctx.invalid(path, "expected a mapping or a list of KEY=VALUE", "write `KEY: value`"));
        }
    }
    Ok(out)
}

pub(super) fn environment(
    ctx: &Ctx,
    path: &str,
    v: Option<Value>,
) -> Result<BTreeMap<String, String>, ModelError> {
    key_values(ctx, path, v, &|p, key| {
        Err(ctx.invalid(
            p,
            format!("`{key}` has no value"),
            format!("give it one (`{key}: value` or `{key}: ${{{key}}}` to take it from the environment)"),
        ))
    })
}

pub(super) fn labels(
    ctx: &Ctx,
    path: &str,
    v: Option<Value>,
) -> Result<BTreeMap<String, String>, ModelError> {
    key_values(ctx, path, v, &|_, _| Ok(String::new()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::model::load::test_support::ctx;

    #[test]
    fn durations() {
        let d = |s: &str| duration(&ctx(), "d", s);
        assert_eq!(d("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(d("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(d("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(d("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(d("").is_err() && d("5").is_err() && d("1x").is_err());
    }

    #[test]
    fn restart_policies() {
        let r = |s: &str| restart(&ctx(), "r", s);
        assert_eq!(r("on-failure:3").unwrap(), Restart::OnFailure(Some(3)));
        assert_eq!(r("no").unwrap(), Restart::No);
        assert!(r("sometimes").is_err());
    }
}
