#![no_main]
//! See `simpleotp_fuzz::check_config` for what this target feeds in and which invariants it checks.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| simpleotp_fuzz::check_config(data));
