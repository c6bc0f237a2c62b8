//! The merged layer becomes the project: its name, the profiles applied, and the references
//! checked (images, healthchecks, dependencies and their cycles, networks, volumes, secrets).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::{Layer, Loader};
use crate::model::error::ModelError;
use crate::model::{MountSource, Network, Project, Secret, Service, Volume, normalize_project_name};

impl Loader {
    /// Profiles, defaults, references, cycles: the merged layer becomes the project.
    pub(super) fn finish(
        self,
        layer: Layer,
        working_dir: PathBuf,
        files: &[PathBuf],
        active: &[String],
    ) -> Result<Project, ModelError> {
        let first = files.first().cloned().unwrap_or_default();
        let name = match layer.name {
            Some(name) => name,
            None => {
                let dir = std::fs::canonicalize(&working_dir).unwrap_or(working_dir.clone());
                normalize_project_name(
                    &dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                )
            }
        };
        let name_ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'));
        if !name_ok {
            return Err(self.ctx(&first).invalid(
                "name",
                format!("`{name}` is not a valid project name"),
                "use lower-case letters, digits, `-` and `_`, starting with a letter or digit",
            ));
        }
        let enabled = |s: &Service| s.profiles.is_empty() || s.profiles.iter().any(|p| active.contains(p));
        let (services, disabled): (BTreeMap<_, _>, BTreeMap<_, _>) =
            layer.services.into_iter().partition(|(_, s)| enabled(s));
        let mut networks: BTreeMap<String, Network> =
            layer.networks.into_iter().map(|(k, (v, _))| (k, v)).collect();
        let volumes: BTreeMap<String, Volume> = layer.volumes.into_iter().map(|(k, (v, _))| (k, v)).collect();
        let secrets: BTreeMap<String, Secret> = layer.secrets.into_iter().map(|(k, (v, _))| (k, v)).collect();

        for (sname, s) in &services {
            let ctx = self.ctx(&s.defined_in);
            let path = |rest: &str| format!("services.{sname}.{rest}");
            if s.image.is_empty() {
                return Err(ctx.invalid(
                    &format!("services.{sname}"),
                    format!("service `{sname}` has no image"),
                    "set `image:` (`build:` is not supported)",
                ));
            }
            if let Some(h) = &s.healthcheck
                && !h.disabled
                && h.test.is_empty()
            {
                return Err(ctx.invalid(
                    &path("healthcheck"),
                    "the healthcheck has no `test`",
                    "add test: [\"CMD\", ...] or disable: true",
                ));
            }
            for dep in s.depends_on.keys() {
                let at = path(&format!("depends_on.{dep}"));
                if let Some(d) = disabled.get(dep) {
                    return Err(ModelError::DisabledDependency {
                        at: ctx.at(&at),
                        service: sname.clone(),
                        dependency: dep.clone(),
                        profiles: d.profiles.clone(),
                        active: active.to_vec(),
                    });
                }
                if !services.contains_key(dep) {
                    let known = services.keys().cloned().collect::<Vec<_>>().join(", ");
                    return Err(ctx.invalid(
                        &at,
                        format!("depends on `{dep}`, which no file defines"),
                        format!("check the name; the services are: {known}"),
                    ));
                }
            }
            for net in s.networks.keys() {
                if net != "default" && !networks.contains_key(net) {
                    return Err(ctx.invalid(
                        &path(&format!("networks.{net}")),
                        format!("network `{net}` is not declared"),
                        format!("declare it under the top-level `networks:` ({net}: {{}})"),
                    ));
                }
            }
            for (i, m) in s.volumes.iter().enumerate() {
                if let MountSource::Volume(v) = &m.source
                    && !volumes.contains_key(v)
                {
                    return Err(ctx.invalid(&path(&format!("volumes[{i}]")), format!("volume `{v}` is not declared"), format!("declare it under the top-level `volumes:` ({v}: {{}}), or write ./{v} for a bind mount")));
                }
            }
            for (i, m) in s.secrets.iter().enumerate() {
                if !secrets.contains_key(&m.source) {
                    return Err(ctx.invalid(
                        &path(&format!("secrets[{i}]")),
                        format!("secret `{}` is not declared", m.source),
                        format!("declare it under the top-level `secrets:` ({}: {{file: ./path}})", m.source),
                    ));
                }
            }
        }
        if services.values().any(|s| s.networks.is_empty() || s.networks.contains_key("default")) {
            networks.entry("default".to_owned()).or_default();
        }
        if let Some(cycle) = find_cycle(&services) {
            let first = &cycle[0];
            let at = self
                .ctx(&services[first].defined_in)
                .at(&format!("services.{first}.depends_on.{}", cycle[1]));
            return Err(ModelError::DependencyCycle { at, cycle });
        }
        Ok(Project { name, working_dir, files: files.to_vec(), services, networks, volumes, secrets })
    }
}

/// A `depends_on` cycle, as service names with the first repeated at the end.
fn find_cycle(services: &BTreeMap<String, Service>) -> Option<Vec<String>> {
    fn visit<'a>(
        name: &'a str,
        services: &'a BTreeMap<String, Service>,
        done: &mut BTreeSet<&'a str>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| *p == name) {
            let mut cycle: Vec<String> = path[i..].iter().map(|s| (*s).to_owned()).collect();
            cycle.push(name.to_owned());
            return Some(cycle);
        }
        if done.contains(name) {
            return None;
        }
        path.push(name);
        if let Some(s) = services.get(name) {
            for dep in s.depends_on.keys() {
                if let Some(cycle) = visit(dep, services, done, path) {
                    return Some(cycle);
                }
            }
        }
        path.pop();
        done.insert(name);
        None
    }
    let mut done = BTreeSet::new();
    services.keys().find_map(|name| visit(name, services, &mut done, &mut Vec::new()))
}
