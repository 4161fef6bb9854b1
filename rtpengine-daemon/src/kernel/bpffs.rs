//! Making sure a BPF filesystem is mounted where the pins go.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

use anyhow::{bail, Context as _};

/// `BPF_FS_MAGIC` from `linux/magic.h`.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Whether `dir` is on a BPF filesystem.
pub(crate) fn is_bpffs(dir: &Path) -> anyhow::Result<bool> {
    let c = CString::new(dir.as_os_str().as_bytes()).context("path with NUL")?;
    // SAFETY: zeroed statfs is valid; c is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid path and out-pointer.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("statfs {}", dir.display()));
    }
    #[allow(
        clippy::useless_conversion,
        reason = "f_type is i64 here but narrower on other architectures"
    )]
    let f_type = i64::from(st.f_type);
    Ok(f_type == BPF_FS_MAGIC)
}

/// Mounts bpffs on `root` unless one is already mounted there.
pub(crate) fn ensure_mounted(root: &Path) -> anyhow::Result<()> {
    if root.exists() && is_bpffs(root)? {
        return Ok(());
    }
    std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    let target = CString::new(root.as_os_str().as_bytes()).context("path with NUL")?;
    // SAFETY: NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            target.as_ptr(),
            c"bpf".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| {
            format!(
                "no BPF filesystem on {} and mounting one failed (needs CAP_SYS_ADMIN; \
                 or mount it yourself: mount -t bpf bpf {})",
                root.display(),
                root.display()
            )
        });
    }
    if !is_bpffs(root)? {
        bail!("mounted bpffs on {} but statfs disagrees", root.display());
    }
    tracing::info!(path = %root.display(), "mounted bpffs");
    Ok(())
}
