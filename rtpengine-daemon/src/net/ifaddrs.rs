//! The host's network devices and their addresses (`getifaddrs`): device
//! names in `--interface`, and the devices to attach the XDP program to.

use std::io;
use std::net::IpAddr;

/// One address of a network device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAddress {
    /// The device's name.
    pub device: String,
    /// The address.
    pub addr: IpAddr,
    /// The device is up.
    pub up: bool,
    /// The device is a loopback device.
    pub loopback: bool,
}

/// Every (device name, address) pair of the host's network devices.
pub fn local_addresses() -> io::Result<Vec<(String, IpAddr)>> {
    Ok(device_addresses_all()?
        .into_iter()
        .map(|d| (d.device, d.addr))
        .collect())
}

/// Whether an IPv6 address is link-local: it needs a scope, which SDP cannot
/// carry.
fn link_local(a: &IpAddr) -> bool {
    matches!(a, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

/// What `--interface=any` means upstream: every IPv4 and every
/// non-link-local IPv6 address of the devices that are up and not loopback.
pub fn any_addresses() -> io::Result<Vec<IpAddr>> {
    let out = device_addresses_all()?
        .into_iter()
        .filter(|d| d.up && !d.loopback && !link_local(&d.addr))
        .map(|d| d.addr)
        .collect();
    nonempty(out, "no device that is up and not loopback has an address")
}

/// `addrs`, or a NotFound error saying `why` when there are none.
fn nonempty(addrs: Vec<IpAddr>, why: &str) -> io::Result<Vec<IpAddr>> {
    if addrs.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, why));
    }
    Ok(addrs)
}

/// Every address of every network device, with the device's state.
pub fn device_addresses_all() -> io::Result<Vec<DeviceAddress>> {
    let mut out = Vec::new();
    // SAFETY: getifaddrs allocates a list we walk read-only and free once;
    // each ifa_addr is read as the sockaddr type its family names.
    unsafe {
        let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
        if libc::getifaddrs(&mut ifap) != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut p = ifap;
        while !p.is_null() {
            let ifa = &*p;
            if !ifa.ifa_addr.is_null() {
                let addr = match i32::from((*ifa.ifa_addr).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                        Some(IpAddr::from(
                            u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                        ))
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                        Some(IpAddr::from(sin6.sin6_addr.s6_addr))
                    }
                    _ => None,
                };
                if let Some(addr) = addr {
                    let device = std::ffi::CStr::from_ptr(ifa.ifa_name)
                        .to_string_lossy()
                        .into_owned();
                    let flags = ifa.ifa_flags;
                    out.push(DeviceAddress {
                        device,
                        addr,
                        up: flags & libc::IFF_UP as libc::c_uint != 0,
                        loopback: flags & libc::IFF_LOOPBACK as libc::c_uint != 0,
                    });
                }
            }
            p = ifa.ifa_next;
        }
        libc::freeifaddrs(ifap);
    }
    Ok(out)
}

/// Addresses of a network device.
pub fn device_addresses(dev: &str) -> io::Result<Vec<IpAddr>> {
    let out = local_addresses()?
        .into_iter()
        .filter(|(name, _)| name == dev)
        .map(|(_, a)| a)
        .filter(|a| !link_local(a))
        .collect();
    nonempty(out, "no such device or it has no addresses")
}

/// Network devices that carry any of `addrs` (for attaching XDP).
pub fn devices_of(addrs: &[IpAddr]) -> io::Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for (name, addr) in local_addresses()? {
        if addrs.contains(&addr) && !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_never_any() {
        let all = device_addresses_all().unwrap();
        assert!(all.iter().any(|d| d.loopback && d.addr.is_loopback()));
        if let Ok(any) = any_addresses() {
            assert!(any.iter().all(|a| !a.is_loopback() && !link_local(a)));
        }
    }
}
