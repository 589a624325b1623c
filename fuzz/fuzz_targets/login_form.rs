//! The login page's form reading (form-encoded body or query string → link id, CSRF token,
//! kind, username, password, token): arbitrary bytes never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let _ = bot_runtime::__fuzz::read_form_for_fuzzing(input);
});
