//! Byte encodings of the UEFI events OVMF/TDVF measures: EFI variables, boot options, device
//! paths, and the fixed event strings.

/// `EV_SEPARATOR` data: a 32-bit zero.
pub const SEPARATOR: [u8; 4] = [0; 4];
pub const CALLING_EFI_APPLICATION: &str = "Calling EFI Application from Boot Option";
pub const EXIT_BOOT_SERVICES_INVOCATION: &str = "Exit Boot Services Invocation";
pub const EXIT_BOOT_SERVICES_SUCCESS: &str = "Exit Boot Services Returned with Success";

/// TCG event types used here.
pub mod event_type {
    pub const EV_SEPARATOR: u32 = 0x4;
    pub const EV_EVENT_TAG: u32 = 0x6;
    pub const EV_PLATFORM_CONFIG_FLAGS: u32 = 0xa;
    pub const EV_EFI_VARIABLE_DRIVER_CONFIG: u32 = 0x8000_0001;
    pub const EV_EFI_VARIABLE_BOOT: u32 = 0x8000_0002;
    pub const EV_EFI_BOOT_SERVICES_APPLICATION: u32 = 0x8000_0003;
    pub const EV_EFI_ACTION: u32 = 0x8000_0007;
    pub const EV_EFI_PLATFORM_FIRMWARE_BLOB2: u32 = 0x8000_000a;
    pub const EV_EFI_HANDOFF_TABLES2: u32 = 0x8000_000b;

    /// The TCG name of an event type, for transcripts.
    pub fn name(t: u32) -> &'static str {
        match t {
            EV_SEPARATOR => "EV_SEPARATOR",
            EV_EVENT_TAG => "EV_EVENT_TAG",
            EV_PLATFORM_CONFIG_FLAGS => "EV_PLATFORM_CONFIG_FLAGS",
            EV_EFI_VARIABLE_DRIVER_CONFIG => "EV_EFI_VARIABLE_DRIVER_CONFIG",
            EV_EFI_VARIABLE_BOOT => "EV_EFI_VARIABLE_BOOT",
            EV_EFI_BOOT_SERVICES_APPLICATION => "EV_EFI_BOOT_SERVICES_APPLICATION",
            EV_EFI_ACTION => "EV_EFI_ACTION",
            EV_EFI_PLATFORM_FIRMWARE_BLOB2 => "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
            EV_EFI_HANDOFF_TABLES2 => "EV_EFI_HANDOFF_TABLES2",
            _ => "EV_UNKNOWN",
        }
    }
}

/// A GUID in its on-disk (mixed-endian) byte order, built from canonical fields.
pub const fn guid(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let a = a.to_le_bytes();
    let b = b.to_le_bytes();
    let c = c.to_le_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
        d[7],
    ]
}

/// `EFI_GLOBAL_VARIABLE` 8be4df61-93ca-11d2-aa0d-00e098032b8c (SecureBoot, PK, KEK, Boot####).
pub const EFI_GLOBAL_VARIABLE: [u8; 16] = guid(
    0x8be4_df61,
    0x93ca,
    0x11d2,
    [0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c],
);
/// `EFI_IMAGE_SECURITY_DATABASE_GUID` d719b2cb-3d3a-4596-a3bc-dad00e67656f (db, dbx).
pub const EFI_IMAGE_SECURITY_DATABASE: [u8; 16] = guid(
    0xd719_b2cb,
    0x3d3a,
    0x4596,
    [0xa3, 0xbc, 0xda, 0xd0, 0x0e, 0x67, 0x65, 0x6f],
);
/// Name GUID of OVMF's DXE firmware volume (`OvmfPkg/OvmfPkgX64.fdf`, FV DXEFV)
/// 7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1.
pub const OVMF_DXEFV: [u8; 16] = guid(
    0x7cb8_bdc9,
    0xf8eb,
    0x4f34,
    [0xaa, 0xea, 0x3e, 0xe4, 0xaf, 0x65, 0x16, 0xa1],
);
/// File GUID of `MdeModulePkg/Application/UiApp` 462caa21-7614-4503-836e-8ab6f4662331.
pub const UIAPP_FILE: [u8; 16] = guid(
    0x462c_aa21,
    0x7614,
    0x4503,
    [0x83, 0x6e, 0x8a, 0xb6, 0xf4, 0x66, 0x23, 0x31],
);

/// `LOAD_OPTION_ACTIVE | LOAD_OPTION_HIDDEN | LOAD_OPTION_CATEGORY_APP`: how BdsDxe registers
/// the boot manager menu application.
pub const BOOT_MANAGER_MENU_ATTRIBUTES: u32 = 0x1 | 0x8 | 0x100;

/// UCS-2 little endian, one code unit per `char` below U+10000 (callers pass ASCII names).
pub fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// `UEFI_VARIABLE_DATA`: vendor GUID, u64 name length in characters, u64 data length, the
/// name in UTF-16 without terminator, the data. The digest of `EV_EFI_VARIABLE_DRIVER_CONFIG`
/// events covers this whole structure.
pub fn variable_data(vendor: &[u8; 16], name: &str, data: &[u8]) -> Vec<u8> {
    let name16 = utf16le(name);
    let mut v = Vec::with_capacity(32 + name16.len() + data.len());
    v.extend_from_slice(vendor);
    v.extend_from_slice(&((name16.len() / 2) as u64).to_le_bytes());
    v.extend_from_slice(&(data.len() as u64).to_le_bytes());
    v.extend_from_slice(&name16);
    v.extend_from_slice(data);
    v
}

/// A PIWG firmware-volume device path node (`MEDIA_DEVICE_PATH`, subtype 7).
pub fn fv_node(fv: &[u8; 16]) -> Vec<u8> {
    let mut v = vec![0x04, 0x07, 20, 0];
    v.extend_from_slice(fv);
    v
}

/// A PIWG firmware-file device path node (`MEDIA_DEVICE_PATH`, subtype 6).
pub fn fv_file_node(file: &[u8; 16]) -> Vec<u8> {
    let mut v = vec![0x04, 0x06, 20, 0];
    v.extend_from_slice(file);
    v
}

/// The end-of-device-path node.
pub const END_OF_DEVICE_PATH: [u8; 4] = [0x7f, 0xff, 0x04, 0x00];

/// `EFI_LOAD_OPTION`: u32 attributes, u16 device-path length, NUL-terminated UTF-16
/// description, device path, optional data. `EV_EFI_VARIABLE_BOOT` digests cover the variable
/// data only, i.e. exactly these bytes.
pub fn load_option(
    attributes: u32,
    description: &str,
    device_path: &[u8],
    optional: &[u8],
) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&attributes.to_le_bytes());
    v.extend_from_slice(&(device_path.len() as u16).to_le_bytes());
    v.extend_from_slice(&utf16le(description));
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(device_path);
    v.extend_from_slice(optional);
    v
}

/// Boot0000 of a fresh OVMF (edk2 up to stable202502): the boot manager menu, which OVMF points
/// at UiApp; BdsDxe takes its description from UiApp's user-interface section, "UiApp".
pub fn ovmf_boot0000_uiapp() -> Vec<u8> {
    let mut dp = fv_node(&OVMF_DXEFV);
    dp.extend(fv_file_node(&UIAPP_FILE));
    dp.extend_from_slice(&END_OF_DEVICE_PATH);
    load_option(BOOT_MANAGER_MENU_ATTRIBUTES, "UiApp", &dp, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_matches_the_mixed_endian_string_form() {
        assert_eq!(
            hex::encode(EFI_GLOBAL_VARIABLE),
            "61dfe48bca93d211aa0d00e098032b8c"
        );
    }

    #[test]
    fn variable_data_layout() {
        let v = variable_data(&EFI_GLOBAL_VARIABLE, "PK", &[]);
        let mut expect = EFI_GLOBAL_VARIABLE.to_vec();
        expect.extend_from_slice(&2u64.to_le_bytes());
        expect.extend_from_slice(&0u64.to_le_bytes());
        expect.extend_from_slice(b"P\0K\0");
        assert_eq!(v, expect);
    }

    /// Cross-check against an independently published value: Phala's dstack-mr records the
    /// Boot0000 digest it captured from TDX hardware running pre-202505 OVMF as
    /// 23ada07f5261f12f...; our encoding, derived from the edk2 sources, must reproduce it.
    #[test]
    fn boot0000_matches_digest_captured_on_hardware() {
        assert_eq!(
            hex::encode(crate::sha384(&ovmf_boot0000_uiapp())),
            "23ada07f5261f12f34a0bd8e46760962d6b4d576a416f1fea1c64bc656b1d28eacf7047ae6e967c58fd2a98bfa74c298"
        );
    }
}
