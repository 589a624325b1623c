//! st2bot bot definitions: the YAML schema, its validation and its diagnostics, defined once
//! and shared by `build.rs`, the `bot!` macro and the runtime.
//!
//! Read [`load`] first: YAML text in, a validated [`BotSpec`] or every [`Diagnostic`] out.
//! The stages are visible as modules: [`raw`] (parse) → `check` (validate) → [`spec`]
//! (the result), and, behind the `codegen` feature, `codegen` (expand into Rust).

pub mod acl;
mod check;
#[cfg(feature = "codegen")]
pub mod codegen;
pub mod diagnostic;
pub mod raw;
#[cfg(feature = "schema")]
pub mod schema;
pub mod source;
pub mod spec;
pub mod suggest;
pub mod templates;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use source::{SourceFile, Span};
pub use spec::*;

/// Parses and validates one bot definition.
///
/// YAML syntax and type errors stop at the first (the parser cannot go on); every other
/// problem in the file is reported together, sorted by position.
pub fn load(file: &SourceFile) -> Result<BotSpec, Vec<Diagnostic>> {
    let raw: raw::BotFile =
        serde_saphyr::from_str(&file.text).map_err(|e| vec![check::from_parse_error(&e, file)])?;
    check::check(raw, file)
}

/// The backend kinds a definition can name.
pub fn backend_kinds() -> Vec<&'static str> {
    check::backend_kinds()
}
