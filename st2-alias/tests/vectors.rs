//! Conformance against StackStorm's own results: every case of `format_cases.jsonl` and
//! `alias_sets.jsonl` in `tests/data/st2-vectors/` (a copy of the project's shared vectors,
//! produced by StackStorm's Python code, see that folder's README), and of the extra differential cases in `tests/data/` (produced the same
//! way by `tests/data/differential.py`). The files are required; a missing file or any
//! disagreeing case fails, after printing every disagreeing id with what was expected and
//! what came out.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;
use st2_alias::{Alias, AliasIndex, ExtractError, Match, Params, ResolveError, extract_parameters};

/// StackStorm's vectors, kept in the repository so a fresh clone runs these tests.
const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/st2-vectors/");
/// This crate's extra differential cases.
const DIFFERENTIAL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/");

fn read_cases<T: for<'de> Deserialize<'de>>(folder: &str, file: &str) -> Vec<T> {
    let path = PathBuf::from(folder).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!(
            "conformance vectors missing: cannot read {}: {error}",
            path.display()
        )
    });
    let cases: Vec<T> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(n, line)| {
            serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("{file} line {}: {error}", n + 1))
        })
        .collect();
    assert!(!cases.is_empty(), "{file} holds no case");
    cases
}

#[derive(Deserialize)]
struct ErrorExpect {
    #[serde(rename = "type")]
    kind: String,
    message: String,
    #[serde(default)]
    match_count: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FormatExpect {
    #[serde(default)]
    params: Option<Params>,
    #[serde(default)]
    params_list: Option<Vec<Params>>,
    #[serde(default)]
    error: Option<ErrorExpect>,
}

#[derive(Deserialize)]
struct FormatCase {
    id: String,
    format: String,
    command: String,
    #[serde(default)]
    match_multiple: bool,
    expect: FormatExpect,
}

/// Compares an extraction with the expected parameters or error; `Err` describes a mismatch.
fn check_extraction(
    actual: &Result<Vec<Params>, ExtractError>,
    params: Option<&Params>,
    params_list: Option<&Vec<Params>>,
    error: Option<&ErrorExpect>,
) -> Result<(), String> {
    let ok = match (params, params_list, error, actual) {
        (Some(expected), None, None, Ok(list)) => list.len() == 1 && &list[0] == expected,
        (None, Some(expected), None, Ok(list)) => list == expected,
        (None, None, Some(e), Err(ExtractError::Parse(message))) => {
            e.kind == "ParseException" && *message == e.message
        }
        // Besides `re.error`, `re.compile` raises `OverflowError` (huge repeat counts) and
        // `ValueError` (incompatible flags), and StackStorm itself a `KeyError` for a default
        // written across lines: all fail the call like an invalid format.
        (None, None, Some(e), Err(ExtractError::InvalidFormat(_))) => {
            matches!(
                e.kind.as_str(),
                "re.error" | "KeyError" | "OverflowError" | "ValueError"
            )
        }
        (None, None, Some(e), Err(ExtractError::AliasDisabled(_))) => {
            e.kind == "Disabled"
                && actual.as_ref().err().map(ToString::to_string) == Some(e.message.clone())
        }
        (None, None, Some(e), Err(ExtractError::FormatNotAvailable { .. })) => {
            e.kind == "ValueError"
                && actual.as_ref().err().map(ToString::to_string) == Some(e.message.clone())
        }
        (None, None, Some(e), Err(ExtractError::MissingMatchMultiple)) => e.kind == "KeyError",
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        let expected = match (params, params_list, error) {
            (Some(p), _, _) => serde_json::to_string(p).unwrap_or_default(),
            (_, Some(l), _) => serde_json::to_string(l).unwrap_or_default(),
            (_, _, Some(e)) => format!("{}: {}", e.kind, e.message),
            _ => "nothing".to_owned(),
        };
        let actual = match actual {
            Ok(list) => serde_json::to_string(list).unwrap_or_default(),
            Err(error) => format!("{error:?}"),
        };
        Err(format!("expected {expected}\n    actual   {actual}"))
    }
}

#[test]
fn format_cases_match_stackstorm() {
    check_format_file(VECTORS, "format_cases.jsonl");
}

#[test]
fn differential_format_cases_match_stackstorm() {
    check_format_file(DIFFERENTIAL, "differential.formats.jsonl");
}

fn check_format_file(folder: &str, file: &str) {
    let cases: Vec<FormatCase> = read_cases(folder, file);
    let mut failures = Vec::new();
    let mut same_python_message = 0;
    let mut python_errors = 0;
    for case in &cases {
        let actual = extract_parameters(&case.format, &case.command, case.match_multiple);
        if let (Some(e), Err(ExtractError::InvalidFormat(reason))) = (&case.expect.error, &actual) {
            python_errors += 1;
            if *reason == e.message {
                same_python_message += 1;
            }
        }
        if let Err(problem) = check_extraction(
            &actual,
            case.expect.params.as_ref(),
            case.expect.params_list.as_ref(),
            case.expect.error.as_ref(),
        ) {
            failures.push(format!(
                "{} format={:?} command={:?} multiple={}\n    {problem}",
                case.id, case.format, case.command, case.match_multiple
            ));
        }
    }
    println!(
        "{file}: {} passed, {} failed ({same_python_message}/{python_errors} re.error messages identical to Python's)",
        cases.len() - failures.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{file}: {} of {} format cases disagree with StackStorm:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[derive(Deserialize)]
struct ExpectedMatch {
    alias: String,
    format: Value,
    display: Option<String>,
    representation: String,
    /// `None`: no key (a display-only entry); `Some(None)`: `null`, kept from the alias.
    #[serde(default, deserialize_with = "present")]
    match_multiple: Option<Option<bool>>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<bool>>, D::Error> {
    Option::<bool>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ResolvedExpect {
    Error { error: ErrorExpect },
    Match(ExpectedMatch),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetExpect {
    #[serde(default)]
    matches: Option<Vec<ExpectedMatch>>,
    #[serde(default)]
    matches_error: Option<ErrorExpect>,
    resolved: ResolvedExpect,
    #[serde(default)]
    execution_params: Option<Vec<Params>>,
    #[serde(default)]
    execution_error: Option<ErrorExpect>,
}

#[derive(Deserialize)]
struct SetCase {
    id: String,
    aliases: Vec<Alias>,
    command: String,
    expect: SetExpect,
}

fn same_match(actual: &Match, expected: &ExpectedMatch) -> bool {
    actual.alias_ref == expected.alias
        && serde_json::to_value(&actual.format).ok().as_ref() == Some(&expected.format)
        && actual.display == expected.display
        && actual.representation == expected.representation
        && match expected.match_multiple {
            None => actual.display_only && actual.match_multiple.is_none(),
            Some(value) => !actual.display_only && actual.match_multiple == value,
        }
}

fn describe_matches(matches: &Result<Vec<Match>, ExtractError>) -> String {
    match matches {
        Ok(list) => list
            .iter()
            .map(|m| {
                format!(
                    "{}:{:?}:{:?}",
                    m.alias_ref, m.representation, m.match_multiple
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
        Err(error) => format!("{error:?}"),
    }
}

fn check_set(case: &SetCase) -> Vec<String> {
    let mut problems = Vec::new();
    let index = AliasIndex::new(case.aliases.clone());

    let matches = index.matches(&case.command);
    let matches_ok = match (&case.expect.matches, &case.expect.matches_error, &matches) {
        (Some(expected), None, Ok(actual)) => {
            actual.len() == expected.len()
                && actual.iter().zip(expected).all(|(a, e)| same_match(a, e))
        }
        (None, Some(e), Err(ExtractError::InvalidFormat(_))) => e.kind == "re.error",
        _ => false,
    };
    if !matches_ok {
        let expected = match (&case.expect.matches, &case.expect.matches_error) {
            (Some(list), _) => list
                .iter()
                .map(|m| format!("{}:{:?}:{:?}", m.alias, m.representation, m.match_multiple))
                .collect::<Vec<_>>()
                .join(", "),
            (_, Some(e)) => format!("{}: {}", e.kind, e.message),
            _ => "nothing".to_owned(),
        };
        problems.push(format!(
            "matches: expected [{expected}]\n    actual   [{}]",
            describe_matches(&matches)
        ));
    }

    let resolved = index.resolve(&case.command);
    let resolved_ok = match (&case.expect.resolved, &resolved) {
        (ResolvedExpect::Match(expected), Ok(actual)) => same_match(actual, expected),
        (ResolvedExpect::Error { error }, Err(actual)) => match actual {
            ResolveError::InvalidFormat { .. } => error.kind == "re.error",
            other => {
                error.kind == "ActionAliasAmbiguityException"
                    && other.to_string() == error.message
                    && other.match_count() == error.match_count
            }
        },
        _ => false,
    };
    if !resolved_ok {
        let expected = match &case.expect.resolved {
            ResolvedExpect::Match(m) => format!("{}:{:?}", m.alias, m.representation),
            ResolvedExpect::Error { error } => {
                format!(
                    "{}: {} (count {:?})",
                    error.kind, error.message, error.match_count
                )
            }
        };
        let actual = match &resolved {
            Ok(r) => format!("{}:{:?}", r.alias_ref, r.representation),
            Err(e) => format!("{e:?} = {e} (count {:?})", e.match_count()),
        };
        problems.push(format!(
            "resolved: expected {expected}\n    actual   {actual}"
        ));
    }

    if let Ok(resolved) = &resolved
        && (case.expect.execution_params.is_some() || case.expect.execution_error.is_some())
    {
        let actual = index.execution_params(resolved, &case.command);
        if let Err(problem) = check_extraction(
            &actual,
            None,
            case.expect.execution_params.as_ref(),
            case.expect.execution_error.as_ref(),
        ) {
            problems.push(format!("execution: {problem}"));
        }
    }
    problems
}

#[test]
fn alias_sets_match_stackstorm() {
    check_set_file(VECTORS, "alias_sets.jsonl");
}

#[test]
fn differential_alias_sets_match_stackstorm() {
    check_set_file(DIFFERENTIAL, "differential.sets.jsonl");
}

fn check_set_file(folder: &str, file: &str) {
    let cases: Vec<SetCase> = read_cases(folder, file);
    let mut failures = Vec::new();
    for case in &cases {
        let problems = check_set(case);
        if !problems.is_empty() {
            failures.push(format!(
                "{} command={:?}\n  {}",
                case.id,
                case.command,
                problems.join("\n  ")
            ));
        }
    }
    println!(
        "{file}: {} passed, {} failed",
        cases.len() - failures.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{file}: {} of {} alias sets disagree with StackStorm:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
