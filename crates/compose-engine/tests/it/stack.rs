//! A stack like deployments/: every supported field read, and the start order.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use compose_engine::model::{Condition, MountSource, Protocol, Restart};

use crate::{load, load_with};

#[test]
fn every_supported_field_is_read() {
    let p = load(&["stack/compose.yml"], &[("TAG", "abc"), ("KMS_PORT", "9081")]).unwrap();
    assert_eq!(p.name, "demo-stack");
    // db is in the dev profile.
    assert_eq!(p.services.keys().collect::<Vec<_>>(), ["identity", "init-kms", "kms"]);

    let identity = &p.services["identity"];
    assert_eq!(identity.image, "demo-security/demo:abc");
    assert_eq!(identity.user.as_deref(), Some("65534:65534"));
    assert_eq!(identity.init, Some(true));
    assert_eq!(identity.restart, Some(Restart::UnlessStopped));
    assert_eq!(identity.ports[0].host_ip, Some(Ipv4Addr::LOCALHOST.into()));
    assert_eq!((identity.ports[0].published, identity.ports[0].target), (Some(8082), 8082));
    assert_eq!(identity.networks["identity"].aliases, ["identity.demo.local"]);
    assert!(identity.networks["telemetry"].aliases.is_empty());
    assert!(identity.volumes[0].read_only);
    assert!(
        matches!(&identity.volumes[0].source, MountSource::Bind(p) if p.ends_with(Path::new("stack/config")))
    );
    assert_eq!(identity.volumes[1].source, MountSource::Volume("identity-data".into()));
    assert_eq!(identity.secrets[0].target, "/run/secrets/identity_admin");
    let h = identity.healthcheck.as_ref().unwrap();
    assert_eq!(h.test[0], "/demo");
    assert_eq!(h.timeout, Some(Duration::from_secs(2)));
    assert_eq!(h.start_period, Some(Duration::from_secs(5)));
    assert_eq!(h.retries, Some(10));
    assert_eq!(identity.labels["com.example.product"], "identity");

    let kms = &p.services["kms"];
    assert_eq!(kms.entrypoint.as_deref(), Some(&["/demo".to_owned()][..]));
    assert_eq!(kms.environment["KMS_LOG"], "info");
    assert_eq!(kms.ports[0].published, Some(9081));
    assert_eq!(kms.ports[0].protocol, Protocol::Tcp);
    assert_eq!(kms.secrets[0].source, "kms_token");
    assert_eq!(kms.secrets[0].target, "/run/secrets/token");
    assert_eq!(kms.depends_on["identity"], Condition::Healthy);
    assert_eq!(kms.depends_on["init-kms"], Condition::CompletedSuccessfully);
    assert_eq!(p.services["init-kms"].restart, Some(Restart::No));
    assert_eq!(p.services["init-kms"].volumes[0].source, MountSource::Volume("kms-data".into()));

    assert!(p.networks["telemetry"].external);
    assert_eq!(p.network_name("telemetry"), "demo-telemetry");
    assert_eq!(p.network_name("kms"), "demo-stack_kms");
    assert_eq!(p.volume_name("kms-data"), "demo-stack_kms-data");
    assert!(!p.networks.contains_key("default"), "every service names its networks");
    assert!(p.secrets["kms_token"].file.ends_with(Path::new("stack/secrets/kms_token")));
}

#[test]
fn the_start_order_starts_dependencies_first() {
    let p = load_with(&["stack/compose.yml"], &[], &["dev"]).unwrap();
    assert_eq!(p.start_order(), ["db", "identity", "init-kms", "kms"]);
    let p = load(&["stack/compose.yml"], &[("STACK", "x")]).unwrap();
    assert_eq!(p.name, "demo-x");
    let order = p.start_order();
    let pos = |s: &str| order.iter().position(|o| *o == s).unwrap();
    assert!(pos("identity") < pos("kms") && pos("init-kms") < pos("kms"));
}

/// The shipped stacks under `deployments/` load, with the health chain as the start order.
#[test]
fn the_shipped_deployments_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deployments");
    let env: compose_engine::model::Env = [
        ("DEMO_IMAGE", "demo-security/demo:test"),
        ("DEMO_STATE_DIR", "/state"),
        ("DEMO_UID", "1000"),
        ("DEMO_GID", "1000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for stack in ["kms", "identity", "all"] {
        let p = compose_engine::model::load(&[root.join(stack).join("compose.yml")], &env, &[])
            .unwrap_or_else(|e| panic!("deployments/{stack}: {e}"));
        assert_eq!(p.name, format!("demo-{stack}"));
        for service in p.services.values() {
            assert_eq!(service.image, "demo-security/demo:test");
            assert_eq!(service.user.as_deref(), Some("1000:1000"));
            assert!(service.healthcheck.is_some(), "every service has an exec-form healthcheck");
            // Secrets are files; the environment only says where the API listens and which
            // URLs it and its peers use: the published port, the same inside and out.
            for (key, value) in &service.environment {
                let allowed = [
                    "__SERVER__LISTEN",
                    "__ISSUER",
                    "__JWKS_URL",
                    "__INTROSPECTION__ENDPOINT",
                    "__API_KEYS__ENDPOINT",
                ];
                assert!(allowed.iter().any(|a| key.ends_with(a)), "deployments/{stack}: {key}={value}");
                let port = value.rsplit(':').next().unwrap().split('/').next().unwrap();
                let default = if key.starts_with("KMS__SERVER") { "8081" } else { "8082" };
                assert_eq!(port, default, "deployments/{stack}: {key}={value}");
            }
            // The fixture issuer (`partner`) is reached only on the KMS's network.
            if service.ports.is_empty() && service.command.iter().flatten().any(|a| a == "partner") {
                continue;
            }
            let api = service.ports.iter().find(|p| p.host_ip.is_some() && p.published.is_some()).unwrap();
            assert_eq!(api.published, Some(api.target), "the API is published on the port it listens on");
        }
    }
    // Ports the defaults do not hold: each service listens on the one it is published on, and
    // the KMS names Identity's URLs with Identity's port.
    let moved: compose_engine::model::Env =
        env.clone().var("KMS_PORT", "18081").var("IDENTITY_PORT", "18082");
    let all = compose_engine::model::load(&[root.join("all/compose.yml")], &moved, &[]).unwrap();
    let (identity, kms) = (&all.services["identity"], &all.services["kms"]);
    assert!(identity.ports.iter().any(|p| (p.published, p.target) == (Some(18082), 18082)));
    assert!(kms.ports.iter().any(|p| (p.published, p.target) == (Some(18081), 18081)));
    assert_eq!(identity.environment["IDENTITY__SERVER__LISTEN"], "0.0.0.0:18082");
    assert_eq!(identity.environment["IDENTITY__ISSUER"], "https://identity.demo.local:18082");
    assert_eq!(kms.environment["KMS__SERVER__LISTEN"], "0.0.0.0:18081");
    assert_eq!(kms.environment["KMS__AUTH__BEARER__ISSUER"], "https://identity.demo.local:18082");
    assert_eq!(kms.environment["KMS__AUTH__BEARER__JWKS_URL"], "https://identity.demo.local:18082/jwks");

    let all = compose_engine::model::load(&[root.join("all/compose.yml")], &env, &[]).unwrap();
    assert_eq!(all.start_order(), ["identity", "kms", "partner"]);
    let kms = &all.services["kms"];
    assert_eq!(kms.depends_on["identity"], Condition::Healthy);
    assert!(kms.networks.contains_key("identity"), "the KMS reaches Identity's network");
    assert!(kms.secrets.iter().any(|s| s.source == "client_secret_kms-service"));

    // The dev profile: PostgreSQL first in the health chain, its password a secret (never an
    // environment value), its data in a named volume, not published on the host; each service
    // mounts its PostgreSQL configuration in place of the SQLite one.
    for (stack, order) in [
        ("kms", &["postgres", "kms"][..]),
        ("identity", &["postgres", "identity"][..]),
        ("all", &["partner", "postgres", "identity", "kms"][..]),
    ] {
        let files = [root.join(stack).join("compose.yml"), root.join(stack).join("compose.dev.yml")];
        let p = compose_engine::model::load(&files, &env, &[]).unwrap_or_else(|e| panic!("{stack} dev: {e}"));
        assert_eq!(p.start_order(), order, "{stack} dev");
        let pg = &p.services["postgres"];
        assert_eq!(pg.image, "postgres:15", "the official image unless DEMO_POSTGRES_IMAGE names another");
        assert_eq!(pg.environment["POSTGRES_PASSWORD_FILE"], "/run/secrets/postgres_password");
        assert!(!pg.environment.keys().any(|k| k == "POSTGRES_PASSWORD"), "never the password itself");
        assert!(pg.ports.is_empty(), "PostgreSQL is reached only on the stack's network");
        assert!(pg.healthcheck.is_some());
        for service in order.iter().filter(|s| !["postgres", "partner"].contains(*s)) {
            let s = &p.services[*service];
            assert_eq!(s.depends_on["postgres"], Condition::Healthy, "{stack} dev: {service}");
            assert!(s.secrets.iter().any(|m| m.source == "postgres_password"), "{stack} dev: {service}");
            let config = s
                .volumes
                .iter()
                .find(|m| m.target.starts_with("/etc/demo/") && m.target.ends_with(&format!("{service}.yml")))
                .unwrap();
            let compose_engine::model::MountSource::Bind(path) = &config.source else {
                panic!("{stack}: a bind mount")
            };
            let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(text.contains("postgres:") && !text.contains("sqlite"), "{}", path.display());
        }
    }
}
