//! `st2bot-lint PACKS…`: the catalogue checks of st2bot's build (formats StackStorm would
//! reject, help texts their formats do not match, aliases whose action is missing, aliases
//! ambiguous with each other, alias templates naming unknown parameters) for pack
//! repositories, with no bot definition. Output for people (`--format human`, the default),
//! for scripts (`--format json`) and for code review tools (`--format sarif`, SARIF 2.1.0).
//! Exit status: 0 when clean, 1 when a check failed, 2 on a usage error.

use std::path::PathBuf;
use std::process::ExitCode;

use bot_config::catalogue::{Catalogue, SourcePath};
use bot_config::{Diagnostic, SourceFile, Span};
use serde_json::{Value, json};

const USAGE: &str = "usage: st2bot-lint [--format human|json|sarif] [--export FILE]... PACKS...

Checks StackStorm packs (a pack directory, or a directory of packs) the way st2bot checks
its catalogue at build time. `--export` adds `st2 action-alias list -j` or
`st2 action list -j` output. Exit status: 0 clean, 1 problems found, 2 usage error.";

/// How to print the findings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Human,
    Json,
    Sarif,
}

/// The command line, parsed.
#[derive(Debug, PartialEq, Eq)]
struct Args {
    format: Format,
    packs: Vec<String>,
    exports: Vec<String>,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut parsed = Args {
        format: Format::Human,
        packs: Vec::new(),
        exports: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--format" => {
                parsed.format = match it.next().map(String::as_str) {
                    Some("human") => Format::Human,
                    Some("json") => Format::Json,
                    Some("sarif") => Format::Sarif,
                    other => {
                        return Err(format!(
                            "--format takes `human`, `json` or `sarif`, not {}",
                            other.map_or("nothing".to_owned(), |o| format!("`{o}`"))
                        ));
                    }
                }
            }
            "--export" => match it.next() {
                Some(file) => parsed.exports.push(file.clone()),
                None => return Err("--export takes a file".to_owned()),
            },
            flag if flag.starts_with('-') => return Err(format!("unknown option `{flag}`")),
            path => parsed.packs.push(path.to_owned()),
        }
    }
    if parsed.packs.is_empty() && parsed.exports.is_empty() {
        return Err("name at least one pack directory".to_owned());
    }
    Ok(parsed)
}

fn sources(paths: &[String]) -> Vec<SourcePath> {
    paths
        .iter()
        .map(|p| SourcePath {
            path: PathBuf::from(p),
            display: p.trim_end_matches('/').to_owned(),
            span: Span::FILE,
        })
        .collect()
}

/// Reads the packs and runs every check: read problems first, then the checks' findings.
fn lint(args: &Args) -> Vec<Diagnostic> {
    let (catalogue, mut found) = Catalogue::read(&sources(&args.packs), &sources(&args.exports));
    found.extend(catalogue.lint());
    found
}

/// What a diagnostic without its own file is about: the command line.
fn command_line() -> SourceFile {
    SourceFile::new("st2bot-lint", "")
}

fn to_json(d: &Diagnostic) -> Value {
    let definition = command_line();
    let file = d.file(&definition);
    json!({
        "id": d.id,
        "severity": d.severity.as_str(),
        "file": file.display,
        "line": d.span.line,
        "column": d.span.column,
        "message": d.message,
        "label": d.label,
        "help": d.help,
        "note": d.note,
    })
}

/// SARIF 2.1.0, one run, one rule per diagnostic id.
fn to_sarif(found: &[Diagnostic]) -> Value {
    let definition = command_line();
    let mut rules: Vec<&str> = found.iter().map(|d| d.id.as_str()).collect();
    rules.sort_unstable();
    rules.dedup();
    let results: Vec<Value> = found
        .iter()
        .map(|d| {
            let mut text = d.message.clone();
            for extra in [&d.help, &d.note].into_iter().flatten() {
                text.push_str(&format!("\n{extra}"));
            }
            let mut location = json!({
                "physicalLocation": {
                    "artifactLocation": { "uri": d.file(&definition).display },
                }
            });
            if d.span.line > 0 {
                location["physicalLocation"]["region"] = json!({
                    "startLine": d.span.line,
                    "startColumn": d.span.column.max(1),
                    "endColumn": d.span.column.max(1) + d.span.len.max(1),
                });
            }
            json!({
                "ruleId": d.id,
                "level": if d.is_warning() { "warning" } else { "error" },
                "message": { "text": text },
                "locations": [location],
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "st2bot-lint",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules.iter().map(|id| json!({ "id": id })).collect::<Vec<_>>(),
            }},
            "results": results,
        }],
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&args) {
        Ok(a) => a,
        Err(message) if message.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("st2bot-lint: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let found = lint(&args);
    match args.format {
        Format::Human => {
            let definition = command_line();
            for d in &found {
                eprintln!("{}\n", d.render_long(&definition));
            }
            let errors = found.iter().filter(|d| !d.is_warning()).count();
            eprintln!(
                "st2bot-lint: {errors} error{} in {}",
                if errors == 1 { "" } else { "s" },
                args.packs
                    .iter()
                    .chain(&args.exports)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Format::Json => {
            let list: Vec<Value> = found.iter().map(to_json).collect();
            println!("{}", Value::Array(list));
        }
        Format::Sarif => println!("{}", to_sarif(&found)),
    }
    if found.iter().any(|d| !d.is_warning()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parses_formats_exports_and_packs() {
        let args = parse_args(&strings(&[
            "--format", "sarif", "--export", "a.json", "packs",
        ]))
        .expect("valid");
        assert_eq!(
            args,
            Args {
                format: Format::Sarif,
                packs: vec!["packs".into()],
                exports: vec!["a.json".into()]
            }
        );
        assert!(parse_args(&strings(&["--format", "xml", "p"])).is_err());
        assert!(parse_args(&strings(&["--frmat", "p"])).is_err());
        assert!(parse_args(&[]).is_err());
    }
}
