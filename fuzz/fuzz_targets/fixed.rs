#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| batchwin::fuzz::run("fixed", data));
