//! The `templates` table of `docs/definition.md` lists, for each slot, exactly the variables
//! its context declares (`bot_config::templates::SLOTS`), so the documentation cannot drift
//! from what the build-time check allows and the runtime fills.

use std::path::Path;

use bot_config::templates::{SLOTS, Var};

/// How the table writes a slot's variables: `execution.id` for the fields of an object,
/// `context.*` for free-form JSON, `suggestions` (list) for a list.
fn documented(prefix: &str, vars: &[(&str, Var)], out: &mut Vec<String>) {
    for (name, var) in vars {
        let path = format!("{prefix}{name}");
        match var {
            Var::Leaf => out.push(format!("`{path}`")),
            Var::List => out.push(format!("`{path}` (list)")),
            Var::Open => out.push(format!("`{path}.*`")),
            Var::Object(fields) => documented(&format!("{path}."), fields, out),
        }
    }
}

#[test]
fn the_templates_table_lists_each_slots_variables() {
    let docs = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/definition.md"),
    )
    .expect("docs exist");
    for slot in SLOTS {
        let row = docs
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", slot.name)))
            .unwrap_or_else(|| {
                panic!("docs/definition.md has no row for template `{}`", slot.name)
            });
        let cells: Vec<&str> = row.split(" | ").collect();
        let mut want = Vec::new();
        documented("", slot.vars, &mut want);
        assert_eq!(
            cells.get(2).copied(),
            Some(want.join(", ").as_str()),
            "the variables of `{}` in docs/definition.md",
            slot.name
        );
    }
}
