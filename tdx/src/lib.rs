//! Intel TDX guest attestation for the COCOON worker.
//!
//! * [`provider::TdxProvider`] talks to the Linux TDX guest interfaces: quotes through
//!   configfs-tsm, TDREPORT through the `/dev/tdx_guest` ioctl, RTMR reads and RTMR3 extends
//!   through the `tdx_guest` measurement attributes and the CCEL event log from ACPI sysfs.
//!   Every path comes from [`paths::TdxPaths`].
//! * [`simulated::SimulatedTd`] serves the same interfaces from a directory, so that the
//!   unchanged provider can be exercised without TDX hardware. Its quotes are genuine v4 TDX
//!   quotes signed by a seeded mock DCAP PKI that no production verifier trusts.

pub mod ccel;
pub mod error;
pub mod layout;
pub mod paths;
pub mod provider;
pub mod simulated;

pub use error::TdxError;
pub use paths::TdxPaths;
pub use provider::{TdReport, TdxProvider};
