//! SHA-384 measurement registers (MRTD, RTMR0-3) and the events extended into them.
//!
//! Invariant: a register only ever changes through [`Register::extend`], which computes
//! `new = SHA-384(old || digest)`, exactly as the TDX module does for `TDG.MR.RTMR.EXTEND`.

use sha2::{Digest, Sha384};
use std::fmt;

/// A SHA-384 digest: the size of every TDX measurement register.
pub type Digest384 = [u8; 48];

/// Computes SHA-384 of `data`.
pub fn sha384(data: &[u8]) -> Digest384 {
    Sha384::digest(data).into()
}

/// One runtime measurement register, starting at all zeroes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Register(Digest384);

impl Default for Register {
    fn default() -> Self {
        Self([0; 48])
    }
}

impl Register {
    /// A register with the given value (for example one read from a quote).
    pub fn from_value(value: Digest384) -> Self {
        Self(value)
    }

    /// Extends the register: `self = SHA-384(self || digest)`.
    pub fn extend(&mut self, digest: &Digest384) {
        let mut h = Sha384::new();
        h.update(self.0);
        h.update(digest);
        self.0 = h.finalize().into();
    }

    pub fn value(&self) -> Digest384 {
        self.0
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Register {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Register({})", self.hex())
    }
}

/// Which runtime register an event goes to.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Rtmr {
    Rtmr0 = 0,
    Rtmr1 = 1,
    Rtmr2 = 2,
    Rtmr3 = 3,
}

impl Rtmr {
    pub const ALL: [Rtmr; 4] = [Rtmr::Rtmr0, Rtmr::Rtmr1, Rtmr::Rtmr2, Rtmr::Rtmr3];

    pub fn index(self) -> usize {
        self as usize
    }

    /// The RTMR for a CC measurement-register index as used in the CCEL event log
    /// (1 = RTMR0 ... 4 = RTMR3; 0 is MRTD, which no event extends).
    pub fn from_cc_mr_index(index: u32) -> Option<Rtmr> {
        match index {
            1 => Some(Rtmr::Rtmr0),
            2 => Some(Rtmr::Rtmr1),
            3 => Some(Rtmr::Rtmr2),
            4 => Some(Rtmr::Rtmr3),
            _ => None,
        }
    }

    pub fn cc_mr_index(self) -> u32 {
        self as u32 + 1
    }
}

impl fmt::Display for Rtmr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RTMR{}", self.index())
    }
}

/// One measured event: what was extended into which register, and what it describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub rtmr: Rtmr,
    /// TCG event type (EV_* constant).
    pub event_type: u32,
    /// The SHA-384 digest extended into the register.
    pub digest: Digest384,
    /// Human-readable description of what was measured, for transcripts.
    pub description: String,
    /// Which input of the computation this event comes from (firmware, kernel, cmdline,
    /// initrd, acpi, td-hob, cfv, config), so a mismatch can be explained.
    pub source: &'static str,
}

/// The four runtime registers after replaying a sequence of events.
pub fn replay<'a>(events: impl IntoIterator<Item = &'a Event>) -> [Register; 4] {
    let mut regs = [Register::default(); 4];
    for e in events {
        regs[e.rtmr.index()].extend(&e.digest);
    }
    regs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extend_is_sha384_of_concatenation() {
        let mut r = Register::default();
        let d = sha384(b"abc");
        r.extend(&d);
        let mut buf = vec![0u8; 48];
        buf.extend_from_slice(&d);
        assert_eq!(r.value(), sha384(&buf));
    }

    #[test]
    fn replay_sends_events_to_their_register() {
        let e = |rtmr| Event {
            rtmr,
            event_type: 0,
            digest: sha384(b"x"),
            description: String::new(),
            source: "test",
        };
        let regs = replay(&[e(Rtmr::Rtmr2), e(Rtmr::Rtmr2)]);
        assert_eq!(regs[0], Register::default());
        assert_ne!(regs[2], Register::default());
        let mut expect = Register::default();
        expect.extend(&sha384(b"x"));
        expect.extend(&sha384(b"x"));
        assert_eq!(regs[2], expect);
    }
}
