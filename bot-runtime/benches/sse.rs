//! The StackStorm stream's event framing: st2bot's `SseParser` against two maintained crates
//! that parse server-sent events (`eventsource-stream`, `sse-stream`), on the inputs that made
//! the first parser quadratic: 4 MiB of short events in one chunk, the same in 1 KiB chunks,
//! and one 4 MiB data line in 16 KiB chunks. Each run counts the events so nothing is
//! optimised away; the crates run over an in-memory stream polled by a current-thread runtime.
//!
//! `cargo bench -p bot-runtime --bench sse`

use std::hint::black_box;

use bot_runtime::stackstorm::stream::SseParser;
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt;

const MIB: usize = 1024 * 1024;

fn short_events() -> Vec<u8> {
    let mut input = Vec::with_capacity(4 * MIB + 64);
    while input.len() < 4 * MIB {
        input.extend_from_slice(b"event: st2.announcement__chatops\ndata: {\"payload\": 1}\n\n");
    }
    input
}

fn long_line() -> Vec<u8> {
    let mut input = b"data: ".to_vec();
    input.resize(4 * MIB, b'x');
    input.extend_from_slice(b"\n\n");
    input
}

fn chunks(input: &[u8], size: usize) -> Vec<Bytes> {
    input.chunks(size).map(Bytes::copy_from_slice).collect()
}

fn ours(chunks: &[Bytes]) -> usize {
    let mut parser = SseParser::default();
    chunks
        .iter()
        .map(|c| parser.feed(c).expect("within limits").len())
        .sum()
}

fn eventsource_stream(rt: &tokio::runtime::Runtime, chunks: &[Bytes]) -> usize {
    use eventsource_stream::Eventsource as _;
    rt.block_on(async {
        let stream =
            futures_util::stream::iter(chunks.iter().cloned().map(Ok::<_, std::io::Error>));
        stream
            .eventsource()
            .filter(|e| std::future::ready(e.is_ok()))
            .count()
            .await
    })
}

fn sse_stream(rt: &tokio::runtime::Runtime, chunks: &[Bytes]) -> usize {
    rt.block_on(async {
        let stream =
            futures_util::stream::iter(chunks.iter().cloned().map(Ok::<_, std::io::Error>));
        sse_stream::SseByteStream::new(stream)
            .filter(|e| std::future::ready(e.is_ok()))
            .count()
            .await
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let short = short_events();
    let long = long_line();
    let cases = [
        ("4MiB_short_events_one_chunk", chunks(&short, short.len())),
        ("4MiB_short_events_1KiB_chunks", chunks(&short, 1024)),
        ("4MiB_line_16KiB_chunks", chunks(&long, 16 * 1024)),
    ];
    for (name, input) in &cases {
        let expected = ours(input);
        assert_eq!(
            eventsource_stream(&rt, input),
            expected,
            "{name}: eventsource-stream"
        );
        assert_eq!(sse_stream(&rt, input), expected, "{name}: sse-stream");
        let mut group = c.benchmark_group(format!("sse/{name}"));
        group.throughput(Throughput::Bytes(
            input.iter().map(|c| c.len() as u64).sum(),
        ));
        group.sample_size(10);
        group.bench_function("st2bot", |b| b.iter(|| ours(black_box(input))));
        group.bench_function("eventsource-stream", |b| {
            b.iter(|| eventsource_stream(&rt, black_box(input)))
        });
        group.bench_function("sse-stream", |b| {
            b.iter(|| sse_stream(&rt, black_box(input)))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
