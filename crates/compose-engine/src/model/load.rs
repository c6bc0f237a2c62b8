//! Reading files into [`Project`]s: parse, strip `x-` extensions, interpolate, check the keys,
//! convert the values, follow `include:` and `extends:`, merge the `-f` files, apply profiles,
//! validate.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_norway::Value;

use super::error::{Location, ModelError};
use super::interpolate::{Failure, interpolate_tree, scalar_text};
use super::lines::{join, key_path, line_of};
use super::{
    Condition, Env, Healthcheck, Mount, MountSource, Network, Port, Project, Protocol, Restart, Secret,
    SecretMount, Service, ServiceNetwork, Volume, dir_of, normalize_project_name, wire,
};

/// The generic hint for keys the model does not know.
const KEYS_HINT: &str = "remove the key, or check its spelling; this model accepts only the compose keys listed in docs/compose-model.md";

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
        read_dotenv(&working_dir.join(".env"), &mut env)?;
    }
    let mut loader = Loader { env, texts: BTreeMap::new() };
    let mut project = Layer::default();
    for file in files {
        let layer = loader.load_file(file, &working_dir, &mut Vec::new(), None)?;
        project.override_with(layer);
    }
    loader.finish(project, working_dir, files, profiles)
}

/// Reads `KEY=VALUE` lines (`#` comments, blank lines, `export `, one level of quotes) into
/// `env` without replacing what the caller gave. A missing file is fine.
fn read_dotenv(path: &Path, env: &mut Env) -> Result<(), ModelError> {
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

/// What one file (with what it includes) contributes.
#[derive(Debug, Default)]
struct Layer {
    name: Option<String>,
    services: BTreeMap<String, Service>,
    networks: BTreeMap<String, (Network, PathBuf)>,
    volumes: BTreeMap<String, (Volume, PathBuf)>,
    secrets: BTreeMap<String, (Secret, PathBuf)>,
}

impl Layer {
    /// `-f` semantics: `over` overrides.
    fn override_with(&mut self, over: Layer) {
        if over.name.is_some() {
            self.name = over.name;
        }
        for (name, service) in over.services {
            match self.services.get_mut(&name) {
                Some(base) => merge_service(base, service),
                None => {
                    self.services.insert(name, service);
                }
            }
        }
        fn replace<T: Default + PartialEq>(
            base: &mut BTreeMap<String, (T, PathBuf)>,
            over: BTreeMap<String, (T, PathBuf)>,
        ) {
            for (name, (value, file)) in over {
                // A bare reference (`name:` with no body) in an override keeps the definition.
                if value == T::default() && base.contains_key(&name) {
                    continue;
                }
                base.insert(name, (value, file));
            }
        }
        replace(&mut self.networks, over.networks);
        replace(&mut self.volumes, over.volumes);
        self.secrets.extend(over.secrets);
    }
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

#[derive(Debug)]
struct Loader {
    env: Env,
    /// Every file read, for the lines of errors found after merging.
    texts: BTreeMap<PathBuf, String>,
}

/// Errors about one file.
#[derive(Debug, Clone)]
struct Ctx {
    file: PathBuf,
    text: String,
    /// What relative host paths are resolved against.
    base_dir: PathBuf,
}

impl Ctx {
    fn at(&self, path: &str) -> Box<Location> {
        Box::new(Location { file: self.file.clone(), line: line_of(&self.text, path), path: path.to_owned() })
    }

    fn invalid(&self, path: &str, message: impl Into<String>, hint: impl Into<String>) -> ModelError {
        ModelError::Invalid { at: self.at(path), message: message.into(), hint: hint.into() }
    }

    fn unsupported(&self, path: &str, feature: impl Into<String>, hint: impl Into<String>) -> ModelError {
        ModelError::Unsupported { at: self.at(path), feature: feature.into(), hint: hint.into() }
    }

    /// Deserializes `value` (found at `path`) into a key-checked wire type.
    fn typed<T: DeserializeOwned>(&self, path: &str, value: Value) -> Result<T, ModelError> {
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
    fn host_path(&self, raw: &str) -> PathBuf {
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

impl Loader {
    fn ctx(&self, file: &Path) -> Ctx {
        Ctx {
            file: file.to_owned(),
            text: self.texts.get(file).cloned().unwrap_or_default(),
            base_dir: dir_of(file),
        }
    }

    /// Reads, interpolates, key-checks and converts one file.
    fn parse(
        &mut self,
        file: &Path,
        base_dir: &Path,
        named_at: Option<&Location>,
    ) -> Result<Parsed, ModelError> {
        let text = std::fs::read_to_string(file).map_err(|source| ModelError::Read {
            at: named_at.map(|l| Box::new(l.clone())).unwrap_or_else(|| Location::file(file, None)),
            source,
        })?;
        self.texts.insert(file.to_owned(), text.clone());
        let ctx = Ctx { file: file.to_owned(), text, base_dir: base_dir.to_owned() };
        let mut doc: Value = serde_norway::from_str(&ctx.text).map_err(|e| {
            let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
            let message = e.to_string();
            let message = message.rfind(" at line ").map_or(message.clone(), |i| message[..i].to_owned());
            ModelError::Syntax { file: file.to_owned(), line, column, message }
        })?;
        doc.apply_merge().map_err(|e| {
            ctx.invalid("", format!("YAML merge key (<<): {e}"), "merge only mappings into mappings")
        })?;
        if doc.is_null() {
            doc = Value::Mapping(Default::default());
        }
        let Value::Mapping(top) = &mut doc else {
            return Err(ctx.invalid(
                "",
                "the document is not a mapping",
                "a compose file is a mapping with `services:` at the top",
            ));
        };
        if top.contains_key("version") {
            return Err(ctx.unsupported(
                "version",
                "the top-level `version`",
                "remove it: it is obsolete and compose ignores it",
            ));
        }
        strip_extensions(top);
        for section in ["services", "networks", "volumes", "secrets"] {
            if let Some(Value::Mapping(items)) = top.get_mut(section) {
                for (_, item) in items.iter_mut() {
                    if let Value::Mapping(item) = item {
                        strip_extensions(item);
                    }
                }
            }
        }
        let env = &self.env;
        let lookup = |var: &str| env.get(var).map(str::to_owned);
        interpolate_tree(&mut doc, "", &lookup, &|path, failure| interpolation_error(&ctx, path, failure))?;
        let wire: wire::File = ctx.typed("", doc)?;

        let mut includes = Vec::new();
        for (i, entry) in wire.include.into_iter().enumerate() {
            let path = format!("include[{i}]");
            match entry {
                Value::String(s) => includes.push((s, path)),
                Value::Mapping(_) => {
                    let long: wire::IncludeLong = ctx.typed(&path, entry)?;
                    let paths = strings(&ctx, &join(&path, "path"), long.path)?;
                    if paths.len() > 1 {
                        return Err(ctx.unsupported(
                            &join(&path, "path"),
                            "an include of several files merged together",
                            "include each file on its own",
                        ));
                    }
                    includes.extend(paths.into_iter().map(|p| (p, join(&path, "path"))));
                }
                _ => {
                    return Err(ctx.invalid(
                        &path,
                        "an include is a path or a mapping with `path:`",
                        "write `- ../kms/compose.yml`",
                    ));
                }
            }
        }
        let mut services = BTreeMap::new();
        for (name, body) in wire.services {
            let service = convert_service(&ctx, &name, body.unwrap_or_default())?;
            services.insert(name, service);
        }
        let mut networks = BTreeMap::new();
        for (name, body) in wire.networks {
            let path = format!("networks.{name}");
            let network = match body {
                None => Network::default(),
                Some(n) => Network {
                    name: n.name,
                    external: flag(&ctx, &join(&path, "external"), n.external)?.unwrap_or(false),
                    internal: flag(&ctx, &join(&path, "internal"), n.internal)?.unwrap_or(false),
                    driver: n.driver,
                    labels: labels(&ctx, &join(&path, "labels"), n.labels)?,
                },
            };
            networks.insert(name, network);
        }
        let mut volumes = BTreeMap::new();
        for (name, body) in wire.volumes {
            let path = format!("volumes.{name}");
            let volume = match body {
                None => Volume::default(),
                Some(v) => Volume {
                    name: v.name,
                    external: flag(&ctx, &join(&path, "external"), v.external)?.unwrap_or(false),
                    driver: v.driver,
                    labels: labels(&ctx, &join(&path, "labels"), v.labels)?,
                },
            };
            volumes.insert(name, volume);
        }
        let mut secrets = BTreeMap::new();
        for (name, body) in wire.secrets {
            let Some(file) = body.and_then(|s| s.file) else {
                return Err(ctx.invalid(
                    &format!("secrets.{name}"),
                    "the secret has no `file:`",
                    "only file secrets are supported: `file: ./path`",
                ));
            };
            secrets.insert(name, Secret { file: ctx.host_path(&file) });
        }
        Ok(Parsed { name: wire.name, includes, services, networks, volumes, secrets })
    }

    /// One file with its includes and extends resolved. `stack` holds the files being
    /// included (canonical paths), for cycles.
    fn load_file(
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

    /// A service with its `extends:` chain applied (base first, then the service itself).
    fn resolve_extends(
        &mut self,
        file: &Path,
        services: &BTreeMap<String, (Service, Option<Extends>)>,
        name: &str,
        chain: &mut Vec<(PathBuf, String)>,
    ) -> Result<Service, ModelError> {
        let ctx = self.ctx(file);
        let Some((service, extends)) = services.get(name) else {
            return Err(ctx.invalid(
                "services",
                format!("no service `{name}` in this file"),
                "extends names a service of this file, or `file:` and `service:`",
            ));
        };
        let Some(ext) = extends else { return Ok(service.clone()) };
        let key = (file.to_owned(), name.to_owned());
        if chain.contains(&key) {
            let cycle: Vec<String> =
                chain.iter().chain([&key]).map(|(f, s)| format!("{}:{s}", f.display())).collect();
            return Err(ctx.invalid(
                &ext.path,
                format!("extends cycle: {}", cycle.join(" -> ")),
                "remove one of these extends",
            ));
        }
        chain.push(key);
        let mut base = match &ext.file {
            None => {
                if !services.contains_key(&ext.service) {
                    return Err(ctx.invalid(
                        &ext.path,
                        format!("extends `{}`, which this file does not define", ext.service),
                        "name a service of this file, or add `file:`",
                    ));
                }
                self.resolve_extends(file, services, &ext.service, chain)?
            }
            Some(other) => {
                let other = ctx.host_path(other);
                let parsed = self.parse(&other, &dir_of(&other), Some(&*ctx.at(&ext.path)))?;
                if !parsed.includes.is_empty() {
                    return Err(ctx.unsupported(
                        &ext.path,
                        "extends from a file that uses include",
                        "extend a service of a file without `include:`",
                    ));
                }
                if !parsed.services.contains_key(&ext.service) {
                    return Err(ctx.invalid(
                        &ext.path,
                        format!("extends `{}`, which {} does not define", ext.service, other.display()),
                        "check the service name",
                    ));
                }
                self.resolve_extends(&other, &parsed.services, &ext.service, chain)?
            }
        };
        chain.pop();
        base.defined_in = file.to_owned();
        merge_service(&mut base, service.clone());
        Ok(base)
    }

    /// Profiles, defaults, references, cycles: the merged layer becomes the project.
    fn finish(
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

fn strip_extensions(map: &mut serde_norway::Mapping) {
    map.retain(|k, _| !k.as_str().is_some_and(|k| k.starts_with("x-")));
}

fn interpolation_error(ctx: &Ctx, path: &str, failure: Failure) -> ModelError {
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

/// compose's merge rules for the fields we support (`over` wins).
pub(super) fn merge_service(base: &mut Service, over: Service) {
    if !over.image.is_empty() {
        base.image = over.image;
    }
    base.command = over.command.or(base.command.take());
    base.entrypoint = over.entrypoint.or(base.entrypoint.take());
    base.user = over.user.or(base.user.take());
    base.init = over.init.or(base.init);
    base.stop_grace_period = over.stop_grace_period.or(base.stop_grace_period);
    base.restart = over.restart.or(base.restart);
    base.environment.extend(over.environment);
    base.labels.extend(over.labels);
    base.depends_on.extend(over.depends_on);
    for port in over.ports {
        if !base.ports.contains(&port) {
            base.ports.push(port);
        }
    }
    for mount in over.volumes {
        base.volumes.retain(|m| m.target != mount.target);
        base.volumes.push(mount);
    }
    for secret in over.secrets {
        base.secrets.retain(|s| s.target != secret.target);
        base.secrets.push(secret);
    }
    for (name, net) in over.networks {
        let entry = base.networks.entry(name).or_default();
        for alias in net.aliases {
            if !entry.aliases.contains(&alias) {
                entry.aliases.push(alias);
            }
        }
    }
    for profile in over.profiles {
        if !base.profiles.contains(&profile) {
            base.profiles.push(profile);
        }
    }
    base.healthcheck = match (base.healthcheck.take(), over.healthcheck) {
        (None, over) => over,
        (base, None) => base,
        (Some(b), Some(o)) => Some(Healthcheck {
            disabled: o.disabled || (b.disabled && o.test.is_empty()),
            test: if o.disabled || !o.test.is_empty() { o.test } else { b.test },
            interval: o.interval.or(b.interval),
            timeout: o.timeout.or(b.timeout),
            retries: o.retries.or(b.retries),
            start_period: o.start_period.or(b.start_period),
        }),
    };
}

fn convert_service(
    ctx: &Ctx,
    name: &str,
    w: wire::Service,
) -> Result<(Service, Option<Extends>), ModelError> {
    let p = |key: &str| format!("services.{name}.{key}");
    let extends = match w.extends {
        None => None,
        Some(Value::String(service)) => Some(Extends { service, file: None, path: p("extends") }),
        Some(v) => {
            let e: wire::Extends = ctx.typed(&p("extends"), v)?;
            Some(Extends { service: e.service, file: e.file, path: p("extends") })
        }
    };
    let mut service = Service {
        defined_in: ctx.file.clone(),
        image: w.image.unwrap_or_default(),
        command: w.command.map(|v| argv(ctx, &p("command"), v)).transpose()?.flatten(),
        entrypoint: w.entrypoint.map(|v| argv(ctx, &p("entrypoint"), v)).transpose()?.flatten(),
        environment: environment(ctx, &p("environment"), w.environment)?,
        labels: labels(ctx, &p("labels"), w.labels)?,
        user: w.user.map(|v| scalar(ctx, &p("user"), v)).transpose()?,
        init: flag(ctx, &p("init"), w.init)?,
        profiles: w.profiles.unwrap_or_default(),
        restart: w.restart.map(|r| restart(ctx, &p("restart"), &r)).transpose()?,
        stop_grace_period: w
            .stop_grace_period
            .map(|d| duration(ctx, &p("stop_grace_period"), &d))
            .transpose()?,
        ..Service::default()
    };
    for (i, v) in w.ports.unwrap_or_default().into_iter().enumerate() {
        service.ports.push(port(ctx, &format!("{}[{i}]", p("ports")), v)?);
    }
    for (i, v) in w.volumes.unwrap_or_default().into_iter().enumerate() {
        service.volumes.push(mount(ctx, &format!("{}[{i}]", p("volumes")), v)?);
    }
    for (i, v) in w.secrets.unwrap_or_default().into_iter().enumerate() {
        let path = format!("{}[{i}]", p("secrets"));
        let (source, target) = match v {
            Value::String(s) => (s, None),
            v @ Value::Mapping(_) => {
                let long: wire::SecretLong = ctx.typed(&path, v)?;
                (long.source, long.target)
            }
            _ => {
                return Err(ctx.invalid(
                    &path,
                    "a secret is a name or a mapping with `source:`",
                    "write `- kms_token`",
                ));
            }
        };
        let target = match target {
            Some(t) if t.starts_with('/') => t,
            Some(t) => format!("/run/secrets/{t}"),
            None => format!("/run/secrets/{source}"),
        };
        service.secrets.push(SecretMount { source, target });
    }
    if let Some(nets) = w.networks {
        let path = p("networks");
        match nets {
            Value::Sequence(items) => {
                for (i, item) in items.into_iter().enumerate() {
                    let net = scalar(ctx, &format!("{path}[{i}]"), item)?;
                    service.networks.insert(net, ServiceNetwork::default());
                }
            }
            Value::Mapping(map) => {
                for (k, v) in map {
                    let net = scalar_text(&k);
                    let np = join(&path, &net);
                    let aliases = match v {
                        Value::Null => Vec::new(),
                        v => ctx.typed::<wire::ServiceNetwork>(&np, v)?.aliases.unwrap_or_default(),
                    };
                    service.networks.insert(net, ServiceNetwork { aliases });
                }
            }
            _ => {
                return Err(ctx.invalid(
                    &path,
                    "networks is a list of names or a mapping",
                    "write `networks: [kms]` or `networks: {kms: {aliases: [kms.demo.local]}}`",
                ));
            }
        }
    }
    if let Some(deps) = w.depends_on {
        let path = p("depends_on");
        match deps {
            Value::Sequence(items) => {
                for (i, item) in items.into_iter().enumerate() {
                    service
                        .depends_on
                        .insert(scalar(ctx, &format!("{path}[{i}]"), item)?, Condition::Started);
                }
            }
            Value::Mapping(map) => {
                for (k, v) in map {
                    let dep = scalar_text(&k);
                    let dp = join(&path, &dep);
                    let condition =
                        match v {
                            Value::Null => Condition::Started,
                            v => match ctx.typed::<wire::DependsOn>(&dp, v)?.condition.as_deref() {
                                None | Some("service_started") => Condition::Started,
                                Some("service_healthy") => Condition::Healthy,
                                Some("service_completed_successfully") => Condition::CompletedSuccessfully,
                                Some(other) => return Err(ctx.invalid(
                                    &join(&dp, "condition"),
                                    format!("unknown condition `{other}`"),
                                    "use service_started, service_healthy or service_completed_successfully",
                                )),
                            },
                        };
                    service.depends_on.insert(dep, condition);
                }
            }
            _ => {
                return Err(ctx.invalid(
                    &path,
                    "depends_on is a list of names or a mapping",
                    "write `depends_on: {db: {condition: service_healthy}}`",
                ));
            }
        }
    }
    if let Some(h) = w.healthcheck {
        service.healthcheck = Some(healthcheck(ctx, name, &p("healthcheck"), h)?);
    }
    Ok((service, extends))
}

fn healthcheck(
    ctx: &Ctx,
    service: &str,
    path: &str,
    h: wire::Healthcheck,
) -> Result<Healthcheck, ModelError> {
    let test_path = join(path, "test");
    let shell = || ModelError::ShellHealthcheck { at: ctx.at(&test_path), service: service.to_owned() };
    let mut check = Healthcheck {
        interval: h.interval.map(|d| duration(ctx, &join(path, "interval"), &d)).transpose()?,
        timeout: h.timeout.map(|d| duration(ctx, &join(path, "timeout"), &d)).transpose()?,
        start_period: h.start_period.map(|d| duration(ctx, &join(path, "start_period"), &d)).transpose()?,
        retries: h.retries.map(|v| number(ctx, &join(path, "retries"), v)).transpose()?,
        disabled: flag(ctx, &join(path, "disable"), h.disable)?.unwrap_or(false),
        test: Vec::new(),
    };
    match h.test {
        None => {}
        Some(Value::String(_)) => return Err(shell()),
        Some(v @ Value::Sequence(_)) => {
            let args = strings(ctx, &test_path, v)?;
            match args.split_first() {
                Some((first, rest)) if first == "CMD" && !rest.is_empty() => check.test = rest.to_vec(),
                Some((first, rest)) if first == "NONE" && rest.is_empty() => check.disabled = true,
                Some((first, _)) if first == "CMD-SHELL" => return Err(shell()),
                _ => {
                    return Err(ctx.invalid(
                        &test_path,
                        "test must start with \"CMD\" followed by the command, or be [\"NONE\"]",
                        "write test: [\"CMD\", \"/demo\", \"healthcheck\", ...]",
                    ));
                }
            }
        }
        Some(_) => {
            return Err(ctx.invalid(
                &test_path,
                "test is a list",
                "write test: [\"CMD\", \"/demo\", \"healthcheck\", ...]",
            ));
        }
    }
    Ok(check)
}

/// A Go-style duration: `1s`, `1m30s`, `500ms`, `1.5s`.
fn duration(ctx: &Ctx, path: &str, raw: &str) -> Result<Duration, ModelError> {
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

fn restart(ctx: &Ctx, path: &str, raw: &str) -> Result<Restart, ModelError> {
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
fn scalar(ctx: &Ctx, path: &str, v: Value) -> Result<String, ModelError> {
    match v {
        Value::String(s) => Ok(s),
        Value::Number(_) | Value::Bool(_) => Ok(scalar_text(&v)),
        _ => Err(ctx.invalid(path, "expected a string", "write a single value here")),
    }
}

/// A string or a list of strings, as a list.
fn strings(ctx: &Ctx, path: &str, v: Value) -> Result<Vec<String>, ModelError> {
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
fn argv(ctx: &Ctx, path: &str, v: Value) -> Result<Option<Vec<String>>, ModelError> {
    match v {
        Value::Null => Ok(None),
        v @ Value::Sequence(_) => strings(ctx, path, v).map(Some),
        Value::String(_) => Err(ctx.unsupported(path, "the string form of command/entrypoint", "write it as a list (exec form), e.g. [\"serve\", \"--config\", \"/etc/demo/kms.yml\"]: there is no shell to split it")),
        _ => Err(ctx.invalid(path, "expected a list of strings", "write it as a list (exec form)")),
    }
}

/// A boolean, also from the strings `true`/`false` interpolation leaves.
fn flag(ctx: &Ctx, path: &str, v: Option<Value>) -> Result<Option<bool>, ModelError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(Value::String(s)) if s == "true" => Ok(Some(true)),
        Some(Value::String(s)) if s == "false" => Ok(Some(false)),
        Some(_) => Err(ctx.invalid(path, "expected true or false", "write true or false")),
    }
}

/// A non-negative number, also from a string interpolation left.
fn number<T: TryFrom<u64>>(ctx: &Ctx, path: &str, v: Value) -> Result<T, ModelError> {
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

fn environment(ctx: &Ctx, path: &str, v: Option<Value>) -> Result<BTreeMap<String, String>, ModelError> {
    key_values(ctx, path, v, &|p, key| {
        Err(ctx.invalid(
            p,
            format!("`{key}` has no value"),
            format!("give it one (`{key}: value` or `{key}: ${{{key}}}` to take it from the environment)"),
        ))
    })
}

fn labels(ctx: &Ctx, path: &str, v: Option<Value>) -> Result<BTreeMap<String, String>, ModelError> {
    key_values(ctx, path, v, &|_, _| Ok(String::new()))
}

fn port(ctx: &Ctx, path: &str, v: Value) -> Result<Port, ModelError> {
    let hint = "write \"8081\", \"8081:8081\", \"127.0.0.1:8081:8081\" or {target: 8081, published: 8081, host_ip: 127.0.0.1}";
    let bad = |message: String| ctx.invalid(path, message, hint);
    let port_number = |raw: &str, what: &str| -> Result<u16, ModelError> {
        if raw.contains('-') {
            return Err(ctx.unsupported(path, "port ranges", "publish each port on its own"));
        }
        raw.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad(format!("{what} `{raw}` is not a port number (1-65535)")))
    };
    let protocol = |raw: &str| match raw {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        other => Err(bad(format!("unknown protocol `{other}`; use tcp or udp"))),
    };
    let ip = |raw: &str| raw.parse::<IpAddr>().map_err(|_| bad(format!("`{raw}` is not an IP address")));
    match v {
        Value::Number(n) => {
            let raw = n.to_string();
            Ok(Port {
                host_ip: None,
                published: None,
                target: port_number(&raw, "the container port")?,
                protocol: Protocol::Tcp,
            })
        }
        Value::String(s) => {
            let (spec, proto) = s
                .split_once('/')
                .map_or((s.as_str(), Protocol::Tcp), |(a, b)| (a, protocol(b).unwrap_or_default()));
            if let Some((_, b)) = s.split_once('/') {
                protocol(b)?;
            }
            let (host_ip, rest) = match spec.strip_prefix('[') {
                Some(v6) => {
                    let (addr, rest) = v6
                        .split_once("]:")
                        .ok_or_else(|| bad(format!("`{s}`: expected [address]:published:target")))?;
                    (Some(ip(addr)?), rest)
                }
                None => match spec.matches(':').count() {
                    2 => {
                        let (addr, rest) = spec.split_once(':').unwrap_or_default();
                        (Some(ip(addr)?), rest)
                    }
                    0 | 1 => (None, spec),
                    _ => return Err(bad(format!("`{s}` has too many `:`"))),
                },
            };
            let (published, target) = match rest.split_once(':') {
                Some(("", t)) => (None, t),
                Some((p, t)) => (Some(port_number(p, "the published port")?), t),
                None if host_ip.is_some() => {
                    return Err(bad(format!("`{s}`: expected address:published:target")));
                }
                None => (None, rest),
            };
            Ok(Port {
                host_ip,
                published,
                target: port_number(target, "the container port")?,
                protocol: proto,
            })
        }
        v @ Value::Mapping(_) => {
            let long: wire::PortLong = ctx.typed(path, v)?;
            let target =
                port_number(&scalar(ctx, &join(path, "target"), long.target)?, "the container port")?;
            let published = match long.published {
                None | Some(Value::Null) => None,
                Some(p) => {
                    let raw = scalar(ctx, &join(path, "published"), p)?;
                    if raw.is_empty() { None } else { Some(port_number(&raw, "the published port")?) }
                }
            };
            let host_ip = long.host_ip.as_deref().map(ip).transpose()?;
            let protocol = long.protocol.as_deref().map(protocol).transpose()?.unwrap_or_default();
            Ok(Port { host_ip, published, target, protocol })
        }
        _ => Err(bad("a port is a string, a number or a mapping".to_owned())),
    }
}

fn mount(ctx: &Ctx, path: &str, v: Value) -> Result<Mount, ModelError> {
    let hint = "write `name:/path[:ro]` (named volume), `./dir:/path[:ro]` (bind) or {type: volume, source: name, target: /path}";
    let is_host_path = |s: &str| s.starts_with('.') || s.starts_with('/') || s.starts_with('~');
    let host = |s: &str| -> Result<PathBuf, ModelError> {
        if s.starts_with('~') {
            return Err(ctx.unsupported(
                path,
                "`~` in a bind mount",
                "write the path relative to the compose file or absolute",
            ));
        }
        Ok(ctx.host_path(s))
    };
    let check_target = |t: &str| -> Result<(), ModelError> {
        if t.starts_with('/') {
            Ok(())
        } else {
            Err(ctx.invalid(path, format!("the target `{t}` is not an absolute path"), hint))
        }
    };
    match v {
        Value::String(s) => {
            let parts: Vec<&str> = s.split(':').collect();
            let (source, target, read_only) = match parts.as_slice() {
                [_] => {
                    return Err(ctx.unsupported(
                        path,
                        "anonymous volumes",
                        "name the volume: `data:/var/lib/demo` and declare `data` under `volumes:`",
                    ));
                }
                [source, target] => (*source, *target, false),
                [source, target, "ro"] => (*source, *target, true),
                [source, target, "rw"] => (*source, *target, false),
                [_, _, mode] => {
                    return Err(ctx.unsupported(path, format!("the mount option `{mode}`"), "use ro or rw"));
                }
                _ => return Err(ctx.invalid(path, format!("`{s}` has too many `:`"), hint)),
            };
            check_target(target)?;
            let source = if is_host_path(source) {
                MountSource::Bind(host(source)?)
            } else {
                MountSource::Volume(source.to_owned())
            };
            Ok(Mount { source, target: target.to_owned(), read_only })
        }
        v @ Value::Mapping(_) => {
            let long: wire::VolumeLong = ctx.typed(path, v)?;
            check_target(&long.target)?;
            let read_only = flag(ctx, &join(path, "read_only"), long.read_only)?.unwrap_or(false);
            let need_source = || {
                long.source
                    .clone()
                    .ok_or_else(|| ctx.invalid(path, format!("a {} mount needs `source:`", long.kind), hint))
            };
            let source = match long.kind.as_str() {
                "volume" => MountSource::Volume(need_source()?),
                "bind" => MountSource::Bind(host(&need_source()?)?),
                "tmpfs" => MountSource::Tmpfs,
                other => {
                    return Err(ctx.unsupported(
                        &join(path, "type"),
                        format!("mount type `{other}`"),
                        "use volume, bind or tmpfs",
                    ));
                }
            };
            Ok(Mount { source, target: long.target, read_only })
        }
        _ => Err(ctx.invalid(path, "a volume is a string or a mapping", hint)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ctx() -> Ctx {
        Ctx { file: PathBuf::from("compose.yml"), text: String::new(), base_dir: PathBuf::from("/stack") }
    }

    fn yaml(s: &str) -> Value {
        serde_norway::from_str(s).unwrap()
    }

    #[test]
    fn short_ports() {
        let p = |s: &str| port(&ctx(), "p", Value::String(s.into())).unwrap();
        assert_eq!(p("8081"), Port { host_ip: None, published: None, target: 8081, protocol: Protocol::Tcp });
        assert_eq!(p("9000:8081").published, Some(9000));
        let full = p("127.0.0.1:8081:8081");
        assert_eq!(full.host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!((full.published, full.target), (Some(8081), 8081));
        assert_eq!(p("127.0.0.1::8081").published, None);
        assert_eq!(p("[::1]:8081:8081").host_ip, Some("::1".parse().unwrap()));
        assert_eq!(p("53:53/udp").protocol, Protocol::Udp);
        assert_eq!(port(&ctx(), "p", yaml("8081")).unwrap().target, 8081);
    }

    #[test]
    fn long_ports() {
        let v = yaml("{target: 8081, published: \"9001\", host_ip: 127.0.0.1, protocol: tcp}");
        let p = port(&ctx(), "p", v).unwrap();
        assert_eq!((p.published, p.target), (Some(9001), 8081));
        let err = port(&ctx(), "services.a.ports[0]", yaml("{target: 1, mode: host}")).unwrap_err();
        assert!(err.to_string().contains("services.a.ports[0].mode"), "{err}");
    }

    #[test]
    fn bad_ports() {
        for bad in ["0", "70000", "a:b", "1.2.3:80:80", "8000-8010:8000-8010", "80/sctp", "1:2:3:4"] {
            assert!(port(&ctx(), "p", Value::String(bad.into())).is_err(), "{bad}");
        }
    }

    #[test]
    fn mounts() {
        let m = |s: &str| mount(&ctx(), "m", Value::String(s.into()));
        assert_eq!(m("data:/var/lib/demo").unwrap().source, MountSource::Volume("data".into()));
        let bind = m("./config:/etc/demo:ro").unwrap();
        assert_eq!(bind.source, MountSource::Bind(PathBuf::from("/stack/config")));
        assert_eq!(m("../up:/x").unwrap().source, MountSource::Bind(PathBuf::from("/up")));
        assert!(bind.read_only);
        assert!(matches!(m("/data").unwrap_err(), ModelError::Unsupported { .. }));
        assert!(m("data:relative").is_err());
        assert!(m("data:/x:z").is_err());
        let long = mount(&ctx(), "m", yaml("{type: tmpfs, target: /tmp}")).unwrap();
        assert_eq!(long.source, MountSource::Tmpfs);
    }

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

    #[test]
    fn merge_follows_compose_rules() {
        let mut base = Service {
            image: "a".into(),
            command: Some(vec!["x".into()]),
            environment: [("A".into(), "1".into()), ("B".into(), "1".into())].into(),
            volumes: vec![Mount {
                source: MountSource::Volume("v".into()),
                target: "/d".into(),
                read_only: false,
            }],
            ..Service::default()
        };
        let over = Service {
            command: Some(vec!["y".into()]),
            environment: [("B".into(), "2".into())].into(),
            volumes: vec![Mount { source: MountSource::Tmpfs, target: "/d".into(), read_only: true }],
            ..Service::default()
        };
        merge_service(&mut base, over);
        assert_eq!(base.image, "a");
        assert_eq!(base.command, Some(vec!["y".to_owned()]));
        assert_eq!(base.environment["A"], "1");
        assert_eq!(base.environment["B"], "2");
        assert_eq!(base.volumes.len(), 1);
        assert_eq!(base.volumes[0].source, MountSource::Tmpfs);
    }
}
