//! `image/rootfs/usr/lib/cocoon/open-data-disk` run against a regular file standing in for the
//! data disk, under a test root (`COCOON_DATA_TEST_ROOT`), with the key on stdin as `serve
//! --open-data-disk` gives it (the SIMULATED key from the real `cocoon-agent data-key`), the
//! real `cryptsetup` (header, key check, luksFormat, relabel), `blkid`, `mkfs.ext4` and
//! `fsck.ext4`.
//!
//! Only what needs root block devices is replaced, by shims first on PATH: `cryptsetup open`
//! (without `--test-passphrase`) checks the key with the real cryptsetup and then "maps" the
//! disk by linking `dev/mapper/cocoon-data` to a plain file standing for the decrypted
//! contents; `cryptsetup close` removes the link; `mount` only records its arguments. The
//! script's device-mapper and mount calls themselves are checked in the QEMU boot test.
//!
//! Needs cryptsetup, blkid and e2fsprogs on the machine (ci/setup installs cryptsetup-bin).

use cocoon_tdx::simulated::SimulatedRegisters;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_cocoon-agent");
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../image/rootfs/usr/lib/cocoon/open-data-disk"
);
const MIB: u64 = 1 << 20;
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Test shim for cryptsetup; see the module documentation.
const CRYPTSETUP_SHIM: &str = r#"#!/bin/sh
echo "cryptsetup $*" >>"$SHIM_LOG"
for last; do :; done
case " $* " in
    *" --test-passphrase "*)
        exec "$REAL_CRYPTSETUP" "$@"
        ;;
    *" open "*)
        # The mapping's name is the last argument: check the key without it, then "map".
        n=$#
        i=0
        for a; do
            i=$((i + 1))
            [ "$i" -eq "$n" ] || set -- "$@" "$a"
        done
        shift "$n"
        "$REAL_CRYPTSETUP" --test-passphrase "$@" || exit
        plain=$COCOON_DATA_TEST_ROOT/plain-contents
        [ -e "$plain" ] || truncate -s 48M "$plain"
        ln -s "$plain" "$COCOON_DATA_TEST_ROOT/dev/mapper/$last"
        ;;
    *" close "*)
        rm "$COCOON_DATA_TEST_ROOT/dev/mapper/$last"
        ;;
    *)
        exec "$REAL_CRYPTSETUP" "$@"
        ;;
esac
"#;

const MOUNT_SHIM: &str = r#"#!/bin/sh
echo "mount $*" >>"$SHIM_LOG"
"#;

fn which(name: &str) -> Option<PathBuf> {
    SYSTEM_PATH
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
}

fn real_cryptsetup() -> PathBuf {
    for tool in ["blkid", "mkfs.ext4", "fsck.ext4"] {
        assert!(which(tool).is_some(), "{tool} is needed for this test");
    }
    which("cryptsetup")
        .expect("cryptsetup is needed for this test (ci/setup installs cryptsetup-bin)")
}

fn write_executable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// One guest's view: a test root with the disk, the command line and the config share.
struct Guest {
    root: tempfile::TempDir,
    shims: PathBuf,
    log: PathBuf,
}

struct Boot {
    ok: bool,
    stderr: String,
    log: String,
}

impl Guest {
    fn new() -> Guest {
        let root = tempfile::tempdir().unwrap();
        for dir in ["dev/disk/by-id", "dev/mapper", "run/cocoon/config", "shims"] {
            std::fs::create_dir_all(root.path().join(dir)).unwrap();
        }
        let shims = root.path().join("shims");
        write_executable(&shims.join("cryptsetup"), CRYPTSETUP_SHIM);
        write_executable(&shims.join("mount"), MOUNT_SHIM);
        Guest {
            log: root.path().join("shim.log"),
            root,
            shims,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    fn disk(&self) -> PathBuf {
        self.path("dev/disk/by-id/virtio-cocoon-data")
    }

    fn mapped(&self) -> PathBuf {
        self.path("dev/mapper/cocoon-data")
    }

    fn set_registers(&self, registers: &SimulatedRegisters) {
        std::fs::write(self.registers_file(), registers.to_json()).unwrap();
    }

    fn registers_file(&self) -> PathBuf {
        self.path("run/cocoon/config/simulated-registers.json")
    }

    /// A sparse all-zero disk of `bytes`.
    fn blank_disk(&self, bytes: u64) {
        std::fs::File::create(self.disk())
            .unwrap()
            .set_len(bytes)
            .unwrap();
    }

    fn disk_bytes(&self) -> Vec<u8> {
        std::fs::read(self.disk()).unwrap()
    }

    /// Runs the script with the agent's key on stdin, as `serve --open-data-disk` does.
    fn boot(&self) -> Boot {
        self.boot_with_key(&self.agent_key())
    }

    fn boot_with_key(&self, key: &[u8]) -> Boot {
        use std::io::Write;
        let _ = std::fs::remove_file(&self.log);
        let mut child = Command::new("sh")
            .arg(SCRIPT)
            .env_clear()
            .env("PATH", format!("{}:{SYSTEM_PATH}", self.shims.display()))
            .env("COCOON_DATA_TEST_ROOT", self.root.path())
            .env("REAL_CRYPTSETUP", real_cryptsetup())
            .env("SHIM_LOG", &self.log)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running open-data-disk");
        let mut stdin = child.stdin.take().unwrap();
        // The script may stop before reading (e.g. nothing to read): a broken pipe is fine.
        let _ = stdin.write_all(key);
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        Boot {
            ok: out.status.success(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            log: std::fs::read_to_string(&self.log).unwrap_or_default(),
        }
    }

    /// Forgets the mapping, as a reboot does.
    fn reboot(&self) {
        let _ = std::fs::remove_file(self.mapped());
    }

    /// Runs the real cryptsetup on the disk.
    fn cryptsetup(&self, args: &[&str], stdin: Option<&[u8]>) -> (bool, String) {
        use std::io::Write;
        let mut child = Command::new(real_cryptsetup())
            .args(args)
            .arg(self.disk())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.unwrap_or_default()).unwrap();
        drop(input);
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    }

    /// The agent's SIMULATED key for seed 1 and this guest's registers file, if any.
    fn agent_key(&self) -> Vec<u8> {
        let mut cmd = Command::new(BIN);
        cmd.args(["data-key", "--simulated", "--simulated-seed", "1"]);
        if self.registers_file().exists() {
            cmd.arg("--simulated-registers").arg(self.registers_file());
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout.len(), 32);
        out.stdout
    }

    fn key_opens_disk(&self, key: &[u8]) -> bool {
        self.cryptsetup(
            &[
                "open",
                "--test-passphrase",
                "--type",
                "luks2",
                "--key-file=-",
                "--keyfile-size",
                "32",
            ],
            Some(key),
        )
        .0
    }
}

fn blkid(path: &Path, tag: &str) -> String {
    let out = Command::new(which("blkid").unwrap())
        .args(["-p", "-s", tag, "-o", "value"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn registers(rtmr2: u8) -> SimulatedRegisters {
    SimulatedRegisters {
        mrtd: [0x11; 48],
        rtmr0: [0x22; 48],
        rtmr1: [0x33; 48],
        rtmr2: [rtmr2; 48],
    }
}

fn mounted(log: &str) -> bool {
    log.lines().any(|l| l.starts_with("mount "))
}

fn assert_refused(boot: &Boot, message: &str) {
    assert!(!boot.ok, "the script succeeded:\n{}", boot.stderr);
    assert!(
        boot.stderr.contains(&format!("cocoon-data: {message}")),
        "expected {message:?} in:\n{}",
        boot.stderr
    );
}

#[test]
fn blank_disk_is_formatted_then_only_opened_and_only_by_its_own_key() {
    let guest = Guest::new();
    guest.set_registers(&registers(0x44));
    guest.blank_disk(96 * MIB);

    let first = guest.boot();
    assert!(first.ok, "{}", first.stderr);
    assert!(
        first.stderr.contains("cocoon-data: formatted "),
        "{}",
        first.stderr
    );
    assert!(
        first.log.contains(" luksFormat --type luks2 --batch-mode"),
        "{}",
        first.log
    );
    let mount = format!(
        "mount -t ext4 -o nodev,nosuid,noexec {} {}",
        guest.mapped().display(),
        guest.path("var/lib/cocoon").display()
    );
    assert!(first.log.contains(&mount), "{}", first.log);
    let mode = std::fs::metadata(guest.path("var/lib/cocoon"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);

    // The header: LUKS2, labelled done, PBKDF2 at 1000 iterations, opened by the agent's key.
    let (ok, dump) = guest.cryptsetup(&["luksDump"], None);
    assert!(ok, "{dump}");
    assert!(dump.contains("Version:       \t2"), "{dump}");
    assert!(dump.contains("cocoon-data\n"), "{dump}");
    assert!(!dump.contains("cocoon-data-new"), "{dump}");
    // The keyslot's own PBKDF (the digest section below it has iterations of its own).
    let keyslots = dump
        .split("Keyslots:")
        .nth(1)
        .and_then(|rest| rest.split("Tokens:").next())
        .unwrap_or_else(|| panic!("no keyslots section in:\n{dump}"));
    assert!(keyslots.contains("PBKDF:      pbkdf2"), "{dump}");
    assert!(keyslots.contains("Iterations: 1000\n"), "{dump}");
    assert!(dump.contains("aes-xts-plain64"), "{dump}");
    assert!(guest.key_opens_disk(&guest.agent_key()));
    assert!(!guest.key_opens_disk(&[0x5a; 32]));
    assert_eq!(blkid(&guest.mapped(), "TYPE"), "ext4");
    assert_eq!(blkid(&guest.mapped(), "LABEL"), "cocoon-data");
    let fs_uuid = blkid(&guest.mapped(), "UUID");
    assert!(!fs_uuid.is_empty());

    // A second boot of the same image opens the disk and keeps the filesystem.
    guest.reboot();
    let second = guest.boot();
    assert!(second.ok, "{}", second.stderr);
    assert!(
        second.stderr.contains("cocoon-data: opened "),
        "{}",
        second.stderr
    );
    assert!(!second.stderr.contains("formatted"), "{}", second.stderr);
    assert!(!second.log.contains("luksFormat"), "{}", second.log);
    assert!(second.log.contains(&mount), "{}", second.log);
    assert_eq!(blkid(&guest.mapped(), "UUID"), fs_uuid);

    // Already open: refused, nothing touched.
    let again = guest.boot();
    assert_refused(&again, "data disk: ");
    assert!(again.stderr.contains("is already open"), "{}", again.stderr);

    // Another image (other RTMR2): the key does not open it, and nothing is written.
    guest.reboot();
    let before = guest.disk_bytes();
    guest.set_registers(&registers(0x45));
    let other = guest.boot();
    assert_refused(
        &other,
        "data disk: LUKS2 header present but the key of this image/TD does not open it \
         (formatted by another image?)",
    );
    assert!(!guest.mapped().exists());
    assert!(guest.disk_bytes() == before, "the disk changed");

    // Without the registers file (the seed's defaults): also another key.
    std::fs::remove_file(guest.registers_file()).unwrap();
    assert_refused(&guest.boot(), "data disk: LUKS2 header present");

    // No key (the agent had none to give): refused before the disk is read.
    let none = guest.boot_with_key(&[]);
    assert_refused(
        &none,
        "data disk: expected a 32-byte key on stdin, got 0 bytes; the data disk stays closed",
    );
    assert!(guest.disk_bytes() == before, "the disk changed");
}

#[test]
fn a_blank_disk_is_never_formatted_without_exactly_one_key() {
    let guest = Guest::new();
    guest.blank_disk(64 * MIB);
    let key = guest.agent_key();
    for (bad, got) in [
        (&[][..], "got 0 bytes"),
        (&key[..31], "got 31 bytes"),
        (&[key.as_slice(), &[0]].concat()[..], "got 33 bytes"),
    ] {
        let boot = guest.boot_with_key(bad);
        assert_refused(&boot, "data disk: expected a 32-byte key on stdin");
        assert!(boot.stderr.contains(got), "{got}: {}", boot.stderr);
        assert!(boot.log.is_empty(), "cryptsetup ran: {}", boot.log);
        assert!(guest.disk_bytes().iter().all(|&b| b == 0));
    }
    // A key with NUL and newline bytes survives the shell intact.
    let mut odd = [0u8; 32];
    odd[..4].copy_from_slice(&[0, b'\n', b' ', 0xff]);
    let boot = guest.boot_with_key(&odd);
    assert!(boot.ok, "{}", boot.stderr);
    assert!(guest.key_opens_disk(&odd));
    assert!(!guest.key_opens_disk(&key));
}

/// Lays out a disk in a guest.
type Prepare = dyn Fn(&Guest);

/// Every non-blank disk without a LUKS2 header of ours is refused and left byte for byte.
#[test]
fn foreign_or_non_blank_disks_are_refused_untouched() {
    let cases: [(&str, &Prepare, &str); 6] = [
        (
            "ext4",
            &|g: &Guest| {
                g.blank_disk(64 * MIB);
                let ok = Command::new(which("mkfs.ext4").unwrap())
                    .arg("-q")
                    .arg(g.disk())
                    .stdin(Stdio::null())
                    .status()
                    .unwrap()
                    .success();
                assert!(ok);
            },
            "data disk: foreign content (blkid says TYPE=ext4), refusing to format it; attach a \
             blank disk or the worker's own",
        ),
        (
            "LUKS1",
            &|g: &Guest| {
                g.blank_disk(64 * MIB);
                let (ok, out) = g.cryptsetup(
                    &[
                        "luksFormat",
                        "--type",
                        "luks1",
                        "--batch-mode",
                        "--pbkdf-force-iterations",
                        "1000",
                        "--key-file=-",
                    ],
                    Some(&[7; 32]),
                );
                assert!(ok, "{out}");
            },
            "data disk: foreign content (blkid says TYPE=crypto_LUKS)",
        ),
        (
            "MBR partition table",
            &|g: &Guest| {
                g.blank_disk(64 * MIB);
                let mut sector = [0u8; 512];
                // One Linux partition from LBA 2048, 2048 sectors long.
                sector[446 + 4] = 0x83;
                sector[446 + 8..446 + 12].copy_from_slice(&2048u32.to_le_bytes());
                sector[446 + 12..446 + 16].copy_from_slice(&2048u32.to_le_bytes());
                sector[510] = 0x55;
                sector[511] = 0xAA;
                write_at(&g.disk(), 0, &sector);
            },
            "data disk: foreign content (blkid says PTTYPE=dos)",
        ),
        (
            "junk in the first MiB",
            &|g: &Guest| {
                g.blank_disk(64 * MIB);
                write_at(&g.disk(), MIB - 1, &[1]);
            },
            "data disk: not blank (non-zero bytes in its first MiB, no signature blkid \
             recognises), refusing to format it",
        ),
        (
            "junk in the last MiB",
            &|g: &Guest| {
                g.blank_disk(64 * MIB);
                write_at(&g.disk(), 63 * MIB, &[0xff; 16]);
            },
            "data disk: not blank (non-zero bytes in its last MiB",
        ),
        (
            "too small",
            &|g: &Guest| g.blank_disk(32 * MIB),
            "less than the 67108864 (64 MiB) a data disk needs",
        ),
    ];
    for (what, prepare, message) in cases {
        let guest = Guest::new();
        prepare(&guest);
        let before = guest.disk_bytes();
        let boot = guest.boot();
        assert!(!boot.ok, "{what}: the script succeeded:\n{}", boot.stderr);
        assert!(
            boot.stderr.contains(message),
            "{what}: expected {message:?} in:\n{}",
            boot.stderr
        );
        assert!(!boot.log.contains("luksFormat"), "{what}: {}", boot.log);
        assert!(!mounted(&boot.log), "{what}: {}", boot.log);
        assert!(guest.disk_bytes() == before, "{what}: the disk changed");
    }
}

fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(bytes).unwrap();
}

/// A format that stopped between luksFormat and mkfs (label cocoon-data-new) is finished; a
/// disk whose filesystem is damaged beyond `fsck -p` is closed again and not mounted.
#[test]
fn interrupted_format_is_finished_and_a_broken_filesystem_is_not_mounted() {
    let guest = Guest::new();
    guest.blank_disk(64 * MIB);
    let key = guest.agent_key();
    let (ok, out) = guest.cryptsetup(
        &[
            "luksFormat",
            "--type",
            "luks2",
            "--batch-mode",
            "--pbkdf",
            "pbkdf2",
            "--pbkdf-force-iterations",
            "1000",
            "--label",
            "cocoon-data-new",
            "--key-file=-",
        ],
        Some(&key),
    );
    assert!(ok, "{out}");
    let boot = guest.boot();
    assert!(boot.ok, "{}", boot.stderr);
    assert!(
        boot.stderr
            .contains("an earlier format stopped before its filesystem was made"),
        "{}",
        boot.stderr
    );
    assert!(!boot.log.contains("luksFormat"), "{}", boot.log);
    assert_eq!(blkid(&guest.disk(), "LABEL"), "cocoon-data");
    assert_eq!(blkid(&guest.mapped(), "TYPE"), "ext4");

    // Wipe the ext4 superblock (at 1024) inside the "decrypted" contents.
    guest.reboot();
    write_at(&guest.path("plain-contents"), 1024, &[0; 1024]);
    let broken = guest.boot();
    assert_refused(
        &broken,
        "data disk: fsck.ext4 -p could not repair the filesystem",
    );
    assert!(!mounted(&broken.log), "{}", broken.log);
    assert!(
        broken.log.contains("cryptsetup close cocoon-data"),
        "{}",
        broken.log
    );
    assert!(!guest.mapped().exists());
}

#[test]
fn missing_disk_names_the_serial() {
    let guest = Guest::new();
    let boot = guest.boot();
    assert_refused(&boot, "data disk: ");
    assert!(
        boot.stderr.contains(
            "did not appear within 30 s (attach a virtio-blk disk with serial cocoon-data)"
        ),
        "{}",
        boot.stderr
    );
}
