//! `demo serve identity`: the real binary with the shipped demo seed and a generated state
//! directory, stopped with SIGTERM.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use demo::state::State;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// An identity.yml over a fresh state directory, seeded from `deployments/identity/config`.
fn write_env(dir: &Path, seed: &Path) -> (State, PathBuf) {
    let state = State::ensure(&dir.join("state"), &pki::PkiSpec::demo()).unwrap();
    let leaf = pki::PkiDir::new(state.pki_dir()).leaf("identity");
    let shares: String =
        state.unseal_shares("identity").iter().take(3).map(|p| format!("\n    - {}", p.display())).collect();
    let config = format!(
        "server:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
  tls:
    cert_file: {}
    key_file: {}
    ca_file: {}
issuer: https://identity.demo.local:8082
storage:
  sqlite:
    path: {}
unseal:
  share_files:{shares}
seed:
  file: {}
  tenants_file: {}
  secrets_dir: {}
log_format: json
",
        leaf.fullchain.display(),
        leaf.key.display(),
        pki::PkiDir::new(state.pki_dir()).ca_bundle().display(),
        dir.join("identity.db").display(),
        seed.display(),
        state.tenants_file().display(),
        state.secrets_dir().display(),
    );
    let path = dir.join("identity.yml");
    std::fs::write(&path, config).unwrap();
    (state, path)
}

#[test]
fn serves_the_demo_seed_until_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (state, config) = write_env(dir.path(), &root().join("deployments/identity/config/demo-seed.yml"));
    let (mut child, addr, admin, lines) =
        crate::serve::spawn_serve(&["serve", "identity", "--demo"], &config, "Identity ready");
    let logs = std::thread::spawn(move || lines.into_iter().collect::<Vec<_>>());

    let secret = std::fs::read_to_string(state.client_secret("demo-confidential")).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(
                pki::client_config_for(&pki::PkiDir::new(state.pki_dir()), None).unwrap(),
            )
            .resolve("identity.demo.local", addr)
            .build()
            .unwrap();
        let url = |port: u16, path: &str| format!("https://identity.demo.local:{port}{path}");
        assert_eq!(client.get(url(admin.port(), "/readyz")).send().await.unwrap().status(), 200);
        let disco: serde_json::Value = client
            .get(url(addr.port(), "/.well-known/openid-configuration"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(disco["issuer"], "https://identity.demo.local:8082");
        let token = client
            .post(url(addr.port(), "/token"))
            .basic_auth("demo-confidential", Some(&secret))
            .form(&[("grant_type", "client_credentials"), ("scope", "kms:encrypt")])
            .send()
            .await
            .unwrap();
        assert_eq!(token.status(), 200);
        let body: serde_json::Value = token.json().await.unwrap();
        assert_eq!(body["scope"], "kms:encrypt");
    });

    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit after SIGTERM: {status}");
    let logs = logs.join().unwrap().join("\n");
    assert!(!logs.contains(&secret), "a client secret reached the log");
}

#[test]
fn a_missing_password_file_exits_2_naming_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let (state, config) = write_env(dir.path(), &root().join("deployments/identity/config/demo-seed.yml"));
    std::fs::remove_file(state.user_password("service")).unwrap();
    let run = crate::demo().args(["serve", "identity", "--demo", "--config"]).arg(&config).assert().code(2);
    let stderr = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
    assert!(stderr.contains("cannot read the password of user service"), "{stderr}");
    assert!(stderr.contains("user_password_service"), "{stderr}");
}
