//! Every interpolation form, on a fixture, and the missing-variable errors.

use compose_engine::model::ModelError;

use crate::{fail, load};

#[test]
fn every_form_is_interpolated() {
    let p = load(&["interpolation.yml"], &[("SET", "value"), ("EMPTY", "")]).unwrap();
    let app = &p.services["app"];
    assert_eq!(app.image, "busybox:1.36");
    let env = &app.environment;
    let expect = [
        ("PLAIN", "value"),
        ("BRACED", "value"),
        ("COLON_DEFAULT_UNSET", "fallback"),
        ("COLON_DEFAULT_EMPTY", "fallback"),
        ("DASH_DEFAULT_UNSET", "fallback"),
        ("DASH_DEFAULT_EMPTY", ""),
        ("REQUIRED_SET", "value"),
        ("QUESTION_EMPTY", ""),
        ("ESCAPED", "$SET and ${SET}"),
        ("NESTED", "value"),
        ("MIXED", "http://localhost:8080/x"),
        // Keys are not interpolated.
        ("$SET", "keys are not interpolated"),
    ];
    for (key, value) in expect {
        assert_eq!(env.get(key).map(String::as_str), Some(value), "{key}");
    }
    assert_eq!(env.len(), expect.len());
}

#[test]
fn a_missing_variable_names_file_line_path_and_variable() {
    let (err, text) = fail(&["errors/missing_var.yml"], &[]);
    let ModelError::MissingVariable { at, var } = &err else { panic!("{err:?}") };
    assert_eq!(var, "KMS_PORT");
    assert_eq!(at.path, "services.kms.environment.KMS_URL");
    assert_eq!(at.line, Some(5));
    assert!(at.file.ends_with("errors/missing_var.yml"));
    assert!(
        text.contains(
            "missing_var.yml:5: `services.kms.environment.KMS_URL`: variable `KMS_PORT` is not set"
        ),
        "{text}"
    );
    assert!(text.contains("hint: pass KMS_PORT"), "{text}");
}

#[test]
fn the_process_environment_is_not_used() {
    // PATH is set in every test process; the model must not see it.
    let (err, _) = fail(&["errors/missing_var.yml"], &[("PATH_IS_NOT", "x")]);
    assert!(matches!(err, ModelError::MissingVariable { .. }));
    assert!(std::env::var_os("PATH").is_some());
    let p = load(&["errors/missing_var.yml"], &[("KMS_PORT", "8081")]).unwrap();
    assert_eq!(p.services["kms"].environment["KMS_URL"], "https://kms:8081/");
}

#[test]
fn a_required_variable_reports_the_files_message() {
    let (err, text) = fail(&["errors/required_var.yml"], &[]);
    assert!(matches!(&err, ModelError::Interpolation { var: Some(v), .. } if v == "IMAGE"), "{err:?}");
    assert!(text.contains("`services.kms.image`"), "{text}");
    assert!(text.contains("set IMAGE to the image built by the demo"), "{text}");
}

#[test]
fn dotenv_beside_the_first_file_when_asked_and_given_values_win() {
    use compose_engine::model::{self, Env};
    let files = [crate::fixture("dotenv/compose.yml")];
    // Without with_dotenv the file is not read.
    let err = model::load(&files, &Env::new(), &[]).unwrap_err();
    assert!(matches!(err, ModelError::MissingVariable { .. }), "{err}");
    let p = model::load(&files, &Env::new().with_dotenv(), &[]).unwrap();
    assert_eq!(p.services["kms"].image, "demo-security/demo:from-dotenv");
    assert_eq!(p.services["kms"].environment["FROM_DOTENV"], "quoted value");
    let p = model::load(&files, &Env::new().var("TAG", "given").with_dotenv(), &[]).unwrap();
    assert_eq!(p.services["kms"].image, "demo-security/demo:given");
}
