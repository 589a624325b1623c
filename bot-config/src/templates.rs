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

/// Block helpers that change the context (`this`) inside their body.
const CONTEXT_CHANGING: &[&str] = &["each", "with"];

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
    walk(&template, slot, 0, (1, 1), &mut out);
    out
}

fn walk(t: &Template, slot: &Slot, depth: u32, at: (usize, usize), out: &mut Vec<TemplateProblem>) {
    for (i, element) in t.elements.iter().enumerate() {
        let pos = t.mapping.get(i).map(|m| (m.0, m.1)).unwrap_or(at);
        match element {
            TemplateElement::Expression(h)
            | TemplateElement::HtmlExpression(h)
            | TemplateElement::HelperBlock(h) => helper(h, slot, depth, pos, out),
            _ => {}
        }
    }
}

fn helper(
    h: &HelperTemplate,
    slot: &Slot,
    depth: u32,
    pos: (usize, usize),
    out: &mut Vec<TemplateProblem>,
) {
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
        param(&h.name, slot, depth, pos, out);
    }
    for p in h.params.iter().chain(h.hash.values()) {
        param(p, slot, depth, pos, out);
    }
    let inner = if h.block
        && h.name
            .as_name()
            .is_some_and(|n| CONTEXT_CHANGING.contains(&n))
    {
        depth + 1
    } else {
        depth
    };
    if let Some(t) = &h.template {
        walk(t, slot, inner, pos, out);
    }
    if let Some(t) = &h.inverse {
        walk(t, slot, depth, pos, out);
    }
}

fn param(
    p: &Parameter,
    slot: &Slot,
    depth: u32,
    pos: (usize, usize),
    out: &mut Vec<TemplateProblem>,
) {
    match p {
        Parameter::Name(name) => check_path(name, slot, depth, pos, out),
        Parameter::Path(handlebars::Path::Relative((_, raw))) => {
            check_path(raw, slot, depth, pos, out)
        }
        Parameter::Subexpression(s) => {
            if let TemplateElement::Expression(h) = &*s.element {
                helper(h, slot, depth, pos, out);
            }
        }
        _ => {}
    }
}

/// Checks a path such as `execution.id`, `../prefix`, `this` or `@index`.
fn check_path(
    raw: &str,
    slot: &Slot,
    depth: u32,
    pos: (usize, usize),
    out: &mut Vec<TemplateProblem>,
) {
    let mut path = raw.trim();
    let mut level = depth;
    while let Some(rest) = path.strip_prefix("../") {
        path = rest;
        level = level.saturating_sub(1);
    }
    if path.starts_with('@') || path == "this" || path.starts_with("this.") || path == "." {
        return;
    }
    if level > 0 {
        // Inside `#each`/`#with` the context is an item whose shape is not known here.
        return;
    }
    let mut kind = Var::Object(slot.vars);
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
}
