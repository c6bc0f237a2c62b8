//! `demo serve kms`: the real binary, started from a config file, stopped with SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;

fn write_env(dir: &Path, shares_given: usize) -> std::path::PathBuf {
    let pki = pki::ensure(&dir.join("pki"), &pki::PkiSpec::demo(), &Default::default()).unwrap();
    let shares = barrier::new_shares(3, 5).unwrap();
    let mut files = String::new();
    for (i, share) in shares.iter().take(shares_given).enumerate() {
        let path = dir.join(format!("share_{i}"));
        std::fs::write(&path, share.encode().expose_secret()).unwrap();
        files.push_str(&format!("\n    - {}", path.display()));
    }
    std::fs::write(
        dir.join("realms.yml"),
        "users:\n  - {username: alice, password: a-pass, demo: true, tenant: 0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10, roles: [user]}\n",
    )
    .unwrap();
    let leaf = pki.dir.leaf("kms");
    let config = format!(
        "server:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
  tls:
    cert_file: {}
    key_file: {}
    ca_file: {}
storage:
  sqlite:
    path: {}
unseal:
  share_files:{files}
auth:
  realms:
    - type: file
      path: {}
log_format: json
",
        leaf.fullchain.display(),
        leaf.key.display(),
        pki.dir.ca_bundle().display(),
        dir.join("kms.db").display(),
        dir.join("realms.yml").display(),
    );
    let path = dir.join("kms.yml");
    std::fs::write(&path, config).unwrap();
    path
}

#[test]
fn serves_until_sigterm_then_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_env(dir.path(), 3);
    let (mut child, addr, admin, lines) = spawn_serve(&["serve", "kms"], &config, "KMS ready");
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let dir = pki::PkiDir::new(dir.path().join("pki"));
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(pki::client_config_for(&dir, None).unwrap())
            .resolve("kms.demo.local", addr)
            .build()
            .unwrap();
        let ready =
            client.get(format!("https://kms.demo.local:{}/readyz", admin.port())).send().await.unwrap();
        assert_eq!(ready.status(), 200);
        let who = client
            .get(format!("https://kms.demo.local:{}/api/v1/whoami", addr.port()))
            .basic_auth("alice", Some("a-pass"))
            .send()
            .await
            .unwrap();
        assert_eq!(who.status(), 200);

        // SIGHUP reloads the realm file and forgets cached logins: a removed user is refused.
        std::fs::write(
            dir.root().parent().unwrap().join("realms.yml"),
            "users:\n  - {username: bob, password: b-pass, demo: true, tenant: 0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10, roles: [user]}\n",
        )
        .unwrap();
        let pid = child.id().to_string();
        assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
        let started = Instant::now();
        loop {
            let who = client
                .get(format!("https://kms.demo.local:{}/api/v1/whoami", addr.port()))
                .basic_auth("alice", Some("a-pass"))
                .send()
                .await
                .unwrap();
            if who.status() == 401 {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(5), "alice still accepted after SIGHUP");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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
}

#[test]
fn too_few_shares_exit_2_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_env(dir.path(), 2);
    let run = crate::demo().args(["serve", "kms", "--config"]).arg(&config).assert().code(2);
    let stderr = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
    assert!(stderr.contains("2 unseal share(s) given, but the barrier needs 3"), "{stderr}");
    assert!(!dir.path().join("kms.db").exists(), "nothing may be written");
}

#[test]
fn a_bad_config_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_env(dir.path(), 3);
    let text = std::fs::read_to_string(&config).unwrap().replace("  sqlite:", "  sqlight:");
    std::fs::write(&config, text).unwrap();
    let run = crate::demo().args(["serve", "kms", "--config"]).arg(&config).assert().code(2);
    let stderr = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
    assert!(stderr.contains("kms.yml:9"), "{stderr}");
    assert!(stderr.contains("unknown field `sqlight`"), "{stderr}");
}

#[test]
fn demo_without_a_seed_section_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_env(dir.path(), 3);
    let run = crate::demo().args(["serve", "kms", "--demo", "--config"]).arg(&config).assert().code(2);
    let stderr = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
    assert!(stderr.contains("--demo needs a `seed:` section"), "{stderr}");
}

/// Starts `demo <args> --config <config>` and waits for its JSON log line containing `ready`,
/// which carries both bound addresses; returns the child, the API and admin addresses, and the
/// rest of its stderr (the caller drains it, so the child never blocks on a full pipe).
pub fn spawn_serve(
    args: &[&str],
    config: &Path,
    ready: &str,
) -> (
    std::process::Child,
    std::net::SocketAddr,
    std::net::SocketAddr,
    std::io::Lines<BufReader<std::process::ChildStderr>>,
) {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("demo"))
        .args(args)
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains(ready))
        .expect("the service never said it was ready");
    let log: serde_json::Value = serde_json::from_str(&line).unwrap();
    let addr = log["addr"].as_str().unwrap().parse().unwrap();
    let admin = log["admin"].as_str().unwrap().parse().unwrap();
    (child, addr, admin, lines)
}
