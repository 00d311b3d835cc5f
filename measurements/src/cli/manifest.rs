//! `manifest build|sign|verify|show`: the signed measurement manifest of a release.
//!
//! Exit status: 0 on success, 2 on bad input, unsigned, tampered or wrongly signed manifests.

use super::compute::{compute_options, parse_memory, InitrdArgArg, KernelHeaderArg, MrtdOrderArg};
use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use cocoon_measure::acpi::AcpiBlobs;
use cocoon_measure::boot::{self, BootInputs, ComputeOptions, VmShape};
use cocoon_measure::manifest::{
    self, hexser, keyfile, AcpiBlob, ImageFiles, Manifest, ReleaseInfo, ShapeBuild, TdPolicy,
    MAX_MANIFEST_BYTES,
};
use cocoon_measure::rtmr3;
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Reads at most `max` bytes of `path` (sysfs files report no size, so the limit is enforced
/// while reading), naming `what` and the path in errors.
pub(crate) fn read_limited(path: &Path, max: usize, what: &str) -> anyhow::Result<Vec<u8>> {
    let f = std::fs::File::open(path)
        .with_context(|| format!("cannot open {what} {}", path.display()))?;
    let mut buf = Vec::new();
    f.take(max as u64 + 1)
        .read_to_end(&mut buf)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    if buf.len() > max {
        bail!(
            "{what} {} is larger than the limit of {max} bytes",
            path.display()
        );
    }
    Ok(buf)
}

/// Writes `data` to `path` through a temporary file in the same directory and a rename, so a
/// reader never sees half a file.
fn write_atomic(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} is not a file path", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

/// Reads a private key file, refusing one that others can read.
pub(crate) fn read_signing_key(path: &Path) -> anyhow::Result<SigningKey> {
    Ok(keyfile::read_signing_key(path)?)
}

pub(crate) fn read_verifying_key(path: &Path) -> anyhow::Result<VerifyingKey> {
    Ok(keyfile::read_verifying_key(path)?)
}

fn read_manifest(path: &Path) -> anyhow::Result<Manifest> {
    let bytes = read_limited(path, MAX_MANIFEST_BYTES, "manifest")?;
    Manifest::parse(&bytes).with_context(|| format!("manifest {}", path.display()))
}

/// The release files and model options, shared by `manifest build` and `eventlog replay`.
#[derive(Args, Debug)]
pub struct ImageArgs {
    /// Kernel (bzImage with EFI stub), as passed to QEMU -kernel.
    #[arg(long, value_name = "FILE")]
    pub kernel: Option<PathBuf>,
    /// Initrd, as passed to QEMU -initrd.
    #[arg(long, value_name = "FILE")]
    pub initrd: Option<PathBuf>,
    /// Kernel command line exactly as passed to QEMU -append.
    #[arg(
        long,
        value_name = "STRING",
        default_value = "",
        allow_hyphen_values = true
    )]
    pub cmdline: String,
    /// MRTD record order (see `compute --help`).
    #[arg(long, value_enum, default_value = "single-pass")]
    pub mrtd_order: MrtdOrderArg,
    /// Which kernel bytes the firmware measures (see `compute --help`).
    #[arg(long, value_enum, default_value = "as-file")]
    pub kernel_header: KernelHeaderArg,
    /// Where OVMF puts initrd=initrd in the load options (see `compute --help`).
    #[arg(long, value_enum, default_value = "suffix")]
    pub initrd_arg: InitrdArgArg,
}

impl ImageArgs {
    pub fn options(&self) -> ComputeOptions {
        compute_options(self.mrtd_order, self.kernel_header, self.initrd_arg)
    }

    pub fn boot_inputs(
        &self,
        firmware: &Path,
        shape: VmShape,
        acpi_dir: Option<PathBuf>,
    ) -> anyhow::Result<(BootInputs, ComputeOptions)> {
        let kernel = self
            .kernel
            .clone()
            .ok_or_else(|| anyhow!("--kernel is required"))?;
        let inputs = BootInputs {
            firmware: firmware.to_path_buf(),
            kernel,
            initrd: self.initrd.clone(),
            cmdline: self.cmdline.clone(),
            shape,
            acpi_dir,
        };
        Ok((inputs, self.options()))
    }
}

/// A VM shape on the command line: `NAME:CPUS:MEMORY:GPUS:ACPI_DIR`.
#[derive(Clone, Debug)]
pub struct ShapeArg {
    name: String,
    shape: VmShape,
    acpi_dir: PathBuf,
}

fn parse_shape(s: &str) -> Result<ShapeArg, String> {
    let parts: Vec<&str> = s.splitn(5, ':').collect();
    let [name, cpus, memory, gpus, acpi] = parts.as_slice() else {
        return Err(format!(
            "{s:?} is not NAME:CPUS:MEMORY:GPUS:ACPI_DIR (e.g. c8-m64g-g1:8:64G:1:acpi/c8-m64g-g1)"
        ));
    };
    if !manifest::valid_name(name) {
        return Err(format!(
            "shape name {name:?} must be 1..=64 of A-Z a-z 0-9 . _ -"
        ));
    }
    let cpus = cpus
        .parse()
        .map_err(|_| format!("vCPU count {cpus:?} is not a number"))?;
    let memory_bytes = parse_memory(memory)?;
    let gpus = gpus
        .parse()
        .map_err(|_| format!("GPU count {gpus:?} is not a number"))?;
    if acpi.is_empty() {
        return Err(format!("shape {name}: the ACPI directory is empty"));
    }
    Ok(ShapeArg {
        name: name.to_string(),
        shape: VmShape {
            cpus,
            memory_bytes,
            gpus,
        },
        acpi_dir: PathBuf::from(acpi),
    })
}

fn parse_digest48(s: &str) -> Result<[u8; 48], String> {
    hexser::decode_fixed(s)
}

#[derive(Subcommand, Debug)]
pub enum ManifestCommand {
    /// Compute the measurements of a release for each VM shape and write an (unsigned, unless
    /// --key is given) manifest.
    Build(Box<BuildArgs>),
    /// Sign a manifest with an Ed25519 private key (from `cocoon-measure keygen`), in place
    /// unless --out is given. An existing signature is replaced.
    Sign(SignArgs),
    /// Verify a manifest's signature against a public key and check its consistency. Unsigned,
    /// modified or otherwise signed manifests are refused (exit status 2).
    Verify(VerifyArgs),
    /// Print a manifest's contents (does not check the signature: use `verify`).
    Show(ShowArgs),
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// OVMF/TDVF firmware image (e.g. /usr/share/ovmf/OVMF.fd).
    #[arg(long, value_name = "FILE")]
    firmware: PathBuf,
    #[command(flatten)]
    image: ImageArgs,
    /// A VM shape: NAME:CPUS:MEMORY:GPUS:ACPI_DIR, e.g. c8-m64g-g1:8:64G:1:acpi/c8-m64g-g1.
    /// ACPI_DIR holds etc/table-loader, etc/acpi/rsdp, etc/acpi/tables from QEMU for that
    /// shape. Repeat for each shape.
    #[arg(long = "shape", value_name = "SHAPE", required = true, value_parser = parse_shape)]
    shapes: Vec<ShapeArg>,
    /// Release version, e.g. 1.4.0.
    #[arg(long)]
    release: String,
    /// Source commit the release was built from (lowercase hex).
    #[arg(long)]
    commit: String,
    /// Pin RTMR3 to the agent's event list for the release's reference configuration (JSON as
    /// the agent publishes it, format cocoon-rtmr3-events/v1); enables identity hashes.
    #[arg(long, value_name = "FILE")]
    rtmr3_events: Option<PathBuf>,
    /// Expected TDATTRIBUTES (0x + 16 hex digits); default: SEPT_VE_DISABLE only, no DEBUG.
    #[arg(long, value_name = "HEX", value_parser = hexser::u64_hex::parse, default_value = "0x0000000010000000")]
    td_attributes: u64,
    /// Expected XFAM (0x + 16 hex digits).
    #[arg(long, value_name = "HEX", value_parser = hexser::u64_hex::parse, default_value = "0x00000000000602e7")]
    xfam: u64,
    /// Expected MRCONFIGID (96 hex digits); default all zeroes (QEMU sets none).
    #[arg(long, value_name = "HEX", value_parser = parse_digest48)]
    mr_config_id: Option<[u8; 48]>,
    /// Expected MROWNER (96 hex digits); default all zeroes.
    #[arg(long, value_name = "HEX", value_parser = parse_digest48)]
    mr_owner: Option<[u8; 48]>,
    /// Expected MROWNERCONFIG (96 hex digits); default all zeroes.
    #[arg(long, value_name = "HEX", value_parser = parse_digest48)]
    mr_owner_config: Option<[u8; 48]>,
    /// Embed the ACPI blobs (base64) so RTMR0 can be recomputed from the manifest alone;
    /// otherwise only their SHA-256 digests are recorded.
    #[arg(long)]
    embed_acpi: bool,
    /// Sign the manifest with this private key right away.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Where to write the manifest.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

#[derive(Args, Debug)]
pub struct SignArgs {
    /// Private key file written by `cocoon-measure keygen`.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Write the signed manifest here instead of replacing the input.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// The manifest to sign.
    manifest: PathBuf,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Public key file (64 hex digits) written by `cocoon-measure keygen`.
    #[arg(long, value_name = "FILE")]
    pubkey: PathBuf,
    /// Also print the expected registers of this VM shape.
    #[arg(long, value_name = "NAME")]
    shape: Option<String>,
    /// The manifest to verify.
    manifest: PathBuf,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// Only this VM shape.
    #[arg(long, value_name = "NAME")]
    shape: Option<String>,
    /// Print the manifest body as indented JSON.
    #[arg(long)]
    json: bool,
    /// The manifest to show.
    manifest: PathBuf,
}

pub fn run(cmd: ManifestCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ManifestCommand::Build(a) => build(*a),
        ManifestCommand::Sign(a) => sign(a),
        ManifestCommand::Verify(a) => verify(a),
        ManifestCommand::Show(a) => show(a),
    }
}

fn sha256_file(path: &Path, what: &str) -> anyhow::Result<[u8; 32]> {
    let mut f = std::fs::File::open(path)
        .with_context(|| format!("cannot open {what} {}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    Ok(h.finalize().into())
}

fn acpi_blobs(dir: &Path, embed: bool) -> anyhow::Result<Vec<AcpiBlob>> {
    let blobs =
        AcpiBlobs::load(dir).with_context(|| format!("ACPI directory {}", dir.display()))?;
    Ok(AcpiBlob::entries(&blobs, embed))
}

fn build(a: BuildArgs) -> anyhow::Result<ExitCode> {
    let kernel = a
        .image
        .kernel
        .clone()
        .ok_or_else(|| anyhow!("--kernel is required"))?;
    let mut shapes = Vec::with_capacity(a.shapes.len());
    for s in &a.shapes {
        let (inputs, opts) =
            a.image
                .boot_inputs(&a.firmware, s.shape.clone(), Some(s.acpi_dir.clone()))?;
        let m = boot::compute(&inputs, &opts).with_context(|| format!("shape {}", s.name))?;
        shapes.push(ShapeBuild {
            name: s.name.clone(),
            shape: s.shape.clone(),
            acpi: acpi_blobs(&s.acpi_dir, a.embed_acpi)?,
            measurements: m,
        });
    }
    let rtmr3_events = match &a.rtmr3_events {
        Some(p) => Some(
            rtmr3::from_json(&read_limited(p, rtmr3::MAX_LIST_JSON, "RTMR3 event list")?)
                .with_context(|| format!("RTMR3 event list {}", p.display()))?,
        ),
        None => None,
    };
    let release = ReleaseInfo {
        release: a.release.clone(),
        commit: a.commit.clone(),
        td: TdPolicy {
            attributes: a.td_attributes,
            xfam: a.xfam,
            mr_config_id: a.mr_config_id.unwrap_or([0; 48]),
            mr_owner: a.mr_owner.unwrap_or([0; 48]),
            mr_owner_config: a.mr_owner_config.unwrap_or([0; 48]),
        },
    };
    let image = ImageFiles {
        firmware_sha256: sha256_file(&a.firmware, "firmware")?,
        kernel_sha256: sha256_file(&kernel, "kernel")?,
        initrd_sha256: a
            .image
            .initrd
            .as_deref()
            .map(|p| sha256_file(p, "initrd"))
            .transpose()?,
        cmdline: a.image.cmdline.clone(),
    };
    let body = manifest::build(release, image, shapes, rtmr3_events)?;
    let mut m = Manifest {
        body,
        signature: None,
    };
    if let Some(k) = &a.key {
        m.sign(&read_signing_key(k)?);
    }
    write_atomic(&a.out, m.to_json().as_bytes())?;
    eprintln!(
        "wrote {} manifest {} ({} shapes)",
        if m.signature.is_some() {
            "signed"
        } else {
            "unsigned"
        },
        a.out.display(),
        m.body.shapes.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn sign(a: SignArgs) -> anyhow::Result<ExitCode> {
    let key = read_signing_key(&a.key)?;
    let mut m = read_manifest(&a.manifest)?;
    let replaced = m.signature.is_some();
    m.sign(&key);
    let out = a.out.as_ref().unwrap_or(&a.manifest);
    write_atomic(out, m.to_json().as_bytes())?;
    eprintln!(
        "signed {} with key {}{}",
        out.display(),
        hex::encode(key.verifying_key().to_bytes()),
        if replaced {
            " (replaced the previous signature)"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn verify(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let key = read_verifying_key(&a.pubkey)?;
    let m = read_manifest(&a.manifest)?;
    m.verify(&key)
        .with_context(|| format!("manifest {}", a.manifest.display()))?;
    let b = &m.body;
    println!(
        "OK: manifest {} (release {}, commit {}) is signed by {} and consistent; shapes: {}",
        a.manifest.display(),
        b.release,
        b.commit,
        hex::encode(key.to_bytes()),
        b.shapes
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(name) = &a.shape {
        print_shape(b.shape(name)?);
    }
    Ok(ExitCode::SUCCESS)
}

fn opt_hex<const N: usize>(v: &Option<[u8; N]>) -> String {
    v.map_or_else(|| "(not pinned)".to_string(), hex::encode)
}

fn print_shape(s: &manifest::ShapeEntry) {
    println!(
        "shape {}: {} vCPUs, {} bytes of memory, {} GPUs",
        s.name, s.cpus, s.memory_bytes, s.gpus
    );
    let r = &s.registers;
    println!("  MRTD   {}", hex::encode(r.mrtd));
    println!("  RTMR0  {}", hex::encode(r.rtmr0));
    println!("  RTMR1  {}", hex::encode(r.rtmr1));
    println!("  RTMR2  {}", hex::encode(r.rtmr2));
    println!("  RTMR3  {}", opt_hex(&r.rtmr3));
    println!("  identity (SHA-384, v1)  {}", opt_hex(&s.identity_sha384));
    println!(
        "  COCOON image hash       {}",
        opt_hex(&s.cocoon_image_hash)
    );
    for b in &s.acpi {
        println!(
            "  ACPI {} {} bytes sha256 {}{}",
            b.name,
            b.size,
            hex::encode(b.sha256),
            if b.data_base64.is_some() {
                " (embedded)"
            } else {
                ""
            }
        );
    }
    println!("  {} events in RTMR0-2", s.events.len());
}

fn show(a: ShowArgs) -> anyhow::Result<ExitCode> {
    let m = read_manifest(&a.manifest)?;
    let b = &m.body;
    if a.json {
        let v = match &a.shape {
            Some(name) => serde_json::to_value(b.shape(name)?),
            None => serde_json::to_value(b),
        }
        .context("serialising the manifest")?;
        println!(
            "{}",
            serde_json::to_string_pretty(&v).context("serialising the manifest")?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("format   {}", b.format);
    println!("release  {} (commit {})", b.release, b.commit);
    match &m.signature {
        Some(s) => println!(
            "signed   {} key {} (not verified: use `manifest verify`)",
            s.algorithm,
            hex::encode(s.public_key)
        ),
        None => println!("signed   NO"),
    }
    println!(
        "TD       attributes 0x{:016x}, XFAM 0x{:016x}",
        b.td.attributes, b.td.xfam
    );
    println!("image    MRTD  {}", hex::encode(b.image.mrtd));
    println!(
        "         RTMR1 {}",
        b.image
            .rtmr1
            .map_or_else(|| "(depends on the shape)".into(), hex::encode)
    );
    println!(
        "         RTMR2 {}",
        b.image
            .rtmr2
            .map_or_else(|| "(depends on the shape)".into(), hex::encode)
    );
    println!(
        "         firmware sha256 {}",
        hex::encode(b.image.firmware_sha256)
    );
    println!(
        "         kernel   sha256 {}",
        hex::encode(b.image.kernel_sha256)
    );
    println!(
        "         initrd   sha256 {}",
        opt_hex(&b.image.initrd_sha256)
    );
    println!("         cmdline  {:?}", b.image.cmdline);
    if let Some(pin) = &b.rtmr3 {
        println!(
            "RTMR3    {} ({} events)",
            hex::encode(pin.value),
            pin.events.len()
        );
        for e in &pin.events {
            println!("         {} {}", e.kind, hex::encode(&e.payload));
        }
    }
    for s in &b.shapes {
        if a.shape.as_ref().is_none_or(|n| n == &s.name) {
            print_shape(s);
        }
    }
    if let Some(name) = &a.shape {
        b.shape(name)?;
    }
    Ok(ExitCode::SUCCESS)
}
