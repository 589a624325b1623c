//! Expansion: a validated [`BotSpec`] becomes Rust tokens — one `static` literal of the spec
//! and a `main` that hands it to the runtime. Used by the `bot!` macro and by `build.rs`
//! (which writes a formatted copy of every expansion to `OUT_DIR` for reading).
//!
//! Generated code is data plus one call: no loop or branch here belongs in the output.

use std::borrow::Cow;
use std::time::Duration;

use proc_macro2::{Literal, TokenStream};
use quote::{ToTokens, quote};

use crate::spec::*;

/// Path of the support module generated code calls into (the facade's hidden re-export).
fn runtime_path() -> TokenStream {
    quote!(::st2bot::__private)
}

/// Turns a spec value into the Rust expression that rebuilds it in a `static`.
trait Emit {
    fn emit(&self) -> TokenStream;
}

impl Emit for Cow<'static, str> {
    fn emit(&self) -> TokenStream {
        let s = Literal::string(self);
        quote!(::std::borrow::Cow::Borrowed(#s))
    }
}

impl<T: Emit + Clone> Emit for Cow<'static, [T]> {
    fn emit(&self) -> TokenStream {
        let items = self.iter().map(Emit::emit);
        quote!(::std::borrow::Cow::Borrowed(&[#(#items),*]))
    }
}

impl<T: Emit> Emit for Option<T> {
    fn emit(&self) -> TokenStream {
        match self {
            Some(v) => {
                let v = v.emit();
                quote!(::std::option::Option::Some(#v))
            }
            None => quote!(::std::option::Option::None),
        }
    }
}

impl<A: Emit, B: Emit> Emit for (A, B) {
    fn emit(&self) -> TokenStream {
        let (a, b) = (self.0.emit(), self.1.emit());
        quote!((#a, #b))
    }
}

impl Emit for bool {
    fn emit(&self) -> TokenStream {
        self.to_token_stream()
    }
}

impl Emit for u16 {
    fn emit(&self) -> TokenStream {
        Literal::u16_suffixed(*self).to_token_stream()
    }
}

impl Emit for u32 {
    fn emit(&self) -> TokenStream {
        Literal::u32_suffixed(*self).to_token_stream()
    }
}

impl Emit for Duration {
    fn emit(&self) -> TokenStream {
        let ms = Literal::u64_unsuffixed(self.as_millis() as u64);
        quote!(::std::time::Duration::from_millis(#ms))
    }
}

/// `struct { field: value, … }` literal with every field emitted.
macro_rules! emit_struct {
    ($ty:ident { $($field:ident),* $(,)? }) => {
        impl Emit for $ty {
            fn emit(&self) -> TokenStream {
                let rt = runtime_path();
                $(let $field = self.$field.emit();)*
                quote!(#rt::$ty { $($field: #$field),* })
            }
        }
    };
}

emit_struct!(BotSpec {
    name,
    description,
    source,
    backend,
    stackstorm,
    chat,
    access,
    confirm,
    templates,
    auth_page,
    ha,
    health_listen,
    log
});
emit_struct!(TextSpec {
    user,
    room,
    simulator
});
emit_struct!(XmppSpec {
    jid,
    password,
    server,
    port,
    tls,
    ca_file,
    nickname,
    rooms
});
emit_struct!(IrcSpec {
    server,
    port,
    tls,
    ca_file,
    nickname,
    username,
    password,
    auth,
    rooms
});
emit_struct!(MatrixSpec { url, login, rooms });
emit_struct!(SlackSpec {
    app_token,
    bot_token,
    url
});
emit_struct!(MattermostSpec {
    url,
    token,
    team,
    listen,
    actions_url
});
emit_struct!(DiscordSpec { token, url });
emit_struct!(RocketChatSpec { url, login });
emit_struct!(MsTeamsSpec {
    app_id,
    app_password,
    tenant,
    listen,
    state_file,
    url,
});
emit_struct!(StackStormSpec {
    api_url,
    auth_url,
    stream_url,
    auth,
    verify_tls,
    ca_file,
    notification_route,
    announcement_route,
    webui_url,
    timeout,
    token_ttl,
    matcher,
    max_in_flight,
    alias_refresh,
    result_timeout,
    results_store
});
emit_struct!(ChatSpec {
    prefix,
    mention,
    help_command,
    session_command,
    ack,
    live_ack,
    replace_ack,
    max_message_len
});
emit_struct!(AccessSpec {
    default,
    rules,
    groups
});
emit_struct!(RuleSpec {
    decision,
    users,
    commands,
    rooms,
    direct,
    line
});
emit_struct!(GroupSpec { name, members });
emit_struct!(ConfirmSpec {
    commands,
    by,
    within,
    line
});
emit_struct!(TemplatesSpec {
    ack,
    result,
    error,
    help,
    denied,
    no_match,
    ambiguous
});
emit_struct!(AuthPageSpec {
    listen,
    public_url,
    session_ttl,
    link_ttl,
    required,
    store,
    encryption_key,
    tls,
    allow_plain_http,
    trusted_proxies,
    admins
});
emit_struct!(HaSpec {
    database_url,
    tls,
    ca_file,
    lease,
    instance_env
});
emit_struct!(LogSpec {
    format,
    level,
    audit_file,
    audit_stdout
});

impl Emit for SecretRef {
    fn emit(&self) -> TokenStream {
        let rt = runtime_path();
        match self {
            SecretRef::Env(n) => {
                let n = n.emit();
                quote!(#rt::SecretRef::Env(#n))
            }
            SecretRef::File(p) => {
                let p = p.emit();
                quote!(#rt::SecretRef::File(#p))
            }
        }
    }
}

impl Emit for BackendSpec {
    fn emit(&self) -> TokenStream {
        let rt = runtime_path();
        match self {
            BackendSpec::Text(x) => {
                let x = x.emit();
                quote!(#rt::BackendSpec::Text(#x))
            }
            BackendSpec::Xmpp(x) => {
                let x = x.emit();
                quote!(#rt::BackendSpec::Xmpp(#x))
            }
            BackendSpec::Irc(x) => {
                let x = x.emit();
                quote!(#rt::BackendSpec::Irc(#x))
            }
            BackendSpec::Matrix(x) => {
                let x = x.emit();
                quote!(#rt::BackendSpec::Matrix(#x))
            }
            BackendSpec::Slack(x) => {
                let x = x.emit();
                quote!(#rt::BackendSpec::Slack(#x))
            }
            BackendSpec::Mattermost(x) => {
                let x = x.emit();
                quote!(#rt::BackendSpec::Mattermost(#x))
            }
            BackendSpec::Discord(x) => {
                let x = x.emit();
                quote!(#rt::BackendSpec::Discord(#x))
            }
            BackendSpec::RocketChat(x) => {
                let x = x.emit();
                quote!(#rt::BackendSpec::RocketChat(#x))
            }
            BackendSpec::MsTeams(x) => {
                let x = x.emit();
                quote!(#rt::BackendSpec::MsTeams(#x))
            }
        }
    }
}

impl Emit for MatrixLogin {
    fn emit(&self) -> TokenStream {
        let rt = runtime_path();
        match self {
            MatrixLogin::Password { username, password } => {
                let (u, p) = (username.emit(), password.emit());
                quote!(#rt::MatrixLogin::Password { username: #u, password: #p })
            }
            MatrixLogin::Token(t) => {
                let t = t.emit();
                quote!(#rt::MatrixLogin::Token(#t))
            }
        }
    }
}

impl Emit for RocketChatLogin {
    fn emit(&self) -> TokenStream {
        let rt = runtime_path();
        match self {
            RocketChatLogin::Password { username, password } => {
                let (u, p) = (username.emit(), password.emit());
                quote!(#rt::RocketChatLogin::Password { username: #u, password: #p })
            }
            RocketChatLogin::Token { user_id, token } => {
                let (u, t) = (user_id.emit(), token.emit());
                quote!(#rt::RocketChatLogin::Token { user_id: #u, token: #t })
            }
        }
    }
}

impl Emit for St2AuthSpec {
    fn emit(&self) -> TokenStream {
        let rt = runtime_path();
        match self {
            St2AuthSpec::ApiKey(k) => {
                let k = k.emit();
                quote!(#rt::St2AuthSpec::ApiKey(#k))
            }
            St2AuthSpec::Token(k) => {
                let k = k.emit();
                quote!(#rt::St2AuthSpec::Token(#k))
            }
            St2AuthSpec::Password { username, password } => {
                let (u, p) = (username.emit(), password.emit());
                quote!(#rt::St2AuthSpec::Password { username: #u, password: #p })
            }
        }
    }
}

/// Unit-only enums: `Type::Variant`.
macro_rules! emit_unit_enum {
    ($ty:ident { $($variant:ident),* $(,)? }) => {
        impl Emit for $ty {
            fn emit(&self) -> TokenStream {
                let rt = runtime_path();
                match self {
                    $($ty::$variant => quote!(#rt::$ty::$variant),)*
                }
            }
        }
    };
}

emit_unit_enum!(IrcAuth {
    None,
    Sasl,
    NickServ,
    Server
});
emit_unit_enum!(MatcherKind { StackStorm, Local });
emit_unit_enum!(Decision { Allow, Deny });

impl Emit for ConfirmBy {
    fn emit(&self) -> TokenStream {
        let rt = runtime_path();
        match self {
            ConfirmBy::Requester => quote!(#rt::ConfirmBy::Requester),
            ConfirmBy::Group(name) => {
                let name = name.emit();
                quote!(#rt::ConfirmBy::Group(#name))
            }
        }
    }
}
emit_unit_enum!(LogFormat { Text, Json });
emit_unit_enum!(PgTls {
    VerifyFull,
    Disable
});

/// The expansion of `bot!` for a valid definition: the spec as a `static`, a tracked read of
/// the YAML file (so editing it rebuilds the executable) and `main`.
pub fn expand(spec: &BotSpec, tracked_file: &str) -> TokenStream {
    expand_with_access_matrix(spec, tracked_file, None)
}

/// [`expand`], with the access matrix ([`crate::matrix`]) that `--access-matrix` prints
/// embedded in the executable.
pub fn expand_with_access_matrix(
    spec: &BotSpec,
    tracked_file: &str,
    access_matrix: Option<&str>,
) -> TokenStream {
    let rt = runtime_path();
    let value = spec.emit();
    let doc = format!("The `{}` bot, compiled from `{}`.", spec.name, spec.source);
    let tracked = Literal::string(tracked_file);
    // Only what the definition uses is named (its backend; the simulator for terminal
    // bots in demo mode, `simulator: true`; HA, sessions and the results file when their
    // keys are there), so the linker leaves the rest out of the executable.
    let backend = proc_macro2::Ident::new(spec.backend.kind(), proc_macro2::Span::call_site());
    let simulator = match &spec.backend {
        BackendSpec::Text(text) if text.simulator => quote!(#rt::SIMULATOR),
        _ => quote!(::core::option::Option::None),
    };
    let linked_if = |used: bool, item: &str| {
        let item = proc_macro2::Ident::new(item, proc_macro2::Span::call_site());
        if used {
            quote!(::core::option::Option::Some(#rt::linked::#item))
        } else {
            quote!(::core::option::Option::None)
        }
    };
    let ha = linked_if(spec.ha.is_some(), "HA");
    let sessions = linked_if(spec.auth_page.is_some(), "SESSIONS");
    let results_file = linked_if(links_results_file(spec), "RESULTS_FILE");
    let linked = quote! {
        #rt::Linked {
            backend: #rt::factory::#backend,
            simulator: #simulator,
            ha: #ha,
            sessions: #sessions,
            results_file: #results_file,
        }
    };
    let main = match access_matrix {
        None => quote! {
            fn main() -> ::std::process::ExitCode {
                #rt::main(&__ST2BOT_SPEC, #linked)
            }
        },
        Some(matrix) => {
            let matrix = Literal::string(matrix);
            quote! {
                fn main() -> ::std::process::ExitCode {
                    #rt::main_with_access_matrix(&__ST2BOT_SPEC, #linked, #matrix)
                }
            }
        }
    };
    quote! {
        #[doc = #doc]
        static __ST2BOT_SPEC: #rt::BotSpec = #value;

        // Makes cargo rebuild this executable when the definition changes.
        const _: &[u8] = ::core::include_bytes!(#tracked);

        #main
    }
}

/// Whether the executable carries the owed-results file (redb): only where the definition
/// names one, and has neither `ha:` (PostgreSQL keeps the list) nor an `auth_page` (its
/// session file does). `--results-store` elsewhere is refused, naming the key.
fn links_results_file(spec: &BotSpec) -> bool {
    spec.stackstorm.results_store.is_some() && spec.ha.is_none() && spec.auth_page.is_none()
}

/// What `bot!` expands to after errors (next to the `compile_error!`s): a `main` that
/// type-checks, so one mistake in the YAML gives exactly its own errors and nothing else.
pub fn skeleton(tracked_file: Option<&str>) -> TokenStream {
    let tracked = tracked_file.map(|f| {
        let f = Literal::string(f);
        quote!(
            const _: &[u8] = ::core::include_bytes!(#f);
        )
    });
    quote! {
        #tracked
        fn main() {}
    }
}

/// Formats an expansion for reading, with the `@generated` header.
pub fn pretty(tokens: TokenStream, source: &str) -> String {
    let header = format!(
        "// @generated from {source} by build.rs — do not edit.\n// The `bot!` macro expands to exactly this; read it, do not include it.\n\n"
    );
    match syn::parse2::<syn::File>(tokens.clone()) {
        Ok(file) => header + &prettyplease::unparse(&file),
        Err(_) => header + &tokens.to_string(),
    }
}
