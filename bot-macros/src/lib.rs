//! The `bot!` macro: reads a bot definition, validates it with `bot-config`, and expands to
//! a typed `static` spec plus `main`, or to `compile_error!`s pointing into the YAML.
//!
//! This crate is a shim (askama_macros' model): resolving the path and turning diagnostics
//! into errors is all it does; every rule lives in `bot-config`, which `build.rs`, tests and
//! the runtime share.
//!
//! Path resolution, like `include_str!` with one addition: the literal is taken relative to
//! the package root (`CARGO_MANIFEST_DIR`) when a file exists there, otherwise relative to
//! the directory of the source file that invokes the macro. Diagnostics show the path as
//! written, so they are the same on every machine.

use std::path::{Path, PathBuf};

use bot_config::{SourceFile, codegen};
use proc_macro::TokenStream;
use quote::quote_spanned;
use syn::parse::{Parse, ParseStream};
use syn::{LitStr, Token};

/// `bot!("bots/acme.yaml")` or `bot!("bots/acme.yaml", print = "code")`.
struct Input {
    path: LitStr,
    print: bool,
}

impl Parse for Input {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let path: LitStr = input.parse()?;
        let mut print = false;
        if input.peek(Token![,]) {
            input.parse::<Token![,]>()?;
            if !input.is_empty() {
                let key: syn::Ident = input.parse()?;
                input.parse::<Token![=]>()?;
                let value: LitStr = input.parse()?;
                if key != "print" || value.value() != "code" {
                    return Err(syn::Error::new(
                        key.span(),
                        "the only option is `print = \"code\"`",
                    ));
                }
                print = true;
                let _ = input.parse::<Option<Token![,]>>()?;
            }
        }
        Ok(Self { path, print })
    }
}

/// Compiles a bot definition into this executable's `main`.
///
/// ```ignore
/// st2bot::bot!("bots/demo.yaml");
/// ```
#[proc_macro]
pub fn bot(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as Input);
    let written = input.path.value();
    let span = input.path.span();
    let Some((path, display)) = resolve(&written) else {
        let message = format!(
            "cannot find bot definition `{written}` (looked in the package root and next to this file)"
        );
        return quote_spanned!(span=> ::core::compile_error!(#message); fn main() {}).into();
    };
    let tracked = path.to_string_lossy().into_owned();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            let message = format!("cannot read bot definition `{written}`: {e}");
            return quote_spanned!(span=> ::core::compile_error!(#message); fn main() {}).into();
        }
    };
    let file = SourceFile::new(display, text);
    let dir = path.parent().unwrap_or(Path::new(""));
    let loaded = bot_config::load_in(&file, dir);
    // Every catalogue file read is tracked like the definition itself.
    let inputs = loaded.inputs.iter().map(|p| {
        let p = p.to_string_lossy().into_owned();
        quote_spanned!(span=> const _: &[u8] = ::core::include_bytes!(#p);)
    });
    let inputs = quote::quote!(#(#inputs)*);
    let tokens = match loaded.result {
        Ok(spec) => {
            // The rules compiled when the spec was checked, so the matrix is always there.
            let matrix = bot_config::matrix::access_matrix(&spec, &loaded.catalogue_aliases).ok();
            let expanded = codegen::expand_with_access_matrix(&spec, &tracked, matrix.as_deref());
            let warnings = loaded
                .warnings
                .iter()
                .map(|d| warning(&d.render_body(&file), span));
            quote::quote!(#expanded #inputs #(#warnings)*)
        }
        Err(diagnostics) => {
            let errors = diagnostics.iter().map(|d| {
                let message = d.render_body(&file);
                quote_spanned!(span=> ::core::compile_error!(#message);)
            });
            let skeleton = codegen::skeleton(Some(&tracked));
            quote::quote!(#(#errors)* #skeleton #inputs)
        }
    };
    if input.print {
        println!("{}", codegen::pretty(tokens.clone(), &file.display));
    }
    tokens.into()
}

/// A compiler warning on stable Rust: the use of a deprecated item whose note is the
/// diagnostic (proc macros have no warning API on stable). rustc prints it as
/// `warning: use of deprecated constant …: <the diagnostic>`.
fn warning(message: &str, span: proc_macro2::Span) -> proc_macro2::TokenStream {
    quote_spanned!(span=>
        const _: () = {
            #[deprecated(note = #message)]
            #[allow(non_upper_case_globals)]
            const st2bot_definition_warning: () = ();
            st2bot_definition_warning
        };
    )
}

/// The definition file and the path to show for it: package-root relative if it exists
/// there (shown as written), else next to the calling file (shown relative to the nearest
/// directory above it that holds a `Cargo.toml`, so it never shows an absolute path).
fn resolve(written: &str) -> Option<(PathBuf, String)> {
    let p = Path::new(written);
    if p.is_absolute() {
        return p.is_file().then(|| (p.to_owned(), written.to_owned()));
    }
    let root = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    if let Some(root) = &root {
        let candidate = root.join(p);
        if candidate.is_file() {
            return Some((candidate, written.to_owned()));
        }
    }
    let caller = proc_macro::Span::call_site().local_file()?;
    let caller = if caller.is_absolute() {
        caller
    } else {
        root?.join(caller)
    };
    let dir = caller.parent()?;
    let candidate = dir.join(p);
    if !candidate.is_file() {
        return None;
    }
    let display = dir
        .ancestors()
        .find(|a| a.join("Cargo.toml").is_file())
        .and_then(|base| candidate.strip_prefix(base).ok())
        .map(|rel| rel.to_string_lossy().replace('\\', "/"))
        .unwrap_or_else(|| written.to_owned());
    Some((candidate, display))
}
