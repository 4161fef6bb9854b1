//! libFuzzer target: see `rtpengine_tests::fuzz::relay`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rtpengine_tests::fuzz::relay(data));
