//! Low-level helpers for sharing one pinned XDP attachment between daemons:
//! raw `bpf(2)` calls aya 0.14 does not expose (open/pin by path, link info
//! with the XDP ifindex, link enumeration) and an `RTM_GETLINK` query for the
//! program a device currently runs.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_LINK_GET_FD_BY_ID: libc::c_long = 30;
const BPF_LINK_GET_NEXT_ID: libc::c_long = 31;

/// `BPF_LINK_TYPE_XDP`.
pub(crate) const LINK_TYPE_XDP: u32 = 6;

/// A zeroed `union bpf_attr` prefix (the fields used here fit in 32 bytes;
/// the kernel zero-extends shorter attrs).
#[repr(C, align(8))]
struct Attr([u8; 32]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 32])
    }
    fn u32(mut self, off: usize, v: u32) -> Attr {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64(mut self, off: usize, v: u64) -> Attr {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn get_u32(&self, off: usize) -> u32 {
        u32::from_ne_bytes(self.0[off..off + 4].try_into().unwrap())
    }
}

fn bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<libc::c_long> {
    // SAFETY: attr is a valid, writable buffer of the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.0.as_mut_ptr(),
            std::mem::size_of::<Attr>() as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn fd_from(rc: libc::c_long) -> OwnedFd {
    // SAFETY: the syscall returned a new file descriptor we now own.
    unsafe { OwnedFd::from_raw_fd(rc as i32) }
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path with NUL"))
}

/// `BPF_OBJ_GET`: opens a pinned object.
pub(crate) fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let p = c_path(path)?;
    let mut attr = Attr::new().u64(0, p.as_ptr() as u64);
    bpf(BPF_OBJ_GET, &mut attr).map(fd_from)
}

/// `BPF_OBJ_PIN`: pins `fd` at `path`.
pub(crate) fn obj_pin(fd: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let p = c_path(path)?;
    let mut attr = Attr::new()
        .u64(0, p.as_ptr() as u64)
        .u32(8, fd.as_raw_fd() as u32);
    bpf(BPF_OBJ_PIN, &mut attr).map(|_| ())
}

/// The part of `struct bpf_link_info` we need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LinkInfo {
    pub type_: u32,
    pub id: u32,
    pub prog_id: u32,
    /// For XDP links: the device's ifindex (in the link's namespace), 0 once
    /// the device is gone (the link is then defunct).
    pub ifindex: u32,
}

/// `BPF_OBJ_GET_INFO_BY_FD` on a link.
pub(crate) fn link_info(fd: BorrowedFd<'_>) -> io::Result<LinkInfo> {
    // type, id, prog_id, pad, then the 8-aligned union (xdp.ifindex first).
    let mut info = [0u32; 16];
    let mut attr = Attr::new()
        .u32(0, fd.as_raw_fd() as u32)
        .u32(4, std::mem::size_of_val(&info) as u32)
        .u64(8, info.as_mut_ptr() as u64);
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(LinkInfo {
        type_: info[0],
        id: info[1],
        prog_id: info[2],
        ifindex: info[4],
    })
}

/// Finds a live XDP link running program `prog_id` on `ifindex` (an attachment
/// whose pin was removed while another handle still holds it).
pub(crate) fn find_xdp_link(ifindex: u32, prog_id: u32) -> io::Result<Option<OwnedFd>> {
    let mut id = 0u32;
    loop {
        let mut attr = Attr::new().u32(0, id);
        match bpf(BPF_LINK_GET_NEXT_ID, &mut attr) {
            Ok(_) => id = attr.get_u32(4),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(e),
        }
        let mut attr = Attr::new().u32(0, id);
        let fd = match bpf(BPF_LINK_GET_FD_BY_ID, &mut attr) {
            Ok(rc) => fd_from(rc),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue, // raced
            Err(e) => return Err(e),
        };
        let info = link_info(fd.as_fd())?;
        if info.type_ == LINK_TYPE_XDP && info.ifindex == ifindex && info.prog_id == prog_id {
            return Ok(Some(fd));
        }
    }
}

/// `if_nametoindex` in the calling thread's network namespace.
pub(crate) fn ifindex(dev: &str) -> io::Result<u32> {
    let c = CString::new(dev)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "device name with NUL"))?;
    // SAFETY: NUL-terminated name.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(io::Error::last_os_error()),
        i => Ok(i),
    }
}

/// Identifies the calling thread's network namespace (its nsfs inode), so
/// devices of different namespaces sharing a pin directory get distinct pins.
pub(crate) fn netns_id() -> io::Result<u64> {
    std::fs::metadata("/proc/thread-self/ns/net").map(|m| m.ino())
}

/// What a device runs in its XDP hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DeviceXdp {
    /// `XDP_ATTACHED_*`: 1 driver, 2 generic (skb), 3 hardware, 4 several.
    pub attached: u8,
    /// The program id (0 when several are attached).
    pub prog_id: u32,
}

/// `XDP_ATTACHED_SKB`: generic mode.
pub(crate) const XDP_ATTACHED_SKB: u8 = 2;

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const NLMSG_ERROR: u16 = 2;
const IFLA_XDP: u16 = 43;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_PROG_ID: u16 = 4;
const IFLA_EXT_MASK: u16 = 29;
const RTEXT_FILTER_SKIP_STATS: u32 = 1 << 3;

/// The XDP program attached to `ifindex` in the calling thread's namespace
/// (`None`: nothing attached), via `RTM_GETLINK`.
pub(crate) fn device_xdp(ifindex: u32) -> io::Result<Option<DeviceXdp>> {
    // SAFETY: plain socket(2).
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptor.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // Never hang on a kernel that does not answer as expected.
    let tv = libc::timeval {
        tv_sec: 2,
        tv_usec: 0,
    };
    // SAFETY: valid option value of the size passed.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };

    // nlmsghdr (16) + ifinfomsg (16) + IFLA_EXT_MASK attribute (8).
    let mut req = Vec::with_capacity(40);
    req.extend(40u32.to_ne_bytes());
    req.extend(RTM_GETLINK.to_ne_bytes());
    req.extend((libc::NLM_F_REQUEST as u16).to_ne_bytes());
    req.extend(1u32.to_ne_bytes()); // seq
    req.extend(0u32.to_ne_bytes()); // pid
    req.extend([libc::AF_UNSPEC as u8, 0, 0, 0]); // family, pad, type
    req.extend((ifindex as i32).to_ne_bytes());
    req.extend(0u32.to_ne_bytes()); // flags
    req.extend(0u32.to_ne_bytes()); // change
    req.extend(8u16.to_ne_bytes());
    req.extend(IFLA_EXT_MASK.to_ne_bytes());
    req.extend(RTEXT_FILTER_SKIP_STATS.to_ne_bytes());

    // SAFETY: zeroed sockaddr_nl is valid; address the kernel (pid 0).
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: valid buffer and address.
    let rc = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            req.as_ptr().cast(),
            req.len(),
            0,
            (&sa as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 65536];
    loop {
        // SAFETY: valid writable buffer.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let msg = &buf[..n as usize];
        let mut off = 0;
        while off + 16 <= msg.len() {
            let len = u32::from_ne_bytes(msg[off..off + 4].try_into().unwrap()) as usize;
            let ty = u16::from_ne_bytes(msg[off + 4..off + 6].try_into().unwrap());
            if len < 16 || off + len > msg.len() {
                break;
            }
            let body = &msg[off + 16..off + len];
            match ty {
                NLMSG_ERROR => {
                    let errno = body
                        .get(..4)
                        .map_or(0, |b| i32::from_ne_bytes(b.try_into().unwrap()));
                    return Err(io::Error::from_raw_os_error(-errno));
                }
                RTM_NEWLINK if body.len() >= 16 => return Ok(parse_xdp(&body[16..])),
                _ => {}
            }
            off += (len + 3) & !3;
        }
    }
}

/// Iterates rtattrs: (type without flag bits, payload).
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            return None;
        }
        let payload = &b[4..len];
        b = &b[((len + 3) & !3).min(b.len())..];
        Some((ty, payload))
    })
}

fn parse_xdp(link_attrs: &[u8]) -> Option<DeviceXdp> {
    let (_, xdp) = attrs(link_attrs).find(|(t, _)| *t == IFLA_XDP)?;
    let mut out = DeviceXdp {
        attached: 0,
        prog_id: 0,
    };
    for (t, p) in attrs(xdp) {
        match t {
            IFLA_XDP_ATTACHED if !p.is_empty() => out.attached = p[0],
            IFLA_XDP_PROG_ID if p.len() >= 4 => {
                out.prog_id = u32::from_ne_bytes(p[..4].try_into().unwrap())
            }
            _ => {}
        }
    }
    (out.attached != 0).then_some(out)
}
