//! A worker directory for launch-config based tests (`launch`, `acpi capture`): release files,
//! a synthetic manifest, a packed model disk, a config share, on a ready fake host.

use std::fs;
use std::path::{Path, PathBuf};

use super::*;

/// A valid user-friendly (non-bounceable) address for account id 00 01 .. 1f.
pub const OWNER: &str = "UQAAAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eH0Bm";
pub const SECOND_GPU: &str = "0000:65:00.0";

pub struct Fixture {
    pub host: FakeHost,
    pub root_hash: String,
}

impl Fixture {
    pub fn new() -> Fixture {
        let host = FakeHost::ready();
        host.pci(
            SECOND_GPU,
            0x10de,
            0x2331,
            0x030200,
            Some("vfio-pci"),
            Some("9"),
        );
        let f = Fixture {
            host,
            root_hash: String::new(),
        };
        let d = f.dir();
        fs::create_dir_all(d.join("release")).unwrap();
        for (name, body) in [
            ("OVMF.fd", "ovmf"),
            ("image.vmlinuz", "kernel"),
            ("image.initrd", "initrd"),
            ("image.raw", "root disk"),
        ] {
            fs::write(d.join("release").join(name), body).unwrap();
        }
        fs::write(
            d.join("release/image.cmdline"),
            "console=ttyS0 root=/dev/vda2 ro verity.roothash=5a5a\n",
        )
        .unwrap();
        fs::create_dir_all(d.join("worker-config")).unwrap();
        fs::write(d.join("manifest.json"), f.manifest(None)).unwrap();
        let mut gguf = b"GGUF".to_vec();
        gguf.extend((0..20_000u32).map(|i| (i * 7 % 251) as u8));
        fs::write(d.join("tiny.gguf"), gguf).unwrap();
        let info = cocoon_host::model_pack::pack(&d.join("tiny.gguf"), &d.join("model")).unwrap();
        Fixture {
            root_hash: info.root_hash,
            ..f
        }
    }

    pub fn dir(&self) -> PathBuf {
        self.host.dir.path().join("w")
    }

    /// A manifest for the release files in `release/` with the three shapes the configs use.
    pub fn manifest(&self, key: Option<&ed25519_dalek::SigningKey>) -> String {
        synthetic_manifest(
            &self.dir().join("release"),
            &[
                ("c8-m64g-g1", 8, 64 << 30, 1),
                ("c16-m128g-g2", 16, 128 << 30, 2),
                ("c4-m16g", 4, 16 << 30, 0),
            ],
            key,
        )
    }

    /// Writes a TOML config; `vm` and `extra` are spliced in.
    pub fn config(&self, name: &str, owner: Option<&str>, vm: &str, agent_port: u16) -> PathBuf {
        let owner_line = owner
            .map(|o| format!("owner_address = \"{o}\"\n"))
            .unwrap_or_default();
        let text = format!(
            "{owner_line}manifest = \"manifest.json\"\n\n[image]\ndir = \"release\"\n\n[vm]\n{vm}\n\n\
             [data_disk]\npath = \"data.img\"\nsize = \"100G\"\n\n\
             [model_disk]\npath = \"model/model.img\"\nverity = \"model/model.verity\"\nroot_hash = \"{}\"\n\n\
             [config_share]\ndir = \"worker-config\"\n\n[agent]\nport = {agent_port}\n",
            self.root_hash
        );
        let p = self.dir().join(name);
        fs::write(&p, text).unwrap();
        p
    }

    pub fn launch(&self, config: &Path, extra: &[&str]) -> std::process::Output {
        let mut args = vec!["launch", config.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.host.run(&args)
    }
}

pub const VM_1GPU: &str = "vcpus = 8\nmemory = \"64G\"\ngpus = [\"0000:17:00.0\"]";
pub const VM_2GPU: &str =
    "vcpus = 16\nmemory = \"128G\"\ngpus = [\"0000:17:00.0\", \"0000:65:00.0\"]";
pub const VM_NOGPU: &str = "vcpus = 4\nmemory = 17179869184";
