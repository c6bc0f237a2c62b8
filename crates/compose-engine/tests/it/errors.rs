//! Bad input: every error names the file, the path in the document (and the line) and a hint.

use compose_engine::model::ModelError;

use crate::fail;

#[test]
fn an_unknown_key_names_file_line_and_path() {
    let (err, text) = fail(&["errors/unknown_key.yml"], &[]);
    let ModelError::Invalid { at, message, hint } = &err else { panic!("{err:?}") };
    assert_eq!(at.path, "services.kms.healthcheck.intervall");
    assert_eq!(at.line, Some(6));
    assert!(message.contains("unknown field `intervall`"), "{message}");
    assert!(hint.contains("docs/compose-model.md"), "{hint}");
    assert!(text.contains("errors/unknown_key.yml:6: `services.kms.healthcheck.intervall`"), "{text}");
}

#[test]
fn unsupported_keys_get_a_specific_hint() {
    let (err, text) = fail(&["errors/unknown_service_key.yml"], &[]);
    assert_eq!(err.location().unwrap().path, "services.kms.build");
    assert!(text.contains("unknown_service_key.yml:4:"), "{text}");
    assert!(text.contains("hint: build the image beforehand"), "{text}");

    let (err, text) = fail(&["errors/env_secret.yml"], &[]);
    assert_eq!(err.location().unwrap().path, "secrets.token.environment");
    assert!(text.contains("only file secrets are supported"), "{text}");
}

#[test]
fn cmd_shell_is_refused_naming_the_service() {
    let (err, text) = fail(&["errors/cmd_shell.yml"], &[]);
    let ModelError::ShellHealthcheck { at, service } = &err else { panic!("{err:?}") };
    assert_eq!(service, "kms");
    assert_eq!(at.path, "services.kms.healthcheck.test");
    assert_eq!(at.line, Some(5));
    assert!(text.contains("FROM scratch"), "{text}");
    assert!(text.contains("hint: use the exec form"), "{text}");
    // The string form is a shell command too.
    let (err, _) = fail(&["errors/string_healthcheck.yml"], &[]);
    assert!(matches!(err, ModelError::ShellHealthcheck { .. }), "{err:?}");
}

#[test]
fn malformed_yaml_names_file_and_line() {
    let (err, text) = fail(&["errors/malformed.yml"], &[]);
    let ModelError::Syntax { file, line, .. } = &err else { panic!("{err:?}") };
    assert!(file.ends_with("errors/malformed.yml"));
    assert!((4..=5).contains(line), "line {line}");
    assert!(text.contains(&format!("malformed.yml:{line}:")), "{text}");
}

#[test]
fn a_dependency_cycle_is_reported_as_a_cycle() {
    let (err, text) = fail(&["errors/depends_cycle.yml"], &[]);
    let ModelError::DependencyCycle { at, cycle } = &err else { panic!("{err:?}") };
    assert_eq!(cycle, &["a", "b", "c", "a"]);
    assert_eq!(at.path, "services.a.depends_on.b");
    assert!(text.contains("dependency cycle: a -> b -> c -> a"), "{text}");
}

#[test]
fn references_must_be_declared() {
    let (err, text) = fail(&["errors/undeclared.yml"], &[]);
    assert_eq!(err.location().unwrap().path, "services.kms.secrets[0]");
    assert!(text.contains("secret `kms_token` is not declared"), "{text}");

    let (err, text) = fail(&["errors/unknown_dependency.yml"], &[]);
    assert_eq!(err.location().unwrap().path, "services.kms.depends_on.identiy");
    assert!(text.contains("the services are: identity, kms"), "{text}");
}

#[test]
fn a_bad_port_names_the_item() {
    let (err, text) = fail(&["errors/bad_port.yml"], &[]);
    assert_eq!(err.location().unwrap().path, "services.kms.ports[0]");
    assert_eq!(err.location().unwrap().line, Some(5));
    assert!(text.contains("hint: write \"8081\""), "{text}");
}

#[test]
fn a_missing_file_is_named() {
    let (err, text) = fail(&["errors/nope.yml"], &[]);
    assert!(matches!(err, ModelError::Read { .. }), "{err:?}");
    assert!(text.contains("errors/nope.yml"), "{text}");
}
