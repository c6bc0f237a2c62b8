//! `docker compose config` (v2) as an independent oracle, when it is installed; skipped (with a
//! note on stderr) when it is not.

use std::process::Command;

use crate::{fixture, load};

fn compose_v2() -> bool {
    Command::new("docker").args(["compose", "version"]).output().is_ok_and(|o| o.status.success())
}

/// `docker compose config --format json` of a fixture with exactly `env`.
fn compose_config(file: &str, env: &[(&str, &str)]) -> serde_json::Value {
    let mut cmd = Command::new("docker");
    cmd.env_clear();
    for key in ["PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG"] {
        if let Some(v) = std::env::var_os(key) {
            cmd.env(key, v);
        }
    }
    cmd.envs(env.iter().copied());
    let out =
        cmd.args(["compose", "-f"]).arg(fixture(file)).args(["config", "--format", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn interpolation_agrees_with_docker_compose() {
    if !compose_v2() {
        eprintln!("docker compose v2 is not installed: oracle skipped");
        return;
    }
    let env = [("SET", "value"), ("EMPTY", "")];
    let ours = load(&["interpolation.yml"], &env).unwrap();
    let theirs = compose_config("interpolation.yml", &env);
    let app = &theirs["services"]["app"];
    assert_eq!(theirs["name"], ours.name.as_str());
    assert_eq!(app["image"], ours.services["app"].image.as_str());
    // `config` prints a compose file again, so a literal `$` comes out as `$$`.
    let theirs_env = app["environment"].as_object().unwrap();
    assert_eq!(theirs_env.len(), ours.services["app"].environment.len());
    for (key, value) in &ours.services["app"].environment {
        let t = theirs_env[&key.replace('$', "$$")].as_str().unwrap();
        assert_eq!(t.replace("$$", "$"), *value, "{key}");
    }
}

#[test]
fn the_stack_agrees_with_docker_compose() {
    if !compose_v2() {
        eprintln!("docker compose v2 is not installed: oracle skipped");
        return;
    }
    let env = [("TAG", "abc"), ("KMS_PORT", "9081")];
    let ours = load(&["stack/compose.yml"], &env).unwrap();
    let theirs = compose_config("stack/compose.yml", &env);
    assert_eq!(theirs["name"], ours.name.as_str());
    let names: Vec<&str> = theirs["services"].as_object().unwrap().keys().map(String::as_str).collect();
    let mut names = names;
    names.sort_unstable();
    assert_eq!(names, ours.services.keys().map(String::as_str).collect::<Vec<_>>());
    for (name, s) in &ours.services {
        let t = &theirs["services"][name];
        assert_eq!(t["image"], s.image.as_str(), "{name}");
        let ports: Vec<(Option<String>, u64)> = t["ports"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|p| (p["published"].as_str().map(str::to_owned), p["target"].as_u64().unwrap()))
                    .collect()
            })
            .unwrap_or_default();
        let ours_ports: Vec<(Option<String>, u64)> =
            s.ports.iter().map(|p| (p.published.map(|n| n.to_string()), u64::from(p.target))).collect();
        assert_eq!(ports, ours_ports, "{name}");
        let deps: Vec<(String, String)> = t["depends_on"]
            .as_object()
            .map(|m| {
                m.iter().map(|(k, v)| (k.clone(), v["condition"].as_str().unwrap().to_owned())).collect()
            })
            .unwrap_or_default();
        assert_eq!(deps.len(), s.depends_on.len(), "{name}");
    }
}

#[test]
fn merge_and_include_agree_with_docker_compose() {
    if !compose_v2() {
        eprintln!("docker compose v2 is not installed: oracle skipped");
        return;
    }
    let out = Command::new("docker")
        .args(["compose", "-f"])
        .arg(fixture("merge/base.yml"))
        .arg("-f")
        .arg(fixture("merge/override.yml"))
        .args(["config", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let theirs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ours = load(&["merge/base.yml", "merge/override.yml"], &[]).unwrap();
    let (t, o) = (&theirs["services"]["kms"], &ours.services["kms"]);
    let published: Vec<String> =
        t["ports"].as_array().unwrap().iter().map(|p| p["published"].as_str().unwrap().to_owned()).collect();
    assert_eq!(published, o.ports.iter().map(|p| p.published.unwrap().to_string()).collect::<Vec<_>>());
    let mut targets: Vec<&str> =
        t["volumes"].as_array().unwrap().iter().map(|v| v["target"].as_str().unwrap()).collect();
    let mut ours_targets: Vec<&str> = o.volumes.iter().map(|m| m.target.as_str()).collect();
    targets.sort_unstable();
    ours_targets.sort_unstable();
    assert_eq!(targets, ours_targets);
    assert_eq!(t["healthcheck"]["interval"], "1s");
    assert_eq!(t["healthcheck"]["retries"], o.healthcheck.as_ref().unwrap().retries.unwrap());
    assert_eq!(t["command"].as_array().unwrap().len(), o.command.as_ref().unwrap().len());

    let theirs = compose_config("include/all/compose.yml", &[]);
    let mut names: Vec<&str> = theirs["services"].as_object().unwrap().keys().map(String::as_str).collect();
    names.sort_unstable();
    let ours = load(&["include/all/compose.yml"], &[]).unwrap();
    assert_eq!(names, ours.services.keys().map(String::as_str).collect::<Vec<_>>());
    let kms_source = theirs["services"]["kms"]["volumes"][0]["source"].as_str().unwrap();
    let compose_engine::model::MountSource::Bind(ours_source) = &ours.services["kms"].volumes[0].source
    else {
        panic!()
    };
    assert_eq!(std::path::Path::new(kms_source), ours_source.as_path());
}
