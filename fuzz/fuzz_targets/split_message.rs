//! `split_message` on arbitrary text and limits: it returns, and every piece is within the
//! limit, has balanced fences, and the pieces give back the text (`check_contract`).
#![no_main]

use bot_runtime::__fuzz::{byte_len, char_len, check_split_contract};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [a, b, unit, rest @ ..] = data else {
        return;
    };
    let limit = 64 + usize::from(u16::from_le_bytes([*a, *b]) % 4096);
    let text = String::from_utf8_lossy(rest);
    let len = if unit & 1 == 0 { char_len } else { byte_len };
    if let Err(e) = check_split_contract(&text, limit, len) {
        panic!("{e}; limit {limit}");
    }
});
