//! Per-message overhead of the dispatcher without the StackStorm round trip: parse the
//! command, check access, match the alias locally and build the execution plan
//! (`Dispatcher::plan`), for the demo bot's definition and StackStorm's demo packs.
//!
//! `cargo bench -p bot-runtime --bench dispatch`

use std::hint::black_box;

use bot_runtime::aliases::AliasCache;
use bot_runtime::backend::{Capabilities, Incoming, Room};
use bot_runtime::dispatch::{Dispatcher, Plan};
use bot_runtime::secret::Secret;
use bot_runtime::stackstorm::St2Client;
use bot_runtime::stackstorm::auth::{Credential, ServiceAuth};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn dispatcher() -> Dispatcher {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../bots/demo.yaml"))
        .expect("bots/demo.yaml");
    let spec = bot_config::load_in(
        &bot_config::SourceFile::new("bots/demo.yaml", text),
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../bots")),
    )
    .result
    .expect("valid demo");
    let client = St2Client::with_auth(
        &spec.stackstorm,
        ServiceAuth::fixed(Credential::ApiKey(Secret::new("bench"))),
    )
    .expect("client");
    let aliases = AliasCache::new();
    aliases.set(
        st2_sim::demo_aliases()
            .into_iter()
            .map(|a| serde_json::from_value(a).expect("alias"))
            .collect(),
    );
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    Dispatcher::new(
        &spec,
        client,
        Capabilities {
            max_message_len: 4000,
            rich: false,
            threads: false,
            edit: false,
            buttons: false,
        },
        aliases,
        tx,
    )
    .expect("dispatcher")
}

fn message(user: &str, text: &str) -> Incoming {
    Incoming {
        user_id: user.into(),
        user: user.into(),
        room: Some(Room {
            id: "ops".into(),
            name: "ops".into(),
        }),
        text: text.into(),
        mentioned: false,
        thread: None,
        message_id: Some("1".into()),
    }
}

fn bench(c: &mut Criterion) {
    let d = dispatcher();
    let run = message("alice", "!local date");
    assert!(matches!(d.plan(&run), Plan::Execute(..)));
    let denied = message("carol", "!rm /tmp/x on web1");
    assert!(matches!(d.plan(&denied), Plan::Reply(_)));
    let chatter = message("carol", "good morning everyone");
    assert_eq!(d.plan(&chatter), Plan::Ignore);

    let mut g = c.benchmark_group("dispatch");
    g.throughput(Throughput::Elements(1));
    g.bench_function("plan: allowed alias command", |b| {
        b.iter(|| d.plan(black_box(&run)))
    });
    g.bench_function("plan: denied alias command", |b| {
        b.iter(|| d.plan(black_box(&denied)))
    });
    g.bench_function("plan: chatter (not addressed)", |b| {
        b.iter(|| d.plan(black_box(&chatter)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
