//! Library target so the daemon can list this crate as a build dependency
//! (cargo then rebuilds the daemon when the dataplane changes).
#![no_std]
