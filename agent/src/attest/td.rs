//! Which TD the agent attests from: the Linux TDX guest interfaces, or a simulated TD started
//! in-process in a directory. Either way the agent then uses the same
//! [`cocoon_tdx::TdxProvider`] code, only over different paths.

use super::{AttestError, Mode};
use cocoon_tdx::simulated::{SimulatedRegisters, SimulatedTd, SimulatedTdConfig};
use cocoon_tdx::TdxProvider;
use std::path::PathBuf;

/// The `--td linux` / `--simulated-td DIR` choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TdSelection {
    /// The real interfaces (configfs-tsm, tdx_guest measurement attributes).
    Linux,
    /// A simulated TD laid out in `dir`, its mock PKI seeded with `seed`, MRTD and RTMR0-2
    /// optionally preset from a registers file.
    Simulated {
        dir: PathBuf,
        seed: u64,
        registers: Option<PathBuf>,
    },
}

/// An open TD: the provider and, when simulated, the simulated TD serving its files.
///
/// Field order matters: the provider is dropped (removing its configfs entry, if it made one)
/// before the simulated TD stops serving the files behind it.
pub struct Td {
    provider: TdxProvider,
    simulated: Option<SimulatedTd>,
}

impl std::fmt::Debug for Td {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Td")
            .field("mode", &self.mode())
            .field("paths", self.provider.paths())
            .finish()
    }
}

impl Td {
    /// Opens the selected TD. For Linux, fails with a message naming the missing interface
    /// when this is not a TDX guest; for a simulated TD, creates `dir` if needed and starts
    /// the TD's service threads (they stop when the `Td` is dropped).
    pub fn open(selection: &TdSelection) -> Result<Td, AttestError> {
        match selection {
            TdSelection::Linux => {
                let provider = TdxProvider::linux();
                provider.check_interfaces().map_err(AttestError::NotATd)?;
                Ok(Td {
                    provider,
                    simulated: None,
                })
            }
            TdSelection::Simulated {
                dir,
                seed,
                registers,
            } => {
                let mut config = SimulatedTdConfig::new(*seed);
                if let Some(path) = registers {
                    config = config.with_registers(&SimulatedRegisters::load(path)?);
                }
                let simulated_err = |inner| AttestError::Simulated {
                    dir: dir.clone(),
                    inner,
                };
                std::fs::create_dir_all(dir).map_err(|e| {
                    simulated_err(cocoon_tdx::TdxError::Io {
                        op: "creating directory",
                        path: dir.clone(),
                        source: e,
                    })
                })?;
                let td = SimulatedTd::start_with(config, dir).map_err(simulated_err)?;
                tracing::warn!(
                    dir = %dir.display(),
                    seed,
                    mrtd = %hex::encode(td.config().mr_td),
                    "SIMULATED TD: no TDX hardware; quotes are signed by a mock PKI that only \
                     verifiers told to trust it accept; nothing here is confidential"
                );
                Ok(Td {
                    provider: td.provider(),
                    simulated: Some(td),
                })
            }
        }
    }

    pub fn mode(&self) -> Mode {
        if self.simulated.is_some() {
            Mode::Simulated
        } else {
            Mode::Production
        }
    }

    pub fn provider(&self) -> &TdxProvider {
        &self.provider
    }

    /// The simulated TD, when this is one.
    pub fn simulated(&self) -> Option<&SimulatedTd> {
        self.simulated.as_ref()
    }
}
