//! The host's network devices and their addresses (`getifaddrs`): device
//! names in `--interface`, and the devices to attach the XDP program to.

use std::io;
use std::net::IpAddr;

/// Every (device name, address) pair of the host's network devices.
pub fn local_addresses() -> io::Result<Vec<(String, IpAddr)>> {
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
                    let name = std::ffi::CStr::from_ptr(ifa.ifa_name)
                        .to_string_lossy()
                        .into_owned();
                    out.push((name, addr));
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
    let out: Vec<IpAddr> = local_addresses()?
        .into_iter()
        .filter(|(name, _)| name == dev)
        .map(|(_, a)| a)
        // Link-local IPv6 addresses need a scope; SDP cannot carry one.
        .filter(|a| !matches!(a, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80))
        .collect();
    if out.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "no such device or it has no addresses",
        ));
    }
    Ok(out)
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
