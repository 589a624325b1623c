//! st2bot bot definitions: the YAML schema, its validation and its diagnostics, defined once
//! and shared by `build.rs`, the `bot!` macro and the runtime.
//!
//! Read [`load`] first: YAML text in, a validated [`BotSpec`] or every [`Diagnostic`] out.
//! The stages are visible as modules: [`raw`] (parse) → `check` (validate) → [`spec`]
//! (the result), and, behind the `codegen` feature, `codegen` (expand into Rust).

pub mod acl;
pub mod catalogue;
mod check;
#[cfg(feature = "codegen")]
pub mod codegen;
pub mod diagnostic;
pub mod matrix;
pub mod raw;
#[cfg(feature = "schema")]
pub mod schema;
pub mod source;
pub mod spec;
pub mod suggest;
pub mod templates;

pub use diagnostic::{Diagnostic, DiagnosticId, Diagnostics};
pub use source::{SourceFile, Span};
pub use spec::*;

/// Parses and validates one bot definition; a catalogue it names is read relative to the
/// directory of `file.display` (as seen from the current directory). Warnings are dropped:
/// use [`load_in`] to see them and the files read.
///
/// YAML syntax and type errors stop at the first (the parser cannot go on); every other
/// problem in the file is reported together, sorted by position.
pub fn load(file: &SourceFile) -> Result<BotSpec, Vec<Diagnostic>> {
    let dir = std::path::Path::new(&file.display)
        .parent()
        .unwrap_or(std::path::Path::new(""));
    load_in(file, dir).result
}

/// What loading a definition gave: the spec or the errors, the warnings, and every file
/// besides the definition that was read (to be tracked by the build).
#[derive(Debug)]
pub struct Loaded {
    /// The validated spec, or every error sorted by position.
    pub result: Result<BotSpec, Vec<Diagnostic>>,
    /// Problems that do not stop the build (empty when there are errors).
    pub warnings: Vec<Diagnostic>,
    /// Files read besides the definition (the catalogue's), as filesystem paths.
    pub inputs: Vec<std::path::PathBuf>,
    /// The catalogue's alias refs, in order (empty without `stackstorm.catalogue`).
    pub catalogue_aliases: Vec<String>,
}

/// Parses and validates one bot definition whose directory on disk is `dir` (catalogue
/// paths are relative to it).
pub fn load_in(file: &SourceFile, dir: &std::path::Path) -> Loaded {
    let mut inputs = Vec::new();
    let mut catalogue_aliases = Vec::new();
    let checked = serde_saphyr::from_str::<raw::BotFile>(&file.text)
        .map_err(|e| vec![check::from_parse_error(&e, file)])
        .and_then(|raw| check::check(raw, file, dir, &mut inputs, &mut catalogue_aliases));
    match checked {
        Ok((spec, warnings)) => Loaded {
            result: Ok(spec),
            warnings,
            inputs,
            catalogue_aliases,
        },
        Err(errors) => Loaded {
            result: Err(errors),
            warnings: Vec::new(),
            inputs,
            catalogue_aliases,
        },
    }
}

/// The backend kinds a definition can name.
pub fn backend_kinds() -> Vec<&'static str> {
    check::backend_kinds()
}
