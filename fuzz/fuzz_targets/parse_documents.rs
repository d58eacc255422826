//! Arbitrary bytes (read as lossy UTF-8) through `parse_documents`: no panic, no hang, every
//! rejection a path and a message, every accepted document reading back from its YAML/JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| switchyard_fuzz::check_parse_documents(data));
