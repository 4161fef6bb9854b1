//! Attaching the program to devices, or sharing the link another handle
//! pinned there (see the module docs of [`super`]).

use std::os::fd::{AsFd as _, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::{xdp::XdpLink, Xdp, XdpMode};
use aya::Ebpf;
use rtpengine_common::XDP_PROGRAM;

use super::{xdp_link, Kernel, XdpAttachMode};

/// One device the program is attached to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// Interface name.
    pub device: String,
    /// The mode in effect ([`XdpAttachMode::Native`] or [`XdpAttachMode::Generic`]);
    /// for a shared attachment, the mode its creator got.
    pub mode: XdpAttachMode,
    /// `false`: this handle attached the program (and pinned the link);
    /// `true`: it found the pinned link of another daemon (or of a previous,
    /// crashed instance) and shares it.
    pub shared: bool,
}

/// A device's pinned XDP link as used by one handle.
pub(super) struct Link {
    pub(super) attachment: Attachment,
    /// `<pin_dir>/links/netns-<inode>/<device>`.
    pub(super) pin: PathBuf,
    /// Kernel id of the link (to check the pin still names it at close).
    pub(super) link_id: u32,
    /// Keeps the link, hence the program, attached while this handle lives,
    /// even if another daemon removes the pin meanwhile.
    _fd: OwnedFd,
}

pub(super) struct Prog {
    pub(super) ebpf: Ebpf,
    pub(super) links: Vec<Link>,
}

impl Kernel {
    pub(super) fn attach(
        &mut self,
        links_dir: &Path,
        dev: &str,
        mode: XdpAttachMode,
        flows_id: u32,
    ) -> anyhow::Result<()> {
        let prog = self
            .prog
            .get_mut()
            .map_err(|_| anyhow!("kernel state poisoned"))?;
        let link = attach_device(&mut prog.ebpf, links_dir, dev, mode, flows_id)?;
        let a = &link.attachment;
        if a.shared {
            tracing::info!(
                device = dev,
                mode = %a.mode,
                "sharing the XDP dataplane already attached to {dev}"
            );
            if mode != XdpAttachMode::Auto && mode != a.mode {
                tracing::warn!(
                    device = dev,
                    requested = %mode,
                    actual = %a.mode,
                    "the shared XDP attachment on {dev} uses another mode than requested"
                );
            }
        } else {
            tracing::info!(device = dev, mode = %a.mode, pin = %link.pin.display(), "XDP program attached");
        }
        prog.links.push(link);
        Ok(())
    }

    /// Devices the program is attached to, with the mode that worked.
    pub fn attachments(&self) -> Vec<Attachment> {
        self.prog
            .lock()
            .map(|p| p.links.iter().map(|l| l.attachment.clone()).collect())
            .unwrap_or_default()
    }
}

/// Attaches the program to `dev`, or shares the link pinned there by another
/// handle (see the module docs).
fn attach_device(
    ebpf: &mut Ebpf,
    links_dir: &Path,
    dev: &str,
    mode: XdpAttachMode,
    flows_id: u32,
) -> anyhow::Result<Link> {
    let ifindex = xdp_link::ifindex(dev).with_context(|| format!("no network device {dev}"))?;
    let pin = links_dir.join(dev);
    let link = |fd: OwnedFd, mode: XdpAttachMode, shared: bool| -> anyhow::Result<Link> {
        let info = xdp_link::link_info(fd.as_fd())
            .with_context(|| format!("reading the XDP link of {dev}"))?;
        Ok(Link {
            attachment: Attachment {
                device: dev.to_string(),
                mode,
                shared,
            },
            pin: pin.clone(),
            link_id: info.id,
            _fd: fd,
        })
    };
    // A second round covers another daemon attaching between our look and
    // our attach.
    for round in 0..2 {
        let current = xdp_link::device_xdp(ifindex)
            .with_context(|| format!("querying the XDP program of {dev}"))?;
        let current_mode = match current.map(|c| c.attached) {
            Some(xdp_link::XDP_ATTACHED_SKB) => XdpAttachMode::Generic,
            _ => XdpAttachMode::Native,
        };
        match xdp_link::obj_get(&pin) {
            Ok(fd) => {
                let info = xdp_link::link_info(fd.as_fd())
                    .with_context(|| format!("reading the pinned link {}", pin.display()))?;
                let live = info.type_ == xdp_link::LINK_TYPE_XDP
                    && info.ifindex == ifindex
                    && current.is_some_and(|c| c.prog_id == info.prog_id);
                if live {
                    let theirs = program_info(info.prog_id);
                    let our_tag = our_xdp(ebpf)?
                        .info()
                        .map_err(|e| anyhow!("reading our program's info: {e}"))?
                        .tag();
                    if theirs.uses(flows_id) && theirs.tag == Some(our_tag) {
                        return link(fd, current_mode, true);
                    }
                    // Ours by location, but running other maps (the pins
                    // were recreated) or another build's code: swap the
                    // program under the link atomically.
                    tracing::warn!(
                        device = dev,
                        program = info.prog_id,
                        same_maps = theirs.uses(flows_id),
                        "replacing the stale XDP program behind the pinned link of {dev}"
                    );
                    drop(fd);
                    replace_program(ebpf, &pin)
                        .with_context(|| format!("updating the pinned XDP link of {dev}"))?;
                    let fd = xdp_link::obj_get(&pin)
                        .with_context(|| format!("reopening {}", pin.display()))?;
                    return link(fd, current_mode, true);
                }
                tracing::warn!(
                    device = dev,
                    pin = %pin.display(),
                    "removing a defunct pinned XDP link (device gone, recreated or detached)"
                );
                drop(fd);
                match std::fs::remove_file(&pin) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e).with_context(|| format!("removing {}", pin.display())),
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e).with_context(|| format!("opening {}", pin.display())),
        }

        if let Some(c) = current {
            let theirs = program_info(c.prog_id);
            if c.prog_id != 0 && theirs.uses(flows_id) {
                // Our dataplane, linked by a handle that still runs but whose
                // pin was removed (its peer closed): pin it again and share.
                if let Some(fd) = xdp_link::find_xdp_link(ifindex, c.prog_id)
                    .with_context(|| format!("looking for the XDP link of {dev}"))?
                {
                    match xdp_link::obj_pin(fd.as_fd(), &pin) {
                        Ok(()) => return link(fd, current_mode, true),
                        Err(e) if e.raw_os_error() == Some(libc::EEXIST) && round == 0 => continue,
                        Err(e) => {
                            return Err(e).with_context(|| format!("pinning {}", pin.display()))
                        }
                    }
                }
                bail!(
                    "{dev} runs this dataplane's XDP program (id {}) without a BPF link, so it \
                     cannot be shared; detach it (ip link set dev {dev} xdp off)",
                    c.prog_id
                );
            }
            bail!(
                "{dev} already carries a foreign XDP program ({}); the kernel dataplane needs \
                 the device's XDP hook: detach it (ip link set dev {dev} xdp off) or leave {dev} \
                 out of the kernel devices",
                match (c.prog_id, theirs.name.as_deref()) {
                    (0, _) => "several programs".to_string(),
                    (id, Some(name)) => format!("id {id}, name {name}"),
                    (id, None) => format!("id {id}"),
                }
            );
        }

        let (fd_link, used) = match attach_new(ebpf, dev, mode) {
            Ok(x) => x,
            // Lost a race with another opener: look again.
            Err(_) if round == 0 && matches!(xdp_link::device_xdp(ifindex), Ok(Some(_))) => {
                continue
            }
            Err(e) => return Err(e),
        };
        match fd_link.pin(&pin) {
            Ok(pinned) => {
                let fd = xdp_link::obj_get(&pin)
                    .with_context(|| format!("reopening {}", pin.display()))?;
                // The pin and `fd` keep the link; aya's copy can go.
                drop(pinned);
                return link(fd, used, false);
            }
            Err(e) => {
                // Our unpinned link detaches when `fd_link` (moved into the
                // failed pin call) is dropped.
                if round == 0 && pin.exists() {
                    continue;
                }
                bail!("pinning the XDP link of {dev} at {}: {e}", pin.display());
            }
        }
    }
    bail!("attaching XDP to {dev}: another process keeps changing it")
}

fn our_xdp(ebpf: &mut Ebpf) -> anyhow::Result<&mut Xdp> {
    ebpf.program_mut(XDP_PROGRAM)
        .context("XDP program vanished")?
        .try_into()
        .map_err(|e| anyhow!("{e}"))
}

/// Attaches our program to `dev` with a new BPF link (not pinned yet).
fn attach_new(
    ebpf: &mut Ebpf,
    dev: &str,
    mode: XdpAttachMode,
) -> anyhow::Result<(FdLink, XdpAttachMode)> {
    let xdp = our_xdp(ebpf)?;
    let (id, used) = match mode {
        XdpAttachMode::Native => (
            xdp.attach(dev, XdpMode::Driver)
                .map_err(|e| anyhow!("attaching XDP (native) to {dev}: {e}"))?,
            XdpAttachMode::Native,
        ),
        XdpAttachMode::Generic => (
            xdp.attach(dev, XdpMode::Skb)
                .map_err(|e| anyhow!("attaching XDP (generic) to {dev}: {e}"))?,
            XdpAttachMode::Generic,
        ),
        XdpAttachMode::Auto => match xdp.attach(dev, XdpMode::Driver) {
            Ok(id) => (id, XdpAttachMode::Native),
            Err(native) => {
                let id = xdp.attach(dev, XdpMode::Skb).map_err(|e| {
                    anyhow!("attaching XDP to {dev}: native: {native}; generic: {e}")
                })?;
                tracing::warn!(device = dev, error = %native, "native XDP unavailable, using generic (SKB) mode");
                (id, XdpAttachMode::Generic)
            }
        },
    };
    let link = xdp
        .take_link(id)
        .map_err(|e| anyhow!("taking the XDP link of {dev}: {e}"))?;
    let fd_link = FdLink::try_from(link).map_err(|e| {
        anyhow!(
            "attaching XDP to {dev}: the kernel has no XDP BPF links (Linux 5.9+), so the \
             attachment cannot be pinned and shared ({e})"
        )
    })?;
    Ok((fd_link, used))
}

/// Points the pinned link at `pin` to our program (`BPF_LINK_UPDATE`).
fn replace_program(ebpf: &mut Ebpf, pin: &Path) -> anyhow::Result<()> {
    let xdp = our_xdp(ebpf)?;
    let pinned = PinnedLink::from_pin(pin).map_err(|e| anyhow!("{e}"))?;
    let link = XdpLink::try_from(FdLink::from(pinned)).map_err(|e| anyhow!("{e}"))?;
    let id = xdp.attach_to_link(link).map_err(|e| anyhow!("{e}"))?;
    // The pin keeps the link; dropping aya's copy only closes a descriptor.
    drop(xdp.take_link(id).map_err(|e| anyhow!("{e}"))?);
    Ok(())
}

/// What we know about a loaded program.
#[derive(Default)]
struct ProgInfo {
    name: Option<String>,
    tag: Option<u64>,
    map_ids: Vec<u32>,
}

impl ProgInfo {
    fn uses(&self, map_id: u32) -> bool {
        self.map_ids.contains(&map_id)
    }
}

fn program_info(prog_id: u32) -> ProgInfo {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .find(|p| p.id() == prog_id)
        .map(|p| ProgInfo {
            name: p.name_as_str().map(str::to_string),
            tag: Some(p.tag()),
            map_ids: p.map_ids().ok().flatten().unwrap_or_default(),
        })
        .unwrap_or_default()
}
