//! Names of TCG event types (TCG PC Client Platform Firmware Profile, section 10.4.1), for
//! transcripts.

/// `EV_NO_ACTION`: informational events that are never extended into a register.
pub const EV_NO_ACTION: u32 = 0x0000_0003;

const EFI: u32 = 0x8000_0000;

/// The TCG name of an event type, or `None` for a value the specification does not define.
pub fn event_type_name(event_type: u32) -> Option<&'static str> {
    Some(match event_type {
        0x00 => "EV_PREBOOT_CERT",
        0x01 => "EV_POST_CODE",
        0x02 => "EV_UNUSED",
        0x03 => "EV_NO_ACTION",
        0x04 => "EV_SEPARATOR",
        0x05 => "EV_ACTION",
        0x06 => "EV_EVENT_TAG",
        0x07 => "EV_S_CRTM_CONTENTS",
        0x08 => "EV_S_CRTM_VERSION",
        0x09 => "EV_CPU_MICROCODE",
        0x0A => "EV_PLATFORM_CONFIG_FLAGS",
        0x0B => "EV_TABLE_OF_DEVICES",
        0x0C => "EV_COMPACT_HASH",
        0x0D => "EV_IPL",
        0x0E => "EV_IPL_PARTITION_DATA",
        0x0F => "EV_NONHOST_CODE",
        0x10 => "EV_NONHOST_CONFIG",
        0x11 => "EV_NONHOST_INFO",
        0x12 => "EV_OMIT_BOOT_DEVICE_EVENTS",
        0x13 => "EV_POST_CODE2",
        x if x == EFI => "EV_EFI_EVENT_BASE",
        x if x == EFI + 0x01 => "EV_EFI_VARIABLE_DRIVER_CONFIG",
        x if x == EFI + 0x02 => "EV_EFI_VARIABLE_BOOT",
        x if x == EFI + 0x03 => "EV_EFI_BOOT_SERVICES_APPLICATION",
        x if x == EFI + 0x04 => "EV_EFI_BOOT_SERVICES_DRIVER",
        x if x == EFI + 0x05 => "EV_EFI_RUNTIME_SERVICES_DRIVER",
        x if x == EFI + 0x06 => "EV_EFI_GPT_EVENT",
        x if x == EFI + 0x07 => "EV_EFI_ACTION",
        x if x == EFI + 0x08 => "EV_EFI_PLATFORM_FIRMWARE_BLOB",
        x if x == EFI + 0x09 => "EV_EFI_HANDOFF_TABLES",
        x if x == EFI + 0x0A => "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
        x if x == EFI + 0x0B => "EV_EFI_HANDOFF_TABLES2",
        x if x == EFI + 0x0C => "EV_EFI_VARIABLE_BOOT2",
        x if x == EFI + 0x0D => "EV_EFI_GPT_EVENT2",
        x if x == EFI + 0x10 => "EV_EFI_HCRTM_EVENT",
        x if x == EFI + 0xE0 => "EV_EFI_VARIABLE_AUTHORITY",
        x if x == EFI + 0xE1 => "EV_EFI_SPDM_FIRMWARE_BLOB",
        x if x == EFI + 0xE2 => "EV_EFI_SPDM_FIRMWARE_CONFIG",
        _ => return None,
    })
}

/// `event_type_name`, or the value in hex when the type is not defined.
pub fn event_type_label(event_type: u32) -> String {
    match event_type_name(event_type) {
        Some(name) => name.to_string(),
        None => format!("0x{event_type:08x}"),
    }
}

/// TCG algorithm identifiers (TCG Algorithm Registry) with their digest sizes.
pub const TPM_ALG_SHA1: u16 = 0x0004;
pub const TPM_ALG_SHA256: u16 = 0x000B;
pub const TPM_ALG_SHA384: u16 = 0x000C;
pub const TPM_ALG_SHA512: u16 = 0x000D;
pub const TPM_ALG_SM3_256: u16 = 0x0012;

/// The digest size the registry defines for a known algorithm.
pub fn known_digest_size(alg: u16) -> Option<u16> {
    match alg {
        TPM_ALG_SHA1 => Some(20),
        TPM_ALG_SHA256 | TPM_ALG_SM3_256 => Some(32),
        TPM_ALG_SHA384 => Some(48),
        TPM_ALG_SHA512 => Some(64),
        _ => None,
    }
}
