//! The provider against the simulated TD and against broken interface files.

use cocoon_tdx::layout::{body, HEADER_LEN, SIGNED_LEN};
use cocoon_tdx::simulated::SimulatedTd;
use cocoon_tdx::{TdxError, TdxPaths, TdxProvider};
use sha2::{Digest, Sha384};
use std::path::Path;
use std::sync::Arc;

fn extend(old: [u8; 48], digest: &[u8; 48]) -> [u8; 48] {
    let mut h = Sha384::new();
    h.update(old);
    h.update(digest);
    h.finalize().into()
}

#[test]
fn quote_carries_report_data_and_measurements() {
    let dir = tempfile::tempdir().unwrap();
    let td = SimulatedTd::start(1, dir.path()).unwrap();
    let provider = td.provider();
    let report_data: [u8; 64] = std::array::from_fn(|i| i as u8);
    let quote = provider.get_quote(report_data).unwrap();
    assert_eq!(&quote[0..2], &4u16.to_le_bytes());
    assert_eq!(&quote[4..8], &0x81u32.to_le_bytes());
    let b = &quote[HEADER_LEN..SIGNED_LEN];
    assert_eq!(&b[body::REPORT_DATA..body::REPORT_DATA + 64], &report_data);
    assert_eq!(&b[body::MR_TD..body::MR_TD + 48], &td.config().mr_td);
    assert_eq!(
        &b[body::TD_ATTRIBUTES..body::TD_ATTRIBUTES + 8],
        &(1u64 << 28).to_le_bytes()
    );
    let sig_len = u32::from_le_bytes(quote[SIGNED_LEN..SIGNED_LEN + 4].try_into().unwrap());
    assert_eq!(quote.len(), SIGNED_LEN + 4 + sig_len as usize);
    assert_eq!(td.quotes_served(), 1);
}

#[test]
fn same_seed_same_quote() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = SimulatedTd::start(77, d1.path()).unwrap();
    let b = SimulatedTd::start(77, d2.path()).unwrap();
    let qa = a.provider().get_quote([9; 64]).unwrap();
    let qb = b.provider().get_quote([9; 64]).unwrap();
    assert_eq!(qa, qb);
    assert_eq!(a.collateral(), b.collateral());
}

#[test]
fn rtmr_extends_and_reads_are_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let td = SimulatedTd::start(2, dir.path()).unwrap();
    let provider = td.provider();
    assert_eq!(provider.read_rtmrs().unwrap(), [[0u8; 48]; 4]);
    let mut expected = [0u8; 48];
    for i in 0..200u32 {
        let digest: [u8; 48] = Sha384::digest(i.to_le_bytes()).into();
        provider.extend_rtmr3(&digest).unwrap();
        expected = extend(expected, &digest);
        if i % 20 == 0 {
            assert_eq!(provider.read_rtmr(3).unwrap(), expected, "after {i}");
        }
    }
    let rtmrs = provider.read_rtmrs().unwrap();
    assert_eq!(rtmrs[3], expected);
    assert_eq!(rtmrs[0], [0u8; 48]);
    assert_eq!(td.rtmrs()[3], expected);
    assert!(provider.read_rtmr(4).is_err());
}

#[test]
fn concurrent_requests_through_one_provider() {
    let dir = tempfile::tempdir().unwrap();
    let td = SimulatedTd::start(3, dir.path()).unwrap();
    let provider = Arc::new(td.provider());
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let p = provider.clone();
            std::thread::spawn(move || {
                for i in 0..10u8 {
                    p.extend_rtmr3(&[t ^ i; 48]).unwrap();
                    let q = p.get_quote([t; 64]).unwrap();
                    let rd =
                        &q[HEADER_LEN + body::REPORT_DATA..HEADER_LEN + body::REPORT_DATA + 64];
                    assert_eq!(rd, &[t; 64]);
                    p.read_rtmrs().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(td.quotes_served(), 40);
}

#[test]
fn event_log_is_read_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let td = SimulatedTd::start(4, dir.path()).unwrap();
    let log = td.provider().read_event_log().unwrap();
    assert_eq!(log.table.cc_type, 2);
    assert_eq!(log.data.len() as u64, log.table.laml);
    assert_eq!(&log.data[32..47], b"Spec ID Event03");

    // A corrupted table is refused, naming the file.
    let paths = td.paths().clone();
    let mut table = std::fs::read(&paths.ccel_table).unwrap();
    table[50] ^= 1;
    std::fs::write(&paths.ccel_table, &table).unwrap();
    let err = td.provider().read_event_log().unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
    assert!(err.to_string().contains("CCEL"), "{err}");
}

#[test]
fn simulated_td_has_no_tdreport_ioctl() {
    let dir = tempfile::tempdir().unwrap();
    let td = SimulatedTd::start(5, dir.path()).unwrap();
    let err = td.provider().get_tdreport([0; 64]).unwrap_err();
    assert!(matches!(err, TdxError::Io { .. }), "{err}");
    // On a file that is not a tdx_guest device the ioctl itself is refused.
    let mut paths = td.paths().clone();
    paths.tdx_guest_device = dir.path().join("not-a-device");
    std::fs::write(&paths.tdx_guest_device, b"").unwrap();
    let err = TdxProvider::new(paths).get_tdreport([0; 64]).unwrap_err();
    assert!(
        matches!(
            err,
            TdxError::Ioctl {
                errno: nix::errno::Errno::ENOTTY,
                ..
            }
        ),
        "{err}"
    );
}

/// A fake configfs-tsm entry made of regular files.
fn fake_entry(dir: &Path, provider: &str, outblob: &[u8]) -> TdxProvider {
    let entry = dir.join("report/fake");
    std::fs::create_dir_all(&entry).unwrap();
    std::fs::write(entry.join("provider"), provider).unwrap();
    std::fs::write(entry.join("generation"), "7\n").unwrap();
    std::fs::write(entry.join("inblob"), b"").unwrap();
    std::fs::write(entry.join("outblob"), outblob).unwrap();
    TdxProvider::new(TdxPaths {
        tsm_report_dir: dir.join("report"),
        tsm_entry_name: "fake".into(),
        ..TdxPaths::default()
    })
}

#[test]
fn wrong_tsm_provider_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = fake_entry(dir.path(), "sev_guest\n", b"");
    let err = p.get_quote([0; 64]).unwrap_err();
    assert!(
        matches!(err, TdxError::WrongProvider { ref found, .. } if found == "sev_guest"),
        "{err}"
    );
}

#[test]
fn unchanged_generation_is_a_race() {
    // Nothing bumps `generation` after our inblob write: as if another writer's write and
    // ours were not both counted, so the quote cannot be attributed to our report data.
    let dir = tempfile::tempdir().unwrap();
    let p = fake_entry(dir.path(), "tdx_guest\n", &[0u8; 1000]);
    let err = p.get_quote([0; 64]).unwrap_err();
    assert!(
        matches!(
            err,
            TdxError::GenerationRace {
                before: 7,
                after: 7,
                attempts: 3,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn oversized_outblob_and_bad_registers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = fake_entry(dir.path(), "tdx_guest\n", &vec![0u8; 40 * 1024]);
    let err = p.get_quote([0; 64]).unwrap_err();
    assert!(err.to_string().contains("more than 32768 bytes"), "{err}");

    let regs = dir.path().join("measurements");
    std::fs::create_dir_all(&regs).unwrap();
    let mut paths = TdxPaths::default();
    for (i, len) in [47usize, 49, 48, 48].into_iter().enumerate() {
        paths.rtmr_read[i] = regs.join(format!("rtmr{i}"));
        std::fs::write(&paths.rtmr_read[i], vec![1u8; len]).unwrap();
    }
    let p = TdxProvider::new(paths);
    assert!(p
        .read_rtmr(0)
        .unwrap_err()
        .to_string()
        .contains("read 47 bytes, expected 48"));
    assert!(p
        .read_rtmr(1)
        .unwrap_err()
        .to_string()
        .contains("more than 48 bytes"));
    assert_eq!(p.read_rtmr(2).unwrap(), [1u8; 48]);
    assert!(p.read_rtmrs().is_err());
}

#[test]
fn quote_header_check_refuses_non_tdx_blobs() {
    use cocoon_tdx::layout::check_tdx_quote_header;
    let short = check_tdx_quote_header(&[4, 0, 2, 0, 0x81, 0, 0, 0]);
    assert!(short.unwrap_err().contains("shorter than a quote header"));
    let mut quote = vec![0u8; 700];
    quote[0] = 3;
    assert!(check_tdx_quote_header(&quote)
        .unwrap_err()
        .contains("version 3"));
    quote[0] = 4;
    assert!(check_tdx_quote_header(&quote)
        .unwrap_err()
        .contains("TEE type 0x0"));
    quote[4] = 0x81;
    assert!(check_tdx_quote_header(&quote).is_ok());
    assert!(check_tdx_quote_header(&quote[..600])
        .unwrap_err()
        .contains("shorter than header and TD report body"));
}

#[test]
fn created_entry_is_removed_on_drop() {
    // A configfs-tsm directory without a TSM provider behind it: the entry is created but has
    // no attributes, so the request fails naming the missing file; the entry goes away with
    // the provider.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("report")).unwrap();
    let p = TdxProvider::new(TdxPaths {
        tsm_report_dir: dir.path().join("report"),
        tsm_entry_name: "mine".into(),
        ..TdxPaths::default()
    });
    let err = p.get_quote([0; 64]).unwrap_err();
    assert!(
        matches!(err, TdxError::Io { ref path, .. } if path.ends_with("mine/provider")),
        "{err}"
    );
    assert!(dir.path().join("report/mine").is_dir());
    drop(p);
    assert!(!dir.path().join("report/mine").exists());

    // No configfs-tsm at all.
    let p = TdxProvider::new(TdxPaths {
        tsm_report_dir: dir.path().join("absent"),
        ..TdxPaths::default()
    });
    let err = p.get_quote([0; 64]).unwrap_err();
    assert!(
        err.to_string()
            .contains("creating configfs-tsm report entry"),
        "{err}"
    );
}

/// A reader whose close the service never sees as a read-only close (here: one that opened
/// the FIFO read-write, as an interrupted open also leaves no read-only close behind) must
/// not stall the next reader: the service notices the FIFO has no reader and serves on.
#[test]
fn a_reader_without_a_reported_close_does_not_stall_the_next_read() {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = tempfile::tempdir().unwrap();
    let td = SimulatedTd::start(9, dir.path()).unwrap();
    let path = td.paths().rtmr_read[3].clone();
    {
        let mut odd = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
            .open(&path)
            .unwrap();
        let mut value = [0u8; 48];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match odd.read_exact(&mut value) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(std::time::Instant::now() < deadline, "no value served");
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => panic!("reading {}: {e}", path.display()),
            }
        }
        assert_eq!(value, [0u8; 48]);
    }
    let provider = td.provider();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(provider.read_rtmr(3));
    });
    let value = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the read after an unreported close hung");
    assert_eq!(value.unwrap(), [0u8; 48]);
}

#[test]
fn simulated_td_survives_a_malformed_request() {
    let dir = tempfile::tempdir().unwrap();
    let td = SimulatedTd::start(8, dir.path()).unwrap();
    let entry = td.paths().tsm_entry();
    // A client writing 10 bytes of report data gets an empty outblob, as the kernel refuses
    // the request...
    std::fs::write(entry.join("inblob"), [1u8; 10]).unwrap();
    assert!(std::fs::read(entry.join("outblob")).unwrap().is_empty());
    // ...and the provider's next request is served normally.
    let quote = td.provider().get_quote([2; 64]).unwrap();
    assert_eq!(
        &quote[HEADER_LEN + body::REPORT_DATA..HEADER_LEN + body::REPORT_DATA + 64],
        &[2u8; 64]
    );
    assert_eq!(td.quotes_served(), 2);
}

#[test]
fn preset_registers_are_reported_and_extended_for_real() {
    use cocoon_tdx::simulated::{simulated_paths, SimulatedRegisters, SimulatedTdConfig};
    let regs = SimulatedRegisters {
        mrtd: [0x11; 48],
        rtmr0: [0x20; 48],
        rtmr1: [0x21; 48],
        rtmr2: [0x22; 48],
    };
    let dir = tempfile::tempdir().unwrap();
    let td = SimulatedTd::start_with(SimulatedTdConfig::new(5).with_registers(&regs), dir.path())
        .unwrap();
    // A provider built from the documented layout, not from the TD object.
    let provider = TdxProvider::new(simulated_paths(dir.path()));
    assert_eq!(provider.paths(), td.paths());
    assert_eq!(
        provider.read_rtmrs().unwrap(),
        [regs.rtmr0, regs.rtmr1, regs.rtmr2, [0; 48]]
    );
    let digest = [0x33; 48];
    provider.extend_rtmr3(&digest).unwrap();
    let quote = provider.get_quote([7; 64]).unwrap();
    let b = &quote[HEADER_LEN..SIGNED_LEN];
    assert_eq!(&b[body::MR_TD..body::MR_TD + 48], &regs.mrtd);
    let rtmr = |i: usize| &b[body::RTMR0 + 48 * i..body::RTMR0 + 48 * (i + 1)];
    assert_eq!(rtmr(0), &regs.rtmr0);
    assert_eq!(rtmr(2), &regs.rtmr2);
    assert_eq!(rtmr(3), &extend([0; 48], &digest));
}

#[test]
fn missing_interfaces_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let td = SimulatedTd::start(6, dir.path()).unwrap();
    assert!(td.provider().check_interfaces().is_ok());
    let mut paths = td.paths().clone();
    paths.tsm_report_dir = dir.path().join("no/tsm");
    let err = TdxProvider::new(paths).check_interfaces().unwrap_err();
    assert!(matches!(
        err,
        TdxError::InterfaceMissing {
            what: "configfs-tsm",
            ..
        }
    ));
    assert!(err.to_string().contains("no/tsm"), "{err}");
    let mut paths = td.paths().clone();
    paths.rtmr_read[3] = dir.path().join("no/rtmr3");
    let err = TdxProvider::new(paths).check_interfaces().unwrap_err();
    assert!(
        err.to_string().contains("RTMR3 measurement attribute"),
        "{err}"
    );
}
