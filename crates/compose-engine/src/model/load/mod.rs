//! Reading files into [`Project`]s, the entry point [`load`]: each file parsed ([`parse`]),
//! its `include:`s followed ([`include`]) and its `extends:` resolved ([`extends`]), the `-f`
//! files merged ([`merge`]), then profiles applied and the result validated ([`validate`]).
//! Values are converted by [`service`], [`ports`], [`mounts`] and [`values`]; errors are located
//! by [`ctx`]; a `.env` file is read by [`dotenv`].

mod ctx;
mod dotenv;
mod extends;
mod include;
mod merge;
mod mounts;
mod parse;
mod ports;
mod service;
mod validate;
mod values;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::error::{Location, ModelError};
use super::{Env, Network, Project, Secret, Service, Volume, dir_of};
use ctx::Ctx;

/// Loads `files` (the `-f` list: later files override earlier ones), interpolating from `env`,
/// with the services the active `profiles` enable. See the module documentation.
pub fn load(files: &[PathBuf], env: &Env, profiles: &[String]) -> Result<Project, ModelError> {
    let Some(first) = files.first() else {
        return Err(ModelError::Invalid {
            at: Location::file(PathBuf::new(), None),
            message: "no compose file given".to_owned(),
            hint: "pass at least one compose file".to_owned(),
        });
    };
    let working_dir = dir_of(first);
    let mut env = env.clone();
    if env.reads_dotenv() {
        dotenv::read_dotenv(&working_dir.join(".env"), &mut env)?;
    }
    let mut loader = Loader { env, texts: BTreeMap::new() };
    let mut project = Layer::default();
    for file in files {
        let layer = loader.load_file(file, &working_dir, &mut Vec::new(), None)?;
        project.override_with(layer);
    }
    loader.finish(project, working_dir, files, profiles)
}

/// What one file (with what it includes) contributes.
#[derive(Debug, Default)]
struct Layer {
    name: Option<String>,
    services: BTreeMap<String, Service>,
    networks: BTreeMap<String, (Network, PathBuf)>,
    volumes: BTreeMap<String, (Volume, PathBuf)>,
    secrets: BTreeMap<String, (Secret, PathBuf)>,
}

/// An `extends:` reference.
#[derive(Debug, Clone)]
struct Extends {
    service: String,
    file: Option<String>,
    path: String,
}

/// One file read and converted, before `include:` and `extends:` are followed.
#[derive(Debug)]
struct Parsed {
    name: Option<String>,
    includes: Vec<(String, String)>,
    services: BTreeMap<String, (Service, Option<Extends>)>,
    networks: BTreeMap<String, Network>,
    volumes: BTreeMap<String, Volume>,
    secrets: BTreeMap<String, Secret>,
}

/// The loading in progress: the variables, and what was read so far.
#[derive(Debug)]
struct Loader {
    env: Env,
    /// Every file read, for the lines of errors found after merging.
    texts: BTreeMap<PathBuf, String>,
}

impl Loader {
    fn ctx(&self, file: &Path) -> Ctx {
        Ctx {
            file: file.to_owned(),
            text: self.texts.get(file).cloned().unwrap_or_default(),
            base_dir: dir_of(file),
        }
    }
}

/// What the modules' unit tests share.
#[cfg(test)]
mod test_support {
    #![allow(clippy::unwrap_used)]
    use std::path::PathBuf;

    use serde_norway::Value;

    use super::Ctx;

    /// A file `compose.yml` in `/stack`, with no text.
    pub(super) fn ctx() -> Ctx {
        Ctx { file: PathBuf::from("compose.yml"), text: String::new(), base_dir: PathBuf::from("/stack") }
    }

    /// A YAML value.
    pub(super) fn yaml(s: &str) -> Value {
        serde_norway::from_str(s).unwrap()
    }
}
