//! Event-log parsing, replay and comparison, against logs written by an independent builder.

mod eventlog_support;

use cocoon_measure::eventlog::ccel::{self, CcelError};
use cocoon_measure::eventlog::{
    self, EventLogError, Expectation, ExpectedEvent, Mismatch, Transcript,
};
use cocoon_measure::Rtmr;
use eventlog_support::*;

fn d(tag: &str) -> [u8; 48] {
    sha384(tag.as_bytes())
}

/// A log with two algorithms, events in every RTMR and an EV_NO_ACTION in the middle.
fn sample() -> LogBuilder {
    let mut b = LogBuilder::new(&[(SHA256, 32), (SHA384, 48)]);
    b.event(0, EV_PLATFORM_CONFIG_FLAGS, d("hob"), b"td_hob\0")
        .event(0, EV_SEPARATOR, d("sep"), &[0, 0, 0, 0])
        .raw_event(
            1,
            EV_NO_ACTION,
            &[(SHA384, vec![0; 48])],
            b"StartupLocality\0",
        )
        .event(1, EV_EFI_ACTION, d("kernel"), b"kernel")
        .event(2, EV_EVENT_TAG, d("cmdline"), b"console=ttyS0")
        .event(2, EV_EVENT_TAG, d("initrd"), b"initrd")
        .event(3, EV_EVENT_TAG, d("app"), b"app");
    b
}

#[test]
fn round_trip_and_replay_match_register_arithmetic() {
    let b = sample();
    let bytes = b.padded(4096);
    let log = eventlog::parse(&bytes).unwrap();
    assert_eq!(log.events.len(), 7);
    assert_eq!(log.end_offset, b.bytes.len());
    assert_eq!(log.padding_len, 4096);
    assert_eq!(log.spec_id.algorithms.len(), 2);
    for (i, e) in log.events.iter().enumerate() {
        assert_eq!(e.index, i + 1);
        assert_eq!(e.offset, b.starts[i + 1]);
    }
    assert_eq!(log.events[3].data, b"kernel");
    assert_eq!(log.events[3].digests.len(), 2);
    assert_eq!(
        log.events[2].extends(),
        None,
        "EV_NO_ACTION is never extended"
    );

    let zero = [0u8; 48];
    let rtmr0 = extend(extend(zero, d("hob")), d("sep"));
    let rtmr1 = extend(zero, d("kernel"));
    let rtmr2 = extend(extend(zero, d("cmdline")), d("initrd"));
    let rtmr3 = extend(zero, d("app"));
    let regs = log.replay();
    assert_eq!(regs.map(|r| r.value()), [rtmr0, rtmr1, rtmr2, rtmr3]);

    // Without padding, and with zero padding, the result is the same.
    assert_eq!(eventlog::parse(&b.bytes).unwrap().events, log.events);
    let mut zeros = b.bytes.clone();
    zeros.resize(zeros.len() + 100, 0);
    assert_eq!(eventlog::parse(&zeros).unwrap().events, log.events);
}

#[test]
fn truncation_at_every_offset_errors_or_ends_on_an_event_boundary() {
    let b = sample();
    for n in 0..b.bytes.len() {
        let cut = &b.bytes[..n];
        match eventlog::parse(cut) {
            Ok(log) => {
                assert!(
                    b.starts.contains(&n) && n > 0,
                    "prefix of {n} bytes parsed but is not an event boundary"
                );
                assert_eq!(
                    log.events.len(),
                    b.starts.iter().filter(|&&s| s < n).count() - 1
                );
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("byte offset") || matches!(e, EventLogError::Empty),
                    "{msg}"
                );
                if let EventLogError::Truncated {
                    offset, available, ..
                } = e
                {
                    assert!(offset <= n && available <= n, "{msg}");
                }
            }
        }
        // The same prefix followed by padding must not panic either.
        let mut padded = cut.to_vec();
        padded.resize(b.bytes.len() + 64, 0xFF);
        let _ = eventlog::parse(&padded);
    }
}

#[test]
fn oversized_and_inconsistent_fields_are_rejected_with_offsets() {
    // Event data size above the limit.
    let mut b = LogBuilder::sha384_only();
    b.event(0, EV_SEPARATOR, d("x"), b"abcd");
    let start = b.starts[1];
    let size_at = start + 12 + 2 + 48;
    let mut bytes = b.bytes.clone();
    bytes[size_at..size_at + 4].copy_from_slice(&(eventlog::MAX_EVENT_DATA + 1).to_le_bytes());
    match eventlog::parse(&bytes) {
        Err(EventLogError::TooLarge {
            offset,
            index: 1,
            field: "event data size",
            ..
        }) => assert_eq!(offset, size_at),
        other => panic!("{other:?}"),
    }
    // A size within the limit but beyond the end of the log.
    bytes[size_at..size_at + 4].copy_from_slice(&1000u32.to_le_bytes());
    assert!(matches!(
        eventlog::parse(&bytes),
        Err(EventLogError::Truncated {
            field: "event data",
            ..
        })
    ));
    // A digest count larger than the algorithm list.
    let mut bytes = b.bytes.clone();
    bytes[start + 8..start + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        eventlog::parse(&bytes),
        Err(EventLogError::TooLarge {
            field: "digest count",
            ..
        })
    ));
    // Header: spec ID event size above the limit.
    let mut bytes = b.bytes.clone();
    bytes[28..32].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        eventlog::parse(&bytes),
        Err(EventLogError::TooLarge {
            offset: 28,
            index: 0,
            ..
        })
    ));
    // Too many algorithms.
    let mut bytes = b.bytes.clone();
    bytes[32 + 24..32 + 28].copy_from_slice(&1000u32.to_le_bytes());
    assert!(matches!(
        eventlog::parse(&bytes),
        Err(EventLogError::SpecId { offset: 56, .. })
    ));
    // A log larger than the limit is refused before parsing.
    let big = vec![0xFFu8; eventlog::MAX_LOG_BYTES + 1];
    assert!(matches!(
        eventlog::parse(&big),
        Err(EventLogError::LogTooLarge { .. })
    ));
}

#[test]
fn too_many_events() {
    let mut b = LogBuilder::sha384_only();
    for _ in 0..=eventlog::MAX_EVENTS {
        b.event(0, EV_SEPARATOR, d("x"), b"");
    }
    assert!(matches!(
        eventlog::parse(&b.bytes),
        Err(EventLogError::TooManyEvents { .. })
    ));
}

#[test]
fn header_and_event_rules() {
    // Not a spec ID header.
    let mut bytes = LogBuilder::sha384_only().bytes;
    bytes[32..36].copy_from_slice(b"Spac");
    assert!(eventlog::parse(&bytes)
        .unwrap_err()
        .to_string()
        .contains("Spec ID Event03"));
    // No SHA-384 in the header.
    let b = LogBuilder::new(&[(SHA256, 32)]);
    assert!(eventlog::parse(&b.bytes)
        .unwrap_err()
        .to_string()
        .contains("SHA-384"));
    // A known algorithm with the wrong size.
    let b = LogBuilder::new(&[(SHA384, 32)]);
    assert!(matches!(
        eventlog::parse(&b.bytes),
        Err(EventLogError::SpecId { .. })
    ));
    // An event without SHA-384.
    let mut b = LogBuilder::new(&[(SHA256, 32), (SHA384, 48)]);
    b.raw_event(1, EV_SEPARATOR, &[(SHA256, vec![1; 32])], b"");
    assert!(matches!(
        eventlog::parse(&b.bytes),
        Err(EventLogError::MissingSha384 { index: 1, .. })
    ));
    // An algorithm the header does not list.
    let mut b = LogBuilder::sha384_only();
    b.raw_event(1, EV_SEPARATOR, &[(SHA256, vec![1; 32])], b"");
    assert!(matches!(
        eventlog::parse(&b.bytes),
        Err(EventLogError::UnknownAlgorithm { alg: SHA256, .. })
    ));
    // The same algorithm twice.
    let mut b = LogBuilder::new(&[(SHA256, 32), (SHA384, 48)]);
    b.raw_event(
        1,
        EV_SEPARATOR,
        &[(SHA384, vec![1; 48]), (SHA384, vec![1; 48])],
        b"",
    );
    assert!(matches!(
        eventlog::parse(&b.bytes),
        Err(EventLogError::DuplicateAlgorithm { .. })
    ));
    // MR index 0 (MRTD) and 5 are not RTMRs.
    for mr in [0u32, 5] {
        let mut b = LogBuilder::sha384_only();
        b.raw_event(mr, EV_SEPARATOR, &[(SHA384, vec![1; 48])], b"x");
        assert!(
            matches!(eventlog::parse(&b.bytes), Err(EventLogError::BadMrIndex { mr_index, .. }) if mr_index == mr)
        );
    }
    // Data after the padding.
    let b = sample();
    let mut bytes = b.padded(64);
    let n = bytes.len();
    bytes[n - 3] = 0x42;
    match eventlog::parse(&bytes) {
        Err(EventLogError::TrailingData { offset, len: 3 }) => assert_eq!(offset, n - 3),
        other => panic!("{other:?}"),
    }
}

fn expected_for_sample() -> Expectation {
    let e = |rtmr, event_type, tag: &str, description: &str, source: &str| ExpectedEvent {
        rtmr,
        event_type,
        digest: d(tag),
        description: description.into(),
        source: source.into(),
    };
    Expectation {
        events: vec![
            e(
                Rtmr::Rtmr0,
                EV_PLATFORM_CONFIG_FLAGS,
                "hob",
                "TD HOB",
                "td-hob",
            ),
            e(Rtmr::Rtmr0, EV_SEPARATOR, "sep", "separator", "config"),
            e(
                Rtmr::Rtmr1,
                EV_EFI_ACTION,
                "kernel",
                "kernel image",
                "kernel",
            ),
            e(
                Rtmr::Rtmr2,
                EV_EVENT_TAG,
                "cmdline",
                "console=ttyS0",
                "cmdline",
            ),
            e(
                Rtmr::Rtmr2,
                EV_EVENT_TAG,
                "initrd",
                "initrd 512 bytes",
                "initrd",
            ),
        ],
        covers: [true, true, true, false],
        origin: "test".into(),
    }
}

#[test]
fn transcript_matches_and_replays_rtmr3_unchecked() {
    let log = eventlog::parse(&sample().padded(16)).unwrap();
    let expect = expected_for_sample();
    let t = Transcript::build(&log, None, Some(&expect));
    assert!(t.matches(), "{t}");
    assert!(t.mismatches.is_empty());
    assert_eq!(t.registers[3].matches(), None, "RTMR3 is not covered");
    assert_eq!(t.registers[2].matches(), Some(true));
    let text = t.to_string();
    assert!(
        text.contains("OK: every covered register matches"),
        "{text}"
    );
    // Without an expectation: replay only, never "matches".
    let t = Transcript::build(&log, None, None);
    assert!(!t.matches());
    assert_eq!(t.replayed()[3], extend([0; 48], d("app")));
}

#[test]
fn tampered_cmdline_digest_is_explained() {
    let mut b = LogBuilder::new(&[(SHA256, 32), (SHA384, 48)]);
    b.event(0, EV_PLATFORM_CONFIG_FLAGS, d("hob"), b"td_hob\0")
        .event(0, EV_SEPARATOR, d("sep"), &[0, 0, 0, 0])
        .event(1, EV_EFI_ACTION, d("kernel"), b"kernel")
        .event(2, EV_EVENT_TAG, d("other cmdline"), b"console=hvc0")
        .event(2, EV_EVENT_TAG, d("initrd"), b"initrd");
    let log = eventlog::parse(&b.bytes).unwrap();
    let t = Transcript::build(&log, None, Some(&expected_for_sample()));
    assert!(!t.matches());
    assert_eq!(t.mismatches.len(), 1);
    match t.first_mismatch().unwrap() {
        Mismatch::Differs {
            rtmr,
            rtmr_event,
            log_index,
            expected,
            actual,
            explanation,
            ..
        } => {
            assert_eq!((*rtmr, *rtmr_event, *log_index), (Rtmr::Rtmr2, 1, 4));
            assert_eq!(expected.source, "cmdline");
            assert_eq!(*actual, d("other cmdline"));
            assert_eq!(explanation, "the kernel command line differs");
        }
        other => panic!("{other:?}"),
    }
    let msg = t.first_mismatch().unwrap().to_string();
    assert!(
        msg.starts_with("RTMR2 event #1 differs: expected cmdline \"console=ttyS0\" digest "),
        "{msg}"
    );
    assert!(msg.contains(&hex::encode(d("other cmdline"))), "{msg}");
    assert!(msg.ends_with("the kernel command line differs"), "{msg}");
    assert!(t
        .to_string()
        .contains("FIRST MISMATCH: RTMR2 event #1 differs"));
    assert_eq!(t.registers[2].matches(), Some(false));
}

#[test]
fn first_mismatch_in_log_order_and_acpi_explanation() {
    // Both the TD HOB (RTMR0 #1) and the initrd (RTMR2 #2) differ: the HOB comes first.
    let mut b = LogBuilder::sha384_only();
    b.event(0, EV_PLATFORM_CONFIG_FLAGS, d("hob 2"), b"")
        .event(0, EV_SEPARATOR, d("sep"), b"")
        .event(1, EV_EFI_ACTION, d("kernel"), b"")
        .event(2, EV_EVENT_TAG, d("cmdline"), b"")
        .event(2, EV_EVENT_TAG, d("initrd 2"), b"");
    let t = Transcript::build(
        &eventlog::parse(&b.bytes).unwrap(),
        None,
        Some(&expected_for_sample()),
    );
    assert_eq!(t.mismatches.len(), 2);
    let first = t.first_mismatch().unwrap().to_string();
    assert!(
        first.starts_with("RTMR0 event #1 differs: expected td-hob"),
        "{first}"
    );
    assert!(first.contains("memory layout"), "{first}");
    assert!(t.mismatches[1].to_string().contains("the initrd differs"));
}

#[test]
fn missing_and_unexpected_events() {
    // The initrd event is missing.
    let mut b = LogBuilder::sha384_only();
    b.event(0, EV_PLATFORM_CONFIG_FLAGS, d("hob"), b"")
        .event(0, EV_SEPARATOR, d("sep"), b"")
        .event(1, EV_EFI_ACTION, d("kernel"), b"")
        .event(2, EV_EVENT_TAG, d("cmdline"), b"");
    let t = Transcript::build(
        &eventlog::parse(&b.bytes).unwrap(),
        None,
        Some(&expected_for_sample()),
    );
    match t.first_mismatch() {
        Some(Mismatch::Missing {
            rtmr: Rtmr::Rtmr2,
            rtmr_event: 2,
            explanation,
            ..
        }) => {
            assert!(explanation.contains("initrd"))
        }
        other => panic!("{other:?}"),
    }
    // An extra RTMR1 event.
    b.event(2, EV_EVENT_TAG, d("initrd"), b"")
        .event(1, EV_EFI_ACTION, d("extra"), b"");
    let t = Transcript::build(
        &eventlog::parse(&b.bytes).unwrap(),
        None,
        Some(&expected_for_sample()),
    );
    match t.first_mismatch() {
        Some(Mismatch::Unexpected {
            rtmr: Rtmr::Rtmr1,
            rtmr_event: 2,
            log_index: 6,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn ccel_table_checks() {
    let t = ccel::parse_table(&ccel_table(2, 65536, 0x7f00_0000)).unwrap();
    assert_eq!(
        (t.cc_type, t.laml, t.lasa, t.oem_id.as_str()),
        (2, 65536, 0x7f00_0000, "BOCHS")
    );
    assert!(t.check_log(65536).is_ok());
    assert!(matches!(
        t.check_log(65537),
        Err(CcelError::LogLongerThanArea { .. })
    ));

    let mut bad = ccel_table(2, 65536, 0);
    bad[0] = b'X';
    assert!(matches!(
        ccel::parse_table(&bad),
        Err(CcelError::Signature { .. })
    ));
    let mut bad = ccel_table(2, 65536, 0);
    bad[50] ^= 1;
    assert!(matches!(
        ccel::parse_table(&bad),
        Err(CcelError::Checksum { .. })
    ));
    assert!(matches!(
        ccel::parse_table(&ccel_table(1, 65536, 0)),
        Err(CcelError::CcType { cc_type: 1 })
    ));
    let good = ccel_table(2, 65536, 0);
    for n in 0..good.len() {
        assert!(ccel::parse_table(&good[..n]).is_err());
    }
    let mut longer = good.clone();
    longer.push(0);
    assert!(matches!(
        ccel::parse_table(&longer),
        Err(CcelError::Length {
            field: 56,
            actual: 57
        })
    ));
}
