//! `include:`: a file with the files it includes, each its own little project relative to its
//! directory, cycles refused; the same resource defined differently in two of them is a conflict.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::ctx::Ctx;
use super::{Layer, Loader};
use crate::model::error::{Location, ModelError};
use crate::model::{Service, dir_of};

impl Loader {
    /// One file with its includes and extends resolved. `stack` holds the files being
    /// included (canonical paths), for cycles.
    pub(super) fn load_file(
        &mut self,
        file: &Path,
        base_dir: &Path,
        stack: &mut Vec<(PathBuf, PathBuf)>,
        named_at: Option<Box<Location>>,
    ) -> Result<Layer, ModelError> {
        let canonical = std::fs::canonicalize(file).map_err(|source| ModelError::Read {
            at: named_at.clone().unwrap_or_else(|| Location::file(file, None)),
            source,
        })?;
        if stack.iter().any(|(c, _)| *c == canonical) {
            let mut chain: Vec<PathBuf> = stack.iter().map(|(_, shown)| shown.clone()).collect();
            chain.push(file.to_owned());
            let at = named_at.unwrap_or_else(|| Location::file(file, None));
            return Err(ModelError::IncludeCycle { at, chain });
        }
        stack.push((canonical, file.to_owned()));
        let parsed = self.parse(file, base_dir, named_at.as_deref())?;
        let ctx = self.ctx(file);
        let ctx = Ctx { base_dir: base_dir.to_owned(), ..ctx };

        // Included files first: each is its own little project, relative to its directory.
        let mut layer = Layer::default();
        for (included, path) in &parsed.includes {
            let target = ctx.host_path(included);
            let included_dir = dir_of(&target);
            let sub = self.load_file(&target, &included_dir, stack, Some(ctx.at(path)))?;
            self.import(&mut layer, sub)?;
        }
        stack.pop();

        // Then this file's own resources, which must not clash with the included ones.
        let mut own = Layer { name: parsed.name.clone(), ..Layer::default() };
        for name in parsed.services.keys() {
            let service = self.resolve_extends(file, &parsed.services, name, &mut Vec::new())?;
            own.services.insert(name.clone(), service);
        }
        fn tag<T>(m: BTreeMap<String, T>, file: &Path) -> BTreeMap<String, (T, PathBuf)> {
            m.into_iter().map(|(k, v)| (k, (v, file.to_owned()))).collect()
        }
        own.networks = tag(parsed.networks, file);
        own.volumes = tag(parsed.volumes, file);
        own.secrets = tag(parsed.secrets, file);
        self.import(&mut layer, own)?;
        layer.name = parsed.name;
        Ok(layer)
    }

    /// `include` semantics: `sub`'s resources join `into`; the same name defined differently is
    /// a conflict.
    fn import(&self, into: &mut Layer, sub: Layer) -> Result<(), ModelError> {
        for (name, service) in sub.services {
            if let Some(existing) = into.services.get(&name) {
                let same = Service { defined_in: PathBuf::new(), ..existing.clone() }
                    == Service { defined_in: PathBuf::new(), ..service.clone() };
                if !same {
                    let at = self.ctx(&service.defined_in).at(&format!("services.{name}"));
                    let other = existing.defined_in.clone();
                    return Err(ModelError::Conflict { at, kind: "service", name, other });
                }
                continue;
            }
            into.services.insert(name, service);
        }
        fn resources<T: PartialEq>(
            loader: &Loader,
            kind: &'static str,
            into: &mut BTreeMap<String, (T, PathBuf)>,
            sub: BTreeMap<String, (T, PathBuf)>,
        ) -> Result<(), ModelError> {
            for (name, (value, file)) in sub {
                if let Some((existing, other)) = into.get(&name) {
                    if *existing != value {
                        let at = loader.ctx(&file).at(&format!("{kind}s.{name}"));
                        return Err(ModelError::Conflict { at, kind, name, other: other.clone() });
                    }
                    continue;
                }
                into.insert(name, (value, file));
            }
            Ok(())
        }
        resources(self, "network", &mut into.networks, sub.networks)?;
        resources(self, "volume", &mut into.volumes, sub.volumes)?;
        resources(self, "secret", &mut into.secrets, sub.secrets)?;
        Ok(())
    }
}
