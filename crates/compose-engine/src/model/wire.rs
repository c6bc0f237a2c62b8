//! The file format's keys: which keys each level accepts (`deny_unknown_fields`), nothing more.
//! Values whose shape varies (`"8081:8081"` or a mapping, a list or a mapping…) stay
//! [`Value`]s here and are read by `load`, which knows their path for its errors.
//! `x-` extension keys are removed before these types see a level that allows them.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_norway::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct File {
    pub name: Option<String>,
    #[serde(default)]
    pub include: Vec<Value>,
    #[serde(default)]
    pub services: BTreeMap<String, Option<Service>>,
    #[serde(default)]
    pub networks: BTreeMap<String, Option<Network>>,
    #[serde(default)]
    pub volumes: BTreeMap<String, Option<Volume>>,
    #[serde(default)]
    pub secrets: BTreeMap<String, Option<Secret>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Service {
    pub image: Option<String>,
    pub command: Option<Value>,
    pub entrypoint: Option<Value>,
    pub environment: Option<Value>,
    pub ports: Option<Vec<Value>>,
    pub networks: Option<Value>,
    pub volumes: Option<Vec<Value>>,
    pub secrets: Option<Vec<Value>>,
    pub healthcheck: Option<Healthcheck>,
    pub depends_on: Option<Value>,
    pub user: Option<Value>,
    pub init: Option<Value>,
    pub labels: Option<Value>,
    pub profiles: Option<Vec<String>>,
    pub restart: Option<String>,
    pub stop_grace_period: Option<String>,
    pub extends: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Healthcheck {
    pub test: Option<Value>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub retries: Option<Value>,
    pub start_period: Option<String>,
    pub disable: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PortLong {
    pub target: Value,
    pub published: Option<Value>,
    pub host_ip: Option<String>,
    pub protocol: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VolumeLong {
    #[serde(rename = "type")]
    pub kind: String,
    pub source: Option<String>,
    pub target: String,
    pub read_only: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SecretLong {
    pub source: String,
    pub target: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServiceNetwork {
    pub aliases: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DependsOn {
    pub condition: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Extends {
    pub service: String,
    pub file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IncludeLong {
    pub path: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Network {
    pub name: Option<String>,
    pub external: Option<Value>,
    pub internal: Option<Value>,
    pub driver: Option<String>,
    pub labels: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Volume {
    pub name: Option<String>,
    pub external: Option<Value>,
    pub driver: Option<String>,
    pub labels: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Secret {
    pub file: Option<String>,
}
