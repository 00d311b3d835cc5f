//! Preset registers for a simulated TD: MRTD and RTMR0-2, so that simulated quotes can carry
//! the values a measurement manifest expects for a VM shape.
//!
//! File format (JSON, every field required, nothing else allowed; 96 hex digits each):
//!
//! ```json
//! {"mrtd":"<hex>","rtmr0":"<hex>","rtmr1":"<hex>","rtmr2":"<hex>"}
//! ```
//!
//! RTMR3 cannot be preset: it belongs to the guest, which extends it at start.
//! Invariant: parsing reads at most [`MAX_REGISTERS_FILE`] bytes and never panics on input.

use serde::Deserialize;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest registers file accepted, in bytes.
pub const MAX_REGISTERS_FILE: usize = 4096;

/// Preset MRTD and RTMR0-2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimulatedRegisters {
    pub mrtd: [u8; 48],
    pub rtmr0: [u8; 48],
    pub rtmr1: [u8; 48],
    pub rtmr2: [u8; 48],
}

#[derive(Debug, thiserror::Error)]
pub enum RegistersError {
    #[error("reading simulated registers file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "simulated registers: {len} bytes or more, more than the {MAX_REGISTERS_FILE}-byte limit"
    )]
    TooLarge { len: usize },
    #[error("simulated registers: not the expected JSON object {{\"mrtd\",\"rtmr0\",\"rtmr1\",\"rtmr2\"}}: {0}")]
    Json(String),
    #[error("simulated registers: field {field:?}: {what}")]
    Field { field: &'static str, what: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistersJson {
    mrtd: String,
    rtmr0: String,
    rtmr1: String,
    rtmr2: String,
}

fn register(field: &'static str, text: &str) -> Result<[u8; 48], RegistersError> {
    let bytes = hex::decode(text).map_err(|e| RegistersError::Field {
        field,
        what: format!("not hex: {e}"),
    })?;
    <[u8; 48]>::try_from(bytes.as_slice()).map_err(|_| RegistersError::Field {
        field,
        what: format!("{} bytes, expected 48 (96 hex digits)", bytes.len()),
    })
}

impl SimulatedRegisters {
    /// Parses the JSON form (untrusted input).
    pub fn from_json(json: &[u8]) -> Result<Self, RegistersError> {
        if json.len() > MAX_REGISTERS_FILE {
            return Err(RegistersError::TooLarge { len: json.len() });
        }
        let raw: RegistersJson =
            serde_json::from_slice(json).map_err(|e| RegistersError::Json(e.to_string()))?;
        Ok(SimulatedRegisters {
            mrtd: register("mrtd", &raw.mrtd)?,
            rtmr0: register("rtmr0", &raw.rtmr0)?,
            rtmr1: register("rtmr1", &raw.rtmr1)?,
            rtmr2: register("rtmr2", &raw.rtmr2)?,
        })
    }

    /// Reads and parses a registers file, reading at most one byte past the limit.
    pub fn load(path: &Path) -> Result<Self, RegistersError> {
        let io = |source| RegistersError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let mut data = Vec::new();
        file.take(MAX_REGISTERS_FILE as u64 + 1)
            .read_to_end(&mut data)
            .map_err(io)?;
        Self::from_json(&data)
    }

    /// The JSON form, lowercase hex, fields in the documented order.
    pub fn to_json(&self) -> String {
        format!(
            r#"{{"mrtd":"{}","rtmr0":"{}","rtmr1":"{}","rtmr2":"{}"}}"#,
            hex::encode(self.mrtd),
            hex::encode(self.rtmr0),
            hex::encode(self.rtmr1),
            hex::encode(self.rtmr2)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SimulatedRegisters {
        SimulatedRegisters {
            mrtd: [1; 48],
            rtmr0: [2; 48],
            rtmr1: [3; 48],
            rtmr2: [4; 48],
        }
    }

    #[test]
    fn round_trip() {
        let json = sample().to_json();
        assert_eq!(
            SimulatedRegisters::from_json(json.as_bytes()).unwrap(),
            sample()
        );
    }

    #[test]
    fn truncated_input_is_refused() {
        let json = sample().to_json();
        for cut in [0, 1, 10, json.len() / 2, json.len() - 1] {
            assert!(
                SimulatedRegisters::from_json(&json.as_bytes()[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn oversized_input_is_refused() {
        let mut json = sample().to_json().into_bytes();
        json.resize(MAX_REGISTERS_FILE + 1, b' ');
        assert!(matches!(
            SimulatedRegisters::from_json(&json),
            Err(RegistersError::TooLarge { .. })
        ));
    }

    #[test]
    fn tampered_fields_are_named() {
        let json = sample().to_json();
        // One hex digit short.
        let short = json.replacen(&"03".repeat(48), &"03".repeat(48)[1..], 1);
        assert!(matches!(
            SimulatedRegisters::from_json(short.as_bytes()),
            Err(RegistersError::Field { field: "rtmr1", .. })
        ));
        // 49 bytes.
        let long = json.replacen(&"04".repeat(48), &"04".repeat(49), 1);
        assert!(matches!(
            SimulatedRegisters::from_json(long.as_bytes()),
            Err(RegistersError::Field { field: "rtmr2", .. })
        ));
        let not_hex = json.replacen("01", "zz", 1);
        assert!(matches!(
            SimulatedRegisters::from_json(not_hex.as_bytes()),
            Err(RegistersError::Field { field: "mrtd", .. })
        ));
        // RTMR3 cannot be preset, and every field is required.
        let rtmr3 = json.replacen('}', &format!(r#","rtmr3":"{}"}}"#, "00".repeat(48)), 1);
        assert!(matches!(
            SimulatedRegisters::from_json(rtmr3.as_bytes()),
            Err(RegistersError::Json(_))
        ));
        let missing = format!(r#"{{"mrtd":"{}"}}"#, "00".repeat(48));
        assert!(matches!(
            SimulatedRegisters::from_json(missing.as_bytes()),
            Err(RegistersError::Json(_))
        ));
    }

    #[test]
    fn load_names_the_file() {
        let err = SimulatedRegisters::load(Path::new("/nonexistent/regs.json")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/regs.json"), "{err}");
    }
}
