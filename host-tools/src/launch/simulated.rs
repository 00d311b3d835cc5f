//! The registers a `--no-tdx` guest's simulated TD claims: the manifest entry's MRTD and
//! RTMR0-2 for the VM shape, written by `launch` into the config share as
//! [`SIMULATED_REGISTERS_FILE`] (the format of [`SimulatedRegisters`]). The guest reads it only
//! when `cocoon.simulated_td=1` is on its measured kernel command line, so that
//! `verify-running --trust-simulated` and the gateway check a `--no-tdx` VM against the very
//! manifest a TD is checked against.
//!
//! Invariant: the file is replaced atomically (temporary file + rename), so the guest never
//! reads half of it.

use std::io;
use std::path::{Path, PathBuf};

use cocoon_measure::manifest::ShapeEntry;
pub use cocoon_tdx::simulated::SimulatedRegisters;

use crate::manifest::write_atomic;

/// File name in the config share directory.
pub const SIMULATED_REGISTERS_FILE: &str = "simulated-registers.json";

/// MRTD and RTMR0-2 of a manifest shape entry.
pub fn registers_of(entry: &ShapeEntry) -> SimulatedRegisters {
    let r = &entry.registers;
    SimulatedRegisters {
        mrtd: r.mrtd,
        rtmr0: r.rtmr0,
        rtmr1: r.rtmr1,
        rtmr2: r.rtmr2,
    }
}

pub fn path_in(share: &Path) -> PathBuf {
    share.join(SIMULATED_REGISTERS_FILE)
}

/// Writes the registers file into the config share, atomically. Returns its path.
pub fn write(share: &Path, regs: &SimulatedRegisters) -> io::Result<PathBuf> {
    let path = path_in(share);
    write_atomic(&path, regs.to_json().as_bytes())?;
    Ok(path)
}

/// The registers file, when one is in the share (stale for a TD, which never reads it).
pub fn existing(share: &Path) -> Option<PathBuf> {
    let p = path_in(share);
    p.exists().then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_file_parses_back_and_replaces_the_old_one() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(existing(d.path()), None);
        let a = SimulatedRegisters {
            mrtd: [1; 48],
            rtmr0: [2; 48],
            rtmr1: [3; 48],
            rtmr2: [0xab; 48],
        };
        let p = write(d.path(), &a).unwrap();
        assert_eq!(SimulatedRegisters::load(&p).unwrap(), a);
        assert!(std::fs::read_to_string(&p)
            .unwrap()
            .contains(&"ab".repeat(48)));
        let b = SimulatedRegisters { mrtd: [9; 48], ..a };
        write(d.path(), &b).unwrap();
        assert_eq!(SimulatedRegisters::load(&p).unwrap(), b);
        assert_eq!(existing(d.path()), Some(p));
        // Only the file itself is left: no temporary files.
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
