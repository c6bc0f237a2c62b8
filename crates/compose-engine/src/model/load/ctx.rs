//! Errors about one file: where a path of the document is (file, line, path), the invalid and
//! unsupported errors with their hints, typed deserialisation of a part of the document, and
//! host paths relative to the file.

use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde_norway::Value;

use crate::model::error::{Location, ModelError};
use crate::model::interpolate::Failure;
use crate::model::lines::{key_path, line_of};

/// The generic hint for keys the model does not know.
const KEYS_HINT: &str = "remove the key, or check its spelling; this model accepts only the compose keys listed in docs/compose-model.md";

/// Errors about one file.
#[derive(Debug, Clone)]
pub(super) struct Ctx {
    /// The file.
    pub(super) file: PathBuf,
    /// Its text, for the lines of errors.
    pub(super) text: String,
    /// What relative host paths are resolved against.
    pub(super) base_dir: PathBuf,
}

impl Ctx {
    pub(super) fn at(&self, path: &str) -> Box<Location> {
        Box::new(Location { file: self.file.clone(), line: line_of(&self.text, path), path: path.to_owned() })
    }

    pub(super) fn invalid(
        &self,
        path: &str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> ModelError {
        ModelError::Invalid { at: self.at(path), message: message.into(), hint: hint.into() }
    }

    pub(super) fn unsupported(
        &self,
        path: &str,
        feature: impl Into<String>,
        hint: impl Into<String>,
    ) -> ModelError {
        ModelError::Unsupported { at: self.at(path), feature: feature.into(), hint: hint.into() }
    }

    /// Deserializes `value` (found at `path`) into a key-checked wire type.
    pub(super) fn typed<T: DeserializeOwned>(&self, path: &str, value: Value) -> Result<T, ModelError> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let inner = key_path(e.path());
            let full = match (path.is_empty(), inner.is_empty()) {
                (_, true) => path.to_owned(),
                (true, false) => inner,
                (false, false) if inner.starts_with('[') => format!("{path}{inner}"),
                (false, false) => format!("{path}.{inner}"),
            };
            let message = e.into_inner().to_string();
            let hint = key_hint(&full, &message);
            self.invalid(&full, message, hint)
        })
    }

    /// A host path from the file: absolute, or relative to the base directory; `.` and `..`
    /// folded lexically (the path need not exist).
    pub(super) fn host_path(&self, raw: &str) -> PathBuf {
        use std::path::Component;
        let joined = self.base_dir.join(raw);
        let mut out = PathBuf::new();
        for part in joined.components() {
            match part {
                Component::CurDir => {}
                Component::ParentDir
                    if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
                {
                    out.pop();
                }
                other => out.push(other),
            }
        }
        out
    }
}

/// A specific hint for keys people are likely to write, else [`KEYS_HINT`].
fn key_hint(path: &str, message: &str) -> String {
    let last = path.rsplit('.').next().unwrap_or(path);
    if !message.starts_with("unknown field") {
        return "check the value's type against docs/compose-model.md".to_owned();
    }
    match last {
        "build" => "build the image beforehand (compose_engine::image builds ours offline) and name it in `image:`".to_owned(),
        "start_interval" => "Docker 20.10 (API 1.41) ignores start_interval; use a short `interval` with `start_period`".to_owned(),
        "environment" | "external" if path.starts_with("secrets.") => "only file secrets are supported: `file: ./path`".to_owned(),
        "uid" | "gid" | "mode" => "compose ignores uid/gid/mode for file secrets outside swarm; set the host file's owner and mode instead".to_owned(),
        "env_file" => "put the variables in `environment:` (env_file is not supported)".to_owned(),
        "container_name" => "names are <project>-<service>-<n>, as compose's; remove container_name".to_owned(),
        _ => KEYS_HINT.to_owned(),
    }
}

pub(super) fn interpolation_error(ctx: &Ctx, path: &str, failure: Failure) -> ModelError {
    let at = ctx.at(path);
    match failure {
        Failure::Missing(var) => ModelError::MissingVariable { at, var },
        Failure::Required { var, message } => ModelError::Interpolation {
            at,
            message: format!("`{var}`: {message}"),
            hint: format!("set {var}"),
            var: Some(var),
        },
        Failure::Malformed(message) => ModelError::Interpolation {
            at,
            var: None,
            message,
            hint: "write `$$` for a literal `$`; variables are `$NAME` or `${NAME…}`".to_owned(),
        },
    }
}
