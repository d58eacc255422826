//! Bytes that parse as JSON through `parse_spec_value` (a spec as stored): no panic, every
//! error under a `spec` path with a message.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| switchyard_fuzz::check_parse_spec_value(data));
