//! The simulated TD: the Linux TDX guest interfaces served from a directory, for machines
//! without TDX.
//!
//! [`SimulatedTd::start`] lays out under a directory the same files the provider uses on
//! Linux — a configfs-tsm report entry (`provider` = `tdx_guest`, `generation`, `inblob`,
//! `outblob`), the `rtmrN:sha384` measurement attributes and the ACPI CCEL table and log — and
//! serves them from background threads (see [`service`]), so that the unchanged
//! [`TdxProvider`] produces quotes, reads and extends RTMRs and reads the event log. Quotes
//! are genuine v4 TDX quotes signed through the seeded [`MockPki`]; they verify only when a
//! verifier is told to trust the mock root.
//!
//! One difference in layout: RTMR reads and extends use separate files (`TdxPaths::rtmr_read`
//! and `rtmr_extend`, the same attribute on Linux), because no plain file can tell a read from
//! a write.
//!
//! Not modelled: the TDREPORT ioctl (an ioctl cannot be served from a file; there is no
//! `dev/tdx_guest`, so `get_tdreport` fails with a typed I/O error), MRTD computation from a
//! real boot, boot-time RTMR0-2 extends (RTMR0-2 start at zero, matching the simulated event
//! log, which holds only its header, unless preset through [`SimulatedTdConfig::initial_rtmrs`],
//! e.g. from a [`SimulatedRegisters`] file, so that a verifier can match a manifest's VM shape;
//! preset values have no events behind them), TD migration and the quote generation service's
//! failure modes. RTMR3 always starts at zero.

mod der;
pub mod pki;
pub mod quote;
pub mod registers;
pub mod service;

pub use pki::{MockPki, SimulatedCollateral};
pub use registers::{RegistersError, SimulatedRegisters};

use crate::ccel::{CcelTable, CC_TYPE_TDX};
use crate::layout::{td_attributes, TdReportBody};
use crate::paths::{rtmr_file_name, TdxPaths, RTMR_COUNT};
use crate::{TdxError, TdxProvider};
use sha2::{Digest, Sha384};
use std::path::Path;
use std::sync::Arc;

/// XFAM of simulated TDs: x87, SSE, AVX, AVX-512 (opmask, ZMM_Hi256, Hi16_ZMM), PKRU, AMX
/// (TILECFG, TILEDATA).
pub const SIMULATED_XFAM: u64 = 0x0000_0000_0006_02E7;
/// Name of the configfs-tsm report entry the simulated TD serves.
pub const SIMULATED_TSM_ENTRY: &str = "cocoon-simulated";

/// What the simulated TD reports about itself.
#[derive(Clone, Debug)]
pub struct SimulatedTdConfig {
    /// Seed of the mock PKI and of the default measurements.
    pub seed: u64,
    pub mr_td: [u8; 48],
    pub mr_seam: [u8; 48],
    pub mr_config_id: [u8; 48],
    pub mr_owner: [u8; 48],
    pub mr_owner_config: [u8; 48],
    /// RTMR0-2 when the TD starts (default all zero). Extends from there on are applied with
    /// the real arithmetic. RTMR3 always starts at zero: it belongs to the guest's runtime.
    pub initial_rtmrs: [[u8; 48]; 3],
    /// TD attributes; default SEPT_VE_DISABLE only (no DEBUG, nothing else), which is the
    /// smallest value DCAP verifiers accept.
    pub td_attributes: u64,
    pub xfam: u64,
}

/// One seeded value of a simulated TD: SHA-384 over a fixed prefix, `label` and `seed`. Every
/// simulated secret and default measurement derives from it, so one seed reproduces a TD.
pub fn seeded48(seed: u64, label: &str) -> [u8; 48] {
    let mut h = Sha384::new();
    h.update(b"cocoon-simulated-td/v1 ");
    h.update(label.as_bytes());
    h.update(seed.to_le_bytes());
    h.finalize().into()
}

impl SimulatedTdConfig {
    pub fn new(seed: u64) -> Self {
        SimulatedTdConfig {
            seed,
            mr_td: seeded48(seed, "mrtd"),
            mr_seam: seeded48(seed, "mrseam"),
            mr_config_id: [0; 48],
            mr_owner: [0; 48],
            mr_owner_config: [0; 48],
            initial_rtmrs: [[0; 48]; 3],
            td_attributes: td_attributes::SEPT_VE_DISABLE,
            xfam: SIMULATED_XFAM,
        }
    }

    /// Presets MRTD and RTMR0-2 (the registers a manifest pins for a VM shape).
    pub fn with_registers(mut self, registers: &SimulatedRegisters) -> Self {
        self.mr_td = registers.mrtd;
        self.initial_rtmrs = [registers.rtmr0, registers.rtmr1, registers.rtmr2];
        self
    }
}

/// Where a simulated TD started in `dir` serves its interfaces. [`SimulatedTd::start`] lays
/// them out; anyone else (a test, a second provider) can find them here.
pub fn simulated_paths(dir: &Path) -> TdxPaths {
    let measurements = dir.join("sys/class/misc/tdx_guest/measurements");
    let extends = dir.join("sys/class/misc/tdx_guest/simulated-extend");
    let tables = dir.join("sys/firmware/acpi/tables");
    TdxPaths {
        tsm_report_dir: dir.join("sys/kernel/config/tsm/report"),
        tsm_entry_name: SIMULATED_TSM_ENTRY.to_string(),
        tdx_guest_device: dir.join("dev/tdx_guest"),
        rtmr_read: std::array::from_fn(|i| measurements.join(rtmr_file_name(i))),
        rtmr_extend: std::array::from_fn(|i| extends.join(rtmr_file_name(i))),
        ccel_table: tables.join("CCEL"),
        ccel_data: tables.join("data/CCEL"),
    }
}

/// A running simulated TD; its service threads stop when it is dropped. Drop it before its
/// directory is removed: stopping opens the FIFOs there to wake the threads, and with the
/// FIFOs gone the drop blocks.
pub struct SimulatedTd {
    paths: TdxPaths,
    pki: Arc<MockPki>,
    config: SimulatedTdConfig,
    service: service::Service,
}

impl std::fmt::Debug for SimulatedTd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatedTd")
            .field("seed", &self.config.seed)
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

fn create_dir(path: &Path) -> Result<(), TdxError> {
    std::fs::create_dir_all(path).map_err(|e| TdxError::io("creating directory", path, e))
}

fn parent_of(path: &Path) -> Result<&Path, TdxError> {
    path.parent()
        .ok_or_else(|| TdxError::invalid(path, "simulated interface path has no parent"))
}

fn write_file(path: &Path, data: &[u8]) -> Result<(), TdxError> {
    std::fs::write(path, data).map_err(|e| TdxError::io("writing", path, e))
}

/// The simulated event log: the TCG "Spec ID Event03" header (SHA-384 only) and no events,
/// padded with 0xFF to the log area length as firmware leaves it.
fn simulated_event_log(laml: usize) -> Vec<u8> {
    let mut spec_id = Vec::new();
    spec_id.extend_from_slice(b"Spec ID Event03\0");
    spec_id.extend_from_slice(&0u32.to_le_bytes()); // platform class
    spec_id.extend_from_slice(&[0, 2, 0, 2]); // minor, major, errata, uintn size (u64)
    spec_id.extend_from_slice(&1u32.to_le_bytes()); // number of algorithms
    spec_id.extend_from_slice(&0x000Cu16.to_le_bytes()); // TPM_ALG_SHA384
    spec_id.extend_from_slice(&48u16.to_le_bytes());
    spec_id.push(0); // vendor info size
    let mut log = Vec::new();
    log.extend_from_slice(&0u32.to_le_bytes()); // PCR/MR index
    log.extend_from_slice(&3u32.to_le_bytes()); // EV_NO_ACTION
    log.extend_from_slice(&[0u8; 20]); // SHA-1 digest field of the legacy header
    log.extend_from_slice(&(spec_id.len() as u32).to_le_bytes());
    log.extend_from_slice(&spec_id);
    log.resize(laml.max(log.len()), 0xFF);
    log
}

impl SimulatedTd {
    /// Starts a simulated TD with the default configuration for `seed`, laying out its
    /// interfaces under `dir` (which should be empty, e.g. a fresh temporary directory).
    pub fn start(seed: u64, dir: &Path) -> Result<SimulatedTd, TdxError> {
        Self::start_with(SimulatedTdConfig::new(seed), dir)
    }

    pub fn start_with(config: SimulatedTdConfig, dir: &Path) -> Result<SimulatedTd, TdxError> {
        let pki = Arc::new(MockPki::new(config.seed)?);
        let paths = simulated_paths(dir);
        let entry = paths.tsm_entry();
        let measurements_dir = parent_of(&paths.rtmr_read[0])?;
        let extends_dir = parent_of(&paths.rtmr_extend[0])?;
        let data_dir = parent_of(&paths.ccel_data)?;
        let dev_dir = parent_of(&paths.tdx_guest_device)?;
        for d in [&entry, measurements_dir, extends_dir, data_dir, dev_dir] {
            create_dir(d)?;
        }
        write_file(&entry.join("provider"), b"tdx_guest\n")?;

        let laml = 64 * 1024;
        let table = CcelTable {
            revision: 1,
            oem_id: *b"COCOON",
            cc_type: CC_TYPE_TDX,
            cc_subtype: 0,
            laml: laml as u64,
            lasa: 0x7F00_0000,
        };
        write_file(&paths.ccel_table, &table.encode())?;
        write_file(&paths.ccel_data, &simulated_event_log(laml))?;

        let [rtmr0, rtmr1, rtmr2] = config.initial_rtmrs;
        let body = TdReportBody {
            tee_tcb_svn: pki::TEE_TCB_SVN,
            mr_seam: config.mr_seam,
            mr_signer_seam: [0; 48],
            seam_attributes: 0,
            td_attributes: config.td_attributes,
            xfam: config.xfam,
            mr_td: config.mr_td,
            mr_config_id: config.mr_config_id,
            mr_owner: config.mr_owner,
            mr_owner_config: config.mr_owner_config,
            rtmr: [rtmr0, rtmr1, rtmr2, [0; 48]],
            report_data: [0; 64],
        };
        let service = service::Service::start(
            service::ServicePaths {
                inblob: entry.join("inblob"),
                outblob: entry.join("outblob"),
                generation: entry.join("generation"),
                rtmr_read: paths.rtmr_read.clone(),
                rtmr_extend: paths.rtmr_extend.clone(),
            },
            pki.clone(),
            body,
        )?;
        Ok(SimulatedTd {
            paths,
            pki,
            config,
            service,
        })
    }

    /// The paths of this TD's interfaces, for [`TdxProvider::new`].
    pub fn paths(&self) -> &TdxPaths {
        &self.paths
    }

    /// A provider over this TD's interfaces.
    pub fn provider(&self) -> TdxProvider {
        TdxProvider::new(self.paths.clone())
    }

    pub fn config(&self) -> &SimulatedTdConfig {
        &self.config
    }

    pub fn pki(&self) -> &MockPki {
        &self.pki
    }

    /// The mock root CA certificate (DER) that simulated quotes chain to.
    pub fn root_ca_der(&self) -> &[u8] {
        self.pki.root_ca_der()
    }

    /// Collateral for this TD's quotes (TCB status UpToDate), in dcap-qvl's
    /// `QuoteCollateralV3` JSON layout.
    pub fn collateral(&self) -> SimulatedCollateral {
        self.pki.collateral()
    }

    /// The register values the TD holds now (every completed extend applied).
    pub fn rtmrs(&self) -> [[u8; 48]; RTMR_COUNT] {
        self.service.rtmrs()
    }

    /// How many quote requests the TD has served.
    pub fn quotes_served(&self) -> u64 {
        self.service.generation()
    }
}
