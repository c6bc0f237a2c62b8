//! Durability of `demo serve kms`: SIGKILL in the middle of a stream of writes loses no write
//! the service acknowledged, on both engines (SQLite in WAL mode with `synchronous=FULL`, and
//! PostgreSQL).
//!
//! The real binary starts on a fresh database; a few concurrent clients create pools and rotate
//! them (at most [`MAX_WRITES`] writes, for at most [`STREAM_LIMIT`]), recording each write
//! whose answer was a success; after [`KILL_AT_ACKS`] acknowledgements the process gets
//! SIGKILL while writes are still in flight. A new process on the same database and shares
//! must then list every acknowledged pool and version, with no pool half made, and serve.
//!
//! What this proves: the service answers a write only after its transaction committed, and
//! a restart after a crash recovers (SQLite replays its WAL; PostgreSQL never went down).
//! What it cannot prove: durability across a power loss, which a process kill does not
//! simulate (the operating system still holds what was written but not yet synced).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kms_proto::{
    Algorithm, CreatePool, DecryptRequest, DecryptResponse, EncryptRequest, EncryptResponse, PoolInfo,
};

use crate::serve::{MANAGER, Storage, sigterm_and_wait, spawn_serve, write_kms_env};

/// The most writes the stream sends.
const MAX_WRITES: usize = 300;
/// The longest the stream runs before the kill must have happened.
const STREAM_LIMIT: Duration = Duration::from_secs(20);
/// SIGKILL once this many writes were acknowledged.
const KILL_AT_ACKS: usize = 50;
/// Concurrent writers, so that writes are in flight when the kill lands.
const WRITERS: usize = 4;
/// "hello world", standard base64.
const PLAINTEXT: &str = "aGVsbG8gd29ybGQ=";

#[test]
fn sqlite_keeps_every_acknowledged_write_across_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::Sqlite(dir.path().join("kms.db"));
    acknowledged_writes_survive_sigkill(dir.path(), &storage);
}

#[test]
fn postgres_keeps_every_acknowledged_write_across_sigkill() {
    let Some(server) = test_support::postgres::server() else { return };
    let dir = tempfile::tempdir().unwrap();
    acknowledged_writes_survive_sigkill(dir.path(), &Storage::Postgres(server.fresh_database()));
}

/// A write whose answer was a success.
#[derive(Debug, Clone)]
enum Ack {
    /// `POST /pools` answered 201 for this pool.
    Created(String),
    /// `POST /pools/{pool}/rotate` answered 200 with this new current version.
    Rotated { pool: String, version: u32 },
}

/// What one writer did.
#[derive(Debug, Default)]
struct Writer {
    sent: usize,
    acks: Vec<Ack>,
}

fn acknowledged_writes_survive_sigkill(dir: &Path, storage: &Storage) {
    let engine = match storage {
        Storage::Sqlite(_) => "sqlite",
        Storage::Postgres(_) => "postgres",
    };
    let config = write_kms_env(dir, 3, storage);
    let pki = pki::PkiDir::new(dir.join("pki"));
    let runtime = tokio::runtime::Runtime::new().unwrap();

    // First life: `--demo` creates the tenant; then the stream, and SIGKILL in its middle.
    let (mut child, addr, _, lines) = spawn_serve(&["serve", "kms", "--demo"], &config, "KMS ready");
    let logs = std::thread::spawn(move || lines.into_iter().count());
    let api = Api::new(&pki, addr);
    let started = Instant::now();
    let writers = runtime.block_on(stream_then_kill(&api, &mut child));
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "the service was to die of SIGKILL, not {status}");
    logs.join().unwrap();
    let sent: usize = writers.iter().map(|w| w.sent).sum();
    let acks: Vec<Ack> = writers.into_iter().flat_map(|w| w.acks).collect();
    assert!(acks.len() >= KILL_AT_ACKS, "{engine}: only {} writes acknowledged", acks.len());

    // Second life: no `--demo`, so nothing but the store can bring the pools back.
    let (mut child, addr, admin, lines) = spawn_serve(&["serve", "kms"], &config, "KMS ready");
    let logs = std::thread::spawn(move || lines.into_iter().count());
    let api = Api::new(&pki, addr);
    let found = runtime.block_on(async {
        let ready =
            api.client.get(format!("https://kms.demo.local:{}/readyz", admin.port())).send().await.unwrap();
        assert_eq!(
            ready.status(),
            200,
            "readyz after the restart: {}",
            ready.text().await.unwrap_or_default()
        );
        let pools = api.pools().await;
        check_acknowledged(engine, &acks, &pools);
        check_usable(&api, &pools).await;
        pools.len()
    });
    assert!(sigterm_and_wait(&mut child).success(), "{engine}: the restarted service did not stop cleanly");
    logs.join().unwrap();
    eprintln!(
        "{engine}: {sent} writes sent, {} acknowledged before SIGKILL, {found} pools after the restart, {:.1} s",
        acks.len(),
        started.elapsed().as_secs_f64()
    );
}

/// Every acknowledged pool is there with every acknowledged version; every pool of the
/// stream (acknowledged or in doubt) has versions 1..=n, so none was half made.
fn check_acknowledged(engine: &str, acks: &[Ack], pools: &[PoolInfo]) {
    let by_name: BTreeMap<&str, &PoolInfo> = pools.iter().map(|p| (p.name.as_str(), p)).collect();
    for ack in acks {
        match ack {
            Ack::Created(name) => {
                assert!(by_name.contains_key(name.as_str()), "{engine}: acknowledged pool {name} is gone")
            }
            Ack::Rotated { pool, version } => {
                let info = by_name.get(pool.as_str()).unwrap_or_else(|| {
                    panic!("{engine}: pool {pool}, rotated to version {version}, is gone")
                });
                assert!(
                    info.versions.iter().any(|v| v.version == *version),
                    "{engine}: acknowledged version {pool}/{version} is gone: {info:?}"
                );
            }
        }
    }
    for pool in pools {
        let numbers: Vec<u32> = pool.versions.iter().map(|v| v.version).collect();
        let expected: Vec<u32> = (1..=u32::try_from(numbers.len()).unwrap()).collect();
        assert_eq!(numbers, expected, "{engine}: pool {} has a gap or no version", pool.name);
        assert_eq!(pool.current_version, numbers.last().copied(), "{engine}: {pool:?}");
    }
}

/// After the restart every pool encrypts with its newest version and decrypts that, and a new
/// write is acknowledged.
async fn check_usable(api: &Api, pools: &[PoolInfo]) {
    for pool in pools {
        let sealed: EncryptResponse = api
            .ok(api
                .post(&format!("/pools/{}/encrypt", pool.name))
                .json(&EncryptRequest { plaintext: PLAINTEXT.into(), aad: None }))
            .await;
        let newest = format!("{}/{}", pool.name, pool.current_version.unwrap());
        assert_eq!(sealed.kid, newest);
        let opened: DecryptResponse =
            api.ok(api.post("/decrypt").json(&DecryptRequest::from(sealed.jwe))).await;
        assert_eq!((opened.kid.as_str(), opened.plaintext.as_str()), (newest.as_str(), PLAINTEXT));
    }
    let created: PoolInfo = api
        .ok(api
            .post("/pools")
            .json(&CreatePool { name: "after-restart".into(), algorithm: Algorithm::A256Gcm }))
        .await;
    assert_eq!(created.current_version, Some(1));
}

/// Runs the writers; once [`KILL_AT_ACKS`] writes were acknowledged, SIGKILLs `child` while
/// they keep writing; returns what each writer sent and had acknowledged.
async fn stream_then_kill(api: &Api, child: &mut std::process::Child) -> Vec<Writer> {
    let next = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + STREAM_LIMIT;
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let (api, next, acked, killed) = (api.clone(), next.clone(), acked.clone(), killed.clone());
        writers.spawn(async move { write(w, &api, &next, &acked, &killed, deadline).await });
    }
    let mut done = Vec::new();
    while acked.load(Ordering::SeqCst) < KILL_AT_ACKS {
        assert!(
            Instant::now() < deadline,
            "only {} writes acknowledged in {STREAM_LIMIT:?}",
            acked.load(Ordering::SeqCst)
        );
        assert!(
            !writers.is_empty(),
            "the writers stopped after {} acknowledgements",
            acked.load(Ordering::SeqCst)
        );
        tokio::select! {
            Some(finished) = writers.join_next() => done.push(finished.unwrap().unwrap_or_else(|e| panic!("{e}"))),
            () = tokio::time::sleep(Duration::from_millis(2)) => {}
        }
    }
    // Set first: a writer that sees a transport error while this is false has a real failure.
    killed.store(true, Ordering::SeqCst);
    child.kill().unwrap();
    while let Some(finished) = writers.join_next().await {
        done.push(finished.unwrap().unwrap_or_else(|e| panic!("{e}")));
    }
    done
}

/// One writer: creates a pool, rotates it twice, creates the next, … until the stream's count
/// or time is used up, or the service is gone. Any answer but a success is an error, and so
/// is a lost connection before the kill.
async fn write(
    w: usize,
    api: &Api,
    next: &AtomicUsize,
    acked: &AtomicUsize,
    killed: &AtomicBool,
    deadline: Instant,
) -> Result<Writer, String> {
    let mut me = Writer::default();
    let mut newest: Option<String> = None;
    loop {
        let i = next.fetch_add(1, Ordering::SeqCst);
        if i >= MAX_WRITES || Instant::now() >= deadline {
            return Ok(me);
        }
        let (request, target) = match (&newest, me.sent % 3) {
            (Some(pool), 1 | 2) => (api.post(&format!("/pools/{pool}/rotate")), pool.clone()),
            _ => {
                let name = format!("w{w}-{i}");
                let body = CreatePool { name: name.clone(), algorithm: Algorithm::A256Gcm };
                (api.post("/pools").json(&body), name)
            }
        };
        let rotation = newest.as_ref() == Some(&target);
        me.sent += 1;
        // A lost answer (the kill) leaves the write in doubt: it is not acknowledged.
        let answer = match request.send().await {
            Ok(response) => {
                let status = response.status();
                response.bytes().await.map(|body| (status, body))
            }
            Err(e) => Err(e),
        };
        let (status, body) = match answer {
            Ok(answer) => answer,
            Err(_) if killed.load(Ordering::SeqCst) => return Ok(me),
            Err(e) => return Err(format!("write {i} ({target}) failed before the kill: {e}")),
        };
        if !status.is_success() {
            return Err(format!(
                "write {i} ({target}) answered {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        let info: PoolInfo = serde_json::from_slice(&body).map_err(|e| format!("write {i}: {e}"))?;
        if rotation {
            let version = info.current_version.ok_or(format!("rotation {i} answered no version"))?;
            me.acks.push(Ack::Rotated { pool: target, version });
        } else {
            me.acks.push(Ack::Created(target.clone()));
            newest = Some(target);
        }
        acked.fetch_add(1, Ordering::SeqCst);
    }
}

/// The KMS's API as [`MANAGER`].
#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    fn new(pki: &pki::PkiDir, addr: SocketAddr) -> Self {
        let client = test_support::https_client(pki, "kms.demo.local", addr)
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        Self { client, base: format!("https://kms.demo.local:{}/api/v1", addr.port()) }
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(format!("{}{path}", self.base)).basic_auth(MANAGER.0, Some(MANAGER.1))
    }

    async fn pools(&self) -> Vec<PoolInfo> {
        self.ok(self.client.get(format!("{}/pools", self.base)).basic_auth(MANAGER.0, Some(MANAGER.1))).await
    }

    /// Sends `request`, asserts a success and decodes the body.
    async fn ok<T: serde::de::DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> T {
        let response = request.send().await.unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert!(status.is_success(), "{status}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
    }
}
