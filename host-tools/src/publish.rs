//! `cocoon-host publish`: computes the measurements of every VM shape the host offers (the
//! same [`BootSpec`] `launch` uses), builds the manifest with the `cocoon-measure` library,
//! signs it, writes it, then reads the file back and verifies it with the signing key's public
//! half before reporting success.

use std::path::{Path, PathBuf};

use cocoon_measure::acpi::{AcpiBlobs, AcpiError};
use cocoon_measure::boot::{self, MeasureError};
use cocoon_measure::manifest::{
    self, AcpiBlob, ImageFiles, Manifest, ManifestBody, ReleaseInfo, ShapeBuild, TdPolicy,
};
use cocoon_measure::rtmr3::Rtmr3Event;
use ed25519_dalek::SigningKey;

use crate::boot::BootSpec;
use crate::manifest::{load, sha256_file, write_atomic, ManifestError};
use crate::shapes_file::NamedShape;

/// What a release's manifest is built from.
#[derive(Debug, Clone)]
pub struct Release {
    pub release: String,
    pub commit: String,
    pub td: TdPolicy,
    pub firmware: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub cmdline: String,
    pub shapes: Vec<NamedShape>,
    pub rtmr3_events: Option<Vec<Rtmr3Event>>,
    /// Embed the ACPI blobs so RTMR0 can be recomputed from the manifest alone.
    pub embed_acpi: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("shape {name}: {reason}")]
    Shape { name: String, reason: String },
    #[error("shape {name} has no ACPI directory: RTMR0 depends on the blobs QEMU generates for it (see docs/measurements-compute.md, \"Capturing the ACPI blobs\")")]
    NoAcpi { name: String },
    #[error("shape {name}: {source}")]
    Acpi {
        name: String,
        #[source]
        source: AcpiError,
    },
    #[error("shape {name}: {source}")]
    Measure {
        name: String,
        #[source]
        source: MeasureError,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Build(#[from] manifest::ManifestError),
    #[error("the manifest written to {path} does not verify: {source}")]
    Verify {
        path: PathBuf,
        #[source]
        source: ManifestError,
    },
    #[error("the manifest read back from {path} differs from the one built")]
    ReadBack { path: PathBuf },
}

fn acpi_blobs(dir: &Path, embed: bool) -> Result<Vec<AcpiBlob>, AcpiError> {
    Ok(AcpiBlob::entries(&AcpiBlobs::load(dir)?, embed))
}

/// Computes every shape and builds the (unsigned) manifest body.
pub fn build(r: &Release) -> Result<ManifestBody, PublishError> {
    let mut shapes = Vec::with_capacity(r.shapes.len());
    for s in &r.shapes {
        let spec = BootSpec::new(
            r.firmware.clone(),
            r.kernel.clone(),
            r.initrd.clone(),
            r.cmdline.clone(),
            s.shape,
        )
        .map_err(|reason| PublishError::Shape {
            name: s.name.clone(),
            reason: format!("kernel command line: {reason}"),
        })?;
        let acpi_dir = s.acpi_dir.as_deref().ok_or_else(|| PublishError::NoAcpi {
            name: s.name.clone(),
        })?;
        let acpi = acpi_blobs(acpi_dir, r.embed_acpi).map_err(|source| PublishError::Acpi {
            name: s.name.clone(),
            source,
        })?;
        let measurements = boot::compute(
            &spec.boot_inputs(Some(acpi_dir)),
            &BootSpec::compute_options(),
        )
        .map_err(|source| PublishError::Measure {
            name: s.name.clone(),
            source,
        })?;
        shapes.push(ShapeBuild {
            name: s.name.clone(),
            shape: s.shape.to_measure(),
            acpi,
            measurements,
        });
    }
    let hash = |what: &'static str, path: &Path| {
        sha256_file(path).map_err(|source| PublishError::Io {
            what,
            path: path.to_path_buf(),
            source,
        })
    };
    let image = ImageFiles {
        firmware_sha256: hash("firmware", &r.firmware)?,
        kernel_sha256: hash("kernel", &r.kernel)?,
        initrd_sha256: Some(hash("initrd", &r.initrd)?),
        cmdline: r.cmdline.clone(),
    };
    let release = ReleaseInfo {
        release: r.release.clone(),
        commit: r.commit.clone(),
        td: r.td.clone(),
    };
    Ok(manifest::build(
        release,
        image,
        shapes,
        r.rtmr3_events.clone(),
    )?)
}

/// Builds, signs and writes the manifest to `out`, then verifies the file as written.
pub fn publish(r: &Release, key: &SigningKey, out: &Path) -> Result<Manifest, PublishError> {
    let mut m = Manifest {
        body: build(r)?,
        signature: None,
    };
    m.sign(key);
    write_atomic(out, m.to_json().as_bytes()).map_err(|source| PublishError::Io {
        what: "manifest",
        path: out.to_path_buf(),
        source,
    })?;
    // A file that does not verify is removed rather than left for someone to publish.
    let discard = || {
        let _ = std::fs::remove_file(out);
    };
    let back = load(out, Some(&key.verifying_key())).map_err(|source| {
        discard();
        PublishError::Verify {
            path: out.to_path_buf(),
            source,
        }
    })?;
    if back != m {
        discard();
        return Err(PublishError::ReadBack {
            path: out.to_path_buf(),
        });
    }
    Ok(back)
}
