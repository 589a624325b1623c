//! [`DiagnosticId`]: the stable id of every diagnostic, one variant per id.
//!
//! The id names the compile-fail case (`tests/ui/<family>/<id>.yaml`) and the entry of the
//! error reference in `docs/definition.md` (`### <id>`); a test walks [`DiagnosticId::ALL`]
//! and checks both, so an id cannot ship untested or unexplained.

use std::fmt;

/// Declares [`DiagnosticId`] from one list of `Variant = "kebab-id"` lines, so the variant,
/// its string and its place in [`DiagnosticId::ALL`] come from one declaration.
macro_rules! diagnostic_ids {
    ($( $(#[doc = $doc:literal])* $variant:ident = $id:literal, )*) => {
        /// The stable kebab-case id of a diagnostic (`unknown-backend`): the compile-fail test
        /// name, the anchor in the error reference and the `id` of `st2bot-lint`'s JSON.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum DiagnosticId {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl DiagnosticId {
            /// Every id, in the order of the error reference.
            pub const ALL: &'static [DiagnosticId] = &[$(DiagnosticId::$variant,)*];

            /// The kebab-case id, as rendered and documented.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(DiagnosticId::$variant => $id,)*
                }
            }
        }
    };
}

diagnostic_ids! {
    /// The file is not valid YAML; the parser stops at the first such problem.
    YamlSyntax = "yaml-syntax",
    /// The file holds nothing but comments.
    EmptyFile = "empty-file",
    /// A key the schema does not have at that place (also a rule other than `allow`/`deny`).
    UnknownKey = "unknown-key",
    /// A required key is absent: `name`, `backend`, `stackstorm` at the top level, `kind` in
    /// `backend`, `auth` in `stackstorm`, `public_url` and `encryption_key` in `auth_page`.
    MissingKey = "missing-key",
    /// A key appears twice in one mapping.
    DuplicateKey = "duplicate-key",
    /// A value has the wrong shape: text where a mapping is expected, a word where `true`/`false`
    /// or a number is expected, a number out of range, an empty value, a rule with two keys, or
    /// an unquoted template (read as a mapping).
    WrongType = "wrong-type",
    /// `backend.kind` is not a known backend.
    UnknownBackend = "unknown-backend",
    /// A `backend` key that belongs to another kind (`password` under `kind: text`).
    BackendKeyNotApplicable = "backend-key-not-applicable",
    /// The backend kind needs a key that is absent (`bot_token` for Slack) or a complete login.
    MissingBackendSetting = "missing-backend-setting",
    /// The XMPP `jid` is not a bare `user@domain`.
    InvalidJid = "invalid-jid",
    /// The Teams `app_id` is not a GUID.
    InvalidAppId = "invalid-app-id",
    /// The Teams `tenant` is neither a tenant id (a GUID) nor a domain
    /// (`contoso.onmicrosoft.com`); it goes into the token endpoint's path.
    InvalidTenant = "invalid-tenant",
    /// An IRC channel that does not start with `#`, `&`, `+` or `!`.
    InvalidRoom = "invalid-room",
    /// IRC `auth` is not `none`, `sasl`, `nickserv` or `server`.
    UnknownIrcAuth = "unknown-irc-auth",
    /// A URL that does not parse, has no scheme (`st2.example.com`), uses a scheme other than
    /// `http` or `https`, has no host, or carries a query or fragment.
    InvalidUrl = "invalid-url",
    /// `stackstorm` has neither `url` nor the address in question (`api_url`, `stream_url`, or
    /// `auth_url` with `username`+`password`).
    MissingUrl = "missing-url",
    /// `stackstorm.auth` names no credential, or `username` without `password` (or the reverse),
    /// or an empty `username`.
    MissingAuth = "missing-auth",
    /// `stackstorm.auth` gives two credentials (`api_key` and `token`).
    ConflictingAuth = "conflicting-auth",
    /// A route with characters other than letters, digits, `_` and `-`.
    InvalidRoute = "invalid-route",
    /// `stackstorm.matcher` is not `stackstorm` or `local`.
    UnknownMatcher = "unknown-matcher",
    /// A number outside its range (`max_in_flight: 0`).
    InvalidNumber = "invalid-number",
    /// A secret written as its value (or credentials inside a URL).
    ClearTextSecret = "clear-text-secret",
    /// A malformed secret reference (`${` without `}`, a bad variable name, `file:` without a
    /// path).
    InvalidSecretReference = "invalid-secret-reference",
    /// A rule (or a `confirm` entry's `by`) names `@group` that `groups` does not define.
    UndefinedGroup = "undefined-group",
    /// A rule with no `users`, `commands`, `rooms` or `direct` matches everything.
    EmptyRule = "empty-rule",
    /// A user, command or room pattern that is empty or not a valid glob (`st2.[abc`).
    InvalidGlob = "invalid-glob",
    /// An earlier, wider rule matches everything this rule matches, so it never applies.
    ShadowedRule = "shadowed-rule",
    /// The same scope and decision as an earlier rule.
    DuplicateRule = "duplicate-rule",
    /// The same scope as an earlier rule with the opposite decision: the earlier one always wins.
    ConflictingRule = "conflicting-rule",
    /// A rule that can never match: `rooms` with `direct: true` (a direct message is in no room).
    UnreachableRule = "unreachable-rule",
    /// `users`, `commands` or `rooms` is `[]`, so the rule matches nothing (or a `confirm`
    /// entry's `commands` is `[]`, so it confirms nothing).
    EmptyList = "empty-list",
    /// A `bot:` command other than `bot:help`, `bot:help-all`, `bot:session`, `bot:inquiry` and
    /// `bot:confirm`.
    UnknownBotCommand = "unknown-bot-command",
    /// A group member that is another group (`@admins`).
    NestedGroup = "nested-group",
    /// A group with no members.
    EmptyGroup = "empty-group",
    /// A group name with characters other than letters, digits, `-` and `_`.
    InvalidGroupName = "invalid-group-name",
    /// `access.default` is not `allow` or `deny`.
    InvalidDefault = "invalid-default",
    /// A template does not parse: a `{{` without `}}`, a `{{#block}}` never closed, a
    /// `{{/block}}` without or with the wrong opening.
    TemplateSyntax = "template-syntax",
    /// A template reads a variable its slot never gets (`{{usr}}`, `{{execution.idd}}`).
    UnknownVariable = "unknown-variable",
    /// A template calls a helper that does not exist.
    UnknownHelper = "unknown-helper",
    /// Not a duration, or a number without a unit.
    InvalidDuration = "invalid-duration",
    /// A duration of zero.
    ZeroDuration = "zero-duration",
    /// A duration above the key's maximum (shown in the help).
    DurationTooLong = "duration-too-long",
    /// A `confirm` entry's `by` is neither `self` nor `@group` (often a group name without its
    /// `@`).
    InvalidConfirmBy = "invalid-confirm-by",
    /// A `confirm` entry's `within` under 10 seconds: nobody could read the prompt and answer in
    /// time.
    WithinTooShort = "within-too-short",
    /// A `confirm` entry names one of the bot's own commands (`bot:help`…), which never need a
    /// confirmation.
    UnconfirmableCommand = "unconfirmable-command",
    /// The command prefix is empty (often an unquoted `!`, a YAML tag), longer than 8 characters
    /// or contains spaces.
    InvalidPrefix = "invalid-prefix",
    /// `help_command` or `session_command` is not one word.
    InvalidCommandName = "invalid-command-name",
    /// `help_command` and `session_command` are the same word.
    CommandNameClash = "command-name-clash",
    /// `max_message_len` below 64.
    MessageLengthTooSmall = "message-length-too-small",
    /// `chat.ack.replace: true` on a backend that cannot edit a message once posted.
    AckReplaceNeedsEdit = "ack-replace-needs-edit",
    /// `chat.ack.replace: true` with `chat.ack.enabled: false`: there is no ack to replace.
    AckReplaceWithoutAck = "ack-replace-without-ack",
    /// Warning: a group named `admins` and an `auth_page` without `admins`; the group does not
    /// make session admins.
    AdminsGroupNotAdmins = "admins-group-not-admins",
    /// The auth page would take passwords over plain HTTP on a non-loopback address.
    PlainHttpOnNetwork = "plain-http-on-network",
    /// A listen address that is not `IP:port` (host names are not resolved at build time).
    InvalidListenAddress = "invalid-listen-address",
    /// `tls_cert` without `tls_key`, or the reverse.
    IncompleteTls = "incomplete-tls",
    /// `ha.tls` is not `verify-full` or `disable`.
    UnknownHaTls = "unknown-ha-tls",
    /// `ha.ca_file` with `ha.tls: disable`: the file would never be read.
    CaFileWithoutTls = "ca-file-without-tls",
    /// `ha.lease` under `2s`.
    LeaseTooShort = "lease-too-short",
    /// `ha.instance_env` must be the *name* of an environment variable (`ST2BOT_INSTANCE`), not a
    /// `${...}` reference or another value.
    InvalidInstanceEnv = "invalid-instance-env",
    /// An `auth_page.trusted_proxies` entry that is neither an IP address (`127.0.0.1`, `::1`)
    /// nor a CIDR range (`10.0.0.0/8`, `fd00::/8`); host names are not resolved.
    InvalidTrustedProxy = "invalid-trusted-proxy",
    /// An unquoted text value (`description`, a template) is followed on its line by ` #word`.
    CommentInValue = "comment-in-value",
    /// The bot's name is not letters, digits, `-` and `_` starting with a letter.
    InvalidBotName = "invalid-bot-name",
    /// `log.format` is not `text` or `json`.
    UnknownLogFormat = "unknown-log-format",
    /// `log.level` is not a level or a list of `target=level` directives.
    InvalidLogLevel = "invalid-log-level",
    /// `stackstorm.catalogue` names neither `packs` nor `exports`.
    EmptyCatalogue = "empty-catalogue",
    /// A catalogue path that is not a directory (`packs`) or cannot be read (`exports`).
    CatalogueUnreadable = "catalogue-unreadable",
    /// A file under `<pack>/aliases/` that is not valid YAML or not an action alias (`name`,
    /// `action_ref`, `formats`).
    InvalidAlias = "invalid-alias",
    /// An `exports` file that is not the JSON list `st2 … list -j` prints.
    InvalidExport = "invalid-export",
    /// An access rule's (or a `confirm` entry's) command or glob matches no alias of the
    /// catalogue.
    UnknownAlias = "unknown-alias",
    /// Warning: an enabled alias of the catalogue that no rule lets anyone run.
    AliasNotRunnable = "alias-not-runnable",
    /// Two enabled aliases match the same command (shown), so StackStorm would answer it with
    /// "matched more than 1 pattern" and run nothing.
    AmbiguousAliases = "ambiguous-aliases",
    /// An alias format StackStorm would reject (an invalid Python regular expression).
    InvalidAliasFormat = "invalid-alias-format",
    /// A format object's `display` written as a command (with `{{param}}` placeholders, or plain
    /// words) that none of its representations matches: help would show a command that does not
    /// work.
    UnmatchedExample = "unmatched-example",
    /// An alias runs an action that is not in the catalogue (checked when the catalogue lists
    /// actions).
    UnknownAction = "unknown-action",
    /// An alias's `ack.format` or `result.format` uses `execution.parameters.X` where `X` is
    /// neither extracted by its formats, nor immutable, nor a parameter of its action (checked
    /// when the action is in the catalogue).
    UnknownAliasParameter = "unknown-alias-parameter",
    /// A secret reference with a shell-style default (`${NAME:-value}`): the default would be
    /// compiled into the executable.
    SecretDefault = "secret-default",
    /// A line indented with a non-breaking or other invisible space, which YAML does not count as
    /// indentation (it becomes part of the key).
    InvisibleCharacter = "invisible-character",
    /// A template uses a partial (`{{> name}}`); the bot registers none, so it would fail at run
    /// time.
    TemplatePartial = "template-partial",
    /// A bug in st2bot: a check rejected a part of the definition without saying why. No
    /// definition should trigger it, so it has no compile-fail case.
    Internal = "internal",
}

impl DiagnosticId {
    /// The id spelled `id`, if there is one.
    pub fn from_name(id: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|d| d.as_str() == id)
    }
}

/// Ids sort by their text, so diagnostics at one position come out in the same order
/// whatever the order of the variants.
impl Ord for DiagnosticId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for DiagnosticId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for DiagnosticId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for DiagnosticId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `UnknownBackend` is `unknown-backend`: the string is the variant in kebab case, and
    /// no two variants share a string.
    #[test]
    fn ids_are_the_variants_in_kebab_case_and_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for id in DiagnosticId::ALL {
            let mut kebab = String::new();
            for (i, c) in format!("{id:?}").chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    kebab.push('-');
                }
                kebab.push(c.to_ascii_lowercase());
            }
            assert_eq!(id.as_str(), kebab);
            assert!(seen.insert(id.as_str()), "`{id}` is declared twice");
            assert_eq!(DiagnosticId::from_name(id.as_str()), Some(*id));
        }
        assert_eq!(DiagnosticId::from_name("no-such-id"), None);
    }

    #[test]
    fn ids_serialize_and_sort_as_their_text() {
        assert_eq!(
            serde_json::to_value(DiagnosticId::UnknownBackend).unwrap(),
            serde_json::json!("unknown-backend")
        );
        assert!(DiagnosticId::AckReplaceNeedsEdit < DiagnosticId::YamlSyntax);
        assert!(DiagnosticId::InvalidAlias < DiagnosticId::InvalidAliasFormat);
    }
}
