//! How the simulated TD serves the guest interfaces so that the unchanged
//! [`TdxProvider`](crate::TdxProvider) works against it.
//!
//! Synchronisation comes from FIFO open/close semantics, never from sleeping:
//!
//! * `inblob` and `outblob` are FIFOs. The quote thread blocks opening `inblob` for reading
//!   until the provider opens it to write, reads the report data until the provider closes it
//!   (EOF), bumps `generation` (a regular file, replaced atomically), builds the quote, then
//!   blocks opening `outblob` for writing until the provider opens it to read, writes the
//!   quote and closes it (the provider sees EOF). `generation` is therefore updated before the
//!   provider can finish reading `outblob`, as with the kernel.
//! * RTMR extends go to per-register FIFOs that the simulator holds open read-write and
//!   non-blocking (so the provider's open never blocks and the pipe never reports hang-up); a
//!   drain thread polls them and applies each complete 48-byte write as
//!   `RTMR = SHA-384(RTMR || digest)`. Writes of at most PIPE_BUF bytes are atomic, so a
//!   48-byte extend never interleaves with another.
//! * RTMR reads come from per-register FIFOs: a thread per register blocks opening it for
//!   writing until a reader appears, writes the 48-byte value, closes it (the reader sees
//!   EOF) and waits, through inotify, for the reader's close before opening again. One
//!   reader at a time per register: concurrent readers would share one value. The one
//!   timed wait: a close not reported within a second is checked on the FIFO itself (see
//!   `CLOSE_WAIT_MS`), because a reader whose open was interrupted never closes.
//!
//! Invariant (consistency): every consumer of register values (quote thread, RTMR readers)
//! first drains all extend FIFOs under the state lock. A provider's extend has completed its
//! write before it starts any later request, so that data is already in the pipe and every
//! later quote or read reflects it.
//!
//! Shutdown: set the stop flag, wake the drain thread through its stop pipe, and open every
//! FIFO a thread may block on in read-write mode (which never blocks and counts as both
//! reader and writer), keeping those descriptors until the threads have been joined; each
//! thread checks the flag after every blocking open.

use super::pki::MockPki;
use super::quote;
use crate::layout::TdReportBody;
use crate::paths::RTMR_COUNT;
use crate::TdxError;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use sha2::{Digest, Sha384};
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Largest `inblob` the simulator accepts before treating the request as invalid
/// (configfs-tsm itself caps it at 64 bytes).
const INBLOB_READ_LIMIT: u64 = 4096;

/// Paths of the FIFOs and files the service owns.
pub(crate) struct ServicePaths {
    pub inblob: PathBuf,
    pub outblob: PathBuf,
    pub generation: PathBuf,
    pub rtmr_read: [PathBuf; RTMR_COUNT],
    pub rtmr_extend: [PathBuf; RTMR_COUNT],
}

/// Register state, shared by the service threads.
struct State {
    body: TdReportBody,
    extend_fifos: Vec<File>,
    pending: [Vec<u8>; RTMR_COUNT],
    generation: u64,
}

impl State {
    /// The registers with every completed extend applied: what a read must return.
    fn current_rtmrs(&mut self) -> [[u8; 48]; RTMR_COUNT] {
        self.drain();
        self.body.rtmr
    }

    /// Applies every complete 48-byte extend waiting in the extend FIFOs.
    fn drain(&mut self) {
        let mut buf = [0u8; 4096];
        for (index, fifo) in self.extend_fifos.iter_mut().enumerate() {
            loop {
                match fifo.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => self.pending[index].extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => {
                        eprintln!("simulated TD: reading RTMR{index} extend FIFO: {e}");
                        break;
                    }
                }
            }
            while self.pending[index].len() >= 48 {
                let digest: Vec<u8> = self.pending[index].drain(..48).collect();
                let mut h = Sha384::new();
                h.update(self.body.rtmr[index]);
                h.update(&digest);
                self.body.rtmr[index] = h.finalize().into();
            }
        }
    }
}

pub(crate) struct Service {
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<State>>,
    threads: Vec<JoinHandle<()>>,
    stop_pipe: Option<OwnedFd>,
    blocking_fifos: Vec<PathBuf>,
    rtmr_read: [PathBuf; RTMR_COUNT],
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A thread that panicked while holding the lock leaves consistent state behind (each
    // field is updated in one assignment), so keep serving.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn make_fifo(path: &Path) -> Result<(), TdxError> {
    nix::unistd::mkfifo(
        path,
        nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
    )
    .map_err(|e| TdxError::io("creating FIFO", path, e.into()))
}

fn write_generation(path: &Path, generation: u64) -> std::io::Result<()> {
    let tmp = path.with_extension("simulated-tmp");
    std::fs::write(&tmp, format!("{generation}\n"))?;
    std::fs::rename(&tmp, path)
}

impl Service {
    pub(crate) fn start(
        paths: ServicePaths,
        pki: Arc<MockPki>,
        body: TdReportBody,
    ) -> Result<Service, TdxError> {
        write_generation(&paths.generation, 0)
            .map_err(|e| TdxError::io("writing", &paths.generation, e))?;
        let mut extend_fifos = Vec::with_capacity(RTMR_COUNT);
        for path in &paths.rtmr_extend {
            make_fifo(path)?;
            let fifo = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(OFlag::O_NONBLOCK.bits())
                .open(path)
                .map_err(|e| TdxError::io("opening extend FIFO", path, e))?;
            extend_fifos.push(fifo);
        }
        for path in paths
            .rtmr_read
            .iter()
            .chain([&paths.inblob, &paths.outblob])
        {
            make_fifo(path)?;
        }
        let (stop_read, stop_write) = nix::unistd::pipe()
            .map_err(|e| TdxError::io("creating stop pipe", "pipe", e.into()))?;

        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(State {
            body,
            extend_fifos,
            pending: Default::default(),
            generation: 0,
        }));
        let mut blocking_fifos = vec![paths.inblob.clone(), paths.outblob.clone()];
        blocking_fifos.extend(paths.rtmr_read.iter().cloned());
        let mut service = Service {
            stop: stop.clone(),
            state: state.clone(),
            threads: Vec::new(),
            stop_pipe: Some(stop_write),
            blocking_fifos,
            rtmr_read: paths.rtmr_read.clone(),
        };

        let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name)
                .spawn(f)
                .map_err(|e| TdxError::io("spawning simulated TD thread", "thread", e))
        };

        {
            let (stop, state) = (stop.clone(), state.clone());
            service.threads.push(spawn(
                "simulated-td-drain".into(),
                Box::new(move || drain_loop(&stop, &state, stop_read)),
            )?);
        }
        {
            let (stop, state) = (stop.clone(), state.clone());
            let (inblob, outblob, generation) = (
                paths.inblob.clone(),
                paths.outblob.clone(),
                paths.generation.clone(),
            );
            service.threads.push(spawn(
                "simulated-td-quote".into(),
                Box::new(move || quote_loop(&stop, &state, &pki, &inblob, &outblob, &generation)),
            )?);
        }
        for (index, path) in paths.rtmr_read.iter().enumerate() {
            let (stop, state, path) = (stop.clone(), state.clone(), path.clone());
            service.threads.push(spawn(
                format!("simulated-td-rtmr{index}"),
                Box::new(move || rtmr_read_loop(&stop, &state, index, &path)),
            )?);
        }
        Ok(service)
    }

    /// Current register values, with every completed extend applied.
    pub(crate) fn rtmrs(&self) -> [[u8; 48]; RTMR_COUNT] {
        lock(&self.state).current_rtmrs()
    }

    /// Quotes served so far (the `generation` value).
    pub(crate) fn generation(&self) -> u64 {
        lock(&self.state).generation
    }

    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(pipe) = self.stop_pipe.take() {
            let _ = nix::unistd::write(&pipe, b"x");
        }
        // Held until every thread has been joined: see the module documentation.
        let unblockers: Vec<File> = self
            .blocking_fifos
            .iter()
            .filter_map(|path| {
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .custom_flags(OFlag::O_NONBLOCK.bits())
                    .open(path)
                    .ok()
            })
            .collect();
        // Wake RTMR read threads waiting for a reader's close (an O_RDONLY close).
        for path in &self.rtmr_read {
            let _ = OpenOptions::new()
                .read(true)
                .custom_flags(OFlag::O_NONBLOCK.bits())
                .open(path);
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        drop(unblockers);
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

fn drain_loop(stop: &AtomicBool, state: &Mutex<State>, stop_pipe: OwnedFd) {
    // Duplicate the extend FIFO descriptors so that polling does not hold the state lock.
    let fifos: Vec<OwnedFd> = {
        let state = lock(state);
        state
            .extend_fifos
            .iter()
            .filter_map(|f| f.as_fd().try_clone_to_owned().ok())
            .collect()
    };
    while !stop.load(Ordering::SeqCst) {
        let mut fds: Vec<PollFd<'_>> = vec![PollFd::new(stop_pipe.as_fd(), PollFlags::POLLIN)];
        fds.extend(
            fifos
                .iter()
                .map(|f| PollFd::new(f.as_fd(), PollFlags::POLLIN)),
        );
        match nix::poll::poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                eprintln!(
                    "simulated TD: polling extend FIFOs: {e}; extends are applied on reads only"
                );
                return;
            }
        }
        let stop_ready = fds
            .first()
            .and_then(|f| f.revents())
            .is_some_and(|r| !r.is_empty());
        if stop_ready {
            return;
        }
        lock(state).drain();
    }
}

fn quote_loop(
    stop: &AtomicBool,
    state: &Mutex<State>,
    pki: &MockPki,
    inblob: &Path,
    outblob: &Path,
    generation_path: &Path,
) {
    loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let input = match File::open(inblob) {
            Ok(f) => f,
            Err(e) => {
                eprintln!(
                    "simulated TD: opening {}: {e}; quote service stopped",
                    inblob.display()
                );
                return;
            }
        };
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let mut data = Vec::new();
        if let Err(e) = input.take(INBLOB_READ_LIMIT).read_to_end(&mut data) {
            eprintln!("simulated TD: reading {}: {e}", inblob.display());
            continue;
        }
        let quote = {
            let mut state = lock(state);
            state.drain();
            state.generation = state.generation.wrapping_add(1);
            if let Err(e) = write_generation(generation_path, state.generation) {
                eprintln!("simulated TD: writing {}: {e}", generation_path.display());
            }
            match <[u8; 64]>::try_from(data.as_slice()) {
                Ok(report_data) => {
                    let mut body = state.body.clone();
                    body.report_data = report_data;
                    quote::generate(pki, &body)
                }
                Err(_) => {
                    eprintln!(
                        "simulated TD: inblob of {} bytes refused (expected 64); empty outblob",
                        data.len()
                    );
                    Vec::new()
                }
            }
        };
        let mut output = match OpenOptions::new().write(true).open(outblob) {
            Ok(f) => f,
            Err(e) => {
                eprintln!(
                    "simulated TD: opening {}: {e}; quote service stopped",
                    outblob.display()
                );
                return;
            }
        };
        if stop.load(Ordering::SeqCst) {
            return;
        }
        if let Err(e) = output.write_all(&quote) {
            eprintln!("simulated TD: writing {}: {e}", outblob.display());
        }
    }
}

fn rtmr_read_loop(stop: &AtomicBool, state: &Mutex<State>, index: usize, path: &Path) {
    // The reader keeps the FIFO open until it has seen EOF, so before the next blocking open
    // (which would pair with that same reader again) wait for its close, reported by inotify.
    let closes = Inotify::init(InitFlags::IN_CLOEXEC).and_then(|inotify| {
        inotify.add_watch(path, AddWatchFlags::IN_CLOSE_NOWRITE)?;
        Ok(inotify)
    });
    let closes = match closes {
        Ok(inotify) => inotify,
        Err(e) => {
            eprintln!(
                "simulated TD: watching {}: {e}; RTMR{index} reads stopped",
                path.display()
            );
            return;
        }
    };
    loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let output = match OpenOptions::new().write(true).open(path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!(
                    "simulated TD: opening {}: {e}; RTMR{index} reads stopped",
                    path.display()
                );
                return;
            }
        };
        if stop.load(Ordering::SeqCst) {
            return;
        }
        serve_rtmr(state, index, path, output);
        loop {
            match wait_for_close(&closes) {
                Ok(true) => break,
                Ok(false) if stop.load(Ordering::SeqCst) => return,
                // No close reported in time: see CLOSE_WAIT_MS. Nobody holding the FIFO means
                // the reader is gone; a reader waiting in open is served now.
                Ok(false) => match OpenOptions::new()
                    .write(true)
                    .custom_flags(OFlag::O_NONBLOCK.bits())
                    .open(path)
                {
                    Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ENXIO as i32) => break,
                    Ok(output) => serve_rtmr(state, index, path, output),
                    Err(e) => {
                        eprintln!(
                            "simulated TD: probing {} for readers: {e}; RTMR{index} reads stopped",
                            path.display()
                        );
                        return;
                    }
                },
                Err(e) => {
                    eprintln!("simulated TD: waiting for the RTMR{index} reader to close: {e}");
                    return;
                }
            }
        }
    }
}

/// Writes RTMR `index`, with every completed extend applied, to a reader's FIFO and closes it.
fn serve_rtmr(state: &Mutex<State>, index: usize, path: &Path, mut output: File) {
    let value = lock(state).current_rtmrs()[index];
    if let Err(e) = output.write_all(&value) {
        eprintln!("simulated TD: writing {}: {e}", path.display());
    }
}

/// How long an RTMR read thread waits for its reader's close before checking the FIFO
/// itself. The close event is the normal path; it is missing when the reader never finished
/// opening (its open was interrupted after it had woken the writer, so no file was ever
/// opened and no close follows), and that reader then waits in a new open for a writer that
/// waits for the close: both would block for ever. A reader still reading its value after
/// this long would get a second one and fail with "more than 48 bytes": an error, never a hang.
const CLOSE_WAIT_MS: u16 = 1000;

/// Waits up to [`CLOSE_WAIT_MS`] for a close of the FIFO opened read-only; `Ok(false)` on timeout.
fn wait_for_close(closes: &Inotify) -> nix::Result<bool> {
    loop {
        let mut fds = [PollFd::new(closes.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, PollTimeout::from(CLOSE_WAIT_MS)) {
            Ok(0) => return Ok(false),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
        match closes.read_events() {
            Ok(events) if !events.is_empty() => return Ok(true),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}
