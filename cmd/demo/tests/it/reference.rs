//! Tidy: the README's CLI reference names every flag the binary accepts.

#[test]
fn readme_mentions_every_flag() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let help = crate::demo().args(["pki", "--help"]).assert().success();
    let help = String::from_utf8_lossy(&help.get_output().stdout).into_owned();
    let flags: Vec<&str> = help
        .split_whitespace()
        .map(|w| w.trim_end_matches([',', '.']))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .collect();
    assert!(flags.contains(&"--out"), "{help}");
    for flag in flags {
        if flag == "--help" || flag == "--version" {
            continue;
        }
        let flag = flag.split('=').next().unwrap_or(flag);
        assert!(readme.contains(flag), "README.md does not document {flag}");
    }
}
