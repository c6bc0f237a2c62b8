//! `demo serve kms`: the real binary, started from a config file, stopped with SIGTERM. Also the
//! helpers the other `demo serve` tests share: a KMS configuration over either engine
//! ([`write_kms_env`]), starting the binary until its ready line ([`spawn_serve`]), and
//! stopping it ([`sigterm_and_wait`]).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;

/// The tenant of the test realm's users, created by the test seed (`--demo`).
pub const TENANT: &str = "0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10";
/// A key manager of [`TENANT`] in the test realm: it may create and rotate pools.
pub const MANAGER: (&str, &str) = ("manager", "m-pass");

/// Where a test KMS keeps its keys.
#[derive(Debug, Clone)]
pub enum Storage {
    /// `storage.sqlite.path`.
    Sqlite(PathBuf),
    /// `storage.postgres`.
    Postgres(service_kit::postgres::PostgresConfig),
}

impl Storage {
    /// The `storage:` section's body, indented under it.
    pub fn yaml(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("  sqlite:\n    path: {}\n", path.display()),
            Self::Postgres(pg) => format!(
                "  postgres:\n    host: {}\n    port: {}\n    database: {}\n    user: {}\n    password_file: {}\n",
                pg.host,
                pg.port,
                pg.database,
                pg.user,
                pg.password_file.display()
            ),
        }
    }
}

/// A kms.yml in `dir` over SQLite at `dir/kms.db` (see [`write_kms_env`]).
fn write_env(dir: &Path, shares_given: usize) -> PathBuf {
    write_kms_env(dir, shares_given, &Storage::Sqlite(dir.join("kms.db")))
}

/// A kms.yml in `dir` over `storage`: a fresh demo PKI, `shares_given` of five fresh unseal
/// shares, a file realm (`alice`, a user, and [`MANAGER`], both of [`TENANT`]) and a seed that
/// creates [`TENANT`] as `acme` when the service starts with `--demo`.
pub fn write_kms_env(dir: &Path, shares_given: usize, storage: &Storage) -> PathBuf {
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
        format!(
            "users:\n  - {{username: alice, password: a-pass, demo: true, tenant: {TENANT}, roles: [user]}}\n  - {{username: {}, password: {}, demo: true, tenant: {TENANT}, roles: [key-manager]}}\n",
            MANAGER.0, MANAGER.1
        ),
    )
    .unwrap();
    std::fs::write(dir.join("seed.yml"), "tenants:\n  - name: acme\n").unwrap();
    std::fs::write(dir.join("tenants.yml"), format!("acme: {TENANT}\n")).unwrap();
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
{}unseal:
  share_files:{files}
auth:
  realms:
    - type: file
      path: {}
seed:
  file: {}
  tenants_file: {}
log_format: json
",
        leaf.fullchain.display(),
        leaf.key.display(),
        pki.dir.ca_bundle().display(),
        storage.yaml(),
        dir.join("realms.yml").display(),
        dir.join("seed.yml").display(),
        dir.join("tenants.yml").display(),
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
    drop(lines);

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
            format!("users:\n  - {{username: bob, password: b-pass, demo: true, tenant: {TENANT}, roles: [user]}}\n"),
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
    let text = std::fs::read_to_string(&config).unwrap();
    let (head, tail) = text.split_once("seed:\n").unwrap();
    let tail: String = tail.lines().filter(|l| !l.starts_with("  ")).map(|l| format!("{l}\n")).collect();
    std::fs::write(&config, format!("{head}{tail}")).unwrap();
    let run = crate::demo()
        .args(["serve", "kms", "--demo", "--config"])
        .arg(&config)
        .timeout(Duration::from_secs(30))
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
    assert!(stderr.contains("--demo needs a `seed:` section"), "{stderr}");
}

/// How long a service may take to say it is ready.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// Starts `demo <args> --config <config>` and waits (at most [`READY_WITHIN`]) for its JSON log
/// line containing `ready`, which carries both bound addresses; returns the child, the API and
/// admin addresses, and the rest of its stderr, line by line. A thread drains the pipe whether
/// or not the caller reads the lines, so the child never blocks on a full pipe.
pub fn spawn_serve(
    args: &[&str],
    config: &Path,
    ready: &str,
) -> (ServeChild, std::net::SocketAddr, std::net::SocketAddr, mpsc::Receiver<String>) {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("demo"))
        .args(args)
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let child = ServeChild(child);
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            // Nobody listening any more: keep draining.
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + READY_WITHIN;
    let mut before = Vec::new();
    let line = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(ready) => break line,
            Ok(line) => before.push(line),
            // `child` is dropped, so killed, by the panic.
            Err(e) => panic!("the service never said {ready:?} ({e}); its stderr:\n{}", before.join("\n")),
        }
    };
    let log: serde_json::Value = serde_json::from_str(&line).unwrap();
    let addr = log["addr"].as_str().unwrap().parse().unwrap();
    let admin = log["admin"].as_str().unwrap().parse().unwrap();
    (child, addr, admin, lines)
}

/// A `demo serve` child that is killed (SIGKILL) and reaped when dropped, so that a failing
/// test leaves no service running.
#[derive(Debug)]
pub struct ServeChild(std::process::Child);

impl std::ops::Deref for ServeChild {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for ServeChild {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for ServeChild {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Sends SIGTERM to `child` and waits (at most 15 s) for its exit status.
///
/// First waits (at most 5 s) until the process catches SIGTERM: the services log their ready
/// line *before* they install their signal handlers (`service_kit::server::shutdown_signal` is
/// first polled after it), so a SIGTERM sent right after the ready line can still meet the
/// default action and kill the process (signal 15, no drain) — a race in the services' `run`,
/// which this helper steps around so that tests check the drain itself.
pub fn sigterm_and_wait(child: &mut std::process::Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    let started = Instant::now();
    while !catches_sigterm(child.id()) {
        assert!(started.elapsed() < Duration::from_secs(5), "process {pid} never caught SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "no exit within 15 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether process `pid` has a handler for SIGTERM (bit 15 of `SigCgt` in /proc/PID/status).
fn catches_sigterm(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (15 - 1)) != 0)
}

#[test]
fn partner_serves_its_discovery_document_and_keys_until_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = ServeChild(
        Command::new(assert_cmd::cargo::cargo_bin("demo"))
            .args(["serve", "partner", "--dir"])
            .arg(dir.path())
            .args(["--listen", &format!("127.0.0.1:{port}"), "--admin-listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines().map_while(Result::ok);
    let line =
        stderr.find(|l| l.contains("the fixture issuer is serving")).expect("the partner's ready line");
    // Drained to the end: its shutdown lines need a reader.
    let drained = std::thread::spawn(move || stderr.collect::<Vec<_>>());
    let issuer = format!("https://partner.demo.local:{port}");
    assert!(line.contains(&issuer), "{line}");

    let (document, jwks) = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let pki = pki::PkiDir::new(dir.path().join("pki"));
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(pki::client_config_for(&pki, None).unwrap())
            .resolve("partner.demo.local", std::net::SocketAddr::from(([127, 0, 0, 1], port)))
            .build()
            .unwrap();
        let get = |path: &str| {
            let request = client.get(format!("{issuer}{path}"));
            async move { request.send().await.unwrap().json::<serde_json::Value>().await.unwrap() }
        };
        (get("/.well-known/openid-configuration").await, get("/jwks").await)
    });
    assert_eq!(document["issuer"], issuer.as_str());
    assert_eq!(document["jwks_uri"], format!("{issuer}/jwks"));
    assert_eq!(
        (jwks["keys"][0]["kid"].as_str(), jwks["keys"][0]["crv"].as_str()),
        (Some("partner-1"), Some("P-256"))
    );
    // Its key is kept in the directory, 0600.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("signing-key.pk8")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    assert!(jwks["keys"][0].get("d").is_none(), "a public key only");
    let status = sigterm_and_wait(&mut child);
    assert!(status.success(), "{status}: {:?}", drained.join().unwrap());
}

#[test]
fn serve_names_the_argument_a_service_needs() {
    for (args, missing) in [(&["serve", "kms"][..], "--config"), (&["serve", "partner"][..], "--dir")] {
        let out = Command::new(assert_cmd::cargo::cargo_bin("demo")).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(missing), "{args:?}: {stderr}");
    }
}
