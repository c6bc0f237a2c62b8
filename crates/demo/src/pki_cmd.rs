//! `demo pki`: the CA chain and the leaves of every demo service and client, on their own.

use std::path::{Path, PathBuf};

use pki::{EnsureOptions, KeyType, LeafKind, Pkcs12Password, PkiSpec};
use serde::Serialize;

use crate::{DemoError, Outcome, SCHEMA_VERSION, Style};

/// What `demo pki` was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiOptions {
    /// The directory to write (created if missing; reused if it holds a PKI with these settings).
    pub out: PathBuf,
    /// CAs in the chain, root included.
    pub chain_length: u8,
    /// Key algorithm.
    pub key_type: KeyType,
    /// DNS domain of the services.
    pub domain: String,
    /// Server leaves (`kms` → `kms.<domain>`).
    pub services: Vec<String>,
    /// Client leaves for mTLS.
    pub clients: Vec<String>,
    /// Write PKCS#12 bundles too.
    pub pkcs12: bool,
    /// Where the PKCS#12 password comes from; generated into the directory when absent.
    pub pkcs12_password_file: Option<PathBuf>,
}

impl Default for PkiOptions {
    fn default() -> Self {
        Self {
            out: PathBuf::from("demo-pki"),
            chain_length: pki::DEFAULT_CHAIN_LENGTH,
            key_type: KeyType::P256,
            domain: pki::DEFAULT_DOMAIN.to_owned(),
            services: vec!["kms".to_owned(), "identity".to_owned()],
            clients: vec!["demo-cli".to_owned()],
            pkcs12: false,
            pkcs12_password_file: None,
        }
    }
}

impl PkiOptions {
    /// The spec these options describe.
    pub fn spec(&self) -> PkiSpec {
        let services: Vec<&str> = self.services.iter().map(String::as_str).collect();
        let clients: Vec<&str> = self.clients.iter().map(String::as_str).collect();
        PkiSpec {
            chain_length: self.chain_length,
            key_type: self.key_type,
            ..PkiSpec::for_services(&self.domain, &services, &clients)
        }
    }
}

/// What `demo pki` did: the JSON document of `--output json`, and what the human output shows.
#[derive(Debug, Clone, Serialize)]
pub struct PkiReport {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Always `"pki"`.
    pub command: &'static str,
    /// Always success: failures are errors.
    pub outcome: Outcome,
    /// 0.
    pub exit_code: u8,
    /// True when this run generated the PKI; false when it reused an existing one.
    pub created: bool,
    /// The PKI directory.
    pub dir: PathBuf,
    /// The trust anchor clients need.
    pub ca_bundle: PathBuf,
    /// The CAs below the root, issuing first (none for a one-CA chain).
    pub intermediates: Option<PathBuf>,
    /// Number of CAs and the key type.
    pub chain_length: u8,
    /// Key algorithm.
    pub key_type: KeyType,
    /// The CAs, root first.
    pub cas: Vec<CaReport>,
    /// The leaves.
    pub leaves: Vec<LeafReport>,
    /// The PKCS#12 password file, when bundles were asked for.
    pub pkcs12_password_file: Option<PathBuf>,
    /// Files this run wrote.
    pub written: Vec<PathBuf>,
}

/// One CA in the report.
#[derive(Debug, Clone, Serialize)]
pub struct CaReport {
    /// Root, Policy, Issuing.
    pub name: String,
    /// Its certificate.
    pub cert: PathBuf,
    /// End of validity (RFC 3339).
    pub not_after: String,
}

/// One leaf in the report.
#[derive(Debug, Clone, Serialize)]
pub struct LeafReport {
    /// Handle (`kms`).
    pub name: String,
    /// Server or client.
    pub kind: LeafKind,
    /// Subject CN.
    pub common_name: String,
    /// Every SAN.
    pub names: Vec<String>,
    /// The leaf's directory (cert.pem, key.pem, chain.pem, fullchain.pem).
    pub dir: PathBuf,
    /// The PKCS#12 bundle, when written.
    pub pkcs12: Option<PathBuf>,
    /// End of validity (RFC 3339).
    pub not_after: String,
}

/// Generates (or checks and reuses) the PKI described by `options`.
pub fn run(options: &PkiOptions) -> Result<PkiReport, DemoError> {
    let spec = options.spec();
    let pkcs12 = options.pkcs12.then(|| match &options.pkcs12_password_file {
        Some(path) => Pkcs12Password::File(path.clone()),
        None => Pkcs12Password::Generate,
    });
    let existed = options.out.join("manifest.json").exists();
    let done = pki::ensure(&options.out, &spec, &EnsureOptions { pkcs12 })
        .map_err(|e| DemoError::pki(&options.out, if existed { "reused" } else { "created" }, e))?;
    let dir = &done.dir;
    let cas = done
        .manifest
        .cas
        .iter()
        .map(|c| CaReport { name: c.name.clone(), cert: dir.ca(&c.name).0, not_after: c.not_after.clone() })
        .collect();
    let leaves = done
        .manifest
        .leaves
        .iter()
        .zip(&spec.leaves)
        .map(|(entry, leaf)| {
            let paths = dir.leaf(&leaf.name);
            let mut names = leaf.dns_names.clone();
            if !names.contains(&leaf.common_name) {
                names.insert(0, leaf.common_name.clone());
            }
            names.extend(leaf.ip_addresses.iter().map(ToString::to_string));
            LeafReport {
                name: leaf.name.clone(),
                kind: leaf.kind,
                common_name: leaf.common_name.clone(),
                names,
                pkcs12: paths.pkcs12.exists().then_some(paths.pkcs12.clone()),
                dir: paths.dir,
                not_after: entry.not_after.clone(),
            }
        })
        .collect();
    let pkcs12_password_file =
        options.pkcs12.then(|| options.pkcs12_password_file.clone().unwrap_or_else(|| dir.pkcs12_password()));
    Ok(PkiReport {
        schema_version: SCHEMA_VERSION,
        command: "pki",
        outcome: Outcome::Success,
        exit_code: 0,
        created: done.created,
        ca_bundle: dir.ca_bundle(),
        intermediates: (spec.chain_length > 1).then(|| dir.intermediates()),
        dir: dir.root().to_owned(),
        chain_length: spec.chain_length,
        key_type: spec.key_type,
        cas,
        leaves,
        pkcs12_password_file,
        written: done.written,
    })
}

impl PkiReport {
    /// The report for a person; `verbose` adds every file written.
    pub fn render_human(&self, style: Style, verbose: bool) -> String {
        let mut out = String::new();
        let dir = self.dir.display();
        let chain = self.cas.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(" → ");
        if self.created {
            out.push_str(&format!(
                "{} a {}-CA chain ({chain}, {}) and {} leaves in {dir}\n",
                style.good("Generated"),
                self.chain_length,
                self.key_type,
                self.leaves.len()
            ));
        } else {
            let extra = if self.written.is_empty() {
                "nothing rewritten".to_owned()
            } else {
                format!("wrote {} file(s)", self.written.len())
            };
            out.push_str(&format!(
                "{} the existing {}-CA chain ({chain}, {}) in {dir}; every file checked, {extra}\n",
                style.good("Reused"),
                self.chain_length,
                self.key_type
            ));
        }
        out.push('\n');
        let rel = |p: &Path| p.strip_prefix(&self.dir).unwrap_or(p).display().to_string();
        out.push_str(&format!("  {:<14} {}\n", "CA bundle", style.strong(&rel(&self.ca_bundle))));
        if let Some(intermediates) = &self.intermediates {
            out.push_str(&format!("  {:<14} {}\n", "intermediates", rel(intermediates)));
        }
        for ca in &self.cas {
            out.push_str(&format!(
                "  {:<14} {}  {}\n",
                format!("{} CA", ca.name),
                rel(&ca.cert),
                style.dim(&format!("until {}", ca.not_after))
            ));
        }
        out.push('\n');
        for leaf in &self.leaves {
            let kind = match leaf.kind {
                LeafKind::Server => "server",
                LeafKind::Client => "client",
            };
            out.push_str(&format!(
                "  {:<14} {}/{{{}}}.pem  {} {}\n",
                leaf.name,
                rel(&leaf.dir),
                if self.intermediates.is_some() { "cert,key,chain,fullchain" } else { "cert,key,fullchain" },
                kind,
                style.dim(&leaf.names.join(", "))
            ));
            if let Some(p12) = &leaf.pkcs12 {
                out.push_str(&format!("  {:<14} {}\n", "", rel(p12)));
            }
        }
        if let Some(pw) = &self.pkcs12_password_file {
            out.push_str(&format!("\n  PKCS#12 password: {}\n", pw.display()));
        }
        if verbose && !self.written.is_empty() {
            out.push_str("\n  Written:\n");
            for file in &self.written {
                out.push_str(&format!("    {}\n", rel(file)));
            }
        }
        out.push_str(&format!(
            "\n{}\n",
            style.dim(
                "Private keys are 0600 and the directory is git-ignored. Trust ca-bundle.pem, nothing else."
            )
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn first_run_generates_second_reuses() {
        let tmp = tempfile::tempdir().unwrap();
        let options = PkiOptions { out: tmp.path().join("pki"), ..PkiOptions::default() };
        let first = run(&options).unwrap();
        assert!(first.created);
        assert_eq!(first.leaves.len(), 3);
        assert!(
            first
                .render_human(Style::plain(), false)
                .starts_with("Generated a 3-CA chain (Root → Policy → Issuing, p256)")
        );
        let second = run(&options).unwrap();
        assert!(!second.created);
        assert!(second.render_human(Style::plain(), false).contains("nothing rewritten"));
        assert!(!first.render_human(Style::plain(), false).contains("Written:"));
        let verbose = first.render_human(Style::plain(), true);
        assert!(verbose.contains("Written:") && verbose.contains("leaves/kms/key.pem"), "{verbose}");
    }

    #[test]
    fn errors_carry_a_code_causes_and_a_hint() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("x"), "").unwrap();
        let err = run(&PkiOptions { out: tmp.path().to_owned(), ..PkiOptions::default() }).unwrap_err();
        let report = err.report(None);
        assert_eq!(report.code, "demo::pki");
        assert!(report.message.ends_with("could not be created"), "{report:?}");
        assert!(report.causes[0].contains("not a PKI directory"), "{report:?}");
        assert!(report.hint.unwrap().contains("--out"));
    }
}
