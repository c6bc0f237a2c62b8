//! Extracts the files Swagger UI's page loads from the vendored distribution zip
//! (`utoipa-swagger-ui-vendored`, read at build time only) into `OUT_DIR/swagger-ui/`, where
//! `src/swagger.rs` embeds them. Only these: the distribution also holds source maps and bundles
//! the page never loads (9.5 MB), which embedding it whole put into the binary. Nothing is
//! downloaded. The three large text files are written gzipped (`<name>.gz`, 1.8 → 0.5 MB):
//! that is how they are embedded and, to browsers, served.

use std::error::Error;
use std::io::{Cursor, Read, Write};
use std::path::PathBuf;

/// The files `src/swagger.rs` serves, as named in the zip's `dist/` folder. Our own
/// `swagger-initializer.js` replaces the distribution's. `src/swagger.rs` lists them too.
const FILES: [&str; 7] = [
    "index.html",
    "index.css",
    "swagger-ui.css",
    "swagger-ui-bundle.js",
    "swagger-ui-standalone-preset.js",
    "favicon-32x32.png",
    "favicon-16x16.png",
];

/// Those written gzipped, as `<name>.gz` only.
const GZIPPED: [&str; 3] = ["swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"];

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo::rerun-if-changed=build.rs");
    // sqlx::migrate! embeds these at compile time; a new migration must rebuild the crate.
    println!("cargo::rerun-if-changed=migrations");
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("swagger-ui");
    std::fs::create_dir_all(&out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    let mut zip = zip::ZipArchive::new(Cursor::new(utoipa_swagger_ui_vendored::SWAGGER_UI_VENDORED))
        .map_err(|e| format!("reading the vendored Swagger UI zip: {e}"))?;
    // The archive's single top-level folder, e.g. `swagger-ui-5.17.14/`.
    let top = zip
        .name_for_index(0)
        .and_then(|name| name.split('/').next())
        .ok_or("the vendored Swagger UI zip is empty")?
        .to_owned();
    for file in FILES {
        let name = format!("{top}/dist/{file}");
        let mut entry =
            zip.by_name(&name).map_err(|e| format!("{name} in the vendored Swagger UI zip: {e}"))?;
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(|e| format!("extracting {name}: {e}"))?;
        let (path, bytes) = if GZIPPED.contains(&file) {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            gz.write_all(&bytes).and_then(|()| gz.finish()).map(|gz| (out.join(format!("{file}.gz")), gz))
        } else {
            Ok((out.join(file), bytes))
        }
        .map_err(|e| format!("compressing {name}: {e}"))?;
        std::fs::write(&path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}
