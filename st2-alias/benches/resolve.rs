//! Resolve time of chat commands against alias indexes of realistic shape: 10,000 aliases
//! (the SPEC's target: ≤ 100 µs per resolve on one core) and 50 aliases (an ordinary
//! StackStorm install, resolved once per chat message). The aliases are generated
//! deterministically: varied packs, literal first words, required and optional parameters,
//! object formats with several representations, a few regex and catch-all-ish formats, a
//! few `match_multiple` formats and some disabled aliases.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use st2_alias::{
    Alias, AliasIndex, CompiledFormat, FormatEntry, FormatObject, PreparedCommand, Representation,
};

const PACKS: &[&str] = &[
    "aws",
    "azure",
    "k8s",
    "jira",
    "github",
    "ansible",
    "nagios",
    "sensu",
    "docker",
    "consul",
    "vault",
    "jenkins",
    "pagerduty",
    "st2",
    "linux",
    "windows",
    "mysql",
    "postgres",
    "redis",
    "elastic",
];
const VERBS: &[&str] = &[
    "deploy", "restart", "status", "show", "get", "list", "create", "delete", "scale", "rollback",
    "run", "ping", "check", "open", "close", "assign", "ack", "silence", "start", "stop",
    "describe", "tail", "purge", "sync", "backup", "restore", "promote", "drain", "cordon",
    "upgrade",
];
const NOUNS: &[&str] = &[
    "service", "host", "cluster", "pod", "node", "issue", "ticket", "build", "job", "pipeline",
    "alert", "incident", "bucket", "volume", "snapshot", "user", "group", "key", "secret", "queue",
    "topic", "index", "database", "table", "replica", "cache", "release", "tag", "branch", "image",
];

/// Small deterministic generator (xorshift), so every run benchmarks the same index.
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % bound as u64) as usize
    }
}

fn plain(format: String) -> FormatEntry {
    FormatEntry::Plain(format)
}

/// `count` aliases; alias `i` is `<verb> <noun><i>` so first words repeat and prefixes differ.
fn generate_aliases(count: usize) -> Vec<Alias> {
    let mut rng = Rng(0x5151_2024);
    (0..count)
        .map(|i| {
            let pack = PACKS[i % PACKS.len()];
            let verb = VERBS[rng.below(VERBS.len())];
            let noun = format!("{}{i}", NOUNS[rng.below(NOUNS.len())]);
            let formats = match i % 20 {
                0 => vec![FormatEntry::Object(FormatObject {
                    display: Some(format!("{verb} {noun} <name> [on <env>]")),
                    representation: Some(Representation::Many(vec![
                        format!("{verb} {noun} {{{{name}}}} on {{{{env}}}}"),
                        format!("{verb} {noun} {{{{name}}}}"),
                    ])),
                    match_multiple: None,
                })],
                1 => vec![plain(format!(
                    "{verb} {noun} {{{{name}}}} {{{{force=false}}}}"
                ))],
                2 => vec![plain(format!(
                    "{verb} {noun} (?P<key>[A-Z][A-Z0-9]+-[0-9]+) {{{{comment=none}}}}"
                ))],
                3 => vec![
                    plain(format!("{verb} {noun} {{{{target}}}} with {{{{options}}}}")),
                    plain(format!("{verb} {noun} {{{{target}}}}")),
                ],
                4 => vec![FormatEntry::Object(FormatObject {
                    display: Some(format!("{noun} <key> ({verb})")),
                    representation: Some(Representation::Many(vec![format!(
                        "(?:\\b|^){noun} (?P<key>[A-Z][A-Z0-9]+-[0-9]+)(?:\\b|$)"
                    )])),
                    match_multiple: Some(Some(i % 40 == 4)),
                })],
                5 if i % 100 == 5 => vec![plain(format!("{{{{text}}}} for {noun} please"))],
                _ => vec![plain(format!("{verb} {noun} {{{{name}}}}"))],
            };
            let mut alias = Alias::new(pack, &format!("{verb}_{noun}"), formats);
            alias.description = Some(format!("{verb} a {noun}"));
            alias.enabled = i % 50 != 49;
            alias
        })
        .collect()
}

/// A command that resolves to exactly one alias of the index: the first plain
/// `<verb> <noun> {{name}}` alias past the middle.
fn matching_command(aliases: &[Alias]) -> String {
    let alias = aliases
        .iter()
        .skip(aliases.len() / 2)
        .find(|alias| {
            alias.enabled
                && matches!(alias.formats.as_slice(), [FormatEntry::Plain(f)] if f.ends_with(" {{name}}") && !f.contains('('))
        })
        .or_else(|| aliases.first())
        .expect("aliases");
    let (verb, noun) = alias.name.split_once('_').unwrap_or(("", ""));
    format!("{verb} {noun} api-gateway timeout=60")
}

fn bench_index(c: &mut Criterion, label: &str, count: usize) {
    let aliases = generate_aliases(count);
    let hit = matching_command(&aliases);
    let index = AliasIndex::new(aliases);
    let resolved = index.resolve(&hit).expect("the benchmark command resolves");
    assert!(index.execution_params(&resolved, &hit).is_ok());
    let miss = "frobnicate the widget now please";
    assert!(index.resolve(miss).is_err());

    c.bench_function(&format!("resolve/{label}/hit"), |b| {
        b.iter(|| index.resolve(black_box(&hit)))
    });
    c.bench_function(&format!("resolve/{label}/no_match"), |b| {
        b.iter(|| index.resolve(black_box(miss)))
    });
}

fn resolve_10000(c: &mut Criterion) {
    bench_index(c, "10000_aliases", 10_000);
}

fn resolve_50(c: &mut Criterion) {
    bench_index(c, "50_aliases", 50);
}

/// `count` aliases shaped like st2-sim's generated catalogue (what `benches/catalogue`
/// loads): four patterns each, a plain one, one with a default, and two representations
/// that need a literal in the middle of the command.
fn generate_catalogue_aliases(count: usize) -> Vec<Alias> {
    (0..count)
        .map(|i| {
            let verb = VERBS[i % VERBS.len()];
            let noun = format!("{}{i}", NOUNS[(i / VERBS.len()) % NOUNS.len()]);
            let formats = vec![
                plain(format!("{verb} {noun} {{{{target}}}}")),
                plain(format!("{noun} {verb} status {{{{level=info}}}}")),
                FormatEntry::Object(FormatObject {
                    display: Some(format!("{verb} <target> on {noun} [with <options>]")),
                    representation: Some(Representation::Many(vec![
                        format!("{verb} {{{{target}}}} on {noun}"),
                        format!("{verb} {{{{target}}}} on {noun} with {{{{options}}}}"),
                    ])),
                    match_multiple: None,
                }),
            ];
            let mut alias = Alias::new(PACKS[i % PACKS.len()], &format!("{verb}_{noun}"), formats);
            alias.description = Some(format!("{verb} {noun}: generated alias {i}"));
            alias
        })
        .collect()
}

/// Building the index (parsing every format, grouping the prefilter); the aliases are
/// cloned outside the measurement.
fn build_index(c: &mut Criterion) {
    let mut group = c.benchmark_group("build");
    group.sample_size(10);
    for (label, aliases) in [
        ("index/10000_aliases", generate_aliases(10_000)),
        (
            "index/10000_catalogue_aliases",
            generate_catalogue_aliases(10_000),
        ),
    ] {
        group.bench_function(label, |b| {
            b.iter_batched(
                || aliases.clone(),
                |aliases| AliasIndex::new(black_box(aliases)),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

/// What a command pays when the format it needs is not among the compiled ones kept
/// (`st2_alias::COMPILED_CACHE`): compiling it and matching once.
fn compile_on_miss(c: &mut Criterion) {
    let format = "deploy service42 {{name}} on {{env=staging}}";
    let command = PreparedCommand::new("deploy service42 api-gateway on prod").expect("prepared");
    assert!(
        CompiledFormat::new(format)
            .extract(&command, false)
            .is_ok_and(|params| params.len() == 1)
    );
    c.bench_function("compile/format_and_first_match", |b| {
        b.iter(|| CompiledFormat::new(black_box(format)).extract(&command, false))
    });
}

criterion_group!(
    benches,
    resolve_10000,
    resolve_50,
    build_index,
    compile_on_miss
);
criterion_main!(benches);
