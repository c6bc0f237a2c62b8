//! One service's wire form converted to a [`Service`]: command, environment, secrets, networks,
//! `depends_on`, healthcheck (ports, mounts and scalar values have their own modules).

use serde_norway::Value;

use super::Extends;
use super::ctx::Ctx;
use super::mounts::mount;
use super::ports::port;
use super::values::{argv, duration, environment, flag, labels, number, restart, scalar, strings};
use crate::model::error::ModelError;
use crate::model::interpolate::scalar_text;
use crate::model::lines::join;
use crate::model::{Condition, Healthcheck, SecretMount, Service, ServiceNetwork, wire};

pub(super) fn convert_service(
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
                    "write `networks: [kms]` or `networks: {kms: {aliases: [kms.internal]}}`",
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
                        "write test: [\"CMD\", \"/app\", \"healthcheck\", ...]",
                    ));
                }
            }
        }
        Some(_) => {
            return Err(ctx.invalid(
                &test_path,
                "test is a list",
                "write test: [\"CMD\", \"/app\", \"healthcheck\", ...]",
            ));
        }
    }
    Ok(check)
}
