//! libFuzzer target: see `rtpengine_tests::fuzz::webrtc`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rtpengine_tests::fuzz::webrtc(data));
