//! Several `-f` files: later files override earlier ones by compose's merge rules.

use std::path::Path;
use std::time::Duration;

use compose_engine::model::MountSource;

use crate::load;

#[test]
fn two_files_merge_by_compose_rules() {
    let p = load(&["merge/base.yml", "merge/override.yml"], &[]).unwrap();
    let kms = &p.services["kms"];
    // Scalars and command: replaced.
    assert_eq!(kms.image, "demo-security/demo:2");
    assert_eq!(kms.command.as_ref().unwrap().last().unwrap(), "--verbose");
    // Maps: merged, later wins.
    assert_eq!(kms.environment["LOG"], "info");
    assert_eq!(kms.environment["MODE"], "override");
    assert_eq!(kms.environment["EXTRA"], "1");
    assert_eq!(kms.labels["tier"], "base");
    // Ports: appended, duplicates once.
    let published: Vec<_> = kms.ports.iter().map(|p| p.published.unwrap()).collect();
    assert_eq!(published, [8081, 9081]);
    // Volumes: unique by target; the override's /etc/demo replaces the base's.
    assert_eq!(kms.volumes.len(), 2);
    let etc = kms.volumes.iter().find(|m| m.target == "/etc/demo").unwrap();
    let MountSource::Bind(src) = &etc.source else { panic!() };
    // Relative to the project directory (the first file's), as compose does for -f files.
    assert!(src.ends_with(Path::new("merge/other-config")), "{}", src.display());
    // Healthcheck: fields merge, test kept.
    let h = kms.healthcheck.as_ref().unwrap();
    assert_eq!(h.test, ["/demo", "healthcheck"]);
    assert_eq!(h.interval, Some(Duration::from_secs(1)));
    assert_eq!(h.retries, Some(3));
    // A service only the override has.
    assert!(p.services.contains_key("extra"));
    assert!(p.services["kms"].defined_in.ends_with("merge/base.yml"));
    assert_eq!(p.files.len(), 2);
}

#[test]
fn order_matters() {
    let p = load(&["merge/override.yml", "merge/base.yml"], &[]);
    // The override alone lacks nothing, so the reverse order loads with the base winning.
    let p = p.unwrap();
    assert_eq!(p.services["kms"].image, "demo-security/demo:1");
    assert_eq!(p.services["kms"].environment["MODE"], "base");
}
