//! `cocoon-host acpi capture`: captures the ACPI fw_cfg blobs (`etc/table-loader`,
//! `etc/acpi/rsdp`, `etc/acpi/tables`) QEMU generates for a launch config's VM, the input of
//! RTMR0.
//!
//! The VM is the argv `launch` runs for that config, instance and mode (the same
//! [`argv::build`]), except: `-initrd` is a generated initramfs whose `/init` is the static
//! capture program (crate `cocoon-acpi-capture-init`), `-append` is [`CAPTURE_CMDLINE`], and a
//! data disk that does not exist yet is replaced by a temporary sparse file of the configured
//! size in the work directory (the operator's disk is never created). Firmware and kernel stay
//! the image's, so OVMF runs first and QEMU builds the tables exactly as for the worker. The
//! guest prints the files on the serial console (`-serial stdio`), which is parsed by
//! [`serial`], and powers off.
//!
//! Only `--no-tdx` (a plain VM) is supported: port I/O from user space is not available in a
//! TD. The blobs of a TD are assumed to equal those of the same argv without `tdx-guest`.

pub mod cpio;
pub mod elf;
pub mod output;
pub mod serial;

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::boot::BootSpec;
use crate::launch::config::LaunchConfig;
use crate::launch::host::{self, HostDevices, HostProbe};
use crate::launch::{self, argv, instance, LaunchError, Mode};
use crate::root::HostRoot;

/// The capture guest's kernel command line: serial console, as little kernel output as
/// possible, and no reboot loop when something goes wrong (`panic=-1` reboots at once, which
/// the parser sees as a second begin line or no output).
pub const CAPTURE_CMDLINE: &str = "console=ttyS0 quiet loglevel=0 panic=-1";
/// Largest `--init` binary accepted.
pub const MAX_INIT_BYTES: u64 = 64 << 20;
/// Raw console kept in the work directory for diagnosis; output past it is only parsed.
pub const MAX_CONSOLE_LOG_BYTES: u64 = 64 << 20;
/// How long QEMU may take to exit after the guest printed everything.
const POWER_OFF_GRACE: Duration = Duration::from_secs(60);
/// Lines of QEMU's stderr quoted in errors.
const STDERR_TAIL_LINES: usize = 10;
/// How long a failed capture waits, after QEMU exited, for the rest of its console output.
const READER_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("capturing inside a TD is not supported: the capture guest reads fw_cfg with port I/O, which a TD does not allow from user space; capture with --no-tdx (the same argv without the tdx-guest object, see docs/host-tools.md)")]
    TdxUnsupported,
    #[error(transparent)]
    Launch(#[from] LaunchError),
    #[error("capture init {path}: {reason}")]
    Init { path: PathBuf, reason: String },
    #[error(transparent)]
    Output(#[from] output::OutputError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("starting {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "no complete capture within {secs} s, QEMU killed; raw console saved in {console}{qemu}"
    )]
    Timeout {
        secs: u64,
        console: PathBuf,
        qemu: String,
    },
    #[error("{source}; raw console saved in {console}{qemu}")]
    Console {
        #[source]
        source: Box<serial::SerialError>,
        console: PathBuf,
        qemu: String,
    },
}

impl CaptureError {
    /// Bad input (config, arguments, init binary), as opposed to a failed capture.
    pub fn is_usage(&self) -> bool {
        match self {
            CaptureError::Launch(e) => e.is_usage(),
            CaptureError::Init { .. } => true,
            _ => false,
        }
    }
}

/// What to capture.
#[derive(Debug, Clone)]
pub struct Request {
    pub config: LaunchConfig,
    pub instance: u32,
    pub mode: Mode,
    pub qemu: String,
    pub init: PathBuf,
    pub out: PathBuf,
    pub force: bool,
    pub timeout: Duration,
    pub state_dir: PathBuf,
}

/// One captured file, for the summary.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileSummary {
    pub bytes: usize,
    pub sha256: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ShapeSummary {
    pub cpus: u32,
    pub memory_bytes: u64,
    pub gpus: u32,
}

/// `--json` output.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub dir: PathBuf,
    pub files: BTreeMap<String, FileSummary>,
    pub qemu: String,
    pub accel: String,
    pub shape: ShapeSummary,
    pub seconds: f64,
}

/// Reads and checks the capture `/init`: a static x86-64 executable.
pub fn read_init(path: &Path) -> Result<Vec<u8>, CaptureError> {
    let bad = |reason: String| CaptureError::Init {
        path: path.to_path_buf(),
        reason,
    };
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|f| f.take(MAX_INIT_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| bad(e.to_string()))?;
    if bytes.len() as u64 > MAX_INIT_BYTES {
        return Err(bad(format!("larger than {MAX_INIT_BYTES} bytes")));
    }
    elf::check_static(&bytes).map_err(|e| bad(e.to_string()))?;
    Ok(bytes)
}

/// The default `--init`: `cocoon-acpi-capture-init` next to the running executable.
pub fn default_init() -> Result<PathBuf, CaptureError> {
    let exe = std::env::current_exe().map_err(|e| CaptureError::Init {
        path: PathBuf::from("cocoon-acpi-capture-init"),
        reason: format!("cannot locate the cocoon-host executable: {e}"),
    })?;
    let path = exe
        .parent()
        .unwrap_or(Path::new("."))
        .join("cocoon-acpi-capture-init");
    if path.is_file() {
        Ok(path)
    } else {
        Err(CaptureError::Init {
            path,
            reason: "not found next to cocoon-host: build it with ci/build-capture-init and pass its path as --init".into(),
        })
    }
}

/// The per-instance work directory (initramfs, temporary data disk, console log).
pub fn work_dir(state_dir: &Path, instance: u32) -> PathBuf {
    state_dir
        .join("acpi-capture")
        .join(format!("instance-{instance}"))
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl Fn(io::Error) -> CaptureError + 'a {
    move |source| CaptureError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// What reading QEMU's output yielded.
enum Event {
    Started,
    File(&'static str, usize),
    Finished(Result<Vec<serial::CapturedFile>, serial::SerialError>),
}

/// Reads QEMU's stdout to its end: saves it (up to [`MAX_CONSOLE_LOG_BYTES`]) and parses it,
/// sending progress and the outcome. Keeps draining after the outcome so QEMU never blocks on
/// a full pipe.
fn read_console(mut stdout: impl Read, mut log: fs::File, tx: mpsc::Sender<Event>) {
    let mut parser = Some(serial::Parser::new());
    let mut split = serial::LineSplitter::default();
    let mut logged: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let on_line = |parser: &mut Option<serial::Parser>, line: &[u8], cut: bool| {
        let Some(p) = parser.as_mut() else {
            return;
        };
        match p.push_line(line, cut) {
            Ok(serial::Progress::Started) => {
                let _ = tx.send(Event::Started);
            }
            Ok(serial::Progress::File(name, len)) => {
                let _ = tx.send(Event::File(name, len));
            }
            Ok(serial::Progress::Done) => {
                if let Some(p) = parser.take() {
                    let _ = tx.send(Event::Finished(p.finish()));
                }
            }
            Ok(serial::Progress::Nothing) => {}
            Err(e) => {
                parser.take();
                let _ = tx.send(Event::Finished(Err(e)));
            }
        }
    };
    loop {
        let n = match stdout.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let chunk = &buf[..n];
        if logged < MAX_CONSOLE_LOG_BYTES {
            let keep = chunk.len().min((MAX_CONSOLE_LOG_BYTES - logged) as usize);
            let _ = log.write_all(&chunk[..keep]);
            logged += keep as u64;
        }
        let _ = split.feed(chunk, |l, cut| -> Result<(), ()> {
            on_line(&mut parser, l, cut);
            Ok(())
        });
    }
    let _ = split.flush(|l, cut| -> Result<(), ()> {
        on_line(&mut parser, l, cut);
        Ok(())
    });
    let _ = log.flush();
    if let Some(p) = parser {
        let _ = tx.send(Event::Finished(p.finish()));
    }
}

/// `; QEMU exited with ...; its stderr ends: ...` for error messages.
fn qemu_report(status: Option<ExitStatus>, stderr_log: &Path) -> String {
    let mut s = match status {
        Some(st) => format!("; QEMU {st}"),
        None => String::new(),
    };
    if let Ok(text) = fs::read(stderr_log) {
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        if !lines.is_empty() {
            let tail = &lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..];
            s.push_str(&format!("; QEMU's stderr ends: {}", tail.join(" | ")));
        }
    }
    s
}

fn kill_and_wait(child: &mut Child) -> Option<ExitStatus> {
    let _ = child.kill();
    child.wait().ok()
}

/// Waits up to `grace` for the console reader to reach the end of QEMU's output, so that the
/// console log an error names holds everything QEMU printed (the reader keeps logging after
/// it reported the outcome).
fn wait_reader(reader: &std::thread::JoinHandle<()>, grace: Duration) {
    let end = Instant::now() + grace;
    while !reader.is_finished() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits up to `grace` for the child to exit by itself.
fn wait_grace(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + grace;
    while Instant::now() < end {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(_) => break,
        }
    }
    None
}

/// Everything the run needs, checked before anything is started or claimed.
struct Plan {
    boot_release: BootSpec,
    port: u16,
    host: HostDevices,
}

fn plan(req: &Request, probe: HostProbe) -> Result<Plan, CaptureError> {
    if req.mode == Mode::Tdx {
        return Err(CaptureError::TdxUnsupported);
    }
    let port = launch::instance_port(&req.config, req.instance)?;
    let boot_release = launch::release_boot(&req.config)?;
    launch::check_attached_files(&req.config)?;
    let (host, warnings, error) = host::plan(req.mode, probe);
    if let Some(e) = error {
        return Err(LaunchError::from(e).into());
    }
    for w in warnings {
        eprintln!("WARNING: {w}");
    }
    Ok(Plan {
        boot_release,
        port,
        host,
    })
}

/// Runs the capture and writes `req.out`. Progress goes to stderr.
pub fn capture(req: &Request, root: &HostRoot, probe: HostProbe) -> Result<Summary, CaptureError> {
    let started = Instant::now();
    let plan = plan(req, probe)?;
    output::check_target(&req.out, req.force)?;
    let init = read_init(&req.init)?;
    let initramfs = cpio::initramfs(&init).map_err(|reason| CaptureError::Init {
        path: req.init.clone(),
        reason,
    })?;

    let cid = argv::guest_cid(req.instance);
    let lock =
        instance::acquire(root, &req.state_dir, req.instance, cid).map_err(LaunchError::from)?;
    instance::check_port(req.config.host_address, plan.port).map_err(LaunchError::from)?;
    launch::require_vfio(root, &req.config.gpus)?;

    // Absolute: QEMU may run in another directory or a chroot (ci/tools-qemu).
    let work = work_dir(&req.state_dir, req.instance);
    let work = std::path::absolute(&work).map_err(io_err("work directory", &work))?;
    if work.exists() {
        fs::remove_dir_all(&work).map_err(io_err("work directory", &work))?;
    }
    fs::create_dir_all(&work).map_err(io_err("work directory", &work))?;
    let initrd = work.join("initramfs.cpio");
    fs::write(&initrd, &initramfs).map_err(io_err("capture initramfs", &initrd))?;
    let mut cfg = req.config.clone();
    let temp_disk = work.join("data.img");
    if !cfg.data_disk.exists() {
        let f = fs::File::create(&temp_disk).map_err(io_err("temporary data disk", &temp_disk))?;
        f.set_len(cfg.data_disk_bytes)
            .map_err(io_err("temporary data disk", &temp_disk))?;
        eprintln!(
            "data disk {} does not exist: using a temporary sparse disk of {} bytes",
            cfg.data_disk.display(),
            cfg.data_disk_bytes
        );
        cfg.data_disk = temp_disk.clone();
    }
    let boot = BootSpec::new(
        plan.boot_release.firmware.clone(),
        plan.boot_release.kernel.clone(),
        initrd.clone(),
        CAPTURE_CMDLINE.to_string(),
        cfg.shape,
    )
    .map_err(|reason| LaunchError::BadCmdline {
        mode: req.mode,
        reason,
    })?;
    let argv = argv::build(
        &req.qemu,
        &cfg,
        req.instance,
        plan.port,
        req.mode,
        plan.host,
        &boot,
    );

    let console = work.join("console.log");
    let stderr_log = work.join("qemu-stderr.log");
    let log = fs::File::create(&console).map_err(io_err("console log", &console))?;
    let stderr_file =
        fs::File::create(&stderr_log).map_err(io_err("QEMU stderr log", &stderr_log))?;
    let (program, args) = argv.split_first().ok_or_else(|| CaptureError::Spawn {
        program: String::new(),
        source: io::Error::other("empty argv"),
    })?;
    eprintln!(
        "booting the capture guest: {program} ({}, firmware {}), shape {}",
        plan.host.accel.name(),
        boot.firmware.display(),
        cfg.shape
    );
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr_file)
        .spawn()
        .map_err(|source| CaptureError::Spawn {
            program: program.clone(),
            source,
        })?;
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().ok_or_else(|| CaptureError::Spawn {
        program: program.clone(),
        source: io::Error::other("no stdout pipe"),
    })?;
    // Joined only for a bounded time (see `wait_reader`): a wrapper that forked QEMU instead of
    // exec'ing it could keep the pipe open after the kill; the thread only reads and ends with
    // the pipe.
    let reader = std::thread::spawn(move || read_console(stdout, log, tx));
    eprintln!(
        "waiting for the blobs on the serial console (timeout {} s)",
        req.timeout.as_secs()
    );

    let deadline = started + req.timeout;
    let outcome = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Event::Started) => {
                eprintln!(
                    "the capture guest runs ({:.1} s: firmware and kernel booted)",
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(Event::File(name, len)) => {
                eprintln!(
                    "captured {name}: {len} bytes ({:.1} s)",
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(Event::Finished(r)) => break Some(r),
            Err(_) => break None,
        }
    };
    let files = match outcome {
        Some(Ok(files)) => {
            match wait_grace(&mut child, POWER_OFF_GRACE) {
                Some(st) if !st.success() => {
                    eprintln!("warning: QEMU {st} after the capture");
                }
                Some(_) => {}
                None => {
                    eprintln!(
                        "warning: the guest did not power off within {} s; QEMU killed",
                        POWER_OFF_GRACE.as_secs()
                    );
                    kill_and_wait(&mut child);
                }
            }
            files
        }
        Some(Err(source)) => {
            let status = match wait_grace(&mut child, Duration::from_secs(2)) {
                Some(st) => Some(st),
                None => kill_and_wait(&mut child),
            };
            wait_reader(&reader, READER_GRACE);
            let _ = fs::remove_file(&initrd);
            let _ = fs::remove_file(&temp_disk);
            return Err(CaptureError::Console {
                source: Box::new(source),
                console,
                qemu: qemu_report(status, &stderr_log),
            });
        }
        None => {
            let status = kill_and_wait(&mut child);
            wait_reader(&reader, READER_GRACE);
            let _ = fs::remove_file(&initrd);
            let _ = fs::remove_file(&temp_disk);
            return Err(CaptureError::Timeout {
                secs: req.timeout.as_secs(),
                console,
                qemu: qemu_report(status, &stderr_log),
            });
        }
    };
    drop(lock);

    output::write_dir(&req.out, &files, req.force)?;
    let _ = fs::remove_dir_all(&work);
    Ok(Summary {
        dir: req.out.clone(),
        files: files
            .iter()
            .map(|f| {
                (
                    f.name.to_string(),
                    FileSummary {
                        bytes: f.data.len(),
                        sha256: hex::encode(f.sha256),
                    },
                )
            })
            .collect(),
        qemu: req.qemu.clone(),
        accel: plan.host.accel.name().into(),
        shape: ShapeSummary {
            cpus: cfg.shape.cpus(),
            memory_bytes: cfg.shape.memory_bytes(),
            gpus: cfg.shape.gpus(),
        },
        seconds: started.elapsed().as_secs_f64(),
    })
}
