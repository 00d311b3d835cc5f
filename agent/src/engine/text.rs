//! Incremental text assembly for generated tokens: UTF-8 reassembly across token boundaries and
//! stop-string detection with hold-back, so a client never sees part of a stop string.

/// What the assembler produced for one token.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Generation continues; the string is the newly releasable text (may be empty).
    Continue(String),
    /// A stop string matched; the string is the text before it that was not yet released.
    Stopped(String),
}

/// Turns the byte pieces of generated tokens into text deltas.
///
/// Invariant: every byte of `held` has not been released yet, and `held` only keeps a suffix
/// that is a proper prefix of some stop string (plus nothing else after `push` returns), so any
/// stop-string occurrence lies entirely inside `held` at the moment it completes.
#[derive(Debug, Default)]
pub struct TextAssembler {
    /// Bytes of an incomplete UTF-8 sequence at the end of the output so far (at most 3).
    partial: Vec<u8>,
    /// Decoded text not yet released because it may be the start of a stop string.
    held: String,
    stops: Vec<String>,
}

impl TextAssembler {
    /// `stops` are matched literally; empty strings are ignored.
    pub fn new(stops: Vec<String>) -> Self {
        let stops = stops.into_iter().filter(|s| !s.is_empty()).collect();
        TextAssembler {
            partial: Vec::new(),
            held: String::new(),
            stops,
        }
    }

    /// Feeds the bytes of one token.
    pub fn push(&mut self, bytes: &[u8]) -> Step {
        self.partial.extend_from_slice(bytes);
        let decoded = take_valid_utf8(&mut self.partial);
        self.held.push_str(&decoded);
        if let Some(pos) = self.earliest_stop() {
            let out = self.held.get(..pos).unwrap_or_default().to_string();
            self.held.clear();
            self.partial.clear();
            return Step::Stopped(out);
        }
        let keep = self.longest_stop_prefix_suffix();
        let split = self.held.len() - keep;
        let rest = self.held.split_off(split);
        let out = std::mem::replace(&mut self.held, rest);
        Step::Continue(out)
    }

    /// Releases everything still held at the end of generation (an incomplete UTF-8 tail
    /// becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let mut out = std::mem::take(&mut self.held);
        if !self.partial.is_empty() {
            out.push_str(&String::from_utf8_lossy(&self.partial));
            self.partial.clear();
        }
        out
    }

    fn earliest_stop(&self) -> Option<usize> {
        self.stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min()
    }

    fn longest_stop_prefix_suffix(&self) -> usize {
        let mut best = 0;
        for stop in &self.stops {
            for (k, _) in stop.char_indices().skip(1) {
                if k > best && self.held.ends_with(&stop[..k]) {
                    best = k;
                }
            }
        }
        best
    }
}

/// Removes and returns the longest decodable prefix of `buf`; invalid sequences become U+FFFD,
/// an incomplete sequence at the end stays in `buf`.
fn take_valid_utf8(buf: &mut Vec<u8>) -> String {
    let mut out = String::new();
    loop {
        match std::str::from_utf8(buf) {
            Ok(s) => {
                out.push_str(s);
                buf.clear();
                return out;
            }
            Err(e) => {
                let valid = e.valid_up_to();
                // `valid` bytes are valid UTF-8 by the contract of `valid_up_to`.
                out.push_str(&String::from_utf8_lossy(&buf[..valid]));
                match e.error_len() {
                    Some(bad) => {
                        out.push('\u{FFFD}');
                        buf.drain(..valid + bad);
                    }
                    None => {
                        buf.drain(..valid);
                        return out;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&[u8]]) -> (String, bool) {
        let mut a = TextAssembler::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = String::new();
        for p in pieces {
            match a.push(p) {
                Step::Continue(s) => out.push_str(&s),
                Step::Stopped(s) => {
                    out.push_str(&s);
                    return (out, true);
                }
            }
        }
        out.push_str(&a.finish());
        (out, false)
    }

    #[test]
    fn plain_text_passes_through() {
        assert_eq!(run(&[], &[b"hel", b"lo"]), ("hello".into(), false));
    }

    #[test]
    fn utf8_split_across_tokens_is_reassembled() {
        let snow = "☃".as_bytes();
        let mut a = TextAssembler::new(vec![]);
        assert_eq!(a.push(&snow[..1]), Step::Continue(String::new()));
        assert_eq!(a.push(&snow[1..2]), Step::Continue(String::new()));
        assert_eq!(a.push(&snow[2..]), Step::Continue("☃".into()));
    }

    #[test]
    fn invalid_and_truncated_utf8_become_replacement_chars() {
        assert_eq!(run(&[], &[b"a\xffb"]).0, "a\u{FFFD}b");
        assert_eq!(run(&[], &[b"a\xe2\x98"]).0, "a\u{FFFD}");
    }

    #[test]
    fn stop_string_across_tokens_is_never_released() {
        let mut a = TextAssembler::new(vec!["END".into()]);
        assert_eq!(a.push(b"abcE"), Step::Continue("abc".into()));
        assert_eq!(a.push(b"N"), Step::Continue(String::new()));
        assert_eq!(a.push(b"Dxyz"), Step::Stopped(String::new()));
    }

    #[test]
    fn held_prefix_that_does_not_complete_is_released() {
        assert_eq!(run(&["END"], &[b"E", b"N", b"x"]), ("ENx".into(), false));
        assert_eq!(run(&["END"], &[b"EN"]), ("EN".into(), false));
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        assert_eq!(run(&["b", "cd"], &[b"acdb"]), ("a".into(), true));
        assert_eq!(
            run(&["\n\n", "x"], &[b"one\n", b"\ntwo"]),
            ("one".into(), true)
        );
    }

    #[test]
    fn multibyte_stop_prefix_is_held_on_char_boundaries() {
        assert_eq!(run(&["é!"], &["aé".as_bytes(), b"!"]), ("a".into(), true));
        assert_eq!(
            run(&["é!"], &["aé".as_bytes(), b"?"]),
            ("aé?".into(), false)
        );
    }
}
