//! `include:` relative to the including file, diamonds, cycles, conflicts; `extends:`.

use std::path::Path;

use compose_engine::model::{ModelError, MountSource};

use crate::{fail, fixture, load};

#[test]
fn includes_resolve_relative_to_the_including_file() {
    let p = load(&["include/all/compose.yml"], &[]).unwrap();
    assert_eq!(p.services.keys().collect::<Vec<_>>(), ["gateway", "kms", "otel"]);
    let kms = &p.services["kms"];
    // ./config in include/kms/compose.yml is include/kms/config, not include/all/config.
    let MountSource::Bind(config) = &kms.volumes[0].source else { panic!("{:?}", kms.volumes) };
    assert!(config.ends_with(Path::new("include/kms/config")), "{}", config.display());
    assert!(p.secrets["kms_token"].file.ends_with(Path::new("include/kms/secrets/kms_token")));
    assert!(kms.defined_in.ends_with("include/kms/compose.yml"));
    // telemetry is included twice (by all and by kms): identical definitions are one.
    assert!(p.networks.contains_key("telemetry") && p.networks.contains_key("kms"));
    // The project is named after the first file's directory.
    assert_eq!(p.name, "all");
    assert_eq!(p.start_order(), ["kms", "gateway", "otel"]);
}

#[test]
fn an_include_cycle_is_reported_with_its_chain() {
    let (err, text) = fail(&["include_cycle/a.yml"], &[]);
    let ModelError::IncludeCycle { at, chain } = &err else { panic!("{err:?}") };
    assert_eq!(chain.len(), 3, "{chain:?}");
    assert!(chain[0].ends_with("a.yml") && chain[1].ends_with("b.yml") && chain[2].ends_with("a.yml"));
    assert!(at.file.ends_with("include_cycle/b.yml"));
    assert_eq!(at.path, "include[0]");
    assert_eq!(at.line, Some(2));
    assert!(text.contains("include cycle:"), "{text}");
}

#[test]
fn a_conflict_between_included_and_including_is_an_error() {
    let (err, text) = fail(&["include_conflict/compose.yml"], &[]);
    let ModelError::Conflict { at, kind, name, other } = &err else { panic!("{err:?}") };
    assert_eq!((*kind, name.as_str()), ("service", "kms"));
    assert!(at.file.ends_with("include_conflict/compose.yml"));
    assert_eq!(at.path, "services.kms");
    assert!(other.ends_with("include_conflict/other.yml"));
    assert!(text.contains("hint: define it in one file only"), "{text}");
}

#[test]
fn extends_in_the_same_file_and_from_another_file() {
    let p = load(&["extends/compose.yml"], &[]).unwrap();
    let kms = &p.services["kms"];
    assert_eq!(kms.image, "demo-security/demo:latest");
    assert_eq!(kms.user.as_deref(), Some("65534:65534"));
    assert_eq!(kms.environment["LOG"], "info");
    assert_eq!(kms.environment["ROLE"], "kms");
    let identity = &p.services["identity"];
    assert_eq!(identity.image, "demo-security/demo:common");
    assert_eq!(identity.init, Some(true));
    assert_eq!(identity.command.as_deref(), Some(&["serve".to_owned(), "identity".to_owned()][..]));
    // The base's relative path is relative to the base's file (same directory here).
    let MountSource::Bind(config) = &identity.volumes[0].source else { panic!() };
    assert!(config.starts_with(fixture("extends")));
}
