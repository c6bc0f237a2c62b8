//! `extends:`: a service built on another of the same file or of `file:`, chains followed base
//! first, cycles refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::merge::merge_service;
use super::{Extends, Loader};
use crate::model::error::ModelError;
use crate::model::{Service, dir_of};

impl Loader {
    /// A service with its `extends:` chain applied (base first, then the service itself).
    pub(super) fn resolve_extends(
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
}
