//! Every type that holds a credential has a `Debug` that cannot print it: a scan of the
//! source of every crate in the workspace for `#[derive(..Debug..)]` structs and enums with
//! a field named like a credential (`token`, `password`, `secret`, `api_key`,
//! `access_token`, or ending in `_token`, `_password`, `_secret`). Such a field must have the
//! redacting `Secret` wrapper as its type (or `SecretRef`, which names where a secret is,
//! not the secret); otherwise the type needs a hand-written `Debug` that redacts it. Only
//! text-like fields count (`String`, `&str`, bytes, JSON): `secret: bool` holds no secret.

use std::path::{Path, PathBuf};

const CRATES: &[&str] = &[
    "src",
    "bot-config/src",
    "bot-runtime/src",
    "bot-macros/src",
    "st2-alias/src",
    "st2-sim/src",
];

/// Files exempt, and why.
const EXEMPT: &[(&str, &str)] = &[(
    "bot-config/src/raw.rs",
    "the definition as written: secret references (`${VAR}`, `file:`); a clear-text value is \
     refused by the secrets check, which prints `***` in its place, and raw values are never \
     logged",
)];

fn credential_name(field: &str) -> bool {
    matches!(
        field,
        "token" | "password" | "secret" | "api_key" | "access_token"
    ) || ["_token", "_password", "_secret"]
        .iter()
        .any(|suffix| field.ends_with(suffix))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `(line, field, type)` of credential-named fields in `derive(Debug)` items of `source`.
fn offenders(source: &str) -> Vec<(usize, String, String)> {
    let lines: Vec<&str> = source.lines().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        let derives_debug = line.starts_with("#[derive(")
            && line
                .trim_start_matches("#[derive(")
                .split([',', ')'])
                .any(|d| d.trim() == "Debug");
        if !derives_debug {
            i += 1;
            continue;
        }
        // The item follows after more attributes; its body is the brace block.
        let mut j = i + 1;
        while j < lines.len() && !lines[j].contains("struct ") && !lines[j].contains("enum ") {
            j += 1;
        }
        if j >= lines.len() || !lines[j].trim_end().ends_with('{') {
            i = j;
            continue;
        }
        let mut depth = 0i32;
        let mut k = j;
        while k < lines.len() {
            let text = lines[k];
            depth += text.matches('{').count() as i32 - text.matches('}').count() as i32;
            let field = text
                .trim()
                .trim_start_matches("pub(crate) ")
                .trim_start_matches("pub ");
            if k > j
                && let Some((name, ty)) = field.split_once(':')
                && !name.contains(' ')
                && !name.starts_with("//")
                && credential_name(name.trim())
                && !ty.contains("Secret")
                && ["String", "str", "u8", "Value"]
                    .iter()
                    .any(|t| ty.contains(t))
            {
                found.push((
                    k + 1,
                    name.trim().to_owned(),
                    ty.trim().trim_end_matches(',').to_owned(),
                ));
            }
            if depth <= 0 && k > j {
                break;
            }
            k += 1;
        }
        i = k + 1;
    }
    found
}

#[test]
fn every_type_holding_a_credential_redacts_it_in_debug() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in CRATES {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 50, "found only {} source files", files.len());
    let mut problems = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(root).unwrap_or(file);
        if EXEMPT
            .iter()
            .any(|(path, _why)| relative == Path::new(path))
        {
            continue;
        }
        let source = std::fs::read_to_string(file).unwrap();
        for (line, field, ty) in offenders(&source) {
            problems.push(format!(
                "{}:{line}: `{field}: {ty}` in a type deriving Debug",
                relative.display()
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "credentials printable through Debug; wrap them in `Secret` or write a redacting Debug:\n{}",
        problems.join("\n")
    );
}

/// The scan finds what it is meant to find (so that an empty result means something).
#[test]
fn the_scan_flags_a_plain_credential_and_accepts_the_wrapper() {
    let flagged = offenders(
        "#[derive(Debug, Deserialize)]\npub(crate) struct LoginResponse {\n    pub(crate) user_id: String,\n    #[serde(default)]\n    pub(crate) access_token: Option<String>,\n}\n",
    );
    assert_eq!(
        flagged,
        vec![(5, "access_token".to_owned(), "Option<String>".to_owned())]
    );
    assert!(
        offenders("#[derive(Clone, Debug)]\nstruct A {\n    token: Secret,\n    bot_token: SecretRef,\n}\n")
            .is_empty()
    );
    assert!(
        offenders("#[derive(Deserialize)]\nstruct B {\n    password: String,\n}\n").is_empty(),
        "no derived Debug: a manual one is expected"
    );
    assert_eq!(
        offenders("#[derive(Debug)]\nenum C {\n    Login { user: String, password: String },\n    Other {\n        api_key: String,\n    },\n}\n")
            .len(),
        1,
        "struct variants one per line are checked"
    );
}
