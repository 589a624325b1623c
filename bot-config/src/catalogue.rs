//! The site's StackStorm catalogue, read at build time: the action aliases and actions a
//! bot definition's access rules are checked against.
//!
//! Read [`Catalogue::read`] first. A catalogue comes from pack directories (as in a pack
//! repository or `/opt/stackstorm/packs`: `<pack>/aliases/*.yaml`, `<pack>/actions/*.yaml`)
//! and/or JSON exports (`st2 action-alias list -j`, `st2 action list -j`; which of the two a
//! file holds is told from its content). Every alias keeps the file it came from and the
//! positions of its name, action and formats, so a check can point into the alias file.
//! Every file read is listed in [`Catalogue::inputs`] for the build to track.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;
use st2_alias::Alias;

use crate::diagnostic::{Diagnostic, DiagnosticId};
use crate::source::{SourceFile, Span, Spanned};

/// Everything read from the catalogue's sources.
#[derive(Debug, Default)]
pub struct Catalogue {
    /// The aliases, in the order read (packs sorted by name, files by name).
    pub aliases: Vec<CatalogueAlias>,
    /// The actions by ref (`pack.name`); empty when no source lists actions.
    pub actions: BTreeMap<String, Action>,
    /// Whether any source listed actions (only then is a missing action an error).
    pub actions_known: bool,
    /// Every file read, as a filesystem path (for `include_bytes!`/`rerun-if-changed`).
    pub inputs: Vec<PathBuf>,
}

/// One action of the catalogue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Action {
    /// `pack.name`.
    pub reference: String,
    /// The names under `parameters:`.
    pub parameters: BTreeSet<String>,
}

/// One alias with where it was written.
#[derive(Clone, Debug)]
pub struct CatalogueAlias {
    /// The alias document, as StackStorm would register it.
    pub alias: Alias,
    /// The file it was read from.
    pub file: Arc<SourceFile>,
    /// Where the alias's `name` is written (the file as a whole when unknown).
    pub name_span: Span,
    /// Where `action_ref` is written.
    pub action_span: Span,
    /// Per `formats` entry, in order.
    pub formats: Vec<FormatSpans>,
    /// `ack.format` and `result.format` (Jinja, rendered by StackStorm): key, text, span.
    pub templates: Vec<(&'static str, String, Span)>,
}

/// Where one `formats` entry and its parts are written.
#[derive(Clone, Debug, Default)]
pub struct FormatSpans {
    /// The entry itself.
    pub entry: Span,
    /// Its `display`, for an object.
    pub display: Option<Span>,
    /// Each representation (for a plain string: the entry itself).
    pub representations: Vec<Span>,
}

/// A catalogue source as named by the user.
#[derive(Clone, Debug)]
pub struct SourcePath {
    /// The path on this machine.
    pub path: PathBuf,
    /// The path to show (relative, with `/`).
    pub display: String,
    /// Where the path is written in the bot definition ([`Span::FILE`] when it was given
    /// elsewhere, for example on a command line).
    pub span: Span,
}

impl Catalogue {
    /// Reads every pack directory and export. Problems (an unreadable path, a file that is
    /// not a valid alias) come back as diagnostics; what could be read is kept.
    pub fn read(packs: &[SourcePath], exports: &[SourcePath]) -> (Catalogue, Vec<Diagnostic>) {
        let mut reader = Reader::default();
        for source in packs {
            reader.packs_root(source);
        }
        for source in exports {
            reader.export(source);
        }
        (reader.catalogue, reader.problems)
    }

    /// The rules that need only the catalogue (what `st2bot-lint` runs on pack
    /// directories): every error, sorted by file and position.
    pub fn lint(&self) -> Vec<Diagnostic> {
        let mut d = crate::diagnostic::Diagnostics::new();
        let index =
            st2_alias::AliasIndex::new(self.aliases.iter().map(|a| a.alias.clone()).collect());
        crate::check::catalogue::lint(&mut d, self, &index);
        match d.finish() {
            Ok(warnings) => warnings,
            Err(errors) => errors,
        }
    }

    /// The alias refs, in order.
    pub fn alias_refs(&self) -> impl Iterator<Item = &str> {
        self.aliases.iter().map(|a| a.alias.reference())
    }
}

#[derive(Default)]
struct Reader {
    catalogue: Catalogue,
    problems: Vec<Diagnostic>,
}

/// The keys of an alias file this module needs positions for; the rest is read as JSON.
#[derive(Deserialize)]
struct AliasPositions {
    #[serde(default)]
    name: Option<Spanned<Value>>,
    #[serde(default)]
    action_ref: Option<Spanned<Value>>,
    #[serde(default)]
    formats: Option<Vec<Spanned<Value>>>,
}

fn sorted_entries(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    Ok(entries)
}

fn is_yaml(path: &Path) -> bool {
    path.is_file() && path.extension().is_some_and(|e| e == "yaml" || e == "yml")
}

fn join_display(base: &str, name: &str) -> String {
    if base.is_empty() || base == "." {
        name.to_owned()
    } else {
        format!("{}/{name}", base.trim_end_matches('/'))
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl Reader {
    fn problem(&mut self, d: Diagnostic) {
        self.problems.push(d);
    }

    fn read_text(&mut self, path: &Path, display: &str, at: &SourcePath) -> Option<String> {
        self.catalogue.inputs.push(path.to_owned());
        match fs::read_to_string(path) {
            Ok(text) => Some(text),
            Err(e) => {
                self.problem(
                    Diagnostic::new(
                        DiagnosticId::CatalogueUnreadable,
                        at.span,
                        format!("cannot read `{display}`: {e}"),
                        "named here",
                    )
                    .help("check the path; catalogue paths are relative to the bot definition"),
                );
                None
            }
        }
    }

    /// A directory of packs, or one pack directory (it has a `pack.yaml`, `aliases/` or
    /// `actions/`).
    fn packs_root(&mut self, source: &SourcePath) {
        if !source.path.is_dir() {
            self.problem(
                Diagnostic::new(
                    DiagnosticId::CatalogueUnreadable,
                    source.span,
                    format!("`{}` is not a directory", source.display),
                    "no such directory",
                )
                .help("name a directory of packs (`<pack>/aliases/*.yaml`) relative to the bot definition"),
            );
            return;
        }
        let is_pack = |p: &Path| {
            p.join("pack.yaml").is_file()
                || p.join("aliases").is_dir()
                || p.join("actions").is_dir()
        };
        if is_pack(&source.path) {
            self.pack(&source.path, &source.display, source);
            return;
        }
        match sorted_entries(&source.path) {
            Ok(entries) => {
                for entry in entries.iter().filter(|p| p.is_dir() && is_pack(p)) {
                    let display = join_display(&source.display, &file_name(entry));
                    self.pack(entry, &display, source);
                }
            }
            Err(e) => self.problem(Diagnostic::new(
                DiagnosticId::CatalogueUnreadable,
                source.span,
                format!("cannot list `{}`: {e}", source.display),
                "named here",
            )),
        }
    }

    /// One pack: its name (`pack.yaml`'s `ref`, else its `name`, else the directory's
    /// name), then its aliases and actions.
    fn pack(&mut self, dir: &Path, display: &str, source: &SourcePath) {
        let mut pack = file_name(dir);
        let meta = dir.join("pack.yaml");
        if meta.is_file() {
            let meta_display = join_display(display, "pack.yaml");
            if let Some(text) = self.read_text(&meta, &meta_display, source) {
                match serde_saphyr::from_str::<Value>(&text) {
                    Ok(v) => {
                        if let Some(name) = ["ref", "name"]
                            .iter()
                            .find_map(|k| v.get(k).and_then(Value::as_str))
                        {
                            pack = name.to_owned();
                        }
                    }
                    Err(e) => {
                        let file = Arc::new(SourceFile::new(meta_display, text));
                        self.problem(syntax_error(&e, file));
                    }
                }
            }
        }
        for (sub, is_alias) in [("aliases", true), ("actions", false)] {
            let sub_dir = dir.join(sub);
            if !sub_dir.is_dir() {
                continue;
            }
            let Ok(files) = sorted_entries(&sub_dir) else {
                continue;
            };
            if !is_alias {
                self.catalogue.actions_known = true;
            }
            for path in files.iter().filter(|p| is_yaml(p)) {
                let file_display = join_display(&join_display(display, sub), &file_name(path));
                let Some(text) = self.read_text(path, &file_display, source) else {
                    continue;
                };
                let file = Arc::new(SourceFile::new(file_display, text));
                if is_alias {
                    self.alias_file(&pack, file);
                } else {
                    self.action_file(&pack, &file);
                }
            }
        }
    }

    fn alias_file(&mut self, pack: &str, file: Arc<SourceFile>) {
        let value = match serde_saphyr::from_str::<Value>(&file.text) {
            Ok(v) => v,
            Err(e) => return self.problem(syntax_error(&e, file)),
        };
        let positions = serde_saphyr::from_str::<AliasPositions>(&file.text).ok();
        let Some(mut object) = value.as_object().cloned() else {
            return self.problem(
                Diagnostic::new(
                    DiagnosticId::InvalidAlias,
                    Span::FILE,
                    "an alias file must be a mapping with `name`, `action_ref` and `formats`",
                    "",
                )
                .in_file(file),
            );
        };
        // StackStorm registers an alias under the pack it was found in.
        object.insert("pack".into(), Value::String(pack.to_owned()));
        object.remove("ref");
        let alias = match serde_json::from_value::<Alias>(Value::Object(object)) {
            Ok(a) => a,
            Err(e) => {
                let missing_name = e.to_string().contains("`name`");
                return self.problem(
                    Diagnostic::new(
                        DiagnosticId::InvalidAlias,
                        Span::FILE,
                        if missing_name {
                            "this alias has no `name`".to_owned()
                        } else {
                            format!("this is not a valid action alias: {e}")
                        },
                        "",
                    )
                    .help("an alias needs `name`, `action_ref` and `formats` (a list of strings or `{display, representation}` objects)")
                    .in_file(file),
                );
            }
        };
        let name_span = positions
            .as_ref()
            .and_then(|p| p.name.as_ref())
            .map(Span::of)
            .unwrap_or(Span::FILE);
        let action_span = positions
            .as_ref()
            .and_then(|p| p.action_ref.as_ref())
            .map(Span::of)
            .unwrap_or(name_span);
        let entry_spans: Vec<Span> = positions
            .and_then(|p| p.formats)
            .map(|f| f.iter().map(Span::of).collect())
            .unwrap_or_default();
        let formats = alias
            .formats
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let at = entry_spans.get(i).copied().unwrap_or(name_span);
                format_spans(&file, entry, at)
            })
            .collect();
        let templates = alias_templates(&alias, &file, name_span);
        self.catalogue.aliases.push(CatalogueAlias {
            alias,
            file,
            name_span,
            action_span,
            formats,
            templates,
        });
    }

    fn action_file(&mut self, pack: &str, file: &Arc<SourceFile>) {
        match serde_saphyr::from_str::<Value>(&file.text) {
            Ok(v) => self.action(pack, &v),
            Err(e) => self.problem(syntax_error(&e, file.clone())),
        }
    }

    fn action(&mut self, pack: &str, v: &Value) {
        let Some(name) = v.get("name").and_then(Value::as_str) else {
            return;
        };
        let reference = v
            .get("ref")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{pack}.{name}"));
        let parameters = v
            .get("parameters")
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        self.catalogue.actions.insert(
            reference.clone(),
            Action {
                reference,
                parameters,
            },
        );
    }

    /// `st2 action-alias list -j` or `st2 action list -j`: a JSON list of documents.
    /// Documents with `formats` are aliases, the others actions.
    fn export(&mut self, source: &SourcePath) {
        let Some(text) = self.read_text(&source.path, &source.display, source) else {
            return;
        };
        let file = Arc::new(SourceFile::new(source.display.clone(), text));
        let list = match serde_json::from_str::<Value>(&file.text) {
            Ok(Value::Array(list)) => list,
            Ok(_) => {
                return self.problem(
                    Diagnostic::new(
                        DiagnosticId::InvalidExport,
                        source.span,
                        format!("`{}` is not a JSON list", source.display),
                        "named here",
                    )
                    .help("export with `st2 action-alias list -j > aliases.json` or `st2 action list -j > actions.json`"),
                );
            }
            Err(e) => {
                let span = Span::new(
                    u32::try_from(e.line()).unwrap_or(0),
                    u32::try_from(e.column()).unwrap_or(1).max(1),
                    1,
                );
                return self.problem(
                    Diagnostic::new(
                        DiagnosticId::InvalidExport,
                        span,
                        format!("invalid JSON: {e}"),
                        "the JSON parser stopped here",
                    )
                    .help("export with `st2 action-alias list -j > aliases.json`")
                    .in_file(file),
                );
            }
        };
        let mut from_line = 1;
        for doc in list {
            if doc.get("formats").is_none() {
                self.catalogue.actions_known = true;
                let pack = doc
                    .get("pack")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                self.action(&pack, &doc);
                continue;
            }
            let alias = match serde_json::from_value::<Alias>(doc) {
                Ok(a) => a,
                Err(e) => {
                    self.problem(
                        Diagnostic::new(
                            DiagnosticId::InvalidAlias,
                            Span::FILE,
                            format!("an alias in this export is not valid: {e}"),
                            "",
                        )
                        .in_file(file.clone()),
                    );
                    continue;
                }
            };
            // JSON carries no positions: find the alias's `name` after the previous one.
            let name_span =
                find_json_string(&file, "name", &alias.name, from_line).unwrap_or(Span::FILE);
            if name_span.line > 0 {
                from_line = name_span.line;
            }
            let action_span = alias
                .action_ref
                .as_deref()
                .and_then(|a| find_json_string(&file, "action_ref", a, from_line))
                .unwrap_or(name_span);
            let formats = alias
                .formats
                .iter()
                .map(|entry| format_spans(&file, entry, name_span))
                .collect();
            let templates = alias_templates(&alias, &file, name_span);
            self.catalogue.aliases.push(CatalogueAlias {
                alias,
                file: file.clone(),
                name_span,
                action_span,
                formats,
                templates,
            });
        }
    }
}

/// A YAML error in a catalogue file.
fn syntax_error(error: &serde_saphyr::Error, file: Arc<SourceFile>) -> Diagnostic {
    let span = error
        .location()
        .map(|l| Span::from_location(&l))
        .filter(|s| s.line > 0)
        .unwrap_or(Span::FILE);
    Diagnostic::new(
        DiagnosticId::InvalidAlias,
        Span { len: 1, ..span },
        "invalid YAML in a catalogue file",
        "the YAML parser stopped here",
    )
    .note(
        error
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
    )
    .in_file(file)
}

/// The positions of one `formats` entry. A plain string is at the entry; an object's
/// `display` and representations are looked up in the text from the entry on.
fn format_spans(file: &SourceFile, entry: &st2_alias::FormatEntry, at: Span) -> FormatSpans {
    match entry {
        st2_alias::FormatEntry::Plain(_) => FormatSpans {
            entry: at,
            display: None,
            representations: vec![at],
        },
        st2_alias::FormatEntry::Object(object) => {
            let from = at.line.max(1);
            FormatSpans {
                entry: at,
                display: object
                    .display
                    .as_deref()
                    .map(|d| find_text(file, d, from).unwrap_or(at)),
                representations: entry
                    .representations()
                    .iter()
                    .map(|r| find_text(file, r, from).unwrap_or(at))
                    .collect(),
            }
        }
    }
}

fn alias_templates(
    alias: &Alias,
    file: &SourceFile,
    near: Span,
) -> Vec<(&'static str, String, Span)> {
    let mut out = Vec::new();
    let ack = alias.ack.as_ref().and_then(|a| a.format.clone());
    let result = alias.result.as_ref().and_then(|r| r.format.clone());
    for (key, text) in [("ack.format", ack), ("result.format", result)] {
        if let Some(text) = text {
            let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            let span = find_text(file, first.trim(), near.line.max(1)).unwrap_or(near);
            out.push((key, text, span));
        }
    }
    out
}

/// The first place at or after `from_line` where `needle` is written (as is, or as YAML
/// or JSON would escape it in double quotes).
pub(crate) fn find_text(file: &SourceFile, needle: &str, from_line: u32) -> Option<Span> {
    if needle.is_empty() {
        return None;
    }
    let escaped = serde_json::to_string(needle).ok()?;
    let escaped = &escaped[1..escaped.len() - 1];
    let len = u32::try_from(needle.chars().count()).unwrap_or(1);
    file.text
        .lines()
        .enumerate()
        .skip(from_line.saturating_sub(1) as usize)
        .find_map(|(i, line)| {
            let byte = line.find(needle).or_else(|| line.find(escaped))?;
            let column = line[..byte].chars().count() + 1;
            Some(Span::new(
                u32::try_from(i + 1).ok()?,
                u32::try_from(column).ok()?,
                len,
            ))
        })
}

/// The position of `"key": "value"` in a JSON export, from `from_line` on.
fn find_json_string(file: &SourceFile, key: &str, value: &str, from_line: u32) -> Option<Span> {
    let quoted = serde_json::to_string(value).ok()?;
    file.text
        .lines()
        .enumerate()
        .skip(from_line.saturating_sub(1) as usize)
        .find_map(|(i, line)| {
            let k = line.find(&format!("\"{key}\""))?;
            let v = k + line[k..].find(&quoted)?;
            let column = line[..v].chars().count() + 2;
            Some(Span::new(
                u32::try_from(i + 1).ok()?,
                u32::try_from(column).ok()?,
                u32::try_from(value.chars().count()).unwrap_or(1).max(1),
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "bot-config-catalogue-{name}-{}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, text).expect("write");
    }

    #[test]
    fn reads_packs_with_positions_and_actions() {
        let root = temp_dir("packs");
        write(&root.join("ops/pack.yaml"), "ref: ops\nname: Operations\n");
        write(
            &root.join("ops/aliases/deploy.yaml"),
            "---\nname: deploy\naction_ref: ops.deploy\nformats:\n  - \"deploy {{app}}\"\n  - display: \"ship <app>\"\n    representation:\n      - \"ship {{app}}\"\n",
        );
        write(
            &root.join("ops/actions/deploy.yaml"),
            "name: deploy\nrunner_type: local-shell-cmd\nparameters:\n  app: {type: string}\n",
        );
        write(&root.join("ops/actions/deploy.sh"), "#!/bin/sh\n");
        let source = SourcePath {
            path: root.clone(),
            display: "packs".into(),
            span: Span::FILE,
        };
        let (catalogue, problems) = Catalogue::read(&[source], &[]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(catalogue.alias_refs().collect::<Vec<_>>(), ["ops.deploy"]);
        let alias = &catalogue.aliases[0];
        assert_eq!(alias.file.display, "packs/ops/aliases/deploy.yaml");
        assert_eq!((alias.name_span.line, alias.name_span.column), (2, 7));
        assert_eq!(alias.formats[0].representations[0].line, 5);
        assert_eq!(alias.formats[1].display.map(|s| s.line), Some(6));
        assert_eq!(alias.formats[1].representations[0].line, 8);
        assert!(catalogue.actions_known);
        assert_eq!(
            catalogue.actions["ops.deploy"].parameters,
            BTreeSet::from(["app".to_owned()])
        );
        assert_eq!(catalogue.inputs.len(), 3);
        let _ = fs::remove_dir_all(root);
    }

    #[test]
    fn reads_exports_of_both_kinds() {
        let root = temp_dir("exports");
        write(
            &root.join("aliases.json"),
            "[\n  {\n    \"name\": \"local\",\n    \"pack\": \"core\",\n    \"ref\": \"core.local\",\n    \"action_ref\": \"core.local\",\n    \"formats\": [\"local {{cmd}}\"]\n  }\n]\n",
        );
        write(
            &root.join("actions.json"),
            "[{\"name\": \"local\", \"pack\": \"core\", \"ref\": \"core.local\", \"parameters\": {\"cmd\": {}}}]",
        );
        let exports: Vec<SourcePath> = ["aliases.json", "actions.json"]
            .iter()
            .map(|n| SourcePath {
                path: root.join(n),
                display: (*n).into(),
                span: Span::FILE,
            })
            .collect();
        let (catalogue, problems) = Catalogue::read(&[], &exports);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(catalogue.aliases[0].name_span.line, 3);
        assert_eq!(catalogue.aliases[0].action_span.line, 6);
        assert!(catalogue.actions.contains_key("core.local"));
        let _ = fs::remove_dir_all(root);
    }

    #[test]
    fn unreadable_sources_are_reported_where_they_are_named() {
        let source = SourcePath {
            path: PathBuf::from("/nonexistent/st2bot/packs"),
            display: "packs".into(),
            span: Span::new(4, 12, 5),
        };
        let (_, problems) = Catalogue::read(&[source], &[]);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].span, Span::new(4, 12, 5));
        assert_eq!(problems[0].message, "`packs` is not a directory");
    }
}
