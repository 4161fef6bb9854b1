//! libFuzzer target: see `rtpengine_tests::fuzz::transports`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rtpengine_tests::fuzz::transports(data));
