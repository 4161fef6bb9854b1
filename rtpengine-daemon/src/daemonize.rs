//! Detaching from the terminal (no `--foreground`) without losing startup
//! errors: the parent waits until the daemon reports that its listeners
//! are bound (or why it failed) and exits with that outcome, so an init
//! script or shell sees a failed start. Upstream detaches after binding its
//! sockets for the same reason; here the relay threads and the runtime must
//! start after the fork, so the parent waits on a pipe instead.

use std::io::{Read as _, Write as _};
use std::os::fd::{FromRawFd as _, OwnedFd};
use std::sync::{Mutex, PoisonError};

/// The write end of the pipe to the waiting parent, until reported.
static PARENT: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// What the daemon writes when it is ready.
const READY: &[u8] = b"\0ready";

/// Forks. The parent waits for [`ready`] or [`failed`] and exits; the
/// child returns, in a new session, with `/` as working directory and
/// stdio on `/dev/null`. Call before any thread exists.
pub fn detach() -> std::io::Result<()> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fresh descriptors owned by nobody else.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: single-threaded (documented precondition); the child only
    // continues the program, the parent only reads and exits.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()),
        0 => {
            drop(rd);
            // SAFETY: plain syscalls on the child's own process state.
            unsafe {
                libc::setsid();
                libc::chdir(c"/".as_ptr());
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                if null >= 0 {
                    for fd in 0..3 {
                        libc::dup2(null, fd);
                    }
                    if null > 2 {
                        libc::close(null);
                    }
                }
            }
            *PARENT.lock().unwrap_or_else(PoisonError::into_inner) = Some(wr);
            Ok(())
        }
        _ => {
            drop(wr);
            let mut msg = Vec::new();
            let _ = std::fs::File::from(rd).read_to_end(&mut msg);
            if msg == READY {
                std::process::exit(0);
            }
            match String::from_utf8_lossy(&msg).trim() {
                "" => eprintln!("rtpengine: the daemon exited during startup (see syslog)"),
                why => eprintln!("rtpengine: {why}"),
            }
            std::process::exit(1);
        }
    }
}

fn report(msg: &[u8]) {
    if let Some(fd) = PARENT.lock().unwrap_or_else(PoisonError::into_inner).take() {
        let mut f = std::fs::File::from(fd);
        // The parent may be gone (killed): nothing to do then.
        let _ = f.write_all(msg);
    }
}

/// Startup is complete: the waiting parent exits 0. No-op in the
/// foreground.
pub fn ready() {
    report(READY);
}

/// Startup failed: the waiting parent prints `why` and exits 1. No-op in
/// the foreground or after [`ready`].
pub fn failed(why: &str) {
    report(why.as_bytes());
}
