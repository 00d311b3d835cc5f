//! Runs QEMU in the foreground so that stopping `cocoon-host launch` stops the VM: SIGINT,
//! SIGTERM and SIGHUP sent to cocoon-host are forwarded to QEMU, which then shuts the VM down,
//! and launch returns once QEMU has exited (its pid file released, nothing left running).
//!
//! Invariant: those signals and SIGCHLD are blocked in cocoon-host (a single-threaded program)
//! from before the spawn until QEMU has exited, so none is lost between spawning and waiting;
//! QEMU starts with the signal mask cocoon-host had before.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus};

use nix::sys::signal::{kill, pthread_sigmask, SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;

/// The signals forwarded to QEMU.
pub const FORWARDED: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

/// Spawns `cmd` and waits for it, forwarding [`FORWARDED`] signals to it.
pub fn run_forwarding_signals(cmd: &mut Command) -> io::Result<ExitStatus> {
    let mut waited = SigSet::empty();
    for s in FORWARDED {
        waited.add(s);
    }
    waited.add(Signal::SIGCHLD);
    let mut previous = SigSet::empty();
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&waited), Some(&mut previous))?;
    let restore = previous;
    // SAFETY: the closure runs in the forked child before exec and calls only
    // pthread_sigmask, which is async-signal-safe; it allocates nothing and takes no lock.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || {
            pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&restore), None)?;
            Ok(())
        });
    }
    let result = supervise(cmd, &waited);
    let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&previous), None);
    result
}

fn supervise(cmd: &mut Command, waited: &SigSet) -> io::Result<ExitStatus> {
    let mut child = cmd.spawn()?;
    let pid = Pid::from_raw(i32::try_from(child.id()).map_err(io::Error::other)?);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        // A SIGCHLD that arrived after try_wait stays pending, so this returns at once.
        match waited.wait()? {
            Signal::SIGCHLD => {}
            signal => {
                eprintln!("cocoon-host: {signal} received: passing it to QEMU (pid {pid}) and waiting for the VM to stop");
                // ESRCH: QEMU exited meanwhile; try_wait collects it.
                let _ = kill(pid, signal);
            }
        }
    }
}
