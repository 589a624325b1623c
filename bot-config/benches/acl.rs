//! Criterion benchmark of access decisions: a 1,000-rule definition with a realistic mix of
//! literal users, user globs, groups, rooms, room globs, direct-message rules and command
//! globs, loaded through `bot_config::load` like a real bot. Target: ≤ 1 µs median per
//! decision. Run with `cargo bench -p bot-config --bench acl`.

use std::fmt::Write as _;
use std::hint::black_box;

use bot_config::SourceFile;
use bot_config::acl::{AccessControl, Request};
use criterion::{Criterion, criterion_group, criterion_main};

/// Rules in the generated definition.
const RULES: usize = 1000;
/// Groups in the generated definition (each with five users and one glob).
const GROUPS: usize = 50;
/// Packs the commands are spread over.
const PACKS: usize = 40;

/// A bot definition with `RULES` rules, none shadowed by another (so it passes the checks).
fn definition() -> String {
    let mut yaml = String::from(
        "name: bench\nbackend:\n  kind: text\nstackstorm:\n  url: http://127.0.0.1:9101\n  auth:\n    api_key: ${ST2_API_KEY}\naccess:\n  default: deny\n  rules:\n",
    );
    for i in 0..RULES {
        let pack = i % PACKS;
        let group = i % GROUPS;
        let rule = match i % 10 {
            0 => format!("deny: {{ users: [\"contractor-{i}-*\"], commands: [\"core.remote*\"] }}"),
            1 => format!(
                "allow: {{ users: [\"@team{group}\"], commands: [\"pack{pack}.*\"], rooms: [\"#team-{i}\"] }}"
            ),
            2 => {
                format!("allow: {{ users: [\"user{i}\"], commands: [\"pack{pack}.status_{i}\"] }}")
            }
            3 => format!("allow: {{ commands: [\"pack{pack}.list_*\"], rooms: [\"#ops-{i}-*\"] }}"),
            4 => format!(
                "deny: {{ users: [\"user{i}\", \"user{}\"], commands: [\"pack{pack}.delete_{i}\"], direct: true }}",
                i + 1
            ),
            5 => format!(
                "allow: {{ users: [\"svc-?{i}\"], commands: [\"pack{pack}.{{run,exec}}_{i}\"] }}"
            ),
            6 => format!("allow: {{ users: [\"user{i}\"], rooms: [\"#room-{i}\"] }}"),
            7 => format!("deny: {{ commands: [\"pack{pack}.danger_{i}\"], direct: false }}"),
            8 => format!("allow: {{ users: [\"[ab]dmin{i}\"], commands: [\"bot:session\"] }}"),
            _ => format!(
                "allow: {{ users: [\"ops{i}-*\"], commands: [\"pack{pack}.*_{i}\"], rooms: [\"#ops-*\"] }}"
            ),
        };
        let _ = writeln!(yaml, "    - {rule}");
    }
    yaml.push_str("groups:\n");
    for g in 0..GROUPS {
        let members: Vec<String> = (0..5)
            .map(|m| format!("member-{g}-{m}"))
            .chain([format!("\"lead-{g}-*\"")])
            .collect();
        let _ = writeln!(yaml, "  team{g}: [{}]", members.join(", "));
    }
    yaml
}

fn access_control() -> AccessControl {
    let file = SourceFile::new("bots/bench.yaml", definition());
    let spec = match bot_config::load(&file) {
        Ok(spec) => spec,
        Err(diagnostics) => panic!("the generated definition is invalid: {diagnostics:#?}"),
    };
    assert_eq!(spec.access.rules.len(), RULES);
    AccessControl::new(&spec.access).expect("rules compile")
}

fn decisions(c: &mut Criterion) {
    let acl = access_control();
    // (name, request, expected deciding rule, 0-based)
    let cases: [(&str, Request<'_>, Option<usize>); 6] = [
        (
            "first_rule",
            Request {
                user: "contractor-0-joe",
                command: "core.remote_sudo",
                room: Some("#ops"),
            },
            Some(0),
        ),
        (
            "typical_group_in_room",
            Request {
                user: "member-1-3",
                command: "pack21.restart",
                room: Some("#team-501"),
            },
            Some(501),
        ),
        (
            "typical_literal_user_dm",
            Request {
                user: "user502",
                command: "pack22.status_502",
                room: None,
            },
            Some(502),
        ),
        (
            "typical_room_glob",
            Request {
                user: "zoe",
                command: "pack23.list_vms",
                room: Some("#ops-903-east"),
            },
            Some(903),
        ),
        (
            "default_nothing_matches",
            Request {
                user: "nobody",
                command: "other.thing",
                room: Some("#lobby"),
            },
            None,
        ),
        (
            "default_many_partial_matches",
            // The user matches rules 999 and the open-user rules, the command several command
            // globs, the room `#ops-*` rules; no rule matches all three.
            Request {
                user: "ops999-x",
                command: "pack3.list_x",
                room: Some("#ops-1"),
            },
            None,
        ),
    ];
    let mut group = c.benchmark_group("acl_1000_rules");
    for (name, request, expected) in cases {
        assert_eq!(acl.decide(&request).rule, expected, "{name}");
        group.bench_function(name, |b| b.iter(|| acl.decide(black_box(&request))));
    }
    group.finish();
}

fn build(c: &mut Criterion) {
    let file = SourceFile::new("bots/bench.yaml", definition());
    let spec = bot_config::load(&file).expect("valid definition");
    let mut group = c.benchmark_group("acl_build_1000_rules");
    group.sample_size(10);
    group.bench_function("compile", |b| {
        b.iter(|| AccessControl::new(black_box(&spec.access)))
    });
    group.bench_function("load_and_check", |b| {
        b.iter(|| bot_config::load(black_box(&file)))
    });
    group.finish();
}

criterion_group!(benches, decisions, build);
criterion_main!(benches);
