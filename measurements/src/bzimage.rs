//! The Linux x86 boot-protocol setup header of a bzImage, and the changes QEMU's direct kernel
//! loader (`x86_load_linux` in `hw/i386/x86-common.c`, QEMU 10.x) makes to it.
//!
//! QEMU fills in the fields a boot loader owns before it hands the kernel to the firmware over
//! fw_cfg (`FW_CFG_SETUP_DATA` + `FW_CFG_KERNEL_DATA`). Whether the firmware measures that
//! patched copy or the file as given depends on the QEMU and OVMF versions; see
//! [`crate::boot::KernelHeader`]. The patch, for a kernel with the "HdrS" magic:
//!
//! | offset | field | value |
//! |---|---|---|
//! | 0x1fa | `vid_mode` (only if the command line contains `vga=`) | parsed mode |
//! | 0x210 | `type_of_loader` (protocol >= 2.00) | 0xb0 (QEMU) |
//! | 0x211 | `loadflags` (protocol >= 2.01) | `|= CAN_USE_HEAP` (0x80) |
//! | 0x224 | `heap_end_ptr` u16 (protocol >= 2.01) | `cmdline_addr - real_addr - 0x200` |
//! | 0x228 | `cmd_line_ptr` u32 (protocol >= 2.02) | `cmdline_addr` (0x20000 for a high kernel) |
//! | 0x20/0x22 | old cmdline magic/offset (protocol < 2.02) | 0xa33f, `cmdline_addr - real_addr` |
//! | 0x218 | `ramdisk_image` u32 (with an initrd) | `(initrd_max - size) & !4095` |
//! | 0x21c | `ramdisk_size` u32 (with an initrd) | initrd size |
//!
//! `initrd_max` is `u32::MAX` for protocol >= 2.12 with `XLF_CAN_BE_LOADED_ABOVE_4G`, else
//! `initrd_addr_max` (>= 2.03) or 0x37ffffff, clamped to `below_4g_mem_size - acpi_data_size - 1`.
//! That clamp is why the patched header depends on the VM's memory size.

/// QEMU's `PC_FW_DATA`: room reserved below the top of low memory for ACPI tables and other
/// firmware data (`hw/i386/pc.c`, 0x20000 + 0x8000), passed as `acpi_data_size`.
pub const QEMU_ACPI_DATA_SIZE: u32 = 0x2_8000;

const HDRS_MAGIC: u32 = 0x5372_6448; // "HdrS"
const LOADED_HIGH: u8 = 0x01;
const CAN_USE_HEAP: u8 = 0x80;
const XLF_CAN_BE_LOADED_ABOVE_4G: u16 = 0x40;
/// QEMU reads (and patches) at most this many bytes of the header.
const QEMU_HEADER_BYTES: usize = 8192;

/// What is wrong with a kernel image or the load QEMU is asked to do.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BzImageError {
    #[error("kernel is {0} bytes, too small for a Linux boot-protocol setup header")]
    TooSmall(usize),
    #[error("not a bzImage: no \"HdrS\" setup-header magic at 0x202 (QEMU would try multiboot/ELF loading, which this model does not cover)")]
    NoHdrS,
    #[error("setup size {setup_size} bytes (setup_sects {setup_sects}) exceeds the {kernel_size}-byte kernel")]
    SetupTooLarge {
        setup_sects: u8,
        setup_size: usize,
        kernel_size: usize,
    },
    #[error("boot protocol {0:#06x} is too old to load an initrd")]
    TooOldForInitrd(u16),
    #[error("initrd of {size} bytes does not fit below {max:#x} (QEMU refuses it)")]
    InitrdTooLarge { size: u64, max: u32 },
    #[error("memory size {0} bytes is smaller than QEMU's reserved firmware data")]
    MemoryTooSmall(u64),
    #[error("invalid 'vga=' kernel parameter (QEMU refuses it): {0:?}")]
    BadVga(String),
}

/// The setup-header fields QEMU's loader reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetupHeader {
    /// Raw `setup_sects` (0x1f1); 0 means 4.
    pub setup_sects: u8,
    /// Boot protocol version (0x206).
    pub protocol: u16,
    pub loadflags: u8,
    /// `initrd_addr_max` (0x22c), meaningful for protocol >= 2.03.
    pub initrd_addr_max: u32,
    /// `xloadflags` (0x236), meaningful for protocol >= 2.12.
    pub xloadflags: u16,
    /// Bytes of real-mode setup code including the boot sector: `(setup_sects + 1) * 512`.
    pub setup_size: usize,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u16::from_le_bytes)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

impl SetupHeader {
    /// Parses the setup header of a whole bzImage. Requires the "HdrS" magic (QEMU treats
    /// anything else as multiboot or ELF, which is outside this model) and a setup size that
    /// fits in the file.
    pub fn parse(kernel: &[u8]) -> Result<Self, BzImageError> {
        if kernel.len() < 0x240 {
            return Err(BzImageError::TooSmall(kernel.len()));
        }
        if u32_at(kernel, 0x202) != HDRS_MAGIC {
            return Err(BzImageError::NoHdrS);
        }
        let setup_sects = kernel.get(0x1f1).copied().unwrap_or(0);
        let sects = if setup_sects == 0 {
            4
        } else {
            usize::from(setup_sects)
        };
        let setup_size = (sects + 1) * 512;
        if setup_size > kernel.len() {
            return Err(BzImageError::SetupTooLarge {
                setup_sects,
                setup_size,
                kernel_size: kernel.len(),
            });
        }
        Ok(Self {
            setup_sects,
            protocol: u16_at(kernel, 0x206),
            loadflags: kernel.get(0x211).copied().unwrap_or(0),
            initrd_addr_max: u32_at(kernel, 0x22c),
            xloadflags: u16_at(kernel, 0x236),
            setup_size,
        })
    }
}

/// QEMU q35's split of guest RAM below 4 GiB (`pc_q35_init`): with 2.75 GiB or more, low memory
/// stops at 2 GiB; otherwise all RAM up to 2.75 GiB is low.
pub fn below_4g_mem_size(memory: u64) -> u64 {
    let lowmem = if memory >= 0xb000_0000 {
        0x8000_0000
    } else {
        0xb000_0000
    };
    memory.min(lowmem)
}

/// The load QEMU is asked to do.
#[derive(Clone, Debug)]
pub struct LinuxLoad<'a> {
    pub memory_bytes: u64,
    pub initrd_size: Option<u64>,
    /// The `-append` string (no NUL inside; checked by the caller).
    pub cmdline: &'a str,
    pub acpi_data_size: u32,
}

/// Where QEMU put things, for transcripts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadLayout {
    pub cmdline_addr: u32,
    pub initrd_max: u32,
    pub initrd_addr: Option<u32>,
}

/// Parses the number after `vga=` the way QEMU does (`qemu_strtoui` with base 0: `0x` hex,
/// leading `0` octal, else decimal), requiring the value to end at a space or the end.
fn parse_vga(cmdline: &str) -> Result<Option<u16>, BzImageError> {
    let Some(pos) = cmdline.find("vga=") else {
        return Ok(None);
    };
    let v = &cmdline[pos + 4..];
    if v.starts_with("normal") {
        return Ok(Some(0xffff));
    }
    if v.starts_with("ext") {
        return Ok(Some(0xfffe));
    }
    if v.starts_with("ask") {
        return Ok(Some(0xfffd));
    }
    let bad = || BzImageError::BadVga(v.split(' ').next().unwrap_or("").to_string());
    let (digits, radix) = if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        (h, 16)
    } else if v.starts_with('0') {
        (v, 8)
    } else {
        (v, 10)
    };
    let end = digits
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(digits.len());
    if end == 0 || !(digits[end..].is_empty() || digits[end..].starts_with(' ')) {
        return Err(bad());
    }
    let mode = u32::from_str_radix(&digits[..end], radix).map_err(|_| bad())?;
    // QEMU stores it with stw_le_p: the low 16 bits.
    Ok(Some(mode as u16))
}

/// Computes the header QEMU would hand over and where it placed the command line and initrd.
/// Fails exactly where QEMU would refuse to start (initrd too large, invalid `vga=`, initrd
/// with a pre-2.00 kernel). Returns the patched copy of the whole image.
pub fn qemu_patch(
    kernel: &[u8],
    load: &LinuxLoad<'_>,
) -> Result<(Vec<u8>, LoadLayout), BzImageError> {
    let h = SetupHeader::parse(kernel)?;
    let below_4g = below_4g_mem_size(load.memory_bytes);
    let room = below_4g
        .checked_sub(u64::from(load.acpi_data_size))
        .filter(|r| *r > 0)
        .ok_or(BzImageError::MemoryTooSmall(load.memory_bytes))?;
    let p = h.protocol;
    let cmdline_size = ((load.cmdline.len() + 16) & !15) as u32;
    let (real_addr, cmdline_addr): (u32, u32) =
        if p < 0x200 || h.loadflags & LOADED_HIGH == 0 || p < 0x202 {
            (0x90000, 0x9a000u32.wrapping_sub(cmdline_size))
        } else {
            (0x10000, 0x20000)
        };
    let mut initrd_max: u32 = if p >= 0x20c && h.xloadflags & XLF_CAN_BE_LOADED_ABOVE_4G != 0 {
        u32::MAX
    } else if p >= 0x203 {
        h.initrd_addr_max
    } else {
        0x37ff_ffff
    };
    if u64::from(initrd_max) >= room {
        // room <= below_4g <= 0xb0000000, so this fits in u32.
        initrd_max = (room - 1) as u32;
    }

    let mut hdr = kernel.to_vec();
    let put16 =
        |b: &mut Vec<u8>, at: usize, v: u16| b[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put32 =
        |b: &mut Vec<u8>, at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    // All offsets below are < 0x240 <= kernel.len() (checked by SetupHeader::parse) and inside
    // the first 8192 bytes QEMU copies back.
    if p >= 0x202 {
        put32(&mut hdr, 0x228, cmdline_addr);
    } else {
        put16(&mut hdr, 0x20, 0xa33f);
        put16(&mut hdr, 0x22, cmdline_addr.wrapping_sub(real_addr) as u16);
    }
    if let Some(mode) = parse_vga(load.cmdline)? {
        put16(&mut hdr, 0x1fa, mode);
    }
    if p >= 0x200 {
        hdr[0x210] = 0xb0;
    }
    if p >= 0x201 {
        hdr[0x211] |= CAN_USE_HEAP;
        put16(
            &mut hdr,
            0x224,
            cmdline_addr.wrapping_sub(real_addr).wrapping_sub(0x200) as u16,
        );
    }
    let mut initrd_addr = None;
    if let Some(size) = load.initrd_size {
        if p < 0x200 {
            return Err(BzImageError::TooOldForInitrd(p));
        }
        if size >= u64::from(initrd_max) {
            return Err(BzImageError::InitrdTooLarge {
                size,
                max: initrd_max,
            });
        }
        // size < initrd_max <= u32::MAX.
        let addr = (initrd_max - size as u32) & !4095;
        put32(&mut hdr, 0x218, addr);
        put32(&mut hdr, 0x21c, size as u32);
        initrd_addr = Some(addr);
    }
    // QEMU copies back only the first min(8192, setup_size) bytes; everything it patched lies
    // there, so the rest of `hdr` already equals the file.
    debug_assert!(QEMU_HEADER_BYTES.min(h.setup_size) >= 0x240);
    Ok((
        hdr,
        LoadLayout {
            cmdline_addr,
            initrd_max,
            initrd_addr,
        },
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fake bzImage: protocol 2.15, loaded high, can be loaded above 4G, 4 setup sectors.
    pub(crate) fn fake_kernel() -> Vec<u8> {
        let mut k = vec![0u8; 0x3000];
        k[0x1f1] = 4;
        k[0x202..0x206].copy_from_slice(b"HdrS");
        k[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        k[0x211] = LOADED_HIGH;
        k[0x22c..0x230].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
        k[0x236..0x238].copy_from_slice(&0x007fu16.to_le_bytes());
        k
    }

    fn load(mem: u64, initrd: Option<u64>) -> LinuxLoad<'static> {
        LinuxLoad {
            memory_bytes: mem,
            initrd_size: initrd,
            cmdline: "console=ttyS0",
            acpi_data_size: QEMU_ACPI_DATA_SIZE,
        }
    }

    #[test]
    fn parses_fields() {
        let h = SetupHeader::parse(&fake_kernel()).unwrap();
        assert_eq!(h.protocol, 0x20f);
        assert_eq!(h.setup_size, 5 * 512);
        assert_eq!(h.xloadflags, 0x7f);
    }

    #[test]
    fn memory_split_matches_q35() {
        assert_eq!(below_4g_mem_size(2 << 30), 2 << 30);
        assert_eq!(below_4g_mem_size(0xafff_f000), 0xafff_f000);
        assert_eq!(below_4g_mem_size(0xb000_0000), 0x8000_0000);
        assert_eq!(below_4g_mem_size(16 << 30), 0x8000_0000);
    }

    /// Expected values worked out by hand from QEMU's rules for a 2 GiB VM with a 0x1234-byte
    /// initrd: initrd_max = 0x80000000 - 0x28000 - 1 = 0x7ffd7fff;
    /// ramdisk_image = (0x7ffd7fff - 0x1234) & !0xfff = 0x7ffd6000.
    #[test]
    fn patches_exactly_the_loader_fields() {
        let k = fake_kernel();
        let (p, layout) = qemu_patch(&k, &load(2 << 30, Some(0x1234))).unwrap();
        assert_eq!(layout.initrd_max, 0x7ffd_7fff);
        assert_eq!(layout.initrd_addr, Some(0x7ffd_6000));
        assert_eq!(p[0x210], 0xb0);
        assert_eq!(p[0x211], 0x81);
        assert_eq!(&p[0x224..0x226], &0xfe00u16.to_le_bytes());
        assert_eq!(&p[0x228..0x22c], &0x20000u32.to_le_bytes());
        assert_eq!(&p[0x218..0x21c], &0x7ffd_6000u32.to_le_bytes());
        assert_eq!(&p[0x21c..0x220], &0x1234u32.to_le_bytes());
        let changed: Vec<usize> = (0..k.len()).filter(|&i| k[i] != p[i]).collect();
        // Low bytes that happen to stay zero (0x218: 0x00 of 0x7ffd6000, 0x224: 0x00 of 0xfe00)
        // do not show up as changes.
        assert_eq!(
            changed,
            vec![0x210, 0x211, 0x219, 0x21a, 0x21b, 0x21c, 0x21d, 0x225, 0x22a]
        );
    }

    #[test]
    fn initrd_address_depends_on_memory_below_4g() {
        let k = fake_kernel();
        let addr = |m| {
            qemu_patch(&k, &load(m, Some(0x1000)))
                .unwrap()
                .1
                .initrd_addr
        };
        assert_ne!(addr(1 << 30), addr(2 << 30));
        // From 2.75 GiB on, low memory is capped at 2 GiB: same placement as exactly 2 GiB.
        assert_eq!(addr(2 << 30), addr(4 << 30));
        assert_eq!(addr(4 << 30), addr(64 << 30));
        // Without an initrd nothing depends on memory.
        let none = |m| qemu_patch(&k, &load(m, None)).unwrap().0;
        assert_eq!(none(1 << 30), none(8 << 30));
    }

    #[test]
    fn old_initrd_addr_max_is_respected() {
        let mut k = fake_kernel();
        k[0x236] = 0; // no XLF_CAN_BE_LOADED_ABOVE_4G: initrd_addr_max (0x22c) applies
        k[0x22c..0x230].copy_from_slice(&0x37ff_ffffu32.to_le_bytes());
        let (_, l) = qemu_patch(&k, &load(2 << 30, Some(0x1000))).unwrap();
        assert_eq!(l.initrd_max, 0x37ff_ffff);
        assert_eq!(l.initrd_addr, Some(0x37ffe000));
        // Below that limit the memory clamp wins: 512 MiB - 0x28000 - 1.
        let (_, l) = qemu_patch(&k, &load(512 << 20, Some(0x1000))).unwrap();
        assert_eq!(l.initrd_max, 0x1ffd_7fff);
    }

    #[test]
    fn vga_parameter_is_parsed_like_qemu() {
        assert_eq!(parse_vga("quiet"), Ok(None));
        assert_eq!(parse_vga("vga=normal"), Ok(Some(0xffff)));
        assert_eq!(parse_vga("a vga=0x317 b"), Ok(Some(0x317)));
        assert_eq!(parse_vga("vga=010"), Ok(Some(8)));
        assert_eq!(parse_vga("vga=791"), Ok(Some(791)));
        assert!(parse_vga("vga=12x").is_err());
        assert!(parse_vga("vga=").is_err());
        assert!(parse_vga("vga=99999999999").is_err());
        let (p, _) = qemu_patch(
            &fake_kernel(),
            &LinuxLoad {
                cmdline: "vga=0x317",
                ..load(1 << 30, None)
            },
        )
        .unwrap();
        assert_eq!(&p[0x1fa..0x1fc], &0x317u16.to_le_bytes());
    }

    #[test]
    fn rejects_what_qemu_rejects() {
        let k = fake_kernel();
        assert!(matches!(
            qemu_patch(&k, &load(1 << 30, Some(2 << 30))),
            Err(BzImageError::InitrdTooLarge { .. })
        ));
        assert_eq!(
            qemu_patch(&k, &load(0x1000, None)).unwrap_err(),
            BzImageError::MemoryTooSmall(0x1000)
        );
        let mut bad = k.clone();
        bad[0x202] = 0;
        assert_eq!(SetupHeader::parse(&bad), Err(BzImageError::NoHdrS));
        let mut big = k.clone();
        big[0x1f1] = 200;
        assert!(matches!(
            SetupHeader::parse(&big),
            Err(BzImageError::SetupTooLarge { .. })
        ));
        for cut in 0..0x300 {
            let _ = SetupHeader::parse(&k[..cut]);
            let _ = qemu_patch(&k[..cut], &load(1 << 30, Some(10)));
        }
    }
}
