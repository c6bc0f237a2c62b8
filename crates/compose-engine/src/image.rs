//! The services' image, built offline from the host's `demo` binary (no registry, no base image):
//!
//! ```text
//! FROM scratch
//! COPY rootfs/ /          # /demo, every shared library `ldd` names (same paths), /var/lib/demo, /tmp
//! USER 65534:65534
//! ENTRYPOINT ["/demo"]
//! ```
//!
//! The tag is `demo-security/demo:<first 16 hex of the binary's SHA-256>`: an unchanged binary
//! reuses the image it built before. The shared libraries come from `ldd`, the tool that knows the
//! dynamic loader's search rules; a static binary needs none.

use std::path::{Path, PathBuf};
use std::process::Command;

use bollard::query_parameters::BuildImageOptionsBuilder;
use futures_util::StreamExt as _;

use crate::{Engine, EngineError};

/// The repository our image is tagged in.
pub const REPOSITORY: &str = "demo-security/demo";

/// The `org.opencontainers.image.title` label of our images.
const TITLE: &str = "demo-security";

/// The image could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
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
    /// `demo-security/demo:<hash>`.
    pub tag: String,
    /// Whether this call built it (false: it was there already).
    pub built: bool,
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

fn read(path: &Path) -> Result<Vec<u8>, ImageError> {
    std::fs::read(path).map_err(|source| ImageError::Read { path: path.to_owned(), source })
}

fn tar_file(
    builder: &mut tar::Builder<Vec<u8>>,
    path: &str,
    bytes: &[u8],
    mode: u32,
) -> Result<(), ImageError> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(mode);
    header.set_mtime(0); // reproducible context
    header.set_cksum();
    builder.append_data(&mut header, path, bytes).map_err(|e| ImageError::Build(format!("tar: {e}")))
}

/// The build context: a Dockerfile and `rootfs/` (libraries read through symlinks, so the image
/// holds real files at the paths the loader looks at).
pub fn build_context(binary: &Path, libraries: &[PathBuf], binary_hash: &str) -> Result<Vec<u8>, ImageError> {
    let dockerfile = format!(
        "FROM scratch\nCOPY rootfs/ /\nUSER 65534:65534\nLABEL org.opencontainers.image.title=\"{TITLE}\" \
         org.opencontainers.image.revision=\"{binary_hash}\"\nENTRYPOINT [\"/demo\"]\n"
    );
    let mut builder = tar::Builder::new(Vec::new());
    tar_file(&mut builder, "Dockerfile", dockerfile.as_bytes(), 0o644)?;
    // Mount points a service writes to, sticky and open to every uid: the services run as the
    // state directory's owner (to read its 0600 secrets), and a new named volume takes its
    // owner and mode from the image's directory. Nothing else runs in these containers.
    for dir in ["rootfs/var/lib/demo/", "rootfs/tmp/"] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        header.set_mode(0o1777);
        header.set_mtime(0);
        header.set_cksum();
        builder
            .append_data(&mut header, dir, std::io::empty())
            .map_err(|e| ImageError::Build(format!("tar: {e}")))?;
    }
    tar_file(&mut builder, "rootfs/demo", &read(binary)?, 0o755)?;
    for lib in libraries {
        let inside = format!("rootfs{}", lib.display());
        tar_file(&mut builder, &inside, &read(lib)?, 0o755)?;
    }
    builder.into_inner().map_err(|e| ImageError::Build(format!("tar: {e}")))
}

/// Builds (or finds) the image for `binary`.
pub async fn ensure_service_image(engine: &Engine, binary: &Path) -> Result<ServiceImage, ImageError> {
    let bytes = read(binary)?;
    let hash = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes));
    let tag = format!("{REPOSITORY}:{}", &hash[..16]);
    drop(bytes);
    if engine.docker().inspect_image(&tag).await.is_ok() {
        return Ok(ServiceImage { tag, built: false });
    }
    let libraries = shared_libraries(binary)?;
    let context = build_context(binary, &libraries, &hash)?;
    let options =
        BuildImageOptionsBuilder::default().dockerfile("Dockerfile").t(&tag).rm(true).forcerm(true).build();
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
        .inspect_image(&tag)
        .await
        .map_err(|source| EngineError::Api { what: format!("inspecting {tag}"), source })?;
    prune_other_tags(engine, &tag, &hash).await;
    Ok(ServiceImage { tag, built: true })
}

/// Removes images of earlier binaries (other tags of [`REPOSITORY`]) so rebuilds do not fill the
/// disk. Removed by image id, which the engine refuses while any container (running or stopped)
/// uses the image: removing by tag would only untag it and leave a dangling image behind. Our
/// dangling images from before (by their title label) go too. Errors are ignored (pruning is
/// housekeeping, never a reason to fail a run).
async fn prune_other_tags(engine: &Engine, keep: &str, revision: &str) {
    let ours = [
        std::collections::HashMap::from([("reference", vec![format!("{REPOSITORY}:*")])]),
        std::collections::HashMap::from([
            ("dangling", vec!["true".to_owned()]),
            ("label", vec![format!("org.opencontainers.image.title={TITLE}")]),
        ]),
    ];
    for filters in ours {
        let options =
            bollard::query_parameters::ListImagesOptionsBuilder::default().filters(&filters).build();
        let Ok(images) = engine.docker().list_images(Some(options)).await else { continue };
        // Never this binary's image: a concurrent build of it is untagged for a moment.
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

    #[test]
    fn the_context_holds_the_dockerfile_the_binary_and_the_libraries() {
        let dir = std::env::temp_dir().join(format!("ce-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (bin, lib) = (dir.join("demo"), dir.join("libx.so"));
        std::fs::write(&bin, b"binary").unwrap();
        std::fs::write(&lib, b"library").unwrap();
        let context = build_context(&bin, std::slice::from_ref(&lib), "abc").unwrap();
        let mut archive = tar::Archive::new(context.as_slice());
        let names: Vec<String> =
            archive.entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect();
        assert_eq!(names[0], "Dockerfile");
        assert_eq!(names[1..3], ["rootfs/var/lib/demo/", "rootfs/tmp/"]);
        assert_eq!(names[3], "rootfs/demo");
        assert_eq!(names[4], format!("rootfs{}", lib.display()));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
