//! The StackStorm stream's SSE framing (`SseParser`): arbitrary bytes cut into arbitrary
//! chunks never panic, give the same events (or the same error) as the bytes in one piece,
//! and never buffer more than was fed.
#![no_main]

use bot_runtime::__fuzz::SseParser;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    // The first byte picks the chunk sizes, the second the limits; the rest is the stream.
    let [sizes, limits, stream @ ..] = input else {
        return;
    };
    let (max_line, max_event) = match limits % 3 {
        0 => (64, 256),
        1 => (1024, 1024),
        _ => (4 * 1024 * 1024, 8 * 1024 * 1024),
    };
    let whole = SseParser::with_limits(max_line, max_event).feed(stream);
    let mut parser = SseParser::with_limits(max_line, max_event);
    let mut events = Vec::new();
    let mut error = None;
    let mut rest = stream;
    let mut step = 0usize;
    while !rest.is_empty() {
        // Chunk lengths cycle through a pattern drawn from `sizes`.
        let len = 1 + ((usize::from(*sizes) >> (step % 8)) & 0x1f) * (1 + step % 3);
        let (chunk, tail) = rest.split_at(len.min(rest.len()));
        match parser.feed(chunk) {
            Ok(mut got) => events.append(&mut got),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
        assert!(parser.bytes_buffered() <= stream.len() as u64);
        rest = tail;
        step += 1;
    }
    match (whole, error) {
        (Ok(expected), None) => assert_eq!(events, expected),
        (Err(expected), Some(got)) => assert_eq!(got, expected),
        (whole, error) => panic!("one piece: {whole:?}; chunked: {error:?}"),
    }
});
