//! `volumes:` entries of a service: named volumes, bind mounts (relative to the file) and tmpfs,
//! short and long syntax.

use std::path::PathBuf;

use serde_norway::Value;

use super::ctx::Ctx;
use super::values::flag;
use crate::model::error::ModelError;
use crate::model::lines::join;
use crate::model::{Mount, MountSource, wire};

pub(super) fn mount(ctx: &Ctx, path: &str, v: Value) -> Result<Mount, ModelError> {
    let hint = "write `name:/path[:ro]` (named volume), `./dir:/path[:ro]` (bind) or {type: volume, source: name, target: /path}";
    let is_host_path = |s: &str| s.starts_with('.') || s.starts_with('/') || s.starts_with('~');
    let host = |s: &str| -> Result<PathBuf, ModelError> {
        if s.starts_with('~') {
            return Err(ctx.unsupported(
                path,
                "`~` in a bind mount",
                "write the path relative to the compose file or absolute",
            ));
        }
        Ok(ctx.host_path(s))
    };
    let check_target = |t: &str| -> Result<(), ModelError> {
        if t.starts_with('/') {
            Ok(())
        } else {
            Err(ctx.invalid(path, format!("the target `{t}` is not an absolute path"), hint))
        }
    };
    match v {
        Value::String(s) => {
            let parts: Vec<&str> = s.split(':').collect();
            let (source, target, read_only) = match parts.as_slice() {
                [_] => {
                    return Err(ctx.unsupported(
                        path,
                        "anonymous volumes",
                        "name the volume: `data:/var/lib/app` and declare `data` under `volumes:`",
                    ));
                }
                [source, target] => (*source, *target, false),
                [source, target, "ro"] => (*source, *target, true),
                [source, target, "rw"] => (*source, *target, false),
                [_, _, mode] => {
                    return Err(ctx.unsupported(path, format!("the mount option `{mode}`"), "use ro or rw"));
                }
                _ => return Err(ctx.invalid(path, format!("`{s}` has too many `:`"), hint)),
            };
            check_target(target)?;
            let source = if is_host_path(source) {
                MountSource::Bind(host(source)?)
            } else {
                MountSource::Volume(source.to_owned())
            };
            Ok(Mount { source, target: target.to_owned(), read_only })
        }
        v @ Value::Mapping(_) => {
            let long: wire::VolumeLong = ctx.typed(path, v)?;
            check_target(&long.target)?;
            let read_only = flag(ctx, &join(path, "read_only"), long.read_only)?.unwrap_or(false);
            let need_source = || {
                long.source
                    .clone()
                    .ok_or_else(|| ctx.invalid(path, format!("a {} mount needs `source:`", long.kind), hint))
            };
            let source = match long.kind.as_str() {
                "volume" => MountSource::Volume(need_source()?),
                "bind" => MountSource::Bind(host(&need_source()?)?),
                "tmpfs" => MountSource::Tmpfs,
                other => {
                    return Err(ctx.unsupported(
                        &join(path, "type"),
                        format!("mount type `{other}`"),
                        "use volume, bind or tmpfs",
                    ));
                }
            };
            Ok(Mount { source, target: long.target, read_only })
        }
        _ => Err(ctx.invalid(path, "a volume is a string or a mapping", hint)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::model::load::test_support::{ctx, yaml};

    #[test]
    fn mounts() {
        let m = |s: &str| mount(&ctx(), "m", Value::String(s.into()));
        assert_eq!(m("data:/var/lib/demo").unwrap().source, MountSource::Volume("data".into()));
        let bind = m("./config:/etc/demo:ro").unwrap();
        assert_eq!(bind.source, MountSource::Bind(PathBuf::from("/stack/config")));
        assert_eq!(m("../up:/x").unwrap().source, MountSource::Bind(PathBuf::from("/up")));
        assert!(bind.read_only);
        assert!(matches!(m("/data").unwrap_err(), ModelError::Unsupported { .. }));
        assert!(m("data:relative").is_err());
        assert!(m("data:/x:z").is_err());
        let long = mount(&ctx(), "m", yaml("{type: tmpfs, target: /tmp}")).unwrap();
        assert_eq!(long.source, MountSource::Tmpfs);
    }
}
