//! Manifests: build, sign, verify, tamper, reject; identity and COCOON hash vectors computed
//! outside this crate (Python's hashlib and `sha256sum`).

use cocoon_measure::boot::{BootMeasurements, VmShape};
use cocoon_measure::identity::{
    cocoon_image_hash, identity_hash, CocoonImageRegisters, TdIdentity, COCOON_IMAGE_HASH_INPUT_LEN,
};
use cocoon_measure::manifest::{
    build, encode_key, generate_signing_key, parse_signing_key, parse_verifying_key, AcpiBlob,
    ImageFiles, Manifest, ManifestError, ReleaseInfo, ShapeBuild, TdPolicy,
};
use cocoon_measure::rtmr3::{self, kinds, Rtmr3Event};
use cocoon_measure::{replay, sha384, Event, Rtmr};
use sha2::{Digest, Sha256};

fn reg(byte: u8) -> [u8; 48] {
    [byte; 48]
}

#[test]
fn cocoon_image_hash_vectors() {
    assert_eq!(COCOON_IMAGE_HASH_INPUT_LEN, 448);
    // All zero: `head -c 448 /dev/zero | sha256sum`.
    let zero = CocoonImageRegisters {
        mrtd: reg(0),
        mr_config_id: reg(0),
        mr_owner: reg(0),
        mr_owner_config: reg(0),
        rtmr: [reg(0); 4],
    };
    assert_eq!(
        hex::encode(cocoon_image_hash(&zero)),
        "5c55c8f4db4010ba9203d83536d0609856af8c847ac039e37e7dde8fbd574b61"
    );
    // Register k (in the order MRTD, MRCONFIGID, MROWNER, MROWNERCONFIG, RTMR0..3) filled with
    // byte k+1, then 64 zero bytes; hashed with Python's hashlib.sha256.
    let r = CocoonImageRegisters {
        mrtd: reg(1),
        mr_config_id: reg(2),
        mr_owner: reg(3),
        mr_owner_config: reg(4),
        rtmr: [reg(5), reg(6), reg(7), reg(8)],
    };
    assert_eq!(
        hex::encode(cocoon_image_hash(&r)),
        "a1c3a6779016181d2a6e3b11a8ba839dc2498b471b2bb90d00b81020f43f3b46"
    );
    // And the same 448 bytes laid out by hand.
    let mut buf = Vec::new();
    for k in 1..=8u8 {
        buf.extend_from_slice(&[k; 48]);
    }
    buf.extend_from_slice(&[0; 64]);
    assert_eq!(buf.len(), 448);
    assert_eq!(
        cocoon_image_hash(&r),
        <[u8; 32]>::from(Sha256::digest(&buf))
    );
}

#[test]
fn identity_hash_vector() {
    // SHA-384("cocoon-td-identity/v1\0" || MRTD=01.. || RTMR0..3 = 05..,06..,07..,08.. ||
    // u64le(0x10000000) || u64le(0x602e7)), computed with Python's hashlib.
    let id = TdIdentity {
        mrtd: reg(1),
        rtmr: [reg(5), reg(6), reg(7), reg(8)],
        td_attributes: 0x1000_0000,
        xfam: 0x602e7,
    };
    assert_eq!(
        hex::encode(identity_hash(&id)),
        "77fa43db88fed7308c5ff9c93e23e0c33c1c7191e445da726e932c053eaaf374c44e6df49046439766921e2121808509"
    );
    // Every field matters.
    let mut other = id;
    other.td_attributes |= 1; // DEBUG
    assert_ne!(identity_hash(&other), identity_hash(&id));
    let mut other = id;
    other.rtmr[3][47] ^= 1;
    assert_ne!(identity_hash(&other), identity_hash(&id));
}

#[test]
fn rtmr3_digest_vector() {
    // SHA-384("cocoon-rtmr3-event/v1\0" || u16be(11) || "cocoon.mode" || u32be(10) || "production").
    let e = Rtmr3Event::new(kinds::MODE, "production").unwrap();
    assert_eq!(
        hex::encode(e.digest()),
        "1fd8c89f13609197f908e85a8514b25473b3dc9fa9d4650eba99bdfb1a7a1c26e36d8b719fd880d7eb81dc8efc4c8038"
    );
}

fn ev(rtmr: Rtmr, tag: &str, source: &'static str) -> Event {
    Event {
        rtmr,
        event_type: 6,
        digest: sha384(tag.as_bytes()),
        description: format!("{tag} event"),
        source,
    }
}

/// Measurements as `compute` would return them: events and the registers they replay to.
fn measurements(hob: &str, cmdline: &str) -> BootMeasurements {
    let events = vec![
        ev(Rtmr::Rtmr0, hob, "td-hob"),
        ev(Rtmr::Rtmr0, "acpi tables", "acpi"),
        ev(Rtmr::Rtmr1, "kernel", "kernel"),
        ev(Rtmr::Rtmr2, cmdline, "cmdline"),
        ev(Rtmr::Rtmr2, "initrd", "initrd"),
    ];
    let regs = replay(&events);
    BootMeasurements {
        mrtd: reg(0x11),
        rtmr0: Some(regs[0].value()),
        rtmr1: regs[1].value(),
        rtmr2: regs[2].value(),
        events,
    }
}

fn shape(name: &str, cpus: u32, hob: &str) -> ShapeBuild {
    let blob = b"RSD PTR some acpi bytes".to_vec();
    ShapeBuild {
        name: name.into(),
        shape: VmShape {
            cpus,
            memory_bytes: 64 << 30,
            gpus: 1,
        },
        acpi: vec![AcpiBlob {
            name: "etc/acpi/rsdp".into(),
            size: blob.len() as u64,
            sha256: Sha256::digest(&blob).into(),
            data_base64: Some(base64_encode(&blob)),
        }],
        measurements: measurements(hob, "console=ttyS0 root=/dev/vda"),
    }
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn release() -> ReleaseInfo {
    ReleaseInfo {
        release: "1.2.3".into(),
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        td: TdPolicy::default(),
    }
}

fn image() -> ImageFiles {
    ImageFiles {
        firmware_sha256: [1; 32],
        kernel_sha256: [2; 32],
        initrd_sha256: Some([3; 32]),
        cmdline: "console=ttyS0 root=/dev/vda".into(),
    }
}

fn rtmr3_events() -> Vec<Rtmr3Event> {
    vec![
        Rtmr3Event::new(kinds::CONFIG, [9u8; 32]).unwrap(),
        Rtmr3Event::new(kinds::MODEL, [8u8; 32]).unwrap(),
        Rtmr3Event::new(kinds::MODE, "production").unwrap(),
    ]
}

fn signed_manifest() -> (Manifest, ed25519_dalek::SigningKey) {
    let body = build(
        release(),
        image(),
        vec![shape("small", 8, "hob 8"), shape("large", 16, "hob 16")],
        Some(rtmr3_events()),
    )
    .unwrap();
    let key = generate_signing_key().unwrap();
    let mut m = Manifest {
        body,
        signature: None,
    };
    m.sign(&key);
    (m, key)
}

#[test]
fn build_records_registers_events_and_hashes() {
    let (m, _) = signed_manifest();
    let b = &m.body;
    assert_eq!(b.format, "cocoon-measure-manifest/v1");
    let meas = measurements("hob 16", "console=ttyS0 root=/dev/vda");
    assert_eq!(b.image.mrtd, reg(0x11));
    assert_eq!(
        b.image.rtmr1,
        Some(meas.rtmr1),
        "same kernel in both shapes: image-static"
    );
    assert_eq!(b.image.rtmr2, Some(meas.rtmr2));
    let large = b.shape("large").unwrap();
    assert_eq!(large.registers.rtmr0, meas.rtmr0.unwrap());
    assert_eq!(large.events.len(), 5);
    assert_ne!(
        b.shape("small").unwrap().registers.rtmr0,
        large.registers.rtmr0
    );
    let r3 = rtmr3::replay(&rtmr3_events()).value();
    assert_eq!(large.registers.rtmr3, Some(r3));
    let expect_id = identity_hash(&TdIdentity {
        mrtd: reg(0x11),
        rtmr: [meas.rtmr0.unwrap(), meas.rtmr1, meas.rtmr2, r3],
        td_attributes: 0x1000_0000,
        xfam: 0x602e7,
    });
    assert_eq!(large.identity_sha384, Some(expect_id));
    assert!(large.cocoon_image_hash.is_some());

    // A quote's registers select the shape.
    let r = &large.registers;
    assert_eq!(
        b.shape_for_registers(&r.mrtd, &[r.rtmr0, r.rtmr1, r.rtmr2])
            .unwrap()
            .name,
        "large"
    );
    assert!(b
        .shape_for_registers(&r.mrtd, &[r.rtmr0, r.rtmr1, reg(0)])
        .is_none());

    // The expectation for a shape covers RTMR0-2 with that shape's events.
    let exp = b.expectation("small").unwrap();
    assert_eq!(exp.covers, [true, true, true, false]);
    assert_eq!(exp.events[0].digest, sha384(b"hob 8"));
    assert!(matches!(
        b.expectation("nope"),
        Err(ManifestError::NoSuchShape { .. })
    ));
}

#[test]
fn build_without_rtmr3_has_no_identity() {
    let body = build(release(), image(), vec![shape("only", 4, "hob")], None).unwrap();
    let s = &body.shapes[0];
    assert_eq!(
        (s.registers.rtmr3, s.identity_sha384, s.cocoon_image_hash),
        (None, None, None)
    );
}

#[test]
fn build_refuses_inconsistent_inputs() {
    let mut other = shape("b", 4, "hob");
    other.measurements.mrtd = reg(0x22);
    let err = build(release(), image(), vec![shape("a", 4, "hob"), other], None).unwrap_err();
    assert!(err.to_string().contains("MRTD of shape b"), "{err}");

    let mut no_acpi = shape("a", 4, "hob");
    no_acpi.measurements.rtmr0 = None;
    assert!(build(release(), image(), vec![no_acpi], None)
        .unwrap_err()
        .to_string()
        .contains("RTMR0 was not computed"));

    // Registers that are not the replay of the events.
    let mut wrong = shape("a", 4, "hob");
    wrong.measurements.rtmr2 = reg(0x33);
    let err = build(release(), image(), vec![wrong], None).unwrap_err();
    assert!(err.to_string().contains("registers.rtmr2"), "{err}");

    assert!(build(release(), image(), vec![], None).is_err());
    assert!(build(release(), image(), vec![shape("bad name", 4, "hob")], None).is_err());
    let mut r = release();
    r.commit = "not-hex".into();
    assert!(build(r, image(), vec![shape("a", 4, "hob")], None)
        .unwrap_err()
        .to_string()
        .contains("commit"));
    let err = build(
        release(),
        image(),
        vec![shape("a", 4, "x"), shape("a", 8, "y")],
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("appears twice"), "{err}");
}

#[test]
fn shape_dependent_rtmr1_is_not_image_static() {
    let mut b = shape("b", 4, "hob");
    b.measurements.events[2] = ev(Rtmr::Rtmr1, "patched kernel for 8G", "kernel");
    b.measurements.rtmr1 = replay(&b.measurements.events)[1].value();
    let body = build(release(), image(), vec![shape("a", 4, "hob"), b], None).unwrap();
    assert_eq!(body.image.rtmr1, None);
    assert!(body.image.rtmr2.is_some());
}

#[test]
fn sign_verify_round_trip() {
    let (m, key) = signed_manifest();
    let json = m.to_json();
    let parsed = Manifest::parse_verified(json.as_bytes(), &key.verifying_key()).unwrap();
    assert_eq!(parsed, m);
    assert_eq!(parsed.to_json(), json, "serialisation is stable");
    assert!(json.starts_with("{\"manifest\":{\"format\":\"cocoon-measure-manifest/v1\""));
}

#[test]
fn unsigned_and_wrong_key_are_refused() {
    let (mut m, key) = signed_manifest();
    let other = generate_signing_key().unwrap();
    let json = m.to_json();
    assert!(matches!(
        Manifest::parse_verified(json.as_bytes(), &other.verifying_key()),
        Err(ManifestError::WrongKey { .. })
    ));
    m.signature = None;
    let unsigned = m.to_json();
    assert!(!unsigned.contains("signature"));
    assert!(
        Manifest::parse(unsigned.as_bytes()).is_ok(),
        "an unsigned manifest parses"
    );
    assert_eq!(
        Manifest::parse_verified(unsigned.as_bytes(), &key.verifying_key()),
        Err(ManifestError::Unsigned)
    );
    let null_sig =
        unsigned.trim_end().strip_suffix('}').unwrap().to_string() + ",\"signature\":null}";
    assert_eq!(
        Manifest::parse_verified(null_sig.as_bytes(), &key.verifying_key()),
        Err(ManifestError::Unsigned)
    );
    // A signature by another key, presented with that key's public key in the block, is still
    // refused for our key.
    m.sign(&other);
    assert!(matches!(
        Manifest::parse_verified(m.to_json().as_bytes(), &key.verifying_key()),
        Err(ManifestError::WrongKey { .. })
    ));
}

/// Another character of the same kind, so the JSON stays well-formed where possible.
fn substitute(c: u8) -> u8 {
    match c {
        b'0'..=b'8' | b'a'..=b'e' | b'A'..=b'Y' => c + 1,
        b'9' => b'0',
        b'f' => b'a',
        b'g'..=b'y' => c + 1,
        b'z' => b'a',
        b'Z' => b'A',
        b'"' => b'\'',
        b':' => b';',
        b',' => b';',
        _ => b'x',
    }
}

#[test]
fn changing_any_byte_is_refused() {
    // A manifest with one shape and short events keeps this exhaustive test fast.
    let body = build(
        release(),
        image(),
        vec![shape("s", 2, "h")],
        Some(vec![Rtmr3Event::new("cocoon.mode", "p").unwrap()]),
    )
    .unwrap();
    let key = generate_signing_key().unwrap();
    let mut m = Manifest {
        body,
        signature: None,
    };
    m.sign(&key);
    let json = m.to_json().into_bytes();
    let vk = key.verifying_key();
    assert!(Manifest::parse_verified(&json, &vk).is_ok());
    for i in 0..json.len() - 1 {
        let mut t = json.clone();
        t[i] = substitute(t[i]);
        // Same as parse_verified, but skips the (slow in debug builds) signature check when
        // parsing already refuses the change.
        if let Ok(m2) = Manifest::parse(&t) {
            assert!(
                m2.verify(&vk).is_err(),
                "byte {i} ({:?}) changed and still accepted: {m2:?}",
                json[i] as char
            );
        }
    }
    // Reformatting is a change too: the body must be byte-for-byte canonical.
    let pretty =
        String::from_utf8(json.clone())
            .unwrap()
            .replacen("{\"format\"", "{ \"format\"", 1);
    assert_eq!(
        Manifest::parse_verified(pretty.as_bytes(), &vk),
        Err(ManifestError::NotCanonical)
    );
    // Upper-case hex spells the same bytes but is refused.
    let sig_hex = hex::encode(m.signature.as_ref().unwrap().signature);
    let upper = String::from_utf8(json.clone())
        .unwrap()
        .replace(&sig_hex, &sig_hex.to_uppercase());
    assert!(matches!(
        Manifest::parse_verified(upper.as_bytes(), &vk),
        Err(ManifestError::Json(_))
    ));
    // An added field is refused.
    let extra =
        String::from_utf8(json)
            .unwrap()
            .replacen("{\"manifest\":", "{\"note\":1,\"manifest\":", 1);
    assert!(matches!(
        Manifest::parse_verified(extra.as_bytes(), &vk),
        Err(ManifestError::Json(_))
    ));
}

#[test]
fn inconsistent_body_is_refused_even_when_signed() {
    let (mut m, key) = signed_manifest();
    m.body.shapes[0].registers.rtmr0 = reg(0x44);
    m.sign(&key);
    let err = Manifest::parse(m.to_json().as_bytes()).unwrap_err();
    assert!(
        err.to_string().contains("shapes[0].registers.rtmr0"),
        "{err}"
    );

    let (mut m, key) = signed_manifest();
    m.body.shapes[1].acpi[0].data_base64 = Some(base64_encode(b"other bytes"));
    m.sign(&key);
    assert!(Manifest::parse(m.to_json().as_bytes())
        .unwrap_err()
        .to_string()
        .contains("acpi[0]"));

    let (mut m, key) = signed_manifest();
    m.body.td.attributes |= 1;
    m.sign(&key);
    let err = Manifest::parse(m.to_json().as_bytes()).unwrap_err();
    assert!(err.to_string().contains("identity_sha384"), "{err}");

    let (mut m, key) = signed_manifest();
    m.body.format = "cocoon-measure-manifest/v2".into();
    m.sign(&key);
    assert!(matches!(
        Manifest::parse(m.to_json().as_bytes()),
        Err(ManifestError::Format { .. })
    ));
}

#[test]
fn garbage_is_refused_without_panic() {
    for input in [
        &b""[..],
        b"{}",
        b"[]",
        b"null",
        b"{\"manifest\":1}",
        b"{\"manifest\":{}}",
        &[0xFF; 10],
    ] {
        assert!(Manifest::parse(input).is_err());
    }
    let (m, _) = signed_manifest();
    let json = m.to_json().into_bytes();
    for n in (0..json.len()).step_by(7) {
        assert!(Manifest::parse(&json[..n]).is_err());
    }
}

#[test]
fn key_text_formats() {
    let key = generate_signing_key().unwrap();
    let text = encode_key(&key.to_bytes());
    assert_eq!(text.len(), 65);
    assert_eq!(parse_signing_key(&text).unwrap().to_bytes(), key.to_bytes());
    let pub_text = encode_key(&key.verifying_key().to_bytes());
    assert_eq!(
        parse_verifying_key(&format!("  {pub_text}\n")).unwrap(),
        key.verifying_key()
    );
    assert!(parse_verifying_key(&pub_text.to_uppercase()).is_err());
    assert!(parse_verifying_key("abcd").is_err());
    assert_ne!(generate_signing_key().unwrap().to_bytes(), key.to_bytes());
}
