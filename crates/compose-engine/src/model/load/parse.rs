//! One file read: YAML parsed (merge keys applied), `x-` extensions dropped, `${VAR}`
//! interpolated, the keys checked against the wire types, and the top-level sections converted.

use std::collections::BTreeMap;
use std::path::Path;

use serde_norway::Value;

use super::ctx::{Ctx, interpolation_error};
use super::service::convert_service;
use super::values::{flag, labels, strings};
use super::{Loader, Parsed};
use crate::model::error::{Location, ModelError};
use crate::model::interpolate::interpolate_tree;
use crate::model::lines::join;
use crate::model::{Network, Secret, Volume, wire};

impl Loader {
    /// Reads, interpolates, key-checks and converts one file.
    pub(super) fn parse(
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
}

fn strip_extensions(map: &mut serde_norway::Mapping) {
    map.retain(|k, _| !k.as_str().is_some_and(|k| k.starts_with("x-")));
}
