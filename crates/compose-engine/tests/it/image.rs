//! The service image through the real engine, built from this test binary (which carries debug
//! information: the dev profile keeps line tables, and std brings its own): the binary read back
//! out of the image has no DWARF (`.debug_*`) section and no symbol table left — checked by our
//! own reading of the ELF section headers, not by the tool that stripped it — and the image is
//! smaller than the binary it was built from. Both are properties of the inputs, not of timing. An
//! unchanged binary reuses the image. Needs a Docker engine (and `strip`): skipped loudly without
//! them, a failure under CI.

use std::time::Duration;

use bollard::query_parameters::{
    DownloadFromContainerOptionsBuilder, RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
};
use compose_engine::Engine;
use compose_engine::image::{ImageSpec, ensure_service_image};
use futures_util::StreamExt as _;

/// The names of an ELF64 little-endian file's sections.
fn section_names(elf: &[u8]) -> Vec<String> {
    assert_eq!(&elf[..6], b"\x7fELF\x02\x01", "an ELF64 little-endian file");
    let u16_at = |at: usize| usize::from(u16::from_le_bytes([elf[at], elf[at + 1]]));
    let u32_at = |at: usize| u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) as usize;
    let u64_at =
        |at: usize| usize::try_from(u64::from_le_bytes(elf[at..at + 8].try_into().unwrap())).unwrap();
    let (table, entry_size, count, names_index) = (u64_at(0x28), u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
    let header = |i: usize| table + i * entry_size;
    let names = u64_at(header(names_index) + 0x18);
    (0..count)
        .map(|i| {
            let start = names + u32_at(header(i));
            let end = start + elf[start..].iter().position(|b| *b == 0).unwrap();
            String::from_utf8_lossy(&elf[start..end]).into_owned()
        })
        .collect()
}

/// A DWARF section (`.debug_gdb_scripts` is not one: it is loaded, for debuggers' pretty
/// printers, and stays).
fn dwarf(section: &str) -> bool {
    section.starts_with(".debug_") && section != ".debug_gdb_scripts"
}

/// The bytes of the file at `path` inside `image`, read through a container that never starts.
async fn file_in_image(engine: &Engine, image: &str, path: &str) -> Vec<u8> {
    let body = bollard::models::ContainerCreateBody { image: Some(image.to_owned()), ..Default::default() };
    let id = engine.docker().create_container(None, body).await.unwrap().id;
    let options = DownloadFromContainerOptionsBuilder::default().path(path).build();
    let archive: Vec<u8> = engine
        .docker()
        .download_from_container(&id, Some(options))
        .map(|c| c.unwrap().to_vec())
        .concat()
        .await;
    engine
        .docker()
        .remove_container(&id, Some(RemoveContainerOptionsBuilder::default().force(true).build()))
        .await
        .unwrap();
    let mut entries = tar::Archive::new(archive.as_slice());
    let mut entry = entries.entries().unwrap().next().unwrap().unwrap();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
    bytes
}

#[tokio::test]
async fn the_image_holds_the_binary_stripped_and_is_smaller_than_it() {
    let engine = match Engine::connect(Duration::from_secs(2)).await {
        Ok(engine) => engine,
        Err(e) => {
            assert!(std::env::var_os("CI").is_none(), "no Docker engine under CI: {e}");
            eprintln!("SKIPPED: this test needs a Docker engine: {e}");
            return;
        }
    };
    let binary = std::env::current_exe().unwrap();
    let input = std::fs::read(&binary).unwrap();
    let input_sections = section_names(&input);
    assert!(
        input_sections.iter().any(|s| dwarf(s)) && input_sections.iter().any(|s| s == ".symtab"),
        "the test needs a binary with debug information and symbols: {input_sections:?}"
    );
    // A repository of this process alone: a build prunes the repository's other tags, and
    // another test run may be building at the same time.
    let repository = format!("compose-engine-test/image-{}", std::process::id());
    let spec = ImageSpec {
        repository: &repository,
        title: "compose-engine-test",
        entrypoint_name: "entry",
        user: "65534:65534",
        writable_dirs: &["/data"],
    };
    let image = ensure_service_image(&engine, &binary, &spec).await.unwrap();
    let again = ensure_service_image(&engine, &binary, &spec).await.unwrap();
    let inside = file_in_image(&engine, &image.tag, "/entry").await;
    let image_size = engine.docker().inspect_image(&image.tag).await.unwrap().size.unwrap_or(i64::MAX);
    let config = engine.docker().inspect_image(&image.tag).await.unwrap().config.unwrap();
    engine
        .docker()
        .remove_image(&image.tag, Some(RemoveImageOptionsBuilder::default().force(true).build()), None)
        .await
        .unwrap();

    assert!(image.tag.starts_with(&format!("{repository}:")), "{}", image.tag);
    assert_eq!(
        (again.tag.as_str(), again.built),
        (image.tag.as_str(), false),
        "an unchanged binary is reused"
    );
    assert_eq!(config.entrypoint, Some(vec!["/entry".to_owned()]));
    assert_eq!(config.user.as_deref(), Some("65534:65534"));
    if !image.stripped {
        assert!(std::env::var_os("CI").is_none(), "the image was not stripped under CI: {:?}", image.notes);
        eprintln!("SKIPPED: the stripping checks: {:?}", image.notes);
        assert_eq!(inside, input, "unstripped, the binary goes in as it is");
        return;
    }
    assert!(image.notes.is_empty(), "{:?}", image.notes);
    let sections = section_names(&inside);
    assert!(!sections.iter().any(|s| dwarf(s)), "debug sections left: {sections:?}");
    assert!(!sections.iter().any(|s| s == ".symtab"), "the symbol table is left: {sections:?}");
    assert!(sections.iter().any(|s| s == ".text"), "still a program: {sections:?}");
    assert!(inside.len() < input.len(), "{} >= {}", inside.len(), input.len());
    let input_size = i64::try_from(input.len()).unwrap();
    assert!(
        image_size < input_size,
        "the image ({image_size} B) is not smaller than the binary ({input_size} B)"
    );
}
