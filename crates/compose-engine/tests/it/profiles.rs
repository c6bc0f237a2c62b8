//! Profiles enable services; a dependency on a disabled service is an error.

use compose_engine::model::ModelError;

use crate::{load, load_with};

fn names(p: &compose_engine::model::Project) -> Vec<&str> {
    p.services.keys().map(String::as_str).collect()
}

#[test]
fn services_without_profiles_are_always_enabled() {
    let p = load(&["profiles/compose.yml"], &[]).unwrap();
    assert_eq!(names(&p), ["identity", "kms"]);
}

#[test]
fn a_service_is_enabled_by_any_of_its_profiles() {
    let p = load_with(&["profiles/compose.yml"], &[], &["dev"]).unwrap();
    assert_eq!(names(&p), ["identity", "kms", "postgres"]);
    let p = load_with(&["profiles/compose.yml"], &[], &["ci"]).unwrap();
    assert_eq!(names(&p), ["identity", "kms", "sqlite-seed"]);
    let p = load_with(&["profiles/compose.yml"], &[], &["dev", "demo"]).unwrap();
    assert_eq!(names(&p), ["identity", "kms", "postgres", "sqlite-seed"]);
}

#[test]
fn a_dependency_on_a_disabled_service_is_an_error() {
    let err = load(&["profiles/disabled_dependency.yml"], &[]).unwrap_err();
    let text = err.to_string();
    let ModelError::DisabledDependency { at, service, dependency, profiles, active } = &err else {
        panic!("{err:?}")
    };
    assert_eq!((service.as_str(), dependency.as_str()), ("identity", "postgres"));
    assert_eq!(profiles, &["dev"]);
    assert!(active.is_empty());
    assert_eq!(at.path, "services.identity.depends_on.postgres");
    assert_eq!(at.line, Some(5));
    assert!(text.contains("hint: activate one of its profiles"), "{text}");
    // With the profile active, it loads.
    let p = load_with(&["profiles/disabled_dependency.yml"], &[], &["dev"]).unwrap();
    assert_eq!(p.start_order(), ["postgres", "identity"]);
}
