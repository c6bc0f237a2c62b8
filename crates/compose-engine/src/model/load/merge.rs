//! compose's merge rules: the `-f` files override one another, and a service merges over the
//! one it extends.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::Layer;
use crate::model::{Healthcheck, Service};

impl Layer {
    /// `-f` semantics: `over` overrides.
    pub(super) fn override_with(&mut self, over: Layer) {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::model::{Mount, MountSource};

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
