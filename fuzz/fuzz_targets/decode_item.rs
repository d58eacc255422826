//! Bytes turned into a DynamoDB item shaped like a release (see `src/lib.rs` for the format)
//! through `switchyard::aws::decode_item`: no panic, every rejection `Corrupt` with a message.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| switchyard_fuzz::check_decode_item(data));
