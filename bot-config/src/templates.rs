//! Reply templates: the slots a definition can fill, the typed context the runtime renders
//! each with, the defaults, and the build-time check that a template only uses what it will
//! be given.
//!
//! Read [`SLOTS`] first, then one context ([`AckContext`]). Each slot's variables are the
//! fields of its context struct, declared once (by the `template_context!` macro): the
//! build-time check reads them from [`TemplateContext::VARS`] and the runtime
//! (`bot-runtime`'s `template` module) fills the same struct, so what a template may use
//! and what it is given cannot drift apart.

use handlebars::template::{HelperTemplate, Parameter, Template, TemplateElement};
use serde::Serialize;
use serde_json::Value;

/// The shape of a template variable.
#[derive(Clone, Copy, Debug)]
pub enum Var {
    /// A string, number or boolean.
    Leaf,
    /// A list of leaves (used with `#each`).
    List,
    /// An object with known fields.
    Object(&'static [(&'static str, Var)]),
    /// Free-form JSON from StackStorm (`extra`, `context`): any path is allowed.
    Open,
}

/// How a Rust type looks to a template: the [`Var`] a context field of that type provides.
pub trait Shape {
    /// The shape.
    const SHAPE: Var;
}

macro_rules! leaf_shapes {
    ($($t:ty),*) => { $(impl Shape for $t { const SHAPE: Var = Var::Leaf; })* };
}
leaf_shapes!(str, String, bool, u16, u32, u64, i64, usize);

impl<T: Shape + ?Sized> Shape for &T {
    const SHAPE: Var = T::SHAPE;
}

/// An absent value renders as nothing; its shape is the value's.
impl<T: Shape> Shape for Option<T> {
    const SHAPE: Var = T::SHAPE;
}

impl<T: Shape> Shape for [T] {
    const SHAPE: Var = Var::List;
}

impl<T: Shape> Shape for Vec<T> {
    const SHAPE: Var = Var::List;
}

/// JSON passed through from StackStorm: any path may be read.
impl Shape for Value {
    const SHAPE: Var = Var::Open;
}

/// A typed template context: its serialized fields are exactly [`TemplateContext::VARS`].
pub trait TemplateContext: Serialize {
    /// The variables, in declaration order: what the build-time check allows.
    const VARS: &'static [(&'static str, Var)];
}

/// The context of one slot: rendering it needs no slot name, so a slot cannot be rendered
/// with another slot's variables.
pub trait SlotContext: TemplateContext {
    /// The slot this context renders.
    const SLOT: &'static Slot;
}

/// Declares a template context once: the struct (deriving `Serialize`, each field renamed
/// to its template variable), its [`TemplateContext::VARS`] (from the same names and the
/// fields' [`Shape`]s) and its own [`Shape`] (an object, for nesting). Each field is written
/// `"variable" => pub field: Type`; the variable is usually the field's name, but may be a
/// Rust keyword (`where`).
macro_rules! template_context {
    ($(#[doc = $doc:literal])* pub struct $name:ident<'a> {
        $( $(#[doc = $fdoc:literal])* $var:literal => pub $field:ident: $ty:ty, )*
    }) => {
        $(#[doc = $doc])*
        #[derive(Clone, Copy, Debug, Default, ::serde::Serialize)]
        pub struct $name<'a> {
            $( $(#[doc = $fdoc])* #[serde(rename = $var)] pub $field: $ty, )*
        }

        impl<'a> $crate::templates::TemplateContext for $name<'a> {
            const VARS: &'static [(&'static str, $crate::templates::Var)] =
                &[$(($var, <$ty as $crate::templates::Shape>::SHAPE),)*];
        }

        impl $crate::templates::Shape for $name<'_> {
            const SHAPE: $crate::templates::Var = $crate::templates::Var::Object(
                <Self as $crate::templates::TemplateContext>::VARS,
            );
        }
    };
}

template_context! {
    /// `{{execution}}` in the `ack` template: the execution StackStorm started.
    pub struct ExecutionContext<'a> {
        /// The execution id.
        "id" => pub id: &'a str,
        /// Its status when accepted (`requested`, `scheduled`…), when StackStorm gave one.
        "status" => pub status: Option<&'a str>,
        /// Its page in the StackStorm web UI, when StackStorm gave one.
        "web_url" => pub web_url: Option<&'a str>,
    }
}

template_context! {
    /// The `ack` template: StackStorm accepted an execution.
    pub struct AckContext<'a> {
        /// Who ran the command.
        "user" => pub user: &'a str,
        /// The room's name; empty in a direct message.
        "room" => pub room: &'a str,
        /// The command as typed (capped and defused).
        "command" => pub command: &'a str,
        /// The alias that matched (`pack.name`).
        "alias" => pub alias: &'a str,
        /// The alias's own ack message, when StackStorm rendered one; else empty.
        "message" => pub message: &'a str,
        /// The execution's web UI link; empty when not appended.
        "url" => pub url: &'a str,
        /// The execution.
        "execution" => pub execution: ExecutionContext<'a>,
    }
}

template_context! {
    /// The `result` template: a result or announcement from the stream.
    pub struct ResultContext<'a> {
        /// The text StackStorm formatted.
        "message" => pub message: &'a str,
        /// Whom it is for, when StackStorm says.
        "user" => pub user: Option<&'a str>,
        /// Where it goes, when StackStorm says.
        "channel" => pub channel: Option<&'a str>,
        /// Whether it goes to the user privately.
        "whisper" => pub whisper: bool,
        /// The chat context the command carried (free-form).
        "context" => pub context: Option<&'a Value>,
        /// The alias's `extra` (free-form).
        "extra" => pub extra: Option<&'a Value>,
    }
}

template_context! {
    /// The `error` template: StackStorm refused a command or could not be reached.
    pub struct ErrorContext<'a> {
        /// Who ran the command.
        "user" => pub user: &'a str,
        /// The command as typed (capped and defused).
        "command" => pub command: &'a str,
        /// What went wrong, in the user's terms.
        "error" => pub error: &'a str,
        /// StackStorm's HTTP status, when it answered.
        "status" => pub status: Option<u16>,
        /// StackStorm's request id, when it gave one.
        "request_id" => pub request_id: Option<&'a str>,
    }
}

template_context! {
    /// The `help` template: one line of the help listing.
    pub struct HelpContext<'a> {
        /// The alias's pack.
        "pack" => pub pack: &'a str,
        /// The command as shown (`deploy {{app}}`).
        "display" => pub display: &'a str,
        /// Its description; empty when it has none.
        "description" => pub description: &'a str,
        /// The bot's command prefix.
        "prefix" => pub prefix: &'a str,
    }
}

template_context! {
    /// The `denied` template: the access rules refused a command.
    pub struct DeniedContext<'a> {
        /// Who ran the command.
        "user" => pub user: &'a str,
        /// The command as typed (capped and defused).
        "command" => pub command: &'a str,
        /// The room's name, or `a direct message`.
        "room" => pub room: &'a str,
        /// `in <room>` or `in a direct message`.
        "where" => pub place: &'a str,
        /// Where the user may run it instead, or whom to ask.
        "instead" => pub instead: &'a str,
        /// The rule that decided.
        "rule" => pub rule: &'a str,
    }
}

template_context! {
    /// The `no_match` template: no action-alias matched the command.
    pub struct NoMatchContext<'a> {
        /// Who ran the command.
        "user" => pub user: &'a str,
        /// The command as typed (capped and defused).
        "command" => pub command: &'a str,
        /// The bot's command prefix.
        "prefix" => pub prefix: &'a str,
        /// The help command's name.
        "help_command" => pub help_command: &'a str,
        /// The closest commands, as shown in help.
        "suggestions" => pub suggestions: &'a [String],
    }
}

template_context! {
    /// The `ambiguous` template: several action-aliases matched the command.
    pub struct AmbiguousContext<'a> {
        /// Who ran the command.
        "user" => pub user: &'a str,
        /// The command as typed (capped and defused).
        "command" => pub command: &'a str,
        /// The bot's command prefix.
        "prefix" => pub prefix: &'a str,
        /// The commands that matched, as shown in help.
        "candidates" => pub candidates: &'a [String],
    }
}

/// One template slot: its key under `templates:`, what it is for, its variables and default.
#[derive(Debug)]
pub struct Slot {
    /// Key under `templates:`.
    pub name: &'static str,
    /// When the runtime uses it.
    pub purpose: &'static str,
    /// Variables the runtime provides: the fields of the slot's context.
    pub vars: &'static [(&'static str, Var)],
    /// The default template.
    pub default: &'static str,
}

/// Declares each slot's constant (`ACK`…) with its context's variables, ties the context to
/// it ([`SlotContext`]) and lists every slot in [`SLOTS`].
macro_rules! slots {
    ($(
        $context:ident => $slot:ident {
            name: $name:literal,
            purpose: $purpose:literal,
            default: $default:literal,
        }
    )*) => {
        $(
            #[doc = concat!("The `", $name, "` slot: ", $purpose, ".")]
            pub const $slot: Slot = Slot {
                name: $name,
                purpose: $purpose,
                vars: <$context<'static> as TemplateContext>::VARS,
                default: $default,
            };

            impl SlotContext for $context<'_> {
                const SLOT: &'static Slot = &$slot;
            }
        )*

        /// Every template slot.
        pub const SLOTS: &[Slot] = &[$($slot),*];
    };
}

slots! {
    AckContext => ACK {
        name: "ack",
        purpose: "acknowledgement when StackStorm accepted an execution",
        default: "{{#if message}}{{message}}{{else}}{{user}}: running `{{alias}}`, execution {{execution.id}}{{/if}}{{#if url}} {{url}}{{/if}}",
    }
    ResultContext => RESULT {
        name: "result",
        purpose: "a result or announcement from the stream",
        default: "{{message}}",
    }
    ErrorContext => ERROR {
        name: "error",
        purpose: "StackStorm refused a command or could not be reached",
        default: "{{user}}: `{{command}}` failed: {{error}}{{#if request_id}} (request {{request_id}}){{/if}}",
    }
    HelpContext => HELP {
        name: "help",
        purpose: "one line of the help listing",
        default: "{{prefix}}{{display}}{{#if description}} - {{description}}{{/if}}",
    }
    DeniedContext => DENIED {
        name: "denied",
        purpose: "the access rules refused a command",
        default: "{{user}}: you are not allowed to run `{{command}}` {{where}}. {{instead}}",
    }
    NoMatchContext => NO_MATCH {
        name: "no_match",
        purpose: "no action-alias matched the command",
        default: "{{user}}: no command matches `{{command}}`.{{#if suggestions}} Closest:{{#each suggestions}}\n  {{../prefix}}{{this}}{{/each}}{{/if}}\nSee {{prefix}}{{help_command}}.",
    }
    AmbiguousContext => AMBIGUOUS {
        name: "ambiguous",
        purpose: "several action-aliases matched the command",
        default: "{{user}}: `{{command}}` matches more than one command:{{#each candidates}}\n  {{../prefix}}{{this}}{{/each}}",
    }
}

/// The slot named `name`.
pub fn slot(name: &str) -> Option<&'static Slot> {
    SLOTS.iter().find(|s| s.name == name)
}

/// Helpers a template may call: handlebars' built-ins plus the runtime's own.
pub const HELPERS: &[&str] = &[
    "if", "unless", "each", "with", "lookup", "raw", "log", "eq", "ne", "gt", "gte", "lt", "lte",
    "and", "or", "not", "len", "truncate", "upper", "lower", "json", "code",
];

/// A problem found in a template, with its position inside the template text (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateProblem {
    /// Line inside the template (1-based).
    pub line: u32,
    /// Column inside the template (1-based).
    pub column: u32,
    /// Length to underline.
    pub len: u32,
    /// What kind of problem.
    pub kind: ProblemKind,
}

/// What is wrong in a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// Handlebars could not parse it.
    Syntax(String),
    /// A variable the runtime never provides; `known` lists what exists at that level.
    UnknownVariable {
        /// The path as written.
        path: String,
        /// Valid names at the failing level.
        known: Vec<&'static str>,
    },
    /// A helper that does not exist.
    UnknownHelper(String),
    /// A partial (`{{> name}}`): the bot registers none, so it would fail at run time.
    Partial(String),
}

/// Checks one template against a slot's variables.
pub fn check_template(source: &str, slot: &Slot) -> Vec<TemplateProblem> {
    let template = match Template::compile(source) {
        Ok(t) => t,
        Err(e) => {
            let (line, column) = e.pos().unwrap_or((1, 1));
            let reason = e.reason().to_string();
            return vec![TemplateProblem {
                line: line as u32,
                column: column as u32,
                len: 1,
                kind: ProblemKind::Syntax(reason),
            }];
        }
    };
    let mut out = Vec::new();
    walk(&template, &[Var::Object(slot.vars)], (1, 1), &mut out);
    out
}

/// Walks a template; `scopes` holds the shape of the context at each block depth (the
/// slot's variables outermost; `#with` and `#each` push the shape of what they enter).
fn walk(t: &Template, scopes: &[Var], at: (usize, usize), out: &mut Vec<TemplateProblem>) {
    for (i, element) in t.elements.iter().enumerate() {
        let pos = t.mapping.get(i).map(|m| (m.0, m.1)).unwrap_or(at);
        match element {
            TemplateElement::Expression(h)
            | TemplateElement::HtmlExpression(h)
            | TemplateElement::HelperBlock(h) => helper(h, scopes, pos, out),
            TemplateElement::PartialExpression(p) | TemplateElement::PartialBlock(p) => {
                out.push(TemplateProblem {
                    line: pos.0 as u32,
                    column: pos.1 as u32,
                    len: 1,
                    kind: ProblemKind::Partial(match &p.name {
                        Parameter::Name(n) => n.clone(),
                        Parameter::Path(handlebars::Path::Relative((_, raw))) => raw.clone(),
                        other => format!("{other:?}"),
                    }),
                });
            }
            _ => {}
        }
    }
}

fn helper(h: &HelperTemplate, scopes: &[Var], pos: (usize, usize), out: &mut Vec<TemplateProblem>) {
    let is_call = h.block || !h.params.is_empty() || !h.hash.is_empty();
    if is_call {
        if let Some(name) = h.name.as_name()
            && !HELPERS.contains(&name)
        {
            out.push(TemplateProblem {
                line: pos.0 as u32,
                column: pos.1 as u32,
                len: 1,
                kind: ProblemKind::UnknownHelper(name.to_owned()),
            });
        }
    } else {
        param(&h.name, scopes, pos, out);
    }
    for p in h.params.iter().chain(h.hash.values()) {
        param(p, scopes, pos, out);
    }
    // What the body of `#with x` / `#each x` sees as its context.
    let entered = match (h.block, h.name.as_name(), h.params.first()) {
        (true, Some("with"), Some(p)) => Some(shape_of(p, scopes).unwrap_or(Var::Open)),
        (true, Some("each"), Some(p)) => Some(match shape_of(p, scopes) {
            Some(Var::List) => Var::Leaf,
            _ => Var::Open,
        }),
        (true, Some("with" | "each"), None) => Some(Var::Open),
        _ => None,
    };
    if let Some(t) = &h.template {
        match entered {
            Some(var) => {
                let mut inner = scopes.to_vec();
                inner.push(var);
                walk(t, &inner, pos, out);
            }
            None => walk(t, scopes, pos, out),
        }
    }
    if let Some(t) = &h.inverse {
        walk(t, scopes, pos, out);
    }
}

fn param(p: &Parameter, scopes: &[Var], pos: (usize, usize), out: &mut Vec<TemplateProblem>) {
    match p {
        Parameter::Name(name) => check_path(name, scopes, pos, out),
        Parameter::Path(handlebars::Path::Relative((_, raw))) => check_path(raw, scopes, pos, out),
        Parameter::Subexpression(s) => {
            if let TemplateElement::Expression(h) = &*s.element {
                helper(h, scopes, pos, out);
            }
        }
        _ => {}
    }
}

/// The scope a path starts from (after its `../`), and the rest of the path; `None` for
/// paths that need no check (`@index`, `this`).
fn start<'a>(raw: &'a str, scopes: &[Var]) -> Option<(Var, &'a str)> {
    let mut path = raw.trim();
    let mut level = scopes.len().saturating_sub(1);
    while let Some(rest) = path.strip_prefix("../") {
        path = rest;
        level = level.saturating_sub(1);
    }
    let scope = scopes.get(level).copied().unwrap_or(Var::Open);
    if path.starts_with('@') || path == "." {
        return None;
    }
    if path == "this" {
        return Some((scope, ""));
    }
    let path = path
        .strip_prefix("this.")
        .or_else(|| path.strip_prefix("this/"))
        .unwrap_or(path);
    Some((scope, path))
}

/// The shape a parameter refers to, when it is a path that can be followed.
fn shape_of(p: &Parameter, scopes: &[Var]) -> Option<Var> {
    let raw = match p {
        Parameter::Name(name) => name.as_str(),
        Parameter::Path(handlebars::Path::Relative((_, raw))) => raw.as_str(),
        _ => return None,
    };
    let (mut kind, path) = start(raw, scopes)?;
    for segment in path.split(['.', '/']).filter(|s| !s.is_empty()) {
        let segment = segment.trim_start_matches('[').trim_end_matches(']');
        kind = match kind {
            Var::Object(fields) => fields.iter().find(|(n, _)| *n == segment)?.1,
            _ => return None,
        };
    }
    Some(kind)
}

/// Checks a path such as `execution.id`, `../prefix`, `this` or `@index` against the
/// context it is read in.
fn check_path(raw: &str, scopes: &[Var], pos: (usize, usize), out: &mut Vec<TemplateProblem>) {
    let Some((mut kind, path)) = start(raw, scopes) else {
        return;
    };
    for segment in path.split(['.', '/']).filter(|s| !s.is_empty()) {
        let segment = segment.trim_start_matches('[').trim_end_matches(']');
        match kind {
            Var::Open => return,
            Var::Object(fields) => match fields.iter().find(|(n, _)| *n == segment) {
                Some((_, v)) => kind = *v,
                None => {
                    out.push(TemplateProblem {
                        line: pos.0 as u32,
                        column: pos.1 as u32,
                        len: 1,
                        kind: ProblemKind::UnknownVariable {
                            path: raw.to_owned(),
                            known: fields.iter().map(|(n, _)| *n).collect(),
                        },
                    });
                    return;
                }
            },
            Var::Leaf | Var::List => {
                out.push(TemplateProblem {
                    line: pos.0 as u32,
                    column: pos.1 as u32,
                    len: 1,
                    kind: ProblemKind::UnknownVariable {
                        path: raw.to_owned(),
                        known: Vec::new(),
                    },
                });
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks that `value` (a serialized context) has exactly the fields `vars` declares,
    /// each of the declared shape.
    fn same_fields(at: &str, value: &Value, vars: &[(&str, Var)]) {
        let object = value
            .as_object()
            .unwrap_or_else(|| panic!("{at} serializes to {value}, not an object"));
        let mut got: Vec<&str> = object.keys().map(String::as_str).collect();
        let mut declared: Vec<&str> = vars.iter().map(|(name, _)| *name).collect();
        got.sort_unstable();
        declared.sort_unstable();
        assert_eq!(
            got, declared,
            "{at}: serialized fields and declared variables differ"
        );
        for (name, var) in vars {
            let field = &object[*name];
            let at = format!("{at}.{name}");
            match var {
                Var::Object(fields) => same_fields(&at, field, fields),
                Var::List => assert!(field.is_array(), "{at} is {field}, not a list"),
                Var::Leaf => assert!(
                    !field.is_array() && !field.is_object(),
                    "{at} is {field}, not a single value"
                ),
                Var::Open => {}
            }
        }
    }

    fn serializes_as_declared<C: SlotContext + Default>() -> &'static str {
        let value = serde_json::to_value(C::default()).expect("a context serializes");
        same_fields(C::SLOT.name, &value, C::VARS);
        let slot = slot(C::SLOT.name).expect("the slot is listed in SLOTS");
        assert_eq!(slot.vars.len(), C::VARS.len(), "{}", slot.name);
        slot.name
    }

    #[test]
    fn every_slot_context_serializes_exactly_the_variables_the_check_allows() {
        let names = [
            serializes_as_declared::<AckContext<'static>>(),
            serializes_as_declared::<ResultContext<'static>>(),
            serializes_as_declared::<ErrorContext<'static>>(),
            serializes_as_declared::<HelpContext<'static>>(),
            serializes_as_declared::<DeniedContext<'static>>(),
            serializes_as_declared::<NoMatchContext<'static>>(),
            serializes_as_declared::<AmbiguousContext<'static>>(),
        ];
        let listed: Vec<&str> = SLOTS.iter().map(|s| s.name).collect();
        assert_eq!(
            names.as_slice(),
            listed.as_slice(),
            "one context per slot, in order"
        );
        // Keywords and nesting: the variable is the declared name, not the Rust field's.
        let denied = serde_json::to_value(DeniedContext {
            place: "in #ops",
            ..DeniedContext::default()
        })
        .unwrap();
        assert_eq!(denied["where"], "in #ops");
        assert!(matches!(
            AckContext::VARS.iter().find(|(n, _)| *n == "execution"),
            Some((_, Var::Object(fields))) if fields.len() == 3
        ));
    }

    #[test]
    fn every_default_passes_its_own_check() {
        for slot in SLOTS {
            assert_eq!(check_template(slot.default, slot), vec![], "{}", slot.name);
        }
    }

    #[test]
    fn unknown_variables_and_helpers_are_found() {
        let ack = slot("ack").unwrap();
        let problems = check_template("{{user}} {{execution.idd}} {{nope}} {{shout user}}", ack);
        let kinds: Vec<_> = problems.iter().map(|p| &p.kind).collect();
        assert!(
            matches!(kinds[0], ProblemKind::UnknownVariable { path, .. } if path == "execution.idd")
        );
        assert!(matches!(kinds[1], ProblemKind::UnknownVariable { path, .. } if path == "nope"));
        assert!(matches!(kinds[2], ProblemKind::UnknownHelper(h) if h == "shout"));
        assert_eq!(problems.len(), 3);
        let result = slot("result").unwrap();
        assert!(check_template("{{extra.slack.color}} {{context.thread}}", result).is_empty());
        assert!(!check_template("{{#if message}}", result).is_empty());
    }

    #[test]
    fn block_helpers_and_partials_are_checked() {
        let ack = slot("ack").unwrap();
        let paths = |t: &str| -> Vec<String> {
            check_template(t, ack)
                .into_iter()
                .map(|p| match p.kind {
                    ProblemKind::UnknownVariable { path, .. } => path,
                    ProblemKind::Partial(name) => format!("> {name}"),
                    other => format!("{other:?}"),
                })
                .collect()
        };
        assert_eq!(
            paths("{{#with execution}}{{id}} {{statuss}} {{../user}}{{/with}}"),
            ["statuss"]
        );
        assert_eq!(paths("{{#with execution}}{{../usr}}{{/with}}"), ["../usr"]);
        assert!(paths("{{#with extra}}{{anything}}{{/with}}").len() == 1); // no `extra` in ack
        let no_match = slot("no_match").unwrap();
        assert!(
            check_template(
                "{{#each suggestions}}{{this}} {{@index}} {{../prefix}}{{/each}}",
                no_match
            )
            .is_empty()
        );
        assert_eq!(
            check_template("{{#each suggestions}}{{name}}{{/each}}", no_match).len(),
            1
        );
        assert_eq!(paths("{{> footer}}"), ["> footer"]);
    }
}
