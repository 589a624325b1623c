//! Criterion benchmark of build-time catalogue validation: a definition naming a directory
//! of 100 packs with 100 aliases each (10,000 alias files, plus one action file per alias),
//! loaded through `bot_config::load_in` as the `bot!` macro and `build.rs` do: reading every
//! file, compiling every format, and running every catalogue check (formats, examples,
//! actions, ambiguity, templates, rules, who may run what).
//! Run with `cargo bench -p bot-config --bench catalogue`.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use bot_config::SourceFile;
use criterion::{Criterion, criterion_group, criterion_main};

const PACKS: usize = 100;
const ALIASES_PER_PACK: usize = 100;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("has a parent")).expect("create dir");
    std::fs::write(path, text).expect("write fixture");
}

/// The packs and the definition in a fresh temporary directory; returns the directory.
fn fixture() -> PathBuf {
    let root = std::env::temp_dir().join(format!("st2bot-catalogue-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for p in 0..PACKS {
        let pack = format!("pack{p}");
        write(
            &root.join(format!("packs/{pack}/pack.yaml")),
            &format!("ref: {pack}\nname: {pack}\n"),
        );
        for a in 0..ALIASES_PER_PACK {
            let name = format!("op{a}");
            // A realistic mix: plain formats, objects with a display and two
            // representations, defaults, and a few regular expressions.
            let formats = match a % 4 {
                0 => format!("  - \"{pack} {name} {{{{target}}}}\"\n"),
                1 => format!(
                    "  - display: \"{pack} {name} {{{{target}}}} to {{{{env=staging}}}}\"\n    representation:\n      - \"{pack} {name} {{{{target}}}} to {{{{env=staging}}}}\"\n      - \"{pack} {name} {{{{target}}}}\"\n"
                ),
                2 => format!(
                    "  - \"{pack} {name} {{{{target}}}} on {{{{hosts}}}}\"\n  - \"{pack} {name}-all\"\n"
                ),
                _ => format!("  - \"{pack} {name} (?P<target>[a-z0-9-]+)\"\n"),
            };
            write(
                &root.join(format!("packs/{pack}/aliases/{name}.yaml")),
                &format!(
                    "---\nname: {name}\npack: {pack}\naction_ref: {pack}.{name}\ndescription: operation {a} of {pack}\nformats:\n{formats}result:\n  format: \"done {{{{ execution.parameters.target }}}}\"\n"
                ),
            );
            write(
                &root.join(format!("packs/{pack}/actions/{name}.yaml")),
                &format!(
                    "---\nname: {name}\nrunner_type: local-shell-cmd\nparameters:\n  target: {{type: string}}\n  env: {{type: string}}\n  hosts: {{type: string}}\n"
                ),
            );
        }
    }
    write(
        &root.join("bench.yaml"),
        "name: bench\nbackend:\n  kind: text\nstackstorm:\n  url: http://127.0.0.1:9101\n  auth:\n    api_key: ${ST2_API_KEY}\n  catalogue:\n    packs: [packs]\naccess:\n  default: deny\n  rules:\n    - allow: { users: [\"@ops\"], commands: [\"pack1*\", \"pack2.op1\"] }\n    - allow: { users: [alice], commands: [\"pack*\"] }\ngroups:\n  ops: [bob, carol]\n",
    );
    root
}

fn catalogue(c: &mut Criterion) {
    let root = fixture();
    let file = SourceFile::new(
        "bench.yaml",
        std::fs::read_to_string(root.join("bench.yaml")).expect("definition"),
    );
    let loaded = bot_config::load_in(&file, &root);
    if let Err(errors) = &loaded.result {
        panic!(
            "the benchmark definition must be valid: {:?}",
            errors.first()
        );
    }
    assert_eq!(loaded.inputs.len(), PACKS * (1 + 2 * ALIASES_PER_PACK));
    let mut group = c.benchmark_group("catalogue");
    group.sample_size(10);
    group.bench_function("load_10000_aliases", |b| {
        b.iter(|| bot_config::load_in(black_box(&file), black_box(&root)))
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&root);
}

criterion_group!(benches, catalogue);
criterion_main!(benches);
