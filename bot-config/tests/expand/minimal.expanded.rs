// @generated from tests/expand/minimal.yaml by build.rs — do not edit.
// The `bot!` macro expands to exactly this; read it, do not include it.

///The `minimal` bot, compiled from `tests/expand/minimal.yaml`.
static __ST2BOT_SPEC: ::st2bot::__private::BotSpec = ::st2bot::__private::BotSpec {
    name: ::std::borrow::Cow::Borrowed("minimal"),
    description: ::std::borrow::Cow::Borrowed(""),
    source: ::std::borrow::Cow::Borrowed("tests/expand/minimal.yaml"),
    backend: ::st2bot::__private::BackendSpec::Text(::st2bot::__private::TextSpec {
        user: ::std::borrow::Cow::Borrowed(""),
        room: ::std::borrow::Cow::Borrowed("terminal"),
        simulator: false,
    }),
    stackstorm: ::st2bot::__private::StackStormSpec {
        api_url: ::std::borrow::Cow::Borrowed("http://127.0.0.1:9101/api"),
        auth_url: ::std::borrow::Cow::Borrowed("http://127.0.0.1:9101/auth"),
        stream_url: ::std::borrow::Cow::Borrowed("http://127.0.0.1:9101/stream"),
        auth: ::st2bot::__private::St2AuthSpec::ApiKey(
            ::st2bot::__private::SecretRef::Env(
                ::std::borrow::Cow::Borrowed("ST2_API_KEY"),
            ),
        ),
        verify_tls: true,
        ca_file: ::std::option::Option::None,
        notification_route: ::std::borrow::Cow::Borrowed("hubot"),
        announcement_route: ::std::borrow::Cow::Borrowed("chatops"),
        webui_url: ::std::option::Option::None,
        timeout: ::std::time::Duration::from_millis(30000),
        token_ttl: ::std::time::Duration::from_millis(86400000),
        matcher: ::st2bot::__private::MatcherKind::StackStorm,
        max_in_flight: 16u32,
        alias_refresh: ::std::time::Duration::from_millis(300000),
        result_timeout: ::std::time::Duration::from_millis(86400000),
        results_store: ::std::option::Option::None,
    },
    chat: ::st2bot::__private::ChatSpec {
        prefix: ::std::borrow::Cow::Borrowed("!"),
        mention: true,
        help_command: ::std::borrow::Cow::Borrowed("help"),
        session_command: ::std::borrow::Cow::Borrowed("session"),
        ack: true,
        live_ack: true,
        replace_ack: false,
        max_message_len: 0u32,
    },
    access: ::st2bot::__private::AccessSpec {
        default: ::st2bot::__private::Decision::Deny,
        rules: ::std::borrow::Cow::Borrowed(&[]),
        groups: ::std::borrow::Cow::Borrowed(&[]),
    },
    confirm: ::std::borrow::Cow::Borrowed(&[]),
    templates: ::st2bot::__private::TemplatesSpec {
        ack: ::std::borrow::Cow::Borrowed(
            "{{#if message}}{{message}}{{else}}{{user}}: running `{{alias}}`, execution {{execution.id}}{{/if}}{{#if url}} {{url}}{{/if}}",
        ),
        result: ::std::borrow::Cow::Borrowed("{{message}}"),
        error: ::std::borrow::Cow::Borrowed(
            "{{user}}: `{{command}}` failed: {{error}}{{#if request_id}} (request {{request_id}}){{/if}}",
        ),
        help: ::std::borrow::Cow::Borrowed(
            "{{prefix}}{{display}}{{#if description}} - {{description}}{{/if}}",
        ),
        denied: ::std::borrow::Cow::Borrowed(
            "{{user}}: you are not allowed to run `{{command}}` {{where}}. {{instead}}",
        ),
        no_match: ::std::borrow::Cow::Borrowed(
            "{{user}}: no command matches `{{command}}`.{{#if suggestions}} Closest:{{#each suggestions}}\n  {{../prefix}}{{this}}{{/each}}{{/if}}\nSee {{prefix}}{{help_command}}.",
        ),
        ambiguous: ::std::borrow::Cow::Borrowed(
            "{{user}}: `{{command}}` matches more than one command:{{#each candidates}}\n  {{../prefix}}{{this}}{{/each}}",
        ),
    },
    auth_page: ::std::option::Option::None,
    ha: ::std::option::Option::None,
    health_listen: ::std::option::Option::None,
    log: ::st2bot::__private::LogSpec {
        format: ::st2bot::__private::LogFormat::Text,
        level: ::std::borrow::Cow::Borrowed("info"),
        audit_file: ::std::option::Option::None,
        audit_stdout: false,
    },
};
const _: &[u8] = ::core::include_bytes!("tests/expand/minimal.yaml");
fn main() -> ::std::process::ExitCode {
    ::st2bot::__private::main(
        &__ST2BOT_SPEC,
        ::st2bot::__private::Linked {
            backend: ::st2bot::__private::factory::text,
            simulator: ::core::option::Option::None,
            ha: ::core::option::Option::None,
            sessions: ::core::option::Option::None,
            results_file: ::core::option::Option::None,
        },
    )
}
