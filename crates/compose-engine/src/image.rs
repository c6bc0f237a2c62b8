//! The services' image, built offline from a binary of the host (no registry, no base image):
//!
//! ```text
//! FROM scratch
//! COPY rootfs/ /     # /<entrypoint name>, every shared library `ldd` names (same paths), writable dirs
//! USER <user>
//! ENTRYPOINT ["/<entrypoint name>"]
//! ```
//!
//! The caller says what the image is called and how it runs ([`ImageSpec`]: repository, title
//! label, entrypoint name, user, writable directories); this crate knows no product. The tag is
//! `<repository>:<first 16 hex of the inputs' SHA-256>` — the binary's bytes, the spec and
//! whether the binary was stripped — so an unchanged binary reuses the image it built before.
//!
//! The binary goes into the image **stripped** of its debug information and symbol table:
//! `strip --strip-all` (binutils) writes a stripped copy to a temporary file, which is what the
//! image holds; the binary on the host keeps both. A panic in a container still says where (the
//! file and line come from the panic's location, not from debug information); a backtrace there
//! has no function names. Without `strip` on the `PATH` (or when it fails) the binary goes in
//! as it is, the tag says so, and [`ServiceImage::notes`] explains. The shared libraries come
//! from `ldd`, the tool that knows the dynamic loader's search rules; a static binary needs none.

use std::path::{Path, PathBuf};
use std::process::Command;

use bollard::query_parameters::BuildImageOptionsBuilder;
use futures_util::StreamExt as _;

use crate::{Engine, EngineError};

/// What the caller's service image is called and how it runs. Every field goes into the
/// image's Dockerfile or tag, so each is checked ([`ImageSpec::check`]) before anything is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageSpec<'a> {
    /// The repository the image is tagged in (`owner/name`: lower-case letters, digits, `.`,
    /// `_`, `-` and `/`). Other tags of it are earlier binaries' images, pruned after a build.
    pub repository: &'a str,
    /// The `org.opencontainers.image.title` label; this repository's dangling images are
    /// found by it and pruned too.
    pub title: &'a str,
    /// The binary's file name in the image: it is copied to `/<entrypoint_name>`, the entrypoint.
    pub entrypoint_name: &'a str,
    /// The `USER` the containers run as (`uid:gid`: the image has no `/etc/passwd`).
    pub user: &'a str,
    /// Empty directories (absolute paths) created sticky and open to every uid (mode 1777):
    /// the mount points a service writes to, since a new named volume takes its owner and mode
    /// from the image's directory.
    pub writable_dirs: &'a [&'a str],
}

impl ImageSpec<'_> {
    /// Refuses a value that would make a broken tag or Dockerfile (empty, a quote, a control
    /// character, a path where a name belongs, a relative writable directory).
    pub fn check(&self) -> Result<(), ImageError> {
        let bad = |field: &'static str, value: &str, reason: &str| {
            Err(ImageError::Spec { field, value: value.to_owned(), reason: reason.to_owned() })
        };
        let plain = |s: &str| !s.is_empty() && !s.chars().any(|c| c.is_control() || matches!(c, '"' | '\\'));
        let repository_char =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '/');
        let edge = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        if !(self.repository.chars().all(repository_char)
            && self.repository.starts_with(edge)
            && self.repository.ends_with(edge))
        {
            return bad(
                "repository",
                self.repository,
                "use lower-case letters, digits, `.`, `_`, `-` and `/`, starting and ending with a letter or digit",
            );
        }
        if !plain(self.title) {
            return bad(
                "title",
                self.title,
                "use a non-empty label without quotes, backslashes or control characters",
            );
        }
        if !plain(self.entrypoint_name)
            || self.entrypoint_name.contains('/')
            || matches!(self.entrypoint_name, "." | "..")
        {
            return bad(
                "entrypoint_name",
                self.entrypoint_name,
                "use a plain file name (it goes to the image's root)",
            );
        }
        if !self.user.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-'))
            || self.user.is_empty()
        {
            return bad("user", self.user, "write uid:gid, e.g. 65534:65534");
        }
        for dir in self.writable_dirs {
            let parts_ok =
                Path::new(dir).components().skip(1).all(|c| matches!(c, std::path::Component::Normal(_)));
            if !plain(dir) || !dir.starts_with('/') || *dir == "/" || !parts_ok {
                return bad("writable_dirs", dir, "use absolute paths below `/`, without `.` or `..`");
            }
        }
        Ok(())
    }
}

/// The image could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The caller's [`ImageSpec`] has a value the image cannot carry.
    #[error("the image spec's {field} `{value}` is not usable: {reason}")]
    Spec {
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
        /// What to write instead.
        reason: String,
    },
    /// The binary or a library could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `ldd` could not be run or did not understand the binary.
    #[error("cannot list the shared libraries of {path} with ldd: {reason}")]
    Ldd {
        /// The binary.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The engine refused the build.
    #[error("the image build failed: {0}")]
    Build(String),
    /// The engine could not be asked.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A third-party image is not on this engine and could not be pulled.
    #[error("{reference} is not present locally and could not be pulled: {reason}")]
    Unavailable {
        /// The image reference.
        reference: String,
        /// Why the pull failed (no registry, a timeout, an unknown image).
        reason: String,
    },
}

/// How a third-party image was had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// It was on the engine already.
    Present,
    /// This call pulled it.
    Pulled,
}

/// Progress of a pull, as the engine reports it per layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullProgress {
    /// The layer (empty for messages about the whole image).
    pub layer: String,
    /// `Downloading`, `Extracting`, `Pull complete`, ….
    pub status: String,
    /// Bytes done and in all, when the engine says.
    pub bytes: Option<(u64, u64)>,
}

/// Makes sure a third-party image (an OpenTelemetry collector, PostgreSQL) is on the engine: used
/// when present, otherwise pulled within `timeout`, reporting progress to `progress`. With no
/// registry reachable this fails with [`ImageError::Unavailable`] saying why, so the caller
/// can degrade and say so.
pub async fn ensure_third_party(
    engine: &Engine,
    reference: &str,
    timeout: std::time::Duration,
    progress: &(dyn Fn(&PullProgress) + Send + Sync),
) -> Result<Availability, ImageError> {
    if engine.docker().inspect_image(reference).await.is_ok() {
        return Ok(Availability::Present);
    }
    let unavailable = |reason: String| ImageError::Unavailable { reference: reference.to_owned(), reason };
    let options =
        bollard::query_parameters::CreateImageOptionsBuilder::default().from_image(reference).build();
    let pull = async {
        let mut stream = engine.docker().create_image(Some(options), None, None);
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| unavailable(e.to_string()))?;
            if let Some(message) = info.error_detail.and_then(|d| d.message) {
                return Err(unavailable(message));
            }
            let bytes = info
                .progress_detail
                .and_then(|d| Some((u64::try_from(d.current?).ok()?, u64::try_from(d.total?).ok()?)));
            progress(&PullProgress {
                layer: info.id.unwrap_or_default(),
                status: info.status.unwrap_or_default(),
                bytes,
            });
        }
        Ok(())
    };
    tokio::time::timeout(timeout, pull)
        .await
        .map_err(|_| unavailable(format!("no answer from the registry within {timeout:?}")))??;
    engine
        .docker()
        .inspect_image(reference)
        .await
        .map_err(|e| unavailable(format!("the pull ended but the image is not there: {e}")))?;
    Ok(Availability::Pulled)
}

/// The image the services run from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceImage {
    /// `<repository>:<hash>`.
    pub tag: String,
    /// Whether this call built it (false: it was there already).
    pub built: bool,
    /// Whether the image holds the binary stripped (no debug information, no symbol table).
    pub stripped: bool,
    /// What a person should know (the binary went in unstripped, and why), one sentence each.
    pub notes: Vec<String>,
}

/// The shared libraries (and the dynamic loader) a binary needs, as absolute paths.
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, ImageError> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| ImageError::Ldd { path: binary.to_owned(), reason: e.to_string() })?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("not a dynamic executable") || text.contains("statically linked") {
        return Ok(Vec::new());
    }
    if !out.status.success() {
        let reason = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Err(ImageError::Ldd { path: binary.to_owned(), reason });
    }
    Ok(parse_ldd(&text))
}

/// `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` and `/lib64/ld-linux-x86-64.so.2
/// (0x…)` give paths; `linux-vdso.so.1 (0x…)` is the kernel's and has none.
fn parse_ldd(text: &str) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = text
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let candidate = match line.split_once("=>") {
                Some((_, right)) => right.trim(),
                None => line,
            };
            let path = candidate.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, ImageError> {
    std::fs::read(path).map_err(|source| ImageError::Read { path: path.to_owned(), source })
}

pub(crate) fn tar_file(
    builder: &mut tar::Builder<Vec<u8>>,
    path: &str,
    bytes: &[u8],
    mode: u32,
) -> Result<(), ImageError> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0); // reproducible context
    header.set_cksum();
    builder.append_data(&mut header, path, bytes).map_err(|e| ImageError::Build(format!("tar: {e}")))
}

/// The build context: a Dockerfile and `rootfs/` (`binary` at `/<entrypoint_name>`; libraries
/// read through symlinks, so the image holds real files at the paths the loader looks at).
pub fn build_context(
    spec: &ImageSpec<'_>,
    binary: &[u8],
    libraries: &[PathBuf],
    revision: &str,
) -> Result<Vec<u8>, ImageError> {
    spec.check()?;
    let ImageSpec { title, entrypoint_name, user, .. } = spec;
    let dockerfile = format!(
        "FROM scratch\nCOPY rootfs/ /\nUSER {user}\nLABEL org.opencontainers.image.title=\"{title}\" \
         org.opencontainers.image.revision=\"{revision}\"\nENTRYPOINT [\"/{entrypoint_name}\"]\n"
    );
    let mut builder = tar::Builder::new(Vec::new());
    tar_file(&mut builder, "Dockerfile", dockerfile.as_bytes(), 0o644)?;
    // Mount points a service writes to, sticky and open to every uid: the services may run as
    // another user than the image's (the owner of the files they read), and a new named volume
    // takes its owner and mode from the image's directory. Nothing else runs in these containers.
    for dir in spec.writable_dirs {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        header.set_mode(0o1777);
        header.set_mtime(0);
        header.set_cksum();
        builder
            .append_data(&mut header, format!("rootfs{}/", dir.trim_end_matches('/')), std::io::empty())
            .map_err(|e| ImageError::Build(format!("tar: {e}")))?;
    }
    tar_file(&mut builder, &format!("rootfs/{entrypoint_name}"), binary, 0o755)?;
    for lib in libraries {
        let inside = format!("rootfs{}", lib.display());
        tar_file(&mut builder, &inside, &read(lib)?, 0o755)?;
    }
    builder.into_inner().map_err(|e| ImageError::Build(format!("tar: {e}")))
}

/// The hash the tag and the revision label carry: the binary's SHA-256, the spec and whether the
/// binary goes in stripped. Anything that changes the image changes it.
fn image_hash(binary_sha256: &str, spec: &ImageSpec<'_>, stripped: bool) -> String {
    let recipe = format!(
        "binary {binary_sha256}\nrepository {}\ntitle {}\nentrypoint {}\nuser {}\nwritable {}\nstrip-all {stripped}\n",
        spec.repository,
        spec.title,
        spec.entrypoint_name,
        spec.user,
        spec.writable_dirs.join(" "),
    );
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, recipe.as_bytes()))
}

/// An executable named `name` in a directory of `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| {
        std::fs::metadata(candidate).is_ok_and(|m| {
            m.is_file() && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
        })
    })
}

/// `binary` without its debug information and symbol table (`strip --strip-all`, into a
/// temporary file that is removed again), or why not.
fn strip_all(strip: &Path, binary: &Path) -> Result<Vec<u8>, String> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = std::env::temp_dir().join(format!("compose-engine-strip-{}-{n}", std::process::id()));
    let result = Command::new(strip)
        .arg("--strip-all")
        .arg("-o")
        .arg(&out)
        .arg(binary)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", strip.display()))
        .and_then(|o| {
            if o.status.success() {
                std::fs::read(&out).map_err(|e| format!("cannot read its output {}: {e}", out.display()))
            } else {
                Err(format!("{} said: {}", strip.display(), String::from_utf8_lossy(&o.stderr).trim()))
            }
        });
    let _ = std::fs::remove_file(&out);
    result
}

/// Builds (or finds) the image `spec` describes for `binary`; see the module documentation.
pub async fn ensure_service_image(
    engine: &Engine,
    binary: &Path,
    spec: &ImageSpec<'_>,
) -> Result<ServiceImage, ImageError> {
    spec.check()?;
    let bytes = read(binary)?;
    let binary_sha256 = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes));
    let tag_of = |hash: &str| format!("{}:{}", spec.repository, &hash[..16]);
    let mut notes = Vec::new();
    let strip = on_path("strip");
    if strip.is_none() {
        notes.push(
            "`strip` (binutils) is not on the PATH: the service image holds the binary with its symbols and debug \
             information, which makes it larger; install binutils to shrink it"
                .to_owned(),
        );
    }
    let mut hash = image_hash(&binary_sha256, spec, strip.is_some());
    if engine.docker().inspect_image(&tag_of(&hash)).await.is_ok() {
        return Ok(ServiceImage { tag: tag_of(&hash), built: false, stripped: strip.is_some(), notes });
    }
    let (content, stripped) = match strip.as_deref().map(|s| strip_all(s, binary)) {
        Some(Ok(stripped)) => (stripped, true),
        Some(Err(reason)) => {
            notes.push(format!(
                "the service image holds the binary with its symbols and debug information, which makes it \
                 larger: stripping {} failed ({reason})",
                binary.display()
            ));
            hash = image_hash(&binary_sha256, spec, false);
            if engine.docker().inspect_image(&tag_of(&hash)).await.is_ok() {
                return Ok(ServiceImage { tag: tag_of(&hash), built: false, stripped: false, notes });
            }
            (bytes, false)
        }
        None => (bytes, false),
    };
    let tag = tag_of(&hash);
    let libraries = shared_libraries(binary)?;
    let context = build_context(spec, &content, &libraries, &hash)?;
    drop(content);
    build(engine, context, &tag).await?;
    prune_other_tags(engine, spec.repository, spec.title, &tag, &hash).await;
    Ok(ServiceImage { tag, built: true, stripped, notes })
}

/// Sends `context` (a tar with a Dockerfile) to the engine's builder, tagging the result `tag`.
pub(crate) async fn build(engine: &Engine, context: Vec<u8>, tag: &str) -> Result<(), ImageError> {
    let options =
        BuildImageOptionsBuilder::default().dockerfile("Dockerfile").t(tag).rm(true).forcerm(true).build();
    let mut stream = engine.docker().build_image(options, None, Some(bollard::body_full(context.into())));
    let mut log = String::new();
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| ImageError::Build(e.to_string()))?;
        if let Some(error) = info.error_detail.and_then(|d| d.message) {
            return Err(ImageError::Build(format!("{error}\n{log}")));
        }
        if let Some(line) = info.stream {
            log.push_str(&line);
        }
    }
    engine
        .docker()
        .inspect_image(tag)
        .await
        .map_err(|source| EngineError::Api { what: format!("inspecting {tag}"), source })?;
    Ok(())
}

/// Removes images of earlier binaries (other tags of the spec's repository) so rebuilds do not
/// fill the disk. Removed by image id, which the engine refuses while any container (running or
/// stopped) uses the image: removing by tag would only untag it and leave a dangling image
/// behind. Dangling images with the spec's title label go too. Errors are ignored (pruning is
/// housekeeping, never a reason to fail a run).
pub(crate) async fn prune_other_tags(
    engine: &Engine,
    repository: &str,
    title: &str,
    keep: &str,
    revision: &str,
) {
    let ours = [
        std::collections::HashMap::from([("reference", vec![format!("{repository}:*")])]),
        std::collections::HashMap::from([
            ("dangling", vec!["true".to_owned()]),
            ("label", vec![format!("org.opencontainers.image.title={title}")]),
        ]),
    ];
    for filters in ours {
        let options =
            bollard::query_parameters::ListImagesOptionsBuilder::default().filters(&filters).build();
        let Ok(images) = engine.docker().list_images(Some(options)).await else { continue };
        // Never this image: a concurrent build of it is untagged for a moment.
        let current = |i: &bollard::models::ImageSummary| {
            i.repo_tags.iter().any(|t| t == keep)
                || i.labels.get("org.opencontainers.image.revision").is_some_and(|r| r == revision)
        };
        for image in images.into_iter().filter(|i| !current(i)) {
            let _ = engine
                .docker()
                .remove_image(&image.id, None::<bollard::query_parameters::RemoveImageOptions>, None)
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_is_parsed_into_absolute_paths() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd1b5f2000)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f5a)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f59)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f5b)\n";
        assert_eq!(
            parse_ldd(text),
            [
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib64/ld-linux-x86-64.so.2"
            ]
            .map(PathBuf::from)
        );
    }

    /// A spec unlike any product's: the values come from the caller.
    const SPEC: ImageSpec<'static> = ImageSpec {
        repository: "example.org/thing",
        title: "thing",
        entrypoint_name: "thing",
        user: "1000:1000",
        writable_dirs: &["/var/lib/thing", "/tmp"],
    };

    #[test]
    fn the_context_holds_the_dockerfile_the_binary_and_the_libraries() {
        let dir = std::env::temp_dir().join(format!("ce-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lib = dir.join("libx.so");
        std::fs::write(&lib, b"library").unwrap();
        let context = build_context(&SPEC, b"binary", std::slice::from_ref(&lib), "abc").unwrap();
        let mut archive = tar::Archive::new(context.as_slice());
        let mut entries: Vec<(String, Vec<u8>)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut bytes).unwrap();
                (e.path().unwrap().display().to_string(), bytes)
            })
            .collect();
        let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names[..4], ["Dockerfile", "rootfs/var/lib/thing/", "rootfs/tmp/", "rootfs/thing"]);
        assert_eq!(names[4], format!("rootfs{}", lib.display()));
        assert_eq!(entries[3].1, b"binary");
        let dockerfile = String::from_utf8(entries.remove(0).1).unwrap();
        assert_eq!(
            dockerfile,
            "FROM scratch\nCOPY rootfs/ /\nUSER 1000:1000\nLABEL org.opencontainers.image.title=\"thing\" \
             org.opencontainers.image.revision=\"abc\"\nENTRYPOINT [\"/thing\"]\n"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_spec_that_would_break_the_tag_or_the_dockerfile_is_refused() {
        assert!(SPEC.check().is_ok());
        let cases: [(&str, ImageSpec<'static>); 9] = [
            ("repository", ImageSpec { repository: "Upper/case", ..SPEC }),
            ("repository", ImageSpec { repository: "name:tag", ..SPEC }),
            ("repository", ImageSpec { repository: "", ..SPEC }),
            ("title", ImageSpec { title: "a\" b", ..SPEC }),
            ("entrypoint_name", ImageSpec { entrypoint_name: "bin/thing", ..SPEC }),
            ("entrypoint_name", ImageSpec { entrypoint_name: "..", ..SPEC }),
            ("user", ImageSpec { user: "nobody; rm", ..SPEC }),
            ("writable_dirs", ImageSpec { writable_dirs: &["relative"], ..SPEC }),
            ("writable_dirs", ImageSpec { writable_dirs: &["/var/../etc"], ..SPEC }),
        ];
        for (field, spec) in cases {
            let err = spec.check().unwrap_err();
            assert!(matches!(&err, ImageError::Spec { field: f, .. } if *f == field), "{field}: {err}");
            assert!(err.to_string().contains(field), "{err}");
        }
        let err = build_context(&ImageSpec { title: "", ..SPEC }, b"b", &[], "abc").unwrap_err();
        assert!(matches!(err, ImageError::Spec { field: "title", .. }), "{err}");
    }

    #[test]
    fn the_image_hash_changes_with_every_input() {
        let base = image_hash("00", &SPEC, true);
        assert_eq!(base, image_hash("00", &SPEC, true), "deterministic");
        for other in [
            image_hash("01", &SPEC, true),
            image_hash("00", &SPEC, false),
            image_hash("00", &ImageSpec { user: "0:0", ..SPEC }, true),
            image_hash("00", &ImageSpec { entrypoint_name: "other", ..SPEC }, true),
            image_hash("00", &ImageSpec { writable_dirs: &["/tmp"], ..SPEC }, true),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn strip_all_shrinks_a_binary_or_says_why_not() {
        let Some(strip) = on_path("strip") else {
            assert!(std::env::var_os("CI").is_none(), "strip (binutils) is missing under CI");
            eprintln!("SKIPPED: strip (binutils) is not on the PATH");
            return;
        };
        // This test binary carries symbols and debug information (the dev profile keeps line tables).
        let me = std::env::current_exe().unwrap();
        let stripped = strip_all(&strip, &me).unwrap();
        let size = std::fs::metadata(&me).unwrap().len();
        assert!((stripped.len() as u64) < size, "{} >= {size}", stripped.len());
        assert_eq!(&stripped[..4], b"\x7fELF");
        let not_elf = std::env::temp_dir().join(format!("ce-not-elf-{}", std::process::id()));
        std::fs::write(&not_elf, b"text").unwrap();
        let err = strip_all(&strip, &not_elf).unwrap_err();
        std::fs::remove_file(&not_elf).unwrap();
        assert!(err.contains("said"), "{err}");
    }
}
