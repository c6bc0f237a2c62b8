//! Configuration: a YAML file, then environment overrides, then validation — every error names
//! the file, the key and (where it can) the line.
//!
//! * Unknown keys are errors (config structs use `#[serde(deny_unknown_fields)]`).
//! * Overrides: `PREFIX__SECTION__KEY=value` sets `section.key`; the value is read as a YAML
//!   scalar unless the file holds a string there.
//! * Secrets never come from the environment: an override of a key that looks secret
//!   (`password`, `secret`, `token`, `private_key`, `share`) and is not a `*_file` path is
//!   refused. Config structs hold secrets only as `*_file` paths.
//!
//! serde_norway's `Value` keeps no positions, so [`line_of`] finds a key's line by walking the
//! file's indentation: enough for the block-style YAML our configs use.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_norway::Value;

/// Loading a configuration failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not YAML.
    #[error("{path}:{line}:{column}: not valid YAML: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// A key has the wrong type, is unknown, or is missing.
    #[error("{path}{}: `{key}`: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line, when known.
        line: Option<usize>,
        /// Dotted key path (`server.tls.cert_file`); empty for the top level.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// An environment override does not fit.
    #[error("environment variable {var} (overrides `{key}`): {message}")]
    Env {
        /// The variable.
        var: String,
        /// The key it overrides.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// Validation found problems (all of them are listed).
    #[error("{path}: {} invalid setting(s):\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Validation {
        /// The file.
        path: PathBuf,
        /// Every problem.
        problems: Vec<Problem>,
    },
}

/// One validation problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path.
    pub key: String,
    /// 1-based line in the file, when the key is there.
    pub line: Option<usize>,
    /// What is wrong and what to do.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: `{}`: {}", self.key, self.message),
            None => write!(f, "`{}`: {}", self.key, self.message),
        }
    }
}

/// Semantic checks a config runs after it parsed.
pub trait Validate {
    /// Reports every problem to `v`.
    fn validate(&self, v: &mut Validator);
}

/// Collects validation problems.
#[derive(Debug, Default)]
pub struct Validator {
    problems: Vec<(String, String)>,
}

impl Validator {
    /// Records a problem with `key`.
    pub fn error(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push((key.into(), message.into()));
    }

    /// Records a problem when `ok` is false.
    pub fn check(&mut self, ok: bool, key: impl Into<String>, message: impl Into<String>) {
        if !ok {
            self.error(key, message);
        }
    }
}

/// Loads `path`, applies overrides from the process environment under `env_prefix`
/// (`KMS` → `KMS__SERVER__LISTEN`), validates.
pub fn load<T: DeserializeOwned + Validate>(path: &Path, env_prefix: &str) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    load_str(path, &text, env_prefix, std::env::vars())
}

/// [`load`] with the file's text and the environment given: what tests call.
pub fn load_str<T: DeserializeOwned + Validate>(
    path: &Path,
    text: &str,
    env_prefix: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError> {
    // 1. Syntax, with the parser's position.
    let mut doc: Value = serde_norway::from_str(text).map_err(|e| syntax(path, &e))?;
    if doc.is_null() {
        doc = Value::Mapping(Default::default());
    }
    // 2. Shape, straight from the text so errors carry the file's line.
    let from_file: Result<T, _> =
        serde_path_to_error::deserialize(serde_norway::Deserializer::from_str(text));
    let mut value = match from_file {
        Ok(v) => v,
        Err(e) => {
            let key = key_path(e.path());
            let line = e.inner().location().map(|l| l.line()).or_else(|| line_of(text, &key));
            let mut message = strip_location(e.inner());
            // serde_norway starts some messages with the parent's path ("tls: unknown field");
            // the key is reported on its own.
            if let Some((head, tail)) = message.split_once(": ")
                && !head.contains(' ')
                && key.starts_with(head)
            {
                message = tail.to_owned();
            }
            return Err(ConfigError::Invalid { path: path.to_owned(), line, key, message });
        }
    };
    // 3. Environment overrides.
    let prefix = format!("{env_prefix}__");
    let mut overrides: Vec<(String, String)> =
        env.into_iter().filter(|(k, _)| k.starts_with(&prefix) && k.len() > prefix.len()).collect();
    overrides.sort();
    if !overrides.is_empty() {
        for (var, raw) in &overrides {
            apply_override(&mut doc, &prefix, var, raw)?;
        }
        value = serde_path_to_error::deserialize(doc).map_err(|e| {
            let key = key_path(e.path());
            let var = overrides
                .iter()
                .map(|(v, _)| v.clone())
                .find(|v| env_key(&prefix, v).0 == key)
                .unwrap_or_else(|| format!("{prefix}*"));
            ConfigError::Env { var, key, message: strip_location(e.inner()) }
        })?;
        tracing::info!(overrides = ?overrides.iter().map(|(v, _)| v).collect::<Vec<_>>(), "configuration overridden from the environment");
    }
    // 4. Semantics.
    let mut v = Validator::default();
    value.validate(&mut v);
    if !v.problems.is_empty() {
        let problems = v
            .problems
            .into_iter()
            .map(|(key, message)| Problem { line: line_of(text, &key), key, message })
            .collect();
        return Err(ConfigError::Validation { path: path.to_owned(), problems });
    }
    Ok(value)
}

fn syntax(path: &Path, e: &serde_norway::Error) -> ConfigError {
    let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
    ConfigError::Syntax { path: path.to_owned(), line, column, message: strip_location(e) }
}

/// serde_norway appends " at line L column C" to messages; we report the position ourselves.
fn strip_location(e: &serde_norway::Error) -> String {
    let message = e.to_string();
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message,
    }
}

fn key_path(path: &serde_path_to_error::Path) -> String {
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

/// `KMS__SERVER__LISTEN` → (`server.listen`, [`server`, `listen`]).
fn env_key(prefix: &str, var: &str) -> (String, Vec<String>) {
    let segments: Vec<String> = var[prefix.len()..].split("__").map(|s| s.to_ascii_lowercase()).collect();
    (segments.join("."), segments)
}

fn looks_secret(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key);
    !last.ends_with("_file")
        && ["password", "secret", "token", "private_key", "share"].iter().any(|w| last.contains(w))
}

fn apply_override(doc: &mut Value, prefix: &str, var: &str, raw: &str) -> Result<(), ConfigError> {
    let (key, segments) = env_key(prefix, var);
    let err = |message: String| ConfigError::Env { var: var.to_owned(), key: key.clone(), message };
    if segments.iter().any(String::is_empty) {
        return Err(err("empty key segment; separate keys with a double underscore".to_owned()));
    }
    if looks_secret(&key) {
        return Err(err(format!(
            "secrets are never taken from the environment; put the secret in a file and set `{key}_file`"
        )));
    }
    let mut node = doc;
    for segment in &segments[..segments.len() - 1] {
        let Value::Mapping(map) = node else {
            return Err(err(format!("`{segment}` is inside a value that is not a section")));
        };
        node =
            map.entry(Value::String(segment.clone())).or_insert_with(|| Value::Mapping(Default::default()));
    }
    let Value::Mapping(map) = node else {
        return Err(err("the parent of this key is not a section".to_owned()));
    };
    let last = Value::String(segments[segments.len() - 1].clone());
    let keep_string = matches!(map.get(&last), Some(Value::String(_)));
    let parsed = if keep_string {
        Value::String(raw.to_owned())
    } else {
        serde_norway::from_str::<Value>(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
    };
    map.insert(last, parsed);
    Ok(())
}

/// The 1-based line where the dotted `key` (`a.b[2].c`) is set in block-style YAML, if found.
pub fn line_of(text: &str, key: &str) -> Option<usize> {
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
        let child = tokens.get(start).filter(|t| in_scope(t))?.1;
        let scope = tokens[start..].iter().enumerate().take_while(|(_, t)| in_scope(t));
        let mut items = 0;
        let (offset, token) = scope.filter(|(_, t)| t.1 == child).find(|(_, t)| match (seg, t.2) {
            (Seg::Key(k), Some(text)) => text.strip_prefix(k).is_some_and(|r| r.starts_with(':')),
            (Seg::Index(n), None) => {
                items += 1;
                items == n + 1
            }
            _ => false,
        })?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        name: String,
        port: u16,
        #[serde(default)]
        tls: Tls,
        #[serde(default)]
        users: Vec<User>,
    }
    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(deny_unknown_fields)]
    struct Tls {
        #[serde(default)]
        cert_file: String,
        #[serde(default)]
        enabled: bool,
        #[serde(default)]
        password_file: Option<String>,
    }
    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct User {
        name: String,
        role: String,
    }
    impl Validate for Cfg {
        fn validate(&self, v: &mut Validator) {
            v.check(self.port != 0, "port", "must not be 0");
            for (i, u) in self.users.iter().enumerate() {
                v.check(u.role != "root", format!("users[{i}].role"), "`root` is not a role; use admin");
            }
        }
    }

    const GOOD: &str = "name: kms\nport: 8081\ntls:\n  cert_file: /c.pem\nusers:\n  - name: a\n    role: admin\n  - name: b\n    role: user\n";

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Cfg, ConfigError> {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
        load_str(Path::new("kms.yml"), text, "KMS", env)
    }

    #[test]
    fn good_file_loads() {
        let cfg = load(GOOD, &[]).unwrap();
        assert_eq!(cfg.port, 8081);
        assert_eq!(cfg.users[1].name, "b");
    }

    #[test]
    fn syntax_errors_carry_file_line_and_column() {
        let err = load("name: kms\nport: [1,\n", &[]).unwrap_err();
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
        assert!(err.to_string().starts_with("kms.yml:"), "{err}");
    }

    #[test]
    fn unknown_keys_are_errors_with_key_and_line() {
        let err = load("name: kms\nport: 8081\ntls:\n  cert_fil: x\n", &[]).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ConfigError::Invalid { line: Some(4), .. }), "{text}");
        assert!(text.starts_with("kms.yml:4: `tls.cert_fil`: unknown field `cert_fil`"), "{text}");
    }

    #[test]
    fn wrong_types_name_the_key() {
        let err = load("name: kms\nport: lots\n", &[]).unwrap_err();
        assert!(matches!(&err, ConfigError::Invalid { key, line: Some(2), .. } if key == "port"), "{err}");
        let err = load("name: kms\n", &[]).unwrap_err();
        assert!(err.to_string().contains("missing field `port`"), "{err}");
    }

    #[test]
    fn env_overrides_apply_with_types() {
        let cfg = load(
            GOOD,
            &[("KMS__PORT", "9000"), ("KMS__TLS__ENABLED", "true"), ("KMS__NAME", "42"), ("OTHER", "x")],
        )
        .unwrap();
        assert_eq!(cfg.port, 9000);
        assert!(cfg.tls.enabled);
        assert_eq!(cfg.name, "42", "the file holds a string there, so the override stays one");
    }

    #[test]
    fn bad_env_overrides_name_the_variable() {
        let err = load(GOOD, &[("KMS__PORT", "99999")]).unwrap_err();
        assert!(matches!(&err, ConfigError::Env { var, .. } if var == "KMS__PORT"), "{err}");
        let err = load(GOOD, &[("KMS__TLS__NOPE", "1")]).unwrap_err();
        assert!(err.to_string().contains("unknown field `nope`"), "{err}");
    }

    #[test]
    fn secrets_are_refused_from_the_environment() {
        let err = load(GOOD, &[("KMS__TLS__PASSWORD", "hunter2")]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("password_file"), "{text}");
        assert!(!text.contains("hunter2"), "the value must not be echoed: {text}");
        // The *_file form is fine.
        let cfg = load(GOOD, &[("KMS__TLS__PASSWORD_FILE", "/run/secrets/pw")]).unwrap();
        assert_eq!(cfg.tls.password_file.as_deref(), Some("/run/secrets/pw"));
    }

    #[test]
    fn validation_lists_every_problem_with_lines() {
        let text = "name: kms\nport: 0\nusers:\n  - name: a\n    role: root\n";
        let err = load(text, &[]).unwrap_err();
        let ConfigError::Validation { problems, .. } = &err else { panic!("{err}") };
        assert_eq!(problems.len(), 2);
        assert_eq!(problems[0].line, Some(2));
        assert_eq!(problems[1].key, "users[0].role");
        assert_eq!(problems[1].line, Some(5));
    }

    #[test]
    fn line_of_walks_nesting_and_lists() {
        assert_eq!(line_of(GOOD, "tls.cert_file"), Some(4));
        assert_eq!(line_of(GOOD, "users[1].role"), Some(9));
        assert_eq!(line_of(GOOD, "users[0].name"), Some(6));
        assert_eq!(line_of(GOOD, "users[5].name"), None);
        assert_eq!(line_of(GOOD, "nothing"), None);
    }

    #[test]
    fn an_empty_file_reports_missing_fields() {
        let err = load("", &[]).unwrap_err();
        assert!(err.to_string().contains("missing field"), "{err}");
    }
}
