//! The VM shapes a host offers, with the ACPI blob directory captured for each: a shapes file
//! (TOML, or JSON when the name ends in `.json`) or `--shape NAME:CPUS:MEMORY:GPUS:ACPI_DIR`.
//!
//! ```toml
//! [[shape]]
//! name = "c8-m64g-g1"       # 1..=64 of [A-Za-z0-9._-], unique
//! cpus = 8
//! memory = "64G"            # or bytes; binary units
//! gpus = 1
//! acpi_dir = "acpi/c8-m64g-g1"   # optional for `measure`; relative to this file
//! ```
//!
//! Invariants of a parsed list: names valid and unique, every shape valid ([`VmShape::new`]),
//! at most [`cocoon_measure::manifest::MAX_SHAPES`] entries.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use cocoon_measure::manifest::{valid_name, MAX_SHAPES};
use serde::Deserialize;

use crate::boot::VmShape;
use crate::launch::config::parse_size;

/// A shapes file is a few lines per shape.
pub const MAX_SHAPES_FILE_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedShape {
    pub name: String,
    pub shape: VmShape,
    pub acpi_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ShapesError {
    #[error("shapes file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("shapes file {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("--shape {spec:?}: {reason}")]
    Spec { spec: String, reason: String },
    #[error("no shape named {name:?} (shapes: {available})")]
    NoSuchShape { name: String, available: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    shape: Vec<RawShape>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(u64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShape {
    name: String,
    cpus: u32,
    memory: Size,
    #[serde(default)]
    gpus: u32,
    acpi_dir: Option<PathBuf>,
}

fn named(name: &str, cpus: u32, memory: u64, gpus: u32) -> Result<(String, VmShape), String> {
    if !valid_name(name) {
        return Err(format!(
            "shape name {name:?} must be 1..=64 of A-Z a-z 0-9 . _ -"
        ));
    }
    let shape = VmShape::new(cpus, memory, gpus).map_err(|e| format!("shape {name}: {e}"))?;
    Ok((name.to_string(), shape))
}

/// Parses `NAME:CPUS:MEMORY:GPUS:ACPI_DIR` (ACPI_DIR may be empty for `measure`).
pub fn parse_spec(spec: &str) -> Result<NamedShape, ShapesError> {
    let err = |reason: String| ShapesError::Spec {
        spec: spec.to_string(),
        reason,
    };
    let parts: Vec<&str> = spec.splitn(5, ':').collect();
    let [name, cpus, memory, gpus, acpi] = parts.as_slice() else {
        return Err(err(
            "not NAME:CPUS:MEMORY:GPUS:ACPI_DIR (e.g. c8-m64g-g1:8:64G:1:acpi/c8-m64g-g1)".into(),
        ));
    };
    let cpus: u32 = cpus
        .parse()
        .map_err(|_| err(format!("vCPU count {cpus:?} is not a number")))?;
    let memory_bytes =
        parse_size(memory).ok_or_else(|| err(format!("{memory:?} is not a size like 64G")))?;
    let gpus: u32 = gpus
        .parse()
        .map_err(|_| err(format!("GPU count {gpus:?} is not a number")))?;
    let (name, shape) = named(name, cpus, memory_bytes, gpus).map_err(err)?;
    Ok(NamedShape {
        name,
        shape,
        acpi_dir: (!acpi.is_empty()).then(|| PathBuf::from(acpi)),
    })
}

/// Checks a list: not empty, not too long, unique names.
pub fn check_list(shapes: &[NamedShape]) -> Result<(), String> {
    if shapes.is_empty() {
        return Err("no shape given".into());
    }
    if shapes.len() > MAX_SHAPES {
        return Err(format!(
            "{} shapes, more than a manifest holds ({MAX_SHAPES})",
            shapes.len()
        ));
    }
    for (i, s) in shapes.iter().enumerate() {
        if shapes[..i].iter().any(|o| o.name == s.name) {
            return Err(format!("shape name {:?} is used twice", s.name));
        }
    }
    Ok(())
}

/// Reads a shapes file; relative `acpi_dir`s are taken relative to the file's directory.
pub fn load(path: &Path) -> Result<Vec<NamedShape>, ShapesError> {
    let invalid = |reason: String| ShapesError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let mut text = String::new();
    fs::File::open(path)
        .and_then(|f| f.take(MAX_SHAPES_FILE_BYTES + 1).read_to_string(&mut text))
        .map_err(|source| ShapesError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if text.len() as u64 > MAX_SHAPES_FILE_BYTES {
        return Err(invalid(format!(
            "larger than {MAX_SHAPES_FILE_BYTES} bytes"
        )));
    }
    let raw: RawFile = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| e.to_string())
    } else {
        toml::from_str(&text).map_err(|e| e.to_string())
    }
    .map_err(invalid)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut out = Vec::with_capacity(raw.shape.len().min(MAX_SHAPES + 1));
    for (i, r) in raw.shape.into_iter().enumerate() {
        let memory = match &r.memory {
            Size::Bytes(b) => Some(*b),
            Size::Text(t) => parse_size(t),
        }
        .ok_or_else(|| invalid(format!("shape[{i}].memory is not a size like 64G")))?;
        let (name, shape) = named(&r.name, r.cpus, memory, r.gpus)
            .map_err(|e| invalid(format!("shape[{i}]: {e}")))?;
        out.push(NamedShape {
            name,
            shape,
            acpi_dir: r
                .acpi_dir
                .map(|d| if d.is_absolute() { d } else { base.join(d) }),
        });
    }
    check_list(&out).map_err(invalid)?;
    Ok(out)
}

/// The shape called `name`.
pub fn find<'a>(shapes: &'a [NamedShape], name: &str) -> Result<&'a NamedShape, ShapesError> {
    shapes
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| ShapesError::NoSuchShape {
            name: name.to_string(),
            available: shapes
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        let s = parse_spec("c8:8:64G:1:acpi/c8").unwrap();
        assert_eq!(s.name, "c8");
        assert_eq!(s.shape, VmShape::new(8, 64 << 30, 1).unwrap());
        assert_eq!(s.acpi_dir.as_deref(), Some(Path::new("acpi/c8")));
        assert_eq!(parse_spec("c2:2:2048M:0:").unwrap().acpi_dir, None);
        for bad in [
            "c8:8:64G:1",
            "c 8:8:64G:1:a",
            "c8:x:64G:1:a",
            "c8:8:64Q:1:a",
            "c8:8:64G:-1:a",
            "c8:0:64G:1:a",
            "c8:8:512M:1:a",
            "",
        ] {
            assert!(
                matches!(parse_spec(bad), Err(ShapesError::Spec { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("shapes.toml");
        let good = "[[shape]]\nname = \"a\"\ncpus = 2\nmemory = \"2G\"\nacpi_dir = \"acpi/a\"\n\n\
                    [[shape]]\nname = \"b\"\ncpus = 8\nmemory = 68719476736\ngpus = 1\n";
        fs::write(&p, good).unwrap();
        let s = load(&p).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].acpi_dir, Some(d.path().join("acpi/a")));
        assert_eq!(s[1].shape, VmShape::new(8, 64 << 30, 1).unwrap());
        assert_eq!(find(&s, "b").unwrap().name, "b");
        let j = d.path().join("shapes.json");
        fs::write(
            &j,
            r#"{"shape":[{"name":"a","cpus":2,"memory":"2G","acpi_dir":"/abs/a"}]}"#,
        )
        .unwrap();
        let js = load(&j).unwrap();
        assert_eq!(js[0].acpi_dir.as_deref(), Some(Path::new("/abs/a")));
        assert_eq!(js[0].shape, VmShape::new(2, 2 << 30, 0).unwrap());
        fs::write(&j, r#"{"shape":[{"name":"a","cpus":2}]}"#).unwrap();
        assert!(matches!(load(&j), Err(ShapesError::Invalid { .. })));
        assert!(matches!(
            find(&s, "c"),
            Err(ShapesError::NoSuchShape { .. })
        ));
        for bad in [
            &good[..good.len() / 2],
            "",
            "[[shape]]\nname = \"a\"\ncpus = 2\nmemory = \"2G\"\ncolour = 1\n",
            "[[shape]]\nname = \"a\"\ncpus = 2\nmemory = \"2X\"\n",
            "[[shape]]\nname = \"a\"\ncpus = 2\nmemory = \"2G\"\n[[shape]]\nname = \"a\"\ncpus = 4\nmemory = \"4G\"\n",
            "[[shape]]\nname = \"a/b\"\ncpus = 2\nmemory = \"2G\"\n",
        ] {
            fs::write(&p, bad).unwrap();
            assert!(matches!(load(&p), Err(ShapesError::Invalid { .. })), "{bad}");
        }
        fs::write(&p, "#".repeat(2 << 20)).unwrap();
        assert!(matches!(load(&p), Err(ShapesError::Invalid { .. })));
        let many: String = (0..300)
            .map(|i| format!("[[shape]]\nname = \"s{i}\"\ncpus = 1\nmemory = \"1G\"\n"))
            .collect();
        fs::write(&p, many).unwrap();
        assert!(matches!(load(&p), Err(ShapesError::Invalid { .. })));
        assert!(matches!(
            load(&d.path().join("none.toml")),
            Err(ShapesError::Io { .. })
        ));
    }
}
