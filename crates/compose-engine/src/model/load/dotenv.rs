//! The `.env` file beside the first compose file: `KEY=VALUE` lines that fill in what the caller's
//! [`Env`] does not give.

use std::path::Path;

use crate::model::Env;
use crate::model::error::{Location, ModelError};

/// Reads `KEY=VALUE` lines (`#` comments, blank lines, `export `, one level of quotes) into
/// `env` without replacing what the caller gave. A missing file is fine.
pub(super) fn read_dotenv(path: &Path, env: &mut Env) -> Result<(), ModelError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            let at = Location::file(path, None);
            return Err(ModelError::Read { at, source });
        }
    };
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let bad = |message: String| ModelError::Invalid {
            at: Location::file(path, Some(number + 1)),
            message,
            hint: "write KEY=VALUE (values are taken literally; quotes are stripped)".to_owned(),
        };
        let (key, value) = line.split_once('=').ok_or_else(|| bad(format!("`{line}` is not KEY=VALUE")))?;
        let key = key.trim();
        let valid = key
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
        if key.is_empty() || !valid {
            return Err(bad(format!("`{key}` is not a variable name")));
        }
        let value = value.trim();
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
            .unwrap_or(value);
        env.insert_missing(key.to_owned(), unquoted.to_owned());
    }
    Ok(())
}
