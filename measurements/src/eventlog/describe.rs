//! One-line, human-readable summaries of event data for transcripts.
//!
//! Only for display: nothing here affects replay or comparison. Decoding is best effort and
//! bounded: structures that do not parse fall back to text or a hex prefix, and every summary
//! is at most [`MAX_SUMMARY`] characters.

use super::reader::Reader;

/// Longest summary produced, in characters.
pub const MAX_SUMMARY: usize = 160;

const EFI: u32 = 0x8000_0000;
const EV_EVENT_TAG: u32 = 0x06;
const EV_EFI_VARIABLE_DRIVER_CONFIG: u32 = EFI + 0x01;
const EV_EFI_VARIABLE_BOOT: u32 = EFI + 0x02;
const EV_EFI_BOOT_SERVICES_APPLICATION: u32 = EFI + 0x03;
const EV_EFI_PLATFORM_FIRMWARE_BLOB2: u32 = EFI + 0x0A;
const EV_EFI_HANDOFF_TABLES2: u32 = EFI + 0x0B;
const EV_EFI_VARIABLE_BOOT2: u32 = EFI + 0x0C;
const EV_EFI_VARIABLE_AUTHORITY: u32 = EFI + 0xE0;

/// Summarises the data of an event of type `event_type`.
pub fn summarize(event_type: u32, data: &[u8]) -> String {
    let structured = match event_type {
        EV_EFI_VARIABLE_DRIVER_CONFIG
        | EV_EFI_VARIABLE_BOOT
        | EV_EFI_VARIABLE_BOOT2
        | EV_EFI_VARIABLE_AUTHORITY => efi_variable(data),
        EV_EFI_PLATFORM_FIRMWARE_BLOB2 => firmware_blob2(data),
        EV_EFI_HANDOFF_TABLES2 => handoff_tables2(data),
        EV_EFI_BOOT_SERVICES_APPLICATION => image_load(data),
        EV_EVENT_TAG => tagged(data),
        _ => None,
    };
    clip(structured.unwrap_or_else(|| generic(data)))
}

fn clip(mut s: String) -> String {
    if s.chars().count() > MAX_SUMMARY {
        s = s.chars().take(MAX_SUMMARY - 1).collect();
        s.push('…');
    }
    s
}

/// Data as quoted text when it is printable ASCII or UTF-16LE ASCII, else a hex prefix.
pub fn generic(data: &[u8]) -> String {
    if data.is_empty() {
        return "(no data)".to_string();
    }
    if let Some(text) = ascii_text(data).or_else(|| utf16_text(data)) {
        return format!("{text:?}");
    }
    let prefix = data.get(..24).unwrap_or(data);
    let more = if data.len() > prefix.len() { "…" } else { "" };
    format!("{} bytes: {}{more}", data.len(), hex::encode(prefix))
}

fn printable(c: u8) -> bool {
    (0x20..0x7F).contains(&c) || c == b'\t' || c == b'\n'
}

fn ascii_text(data: &[u8]) -> Option<String> {
    let trimmed = trim_nul(data);
    (!trimmed.is_empty() && trimmed.iter().all(|&c| printable(c)))
        .then(|| String::from_utf8_lossy(trimmed).into_owned())
}

fn trim_nul(data: &[u8]) -> &[u8] {
    let end = data.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    data.get(..end).unwrap_or_default()
}

fn utf16_text(data: &[u8]) -> Option<String> {
    if data.len() % 2 != 0 {
        return None;
    }
    let units: Vec<u16> = data
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let end = units.iter().rposition(|&u| u != 0).map_or(0, |p| p + 1);
    let units = units.get(..end)?;
    if units.is_empty() || !units.iter().all(|&u| u < 0x80 && printable(u as u8)) {
        return None;
    }
    Some(String::from_utf16_lossy(units))
}

/// `UEFI_VARIABLE_DATA`: GUID, name length (UTF-16 units), data length, name, data.
fn efi_variable(data: &[u8]) -> Option<String> {
    let mut r = Reader::new(data);
    r.bytes(16, "variable GUID").ok()?;
    let name_len = usize::try_from(r.u64("name length").ok()?).ok()?;
    let data_len = r.u64("data length").ok()?;
    let name = r.bytes(name_len.checked_mul(2)?, "name").ok()?;
    let name = utf16_text(name).unwrap_or_else(|| "?".into());
    Some(format!("EFI variable {name} ({data_len} bytes of data)"))
}

/// `UEFI_PLATFORM_FIRMWARE_BLOB2`: description size (u8), description, base, length.
fn firmware_blob2(data: &[u8]) -> Option<String> {
    let mut r = Reader::new(data);
    let size = r.u8("description size").ok()?;
    let desc = r.bytes(size.into(), "description").ok()?;
    let base = r.u64("blob base").ok()?;
    let len = r.u64("blob length").ok()?;
    let desc = ascii_text(desc).unwrap_or_else(|| "?".into());
    Some(format!("firmware blob {desc:?} at 0x{base:x}, {len} bytes"))
}

/// `UEFI_HANDOFF_TABLE_POINTERS2`: description size (u8), description, table count, ...
fn handoff_tables2(data: &[u8]) -> Option<String> {
    let mut r = Reader::new(data);
    let size = r.u8("description size").ok()?;
    let desc = r.bytes(size.into(), "description").ok()?;
    let count = r.u64("table count").ok()?;
    let desc = ascii_text(desc).unwrap_or_else(|| "?".into());
    Some(format!("handoff tables {desc:?} ({count} tables)"))
}

/// `UEFI_IMAGE_LOAD_EVENT`: location, length, link-time address, device path length, path.
fn image_load(data: &[u8]) -> Option<String> {
    let mut r = Reader::new(data);
    let _location = r.u64("image location").ok()?;
    let len = r.u64("image length").ok()?;
    Some(format!("EFI application, {len} bytes in memory"))
}

/// `TCG_PCClientTaggedEvent`: tag id, data size, data.
fn tagged(data: &[u8]) -> Option<String> {
    let mut r = Reader::new(data);
    let id = r.u32("tag id").ok()?;
    let size = r.u32("tag data size").ok()?;
    let tag_data = r.bytes(usize::try_from(size).ok()?, "tag data").ok()?;
    Some(format!("tag 0x{id:x}: {}", generic(tag_data)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_binary() {
        assert_eq!(generic(b"ACPI DATA\0"), "\"ACPI DATA\"");
        assert_eq!(generic(&[b'h', 0, b'i', 0, 0, 0]), "\"hi\"");
        assert_eq!(generic(&[1, 2, 3]), "3 bytes: 010203");
        assert!(generic(&[0x80; 100]).ends_with('…'));
    }

    #[test]
    fn efi_variable_name() {
        let mut d = vec![0u8; 16];
        d.extend_from_slice(&2u64.to_le_bytes());
        d.extend_from_slice(&1u64.to_le_bytes());
        d.extend_from_slice(&[b'P', 0, b'K', 0, 7]);
        assert_eq!(
            summarize(EV_EFI_VARIABLE_DRIVER_CONFIG, &d),
            "EFI variable PK (1 bytes of data)"
        );
        // A huge name length must not be trusted.
        let mut bad = vec![0u8; 16];
        bad.extend_from_slice(&u64::MAX.to_le_bytes());
        bad.extend_from_slice(&0u64.to_le_bytes());
        assert!(summarize(EV_EFI_VARIABLE_DRIVER_CONFIG, &bad).starts_with("32 bytes"));
    }
}
