//! Reply templates: the slots a definition can fill, the variables the runtime gives each,
//! the defaults, and the build-time check that a template only uses what it will be given.
//!
//! Read [`SLOTS`] first. The runtime renders with the same names (see `bot-runtime`'s
//! `template` module), and a unit test there renders every default with a full context.

use handlebars::template::{HelperTemplate, Parameter, Template, TemplateElement};

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

/// One template slot: its key under `templates:`, what it is for, its variables and default.
#[derive(Debug)]
pub struct Slot {
    /// Key under `templates:`.
    pub name: &'static str,
    /// When the runtime uses it.
    pub purpose: &'static str,
    /// Variables the runtime provides.
    pub vars: &'static [(&'static str, Var)],
    /// The default template.
    pub default: &'static str,
}

const EXECUTION: Var = Var::Object(&[
    ("id", Var::Leaf),
    ("status", Var::Leaf),
    ("web_url", Var::Leaf),
]);

/// Every template slot.
pub const SLOTS: &[Slot] = &[
    Slot {
        name: "ack",
        purpose: "acknowledgement when StackStorm accepted an execution",
        vars: &[
            ("user", Var::Leaf),
            ("room", Var::Leaf),
            ("command", Var::Leaf),
            ("alias", Var::Leaf),
            ("message", Var::Leaf),
            ("url", Var::Leaf),
            ("execution", EXECUTION),
        ],
        default: "{{#if message}}{{message}}{{else}}{{user}}: running `{{alias}}`, execution {{execution.id}}{{/if}}{{#if url}} {{url}}{{/if}}",
    },
    Slot {
        name: "result",
        purpose: "a result or announcement from the stream",
        vars: &[
            ("message", Var::Leaf),
            ("user", Var::Leaf),
            ("channel", Var::Leaf),
            ("whisper", Var::Leaf),
            ("context", Var::Open),
            ("extra", Var::Open),
        ],
        default: "{{message}}",
    },
    Slot {
        name: "error",
        purpose: "StackStorm refused a command or could not be reached",
        vars: &[
            ("user", Var::Leaf),
            ("command", Var::Leaf),
            ("error", Var::Leaf),
            ("status", Var::Leaf),
            ("request_id", Var::Leaf),
        ],
        default: "{{user}}: `{{command}}` failed: {{error}}{{#if request_id}} (request {{request_id}}){{/if}}",
    },
    Slot {
        name: "help",
        purpose: "one line of the help listing",
        vars: &[
            ("pack", Var::Leaf),
            ("display", Var::Leaf),
            ("description", Var::Leaf),
            ("prefix", Var::Leaf),
        ],
        default: "{{prefix}}{{display}}{{#if description}} - {{description}}{{/if}}",
    },
    Slot {
        name: "denied",
        purpose: "the access rules refused a command",
        vars: &[
            ("user", Var::Leaf),
            ("command", Var::Leaf),
            ("room", Var::Leaf),
            ("where", Var::Leaf),
            ("instead", Var::Leaf),
            ("rule", Var::Leaf),
        ],
        default: "{{user}}: you are not allowed to run `{{command}}` {{where}}. {{instead}}",
    },
    Slot {
        name: "no_match",
        purpose: "no action-alias matched the command",
        vars: &[
            ("user", Var::Leaf),
            ("command", Var::Leaf),
            ("prefix", Var::Leaf),
            ("help_command", Var::Leaf),
            ("suggestions", Var::List),
        ],
        default: "{{user}}: no command matches `{{command}}`.{{#if suggestions}} Closest:{{#each suggestions}}\n  {{../prefix}}{{this}}{{/each}}{{/if}}\nSee {{prefix}}{{help_command}}.",
    },
    Slot {
        name: "ambiguous",
        purpose: "several action-aliases matched the command",
        vars: &[
            ("user", Var::Leaf),
            ("command", Var::Leaf),
            ("prefix", Var::Leaf),
            ("candidates", Var::List),
        ],
        default: "{{user}}: `{{command}}` matches more than one command:{{#each candidates}}\n  {{../prefix}}{{this}}{{/each}}",
    },
];

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
