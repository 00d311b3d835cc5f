//! The TDX guest provider: production code over the Linux TDX guest interfaces.
//!
//! * Quotes: configfs-tsm (`Documentation/ABI/testing/configfs-tsm`). The provider creates (or
//!   reuses) its report entry, checks that `provider` is `tdx_guest`, writes the 64-byte report
//!   data to `inblob`, reads the quote from `outblob` and reads `generation` before and after:
//!   the kernel bumps `generation` on every `inblob` write, so a value other than `before + 1`
//!   means another writer raced this request and the quote may carry someone else's report
//!   data. Such a quote is discarded and the request retried, at most [`QUOTE_ATTEMPTS`] times.
//! * TDREPORT: `TDX_CMD_GET_REPORT0` on `/dev/tdx_guest`.
//! * RTMRs: `rtmrN:sha384` attributes of the `tdx_guest` device (Linux 6.16+): a read returns
//!   the 48 raw register bytes, a 48-byte write extends the register.
//! * Event log: the ACPI CCEL table and its log area.
//!
//! Every request is serialised by an internal lock, so one provider never races itself.

use crate::ccel::{CcelTable, EventLog, MAX_EVENT_LOG_LEN};
use crate::layout::{check_tdx_quote_header, TDREPORT_LEN, TSM_OUTBLOB_MAX};
use crate::paths::{TdxPaths, RTMR_COUNT};
use crate::TdxError;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// How many times a quote request is retried when another writer races it.
pub const QUOTE_ATTEMPTS: u32 = 3;
/// The configfs-tsm provider name of the TDX guest driver.
pub const TSM_PROVIDER_TDX: &str = "tdx_guest";

/// A raw TDREPORT_STRUCT (1024 bytes) as returned by the TDX module.
#[derive(Clone, PartialEq, Eq)]
pub struct TdReport(pub Box<[u8; TDREPORT_LEN]>);

impl std::fmt::Debug for TdReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TdReport({}…)", hex::encode(&self.0[..16]))
    }
}

/// Attestation provider over the TDX guest interfaces named by a [`TdxPaths`].
#[derive(Debug)]
pub struct TdxProvider {
    paths: TdxPaths,
    lock: Mutex<()>,
    /// Set when this provider created its configfs-tsm entry, which it then removes on drop.
    created_entry: AtomicBool,
}

impl TdxProvider {
    pub fn new(paths: TdxPaths) -> Self {
        TdxProvider {
            paths,
            lock: Mutex::new(()),
            created_entry: AtomicBool::new(false),
        }
    }

    /// A provider over the real Linux interfaces.
    pub fn linux() -> Self {
        Self::new(TdxPaths::default())
    }

    pub fn paths(&self) -> &TdxPaths {
        &self.paths
    }

    /// Checks that the interfaces the agent needs at start exist: the configfs-tsm report
    /// directory (quotes) and the RTMR3 read and extend attributes. A missing one is named in
    /// [`TdxError::InterfaceMissing`], so that "not a TDX guest" and "kernel too old" read
    /// differently from an I/O failure deep inside a request.
    pub fn check_interfaces(&self) -> Result<(), TdxError> {
        let checks: [(&'static str, &Path, &'static str); 3] = [
            (
                "configfs-tsm",
                &self.paths.tsm_report_dir,
                "not running in a TDX guest (or configfs is not mounted at /sys/kernel/config)",
            ),
            (
                "RTMR3 measurement attribute",
                &self.paths.rtmr_read[3],
                "the kernel lacks the tdx_guest measurement attributes (Linux 6.16+), or this is not a TDX guest",
            ),
            (
                "RTMR3 extend attribute",
                &self.paths.rtmr_extend[3],
                "the kernel lacks the tdx_guest measurement attributes (Linux 6.16+), or this is not a TDX guest",
            ),
        ];
        for (what, path, hint) in checks {
            if !path.exists() {
                return Err(TdxError::InterfaceMissing {
                    what,
                    path: path.to_path_buf(),
                    hint,
                });
            }
        }
        Ok(())
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, ()> {
        // The lock protects no data, so a poisoned lock is still usable.
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Obtains a TD quote binding `report_data` through configfs-tsm.
    pub fn get_quote(&self, report_data: [u8; 64]) -> Result<Vec<u8>, TdxError> {
        let _guard = self.guard();
        let entry = self.paths.tsm_entry();
        match fs::create_dir(&entry) {
            Ok(()) => self.created_entry.store(true, Ordering::SeqCst),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(TdxError::io("creating configfs-tsm report entry", entry, e)),
        }
        let provider_path = entry.join("provider");
        let provider = read_bounded(&provider_path, 64)?;
        let provider = String::from_utf8_lossy(&provider).trim().to_string();
        if provider != TSM_PROVIDER_TDX {
            return Err(TdxError::WrongProvider {
                path: provider_path,
                found: provider,
            });
        }
        let generation_path = entry.join("generation");
        let inblob = entry.join("inblob");
        let outblob = entry.join("outblob");
        let mut last = (0, 0);
        for _ in 0..QUOTE_ATTEMPTS {
            let before = read_generation(&generation_path)?;
            write_existing(&inblob, &report_data)?;
            let quote = read_bounded(&outblob, TSM_OUTBLOB_MAX)?;
            let after = read_generation(&generation_path)?;
            if after == before.wrapping_add(1) {
                if quote.is_empty() {
                    return Err(TdxError::invalid(outblob, "empty quote"));
                }
                check_tdx_quote_header(&quote).map_err(|what| TdxError::invalid(&outblob, what))?;
                return Ok(quote);
            }
            last = (before, after);
        }
        Err(TdxError::GenerationRace {
            path: generation_path,
            before: last.0,
            after: last.1,
            attempts: QUOTE_ATTEMPTS,
        })
    }

    /// Obtains a TDREPORT binding `report_data` through `TDX_CMD_GET_REPORT0`.
    pub fn get_tdreport(&self, report_data: [u8; 64]) -> Result<TdReport, TdxError> {
        let _guard = self.guard();
        let path = &self.paths.tdx_guest_device;
        let device = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| TdxError::io("opening", path, e))?;
        let mut req = ioctl::TdxReportReq {
            reportdata: report_data,
            tdreport: [0; TDREPORT_LEN],
        };
        ioctl::get_report0(&device, &mut req).map_err(|errno| TdxError::Ioctl {
            path: path.clone(),
            errno,
        })?;
        Ok(TdReport(Box::new(req.tdreport)))
    }

    /// Reads RTMR `index` (0-3).
    pub fn read_rtmr(&self, index: usize) -> Result<[u8; 48], TdxError> {
        let _guard = self.guard();
        self.read_rtmr_unlocked(index)
    }

    fn read_rtmr_unlocked(&self, index: usize) -> Result<[u8; 48], TdxError> {
        let path = self.paths.rtmr_read.get(index).ok_or_else(|| {
            TdxError::invalid(
                &self.paths.tsm_report_dir,
                format!("RTMR index {index} out of range 0..{RTMR_COUNT}"),
            )
        })?;
        let bytes = read_bounded(path, 48)?;
        bytes.as_slice().try_into().map_err(|_| {
            TdxError::invalid(path, format!("read {} bytes, expected 48", bytes.len()))
        })
    }

    /// Reads RTMR0-3.
    pub fn read_rtmrs(&self) -> Result<[[u8; 48]; RTMR_COUNT], TdxError> {
        let _guard = self.guard();
        let mut out = [[0u8; 48]; RTMR_COUNT];
        for (index, slot) in out.iter_mut().enumerate() {
            *slot = self.read_rtmr_unlocked(index)?;
        }
        Ok(out)
    }

    /// Extends RTMR3 (the register reserved for the guest's runtime measurements) with a
    /// SHA-384 digest: RTMR3 = SHA-384(RTMR3 || digest).
    pub fn extend_rtmr3(&self, digest: &[u8; 48]) -> Result<(), TdxError> {
        let _guard = self.guard();
        write_existing(&self.paths.rtmr_extend[3], digest)
    }

    /// Reads the CCEL table and the event log it describes.
    pub fn read_event_log(&self) -> Result<EventLog, TdxError> {
        let _guard = self.guard();
        let table_path = &self.paths.ccel_table;
        let table_bytes = read_bounded(table_path, crate::ccel::CCEL_TABLE_LEN)?;
        let table = CcelTable::parse(&table_bytes).map_err(|w| TdxError::invalid(table_path, w))?;
        if table.cc_type != crate::ccel::CC_TYPE_TDX {
            return Err(TdxError::invalid(
                table_path,
                format!("CC type {}, expected 2 (TDX)", table.cc_type),
            ));
        }
        if table.laml > MAX_EVENT_LOG_LEN {
            return Err(TdxError::invalid(
                table_path,
                format!(
                    "LAML {} exceeds the {MAX_EVENT_LOG_LEN}-byte limit",
                    table.laml
                ),
            ));
        }
        let data_path = &self.paths.ccel_data;
        // Bounded by LAML, itself bounded above.
        let data = read_bounded(data_path, table.laml as usize)?;
        Ok(EventLog { table, data })
    }
}

impl Drop for TdxProvider {
    fn drop(&mut self) {
        // configfs removes an entry's attributes with it; failure leaves a harmless entry.
        if self.created_entry.load(Ordering::SeqCst) {
            let _ = fs::remove_dir(self.paths.tsm_entry());
        }
    }
}

/// Reads a whole file, failing if it holds more than `limit` bytes.
fn read_bounded(path: &Path, limit: usize) -> Result<Vec<u8>, TdxError> {
    let file = File::open(path).map_err(|e| TdxError::io("opening", path, e))?;
    let mut data = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| TdxError::io("reading", path, e))?;
    if data.len() > limit {
        return Err(TdxError::invalid(path, format!("more than {limit} bytes")));
    }
    Ok(data)
}

/// Writes `data` in one write to an existing attribute file (never creates or truncates:
/// configfs and sysfs attributes exist already).
fn write_existing(path: &Path, data: &[u8]) -> Result<(), TdxError> {
    let mut file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| TdxError::io("opening for write", path, e))?;
    file.write_all(data)
        .map_err(|e| TdxError::io("writing", path, e))
}

fn read_generation(path: &Path) -> Result<u64, TdxError> {
    let raw = read_bounded(path, 32)?;
    let text = std::str::from_utf8(&raw)
        .map_err(|_| TdxError::invalid(path, "generation is not UTF-8"))?
        .trim();
    text.parse()
        .map_err(|_| TdxError::invalid(path, format!("generation {text:?} is not a number")))
}

mod ioctl {
    use crate::layout::TDREPORT_LEN;
    use std::os::fd::AsRawFd;

    /// `struct tdx_report_req` from `include/uapi/linux/tdx-guest.h`.
    #[repr(C)]
    pub struct TdxReportReq {
        pub reportdata: [u8; 64],
        pub tdreport: [u8; TDREPORT_LEN],
    }

    /// `TDX_CMD_GET_REPORT0 = _IOWR('T', 1, struct tdx_report_req)`.
    #[allow(unsafe_code)]
    pub fn get_report0(
        device: &std::fs::File,
        req: &mut TdxReportReq,
    ) -> Result<(), nix::errno::Errno> {
        nix::ioctl_readwrite!(tdx_cmd_get_report0, b'T', 1, TdxReportReq);
        // SAFETY: `device` is an open file descriptor for the whole call, and `req` is an
        // exclusively borrowed `#[repr(C)]` struct whose size (1088 bytes) and layout match the
        // kernel's `struct tdx_report_req` encoded in the request number; the kernel reads
        // `reportdata` and writes only within `tdreport`. On a file that is not a tdx_guest
        // device the kernel rejects the request number (ENOTTY) without touching `req`.
        unsafe { tdx_cmd_get_report0(device.as_raw_fd(), req) }.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn report_request_matches_the_kernel_struct() {
        // struct tdx_report_req { __u8 reportdata[64]; __u8 tdreport[1024]; }
        assert_eq!(std::mem::size_of::<super::ioctl::TdxReportReq>(), 1088);
    }
}
