//! Action-alias documents as StackStorm's API returns them (`GET /api/v1/actionalias`), and
//! the expansion of their `formats` into match patterns (`normalise_alias_format_string` and
//! `list_format_strings_from_aliases` in `st2common/util/actionalias_matching.py`).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// One action alias. Deserializes from StackStorm's API JSON; fields this crate does not
/// use are kept as JSON where they matter to a bot and ignored otherwise.
/// The settings few aliases carry (`ack`, `result`, `extra`, `immutable_parameters`) are
/// boxed: a bot holds every alias of the catalogue, and inline they made each `Alias` 368
/// bytes before its strings (208 boxed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "RawAlias")]
pub struct Alias {
    /// The alias name (unique within its pack; `POST /aliasexecution` takes this).
    pub name: String,
    /// The pack the alias belongs to.
    pub pack: String,
    /// `pack.name`, or the `ref` the document carried.
    #[serde(rename = "ref")]
    reference: String,
    /// Disabled aliases are skipped by StackStorm's matching and help.
    pub enabled: bool,
    /// Free-text description, shown in help.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The alias's formats, in order.
    pub formats: Vec<FormatEntry>,
    /// The action this alias runs (`pack.action`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action_ref: Option<String>,
    /// The database id, when the document came from the API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// How StackStorm acknowledges an execution of this alias.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack: Option<Box<AckSettings>>,
    /// How StackStorm reports the result of an execution of this alias.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Box<ResultSettings>>,
    /// Free-form extra data (for example `security.twofactor`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra: Option<Box<Value>>,
    /// Parameters the user may not override.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub immutable_parameters: Option<Box<Value>>,
}

/// The wire shape, before `ref` gets its default.
#[derive(Deserialize)]
struct RawAlias {
    name: String,
    pack: String,
    #[serde(rename = "ref", default)]
    reference: Option<String>,
    #[serde(default = "default_true")]
    enabled: bool,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    formats: Vec<FormatEntry>,
    #[serde(default)]
    action_ref: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    ack: Option<Box<AckSettings>>,
    #[serde(default)]
    result: Option<Box<ResultSettings>>,
    #[serde(default)]
    extra: Option<Box<Value>>,
    #[serde(default)]
    immutable_parameters: Option<Box<Value>>,
}

fn default_true() -> bool {
    true
}

impl From<RawAlias> for Alias {
    fn from(raw: RawAlias) -> Alias {
        let reference = raw
            .reference
            .unwrap_or_else(|| format!("{}.{}", raw.pack, raw.name));
        Alias {
            name: raw.name,
            pack: raw.pack,
            reference,
            enabled: raw.enabled,
            description: raw.description,
            formats: raw.formats,
            action_ref: raw.action_ref,
            id: raw.id,
            ack: raw.ack,
            result: raw.result,
            extra: raw.extra,
            immutable_parameters: raw.immutable_parameters,
        }
    }
}

impl Alias {
    /// A minimal alias (enabled, no description or settings), mostly for tests and tools.
    pub fn new(pack: &str, name: &str, formats: Vec<FormatEntry>) -> Alias {
        Alias::from(RawAlias {
            name: name.to_owned(),
            pack: pack.to_owned(),
            reference: None,
            enabled: true,
            description: None,
            formats,
            action_ref: None,
            id: None,
            ack: None,
            result: None,
            extra: None,
            immutable_parameters: None,
        })
    }

    /// The alias with only what matching and help read (name, pack, reference, `enabled`,
    /// description, formats): `id`, `action_ref`, `ack`, `result`, `extra` and
    /// `immutable_parameters` are dropped. For a bot that keeps thousands of aliases: the
    /// execution response carries the alias's settings when they matter.
    pub fn without_settings(self) -> Alias {
        Alias {
            id: None,
            action_ref: None,
            ack: None,
            result: None,
            extra: None,
            immutable_parameters: None,
            ..self
        }
    }

    /// The alias reference, `pack.name`.
    pub fn reference(&self) -> &str {
        &self.reference
    }

    /// StackStorm's `ActionAliasDB.get_format_strings()`: the strings `match_and_execute`
    /// accepts as `format`. An object with a truthy `representation` contributes its entries;
    /// a plain-string `representation` contributes its *characters* (StackStorm extends a list
    /// with a string). Any other entry contributes itself, and only string entries can ever
    /// equal a format string.
    pub fn format_strings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for entry in &self.formats {
            match entry {
                FormatEntry::Plain(format) => out.push(format.clone()),
                FormatEntry::Object(object) => match &object.representation {
                    Some(Representation::Many(list)) if !list.is_empty() => {
                        out.extend(list.iter().cloned());
                    }
                    Some(Representation::One(text)) if !text.is_empty() => {
                        out.extend(text.chars().map(String::from));
                    }
                    _ => {}
                },
            }
        }
        out
    }
}

/// Acknowledgement settings (`ack`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AckSettings {
    /// No ack at all when false.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Jinja template StackStorm renders into the execution response's `message`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Provider-specific rich content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Value>,
    /// Whether to append the execution URL to the ack.
    #[serde(default = "default_true")]
    pub append_url: bool,
}

/// Result settings (`result`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultSettings {
    /// No result message when false.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Jinja template for the result message (rendered by StackStorm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Provider-specific rich content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Value>,
}

/// One entry of an alias's `formats`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FormatEntry {
    /// A format string: it is both the help text and the pattern.
    Plain(String),
    /// `{display, representation, match_multiple}`.
    Object(FormatObject),
}

/// A format object. For `display` and `representation`, `null` and a missing key are not
/// told apart (StackStorm treats both alike); for `match_multiple` they are, since StackStorm
/// copies a `null` into its match result where a missing key reads as `false`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FormatObject {
    /// Help text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    /// The patterns, normally a list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub representation: Option<Representation>,
    /// True for patterns matched anywhere and executed once per match. `None`: no key
    /// (reads as `false`); `Some(None)`: `null`, kept as such (it executes like `false`).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub match_multiple: Option<Option<bool>>,
}

/// A key that is present: `null` becomes `Some(None)` (serde's default would give `None`).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<bool>>, D::Error> {
    Option::<bool>::deserialize(deserializer).map(Some)
}

/// A `representation`: a list, or (tolerated by StackStorm's matcher) a single string.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Representation {
    /// A single pattern string.
    One(String),
    /// The usual list of patterns.
    Many(Vec<String>),
}

impl FormatEntry {
    /// True when this entry is flagged `match_multiple: true` (what selects an alias for
    /// StackStorm's second matching pass).
    pub fn is_match_multiple(&self) -> bool {
        matches!(
            self,
            FormatEntry::Object(FormatObject {
                match_multiple: Some(Some(true)),
                ..
            })
        )
    }

    /// The help text: the string itself, or the object's `display`.
    pub fn display(&self) -> Option<&str> {
        match self {
            FormatEntry::Plain(format) => Some(format),
            FormatEntry::Object(object) => object.display.as_deref(),
        }
    }

    /// The entry's representations: the string itself, or the object's `representation`
    /// (a single string counts as a one-element list).
    pub fn representations(&self) -> Vec<&str> {
        match self {
            FormatEntry::Plain(format) => vec![format.as_str()],
            FormatEntry::Object(object) => match &object.representation {
                None => Vec::new(),
                Some(Representation::One(text)) => vec![text.as_str()],
                Some(Representation::Many(list)) => list.iter().map(String::as_str).collect(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alias_stays_small_since_a_bot_holds_the_whole_catalogue() {
        // 10,000 aliases: 2 MiB of `Alias` values (3.5 MiB with the settings inline).
        assert!(
            std::mem::size_of::<Alias>() <= 208,
            "{}",
            std::mem::size_of::<Alias>()
        );
    }

    #[test]
    fn parses_both_format_shapes_and_defaults() {
        let alias: Alias = serde_json::from_value(serde_json::json!({
            "name": "deploy", "pack": "ops", "id": "5f", "uid": "action:ops:deploy",
            "action_ref": "ops.deploy", "description": "Deploy an app",
            "formats": [
                "ship {{app}}",
                {"display": "deploy <app>", "representation": ["deploy {{app}}", "dep {{app}}"]},
                {"display": "tail <key>", "representation": "tail {{key}}", "match_multiple": true}
            ],
            "ack": {"format": "on it", "append_url": false},
            "result": {"extra": {"slack": {"color": "good"}}},
            "unknown_field": 1
        }))
        .expect("valid alias");
        assert_eq!(alias.reference(), "ops.deploy");
        assert!(alias.enabled);
        assert_eq!(alias.formats.len(), 3);
        assert_eq!(alias.formats[0], FormatEntry::Plain("ship {{app}}".into()));
        assert!(alias.formats[2].is_match_multiple());
        let ack = alias.ack.as_ref().expect("ack");
        assert!(ack.enabled && !ack.append_url);
        assert!(alias.result.as_ref().expect("result").enabled);
        assert_eq!(
            alias.format_strings(),
            [
                "ship {{app}}",
                "deploy {{app}}",
                "dep {{app}}",
                "t",
                "a",
                "i",
                "l",
                " ",
                "{",
                "{",
                "k",
                "e",
                "y",
                "}",
                "}"
            ]
        );

        let explicit: Alias = serde_json::from_str(
            r#"{"name": "n", "pack": "p", "ref": "other.ref", "enabled": false}"#,
        )
        .expect("valid");
        assert_eq!(explicit.reference(), "other.ref");
        assert!(!explicit.enabled && explicit.formats.is_empty());
    }

    #[test]
    fn match_multiple_null_is_kept() {
        let entries: Vec<FormatEntry> = serde_json::from_str(
            r#"[{"representation": ["a"], "match_multiple": null},
                {"representation": ["b"]},
                {"representation": ["c"], "match_multiple": true}]"#,
        )
        .expect("valid formats");
        assert!(!entries[0].is_match_multiple());
        assert!(entries[2].is_match_multiple());
        // Written back as it was read.
        assert_eq!(
            serde_json::to_value(&entries[0]).expect("serializes"),
            serde_json::json!({"representation": ["a"], "match_multiple": null})
        );
        assert_eq!(
            serde_json::to_value(&entries[1]).expect("serializes"),
            serde_json::json!({"representation": ["b"]})
        );
    }
}
