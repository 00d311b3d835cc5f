//! `/init` of the ACPI capture guest (built static by `ci/build-capture-init`; `cocoon-host
//! acpi capture` packs it into the capture initramfs). As PID 1 it prints the three ACPI fw_cfg
//! files on the console (its stdout is the kernel's `/dev/console`, the serial port QEMU hands
//! to `cocoon-host`), then syncs and powers the VM off. Run as any other process it prints the
//! same (or the error) and exits without touching the machine's power.

use std::io::{self, Write};
use std::process::ExitCode;

use cocoon_acpi_capture_init::{fwcfg, wire, CAPTURED_FILES};

#[cfg(target_arch = "x86_64")]
mod ports {
    //! The legacy fw_cfg I/O ports. The only unsafe code of the crate: `in`/`out` instructions
    //! on the two ports `ioperm` opened.
    #![allow(unsafe_code)]

    use std::arch::asm;

    use cocoon_acpi_capture_init::fwcfg::{FwCfgPort, PORT_DATA, PORT_SELECTOR};

    /// Holds I/O permission for the selector and data ports.
    pub struct LegacyPorts(());

    impl LegacyPorts {
        /// Asks the kernel for ports 0x510-0x511 (needs CAP_SYS_RAWIO, which PID 1 has).
        pub fn open() -> std::io::Result<Self> {
            // SAFETY: ioperm only changes this process's I/O permission bitmap.
            let rc = unsafe { libc::ioperm(libc::c_ulong::from(PORT_SELECTOR), 2, 1) };
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(LegacyPorts(()))
        }
    }

    impl FwCfgPort for LegacyPorts {
        fn select(&mut self, key: u16) {
            // SAFETY: the port is open (constructor); writing the fw_cfg selector has no
            // effect on this process's memory.
            unsafe {
                asm!("out dx, ax", in("dx") PORT_SELECTOR, in("ax") key,
                     options(nomem, nostack, preserves_flags));
            }
        }

        fn read(&mut self, buf: &mut [u8]) {
            for b in buf.iter_mut() {
                let v: u8;
                // SAFETY: the port is open; reading the fw_cfg data register only returns a byte.
                unsafe {
                    asm!("in al, dx", out("al") v, in("dx") PORT_DATA,
                         options(nomem, nostack, preserves_flags));
                }
                *b = v;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn capture(out: &mut impl Write) -> Result<(), String> {
    let mut port =
        ports::LegacyPorts::open().map_err(|e| format!("ioperm(0x510, 2, 1) failed: {e}"))?;
    let files = fwcfg::read_files(&mut port, &CAPTURED_FILES).map_err(|e| e.to_string())?;
    for (name, data) in &files {
        wire::write_file(out, name, data).map_err(|e| format!("writing {name}: {e}"))?;
    }
    wire::write_done(out, files.len()).map_err(|e| format!("writing the done line: {e}"))
}

#[cfg(not(target_arch = "x86_64"))]
fn capture(_out: &mut impl Write) -> Result<(), String> {
    Err("the fw_cfg I/O ports exist on x86_64 only".into())
}

#[allow(unsafe_code)]
fn power_off() {
    // SAFETY: sync and reboot take no pointers; as PID 1 powering off is the intended end.
    unsafe {
        libc::sync();
        libc::reboot(libc::LINUX_REBOOT_CMD_POWER_OFF);
    }
}

fn main() -> ExitCode {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let result = wire::write_begin(&mut out)
        .map_err(|e| format!("writing to the console: {e}"))
        .and_then(|()| capture(&mut out));
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = wire::write_error(&mut out, &e);
            ExitCode::FAILURE
        }
    };
    let _ = out.flush();
    drop(out);
    if std::process::id() == 1 {
        // PID 1 must not exit (the kernel would panic); power off, and wait if that fails.
        power_off();
        loop {
            std::thread::park();
        }
    }
    code
}
