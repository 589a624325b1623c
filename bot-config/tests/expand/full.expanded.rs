// @generated from tests/expand/full.yaml by build.rs — do not edit.
// The `bot!` macro expands to exactly this; read it, do not include it.

///The `full` bot, compiled from `tests/expand/full.yaml`.
static __ST2BOT_SPEC: ::st2bot::__private::BotSpec = ::st2bot::__private::BotSpec {
    name: ::std::borrow::Cow::Borrowed("full"),
    description: ::std::borrow::Cow::Borrowed("every section in use"),
    source: ::std::borrow::Cow::Borrowed("tests/expand/full.yaml"),
    backend: ::st2bot::__private::BackendSpec::Slack(::st2bot::__private::SlackSpec {
        app_token: ::st2bot::__private::SecretRef::Env(
            ::std::borrow::Cow::Borrowed("SLACK_APP_TOKEN"),
        ),
        bot_token: ::st2bot::__private::SecretRef::File(
            ::std::borrow::Cow::Borrowed("/run/secrets/slack-bot-token"),
        ),
        url: ::std::borrow::Cow::Borrowed("https://slack.com/api"),
    }),
    stackstorm: ::st2bot::__private::StackStormSpec {
        api_url: ::std::borrow::Cow::Borrowed("https://st2.example.com/api"),
        auth_url: ::std::borrow::Cow::Borrowed("https://st2.example.com/auth"),
        stream_url: ::std::borrow::Cow::Borrowed(
            "https://stream.st2.example.com/stream",
        ),
        auth: ::st2bot::__private::St2AuthSpec::Password {
            username: ::std::borrow::Cow::Borrowed("st2bot"),
            password: ::st2bot::__private::SecretRef::Env(
                ::std::borrow::Cow::Borrowed("ST2_PASSWORD"),
            ),
        },
        verify_tls: false,
        ca_file: ::std::option::Option::Some(
            ::std::borrow::Cow::Borrowed("/etc/st2bot/ca.pem"),
        ),
        notification_route: ::std::borrow::Cow::Borrowed("errbot"),
        announcement_route: ::std::borrow::Cow::Borrowed("errbot"),
        webui_url: ::std::option::Option::Some(
            ::std::borrow::Cow::Borrowed("https://st2.example.com"),
        ),
        timeout: ::std::time::Duration::from_millis(45000),
        token_ttl: ::std::time::Duration::from_millis(43200000),
        matcher: ::st2bot::__private::MatcherKind::Local,
        max_in_flight: 4u32,
        alias_refresh: ::std::time::Duration::from_millis(600000),
        result_timeout: ::std::time::Duration::from_millis(86400000),
        results_store: ::std::option::Option::None,
    },
    chat: ::st2bot::__private::ChatSpec {
        prefix: ::std::borrow::Cow::Borrowed("."),
        mention: false,
        help_command: ::std::borrow::Cow::Borrowed("st2help"),
        session_command: ::std::borrow::Cow::Borrowed("login"),
        ack: false,
        live_ack: true,
        replace_ack: false,
        max_message_len: 3000u32,
    },
    access: ::st2bot::__private::AccessSpec {
        default: ::st2bot::__private::Decision::Allow,
        rules: ::std::borrow::Cow::Borrowed(
            &[
                ::st2bot::__private::RuleSpec {
                    decision: ::st2bot::__private::Decision::Deny,
                    users: ::std::option::Option::Some(
                        ::std::borrow::Cow::Borrowed(
                            &[::std::borrow::Cow::Borrowed("guest-*")],
                        ),
                    ),
                    commands: ::std::option::Option::Some(
                        ::std::borrow::Cow::Borrowed(
                            &[::std::borrow::Cow::Borrowed("core.*")],
                        ),
                    ),
                    rooms: ::std::option::Option::None,
                    direct: ::std::option::Option::None,
                    line: 35u32,
                },
                ::st2bot::__private::RuleSpec {
                    decision: ::st2bot::__private::Decision::Allow,
                    users: ::std::option::Option::Some(
                        ::std::borrow::Cow::Borrowed(
                            &[::std::borrow::Cow::Borrowed("@oncall")],
                        ),
                    ),
                    commands: ::std::option::Option::Some(
                        ::std::borrow::Cow::Borrowed(
                            &[::std::borrow::Cow::Borrowed("core.remote*")],
                        ),
                    ),
                    rooms: ::std::option::Option::Some(
                        ::std::borrow::Cow::Borrowed(
                            &[::std::borrow::Cow::Borrowed("ops")],
                        ),
                    ),
                    direct: ::std::option::Option::None,
                    line: 36u32,
                },
                ::st2bot::__private::RuleSpec {
                    decision: ::st2bot::__private::Decision::Deny,
                    users: ::std::option::Option::None,
                    commands: ::std::option::Option::Some(
                        ::std::borrow::Cow::Borrowed(
                            &[::std::borrow::Cow::Borrowed("core.remote*")],
                        ),
                    ),
                    rooms: ::std::option::Option::None,
                    direct: ::std::option::Option::None,
                    line: 37u32,
                },
                ::st2bot::__private::RuleSpec {
                    decision: ::st2bot::__private::Decision::Allow,
                    users: ::std::option::Option::None,
                    commands: ::std::option::Option::Some(
                        ::std::borrow::Cow::Borrowed(
                            &[::std::borrow::Cow::Borrowed("bot:help")],
                        ),
                    ),
                    rooms: ::std::option::Option::None,
                    direct: ::std::option::Option::Some(true),
                    line: 38u32,
                },
            ],
        ),
        groups: ::std::borrow::Cow::Borrowed(
            &[
                ::st2bot::__private::GroupSpec {
                    name: ::std::borrow::Cow::Borrowed("oncall"),
                    members: ::std::borrow::Cow::Borrowed(
                        &[
                            ::std::borrow::Cow::Borrowed("alice"),
                            ::std::borrow::Cow::Borrowed("bob"),
                        ],
                    ),
                },
            ],
        ),
    },
    confirm: ::std::borrow::Cow::Borrowed(
        &[
            ::st2bot::__private::ConfirmSpec {
                commands: ::std::borrow::Cow::Borrowed(
                    &[::std::borrow::Cow::Borrowed("core.remote*")],
                ),
                by: ::st2bot::__private::ConfirmBy::Requester,
                within: ::std::time::Duration::from_millis(60000),
                line: 42u32,
            },
            ::st2bot::__private::ConfirmSpec {
                commands: ::std::borrow::Cow::Borrowed(
                    &[::std::borrow::Cow::Borrowed("packs.uninstall")],
                ),
                by: ::st2bot::__private::ConfirmBy::Group(
                    ::std::borrow::Cow::Borrowed("oncall"),
                ),
                within: ::std::time::Duration::from_millis(300000),
                line: 43u32,
            },
        ],
    ),
    templates: ::st2bot::__private::TemplatesSpec {
        ack: ::std::borrow::Cow::Borrowed(
            "{{user}}: {{alias}} is running ({{execution.id}})",
        ),
        result: ::std::borrow::Cow::Borrowed("{{message}}"),
        error: ::std::borrow::Cow::Borrowed(
            "{{user}}: `{{command}}` failed: {{error}}{{#if request_id}} (request {{request_id}}){{/if}}",
        ),
        help: ::std::borrow::Cow::Borrowed(
            "{{prefix}}{{display}}{{#if description}} - {{description}}{{/if}}",
        ),
        denied: ::std::borrow::Cow::Borrowed("{{user}}: no ({{rule}})"),
        no_match: ::std::borrow::Cow::Borrowed(
            "{{user}}: no command matches `{{command}}`.{{#if suggestions}} Closest:{{#each suggestions}}\n  {{../prefix}}{{this}}{{/each}}{{/if}}\nSee {{prefix}}{{help_command}}.",
        ),
        ambiguous: ::std::borrow::Cow::Borrowed(
            "{{user}}: `{{command}}` matches more than one command:{{#each candidates}}\n  {{../prefix}}{{this}}{{/each}}",
        ),
    },
    auth_page: ::std::option::Option::Some(::st2bot::__private::AuthPageSpec {
        listen: ::std::borrow::Cow::Borrowed("0.0.0.0:8443"),
        public_url: ::std::borrow::Cow::Borrowed("https://bot.example.com/login"),
        session_ttl: ::std::time::Duration::from_millis(86400000),
        link_ttl: ::std::time::Duration::from_millis(120000),
        required: true,
        store: ::std::borrow::Cow::Borrowed("/var/lib/st2bot/sessions.redb"),
        encryption_key: ::st2bot::__private::SecretRef::Env(
            ::std::borrow::Cow::Borrowed("ST2BOT_SESSION_KEY"),
        ),
        tls: ::std::option::Option::Some((
            ::std::borrow::Cow::Borrowed("/etc/st2bot/tls.crt"),
            ::std::borrow::Cow::Borrowed("/etc/st2bot/tls.key"),
        )),
        allow_plain_http: false,
        trusted_proxies: ::std::borrow::Cow::Borrowed(&[]),
        admins: ::std::borrow::Cow::Borrowed(
            &[
                ::std::borrow::Cow::Borrowed("@oncall"),
                ::std::borrow::Cow::Borrowed("root"),
            ],
        ),
    }),
    ha: ::std::option::Option::Some(::st2bot::__private::HaSpec {
        database_url: ::st2bot::__private::SecretRef::File(
            ::std::borrow::Cow::Borrowed("/etc/st2bot/database-url"),
        ),
        tls: ::st2bot::__private::PgTls::VerifyFull,
        ca_file: ::std::option::Option::Some(
            ::std::borrow::Cow::Borrowed("/etc/st2bot/db-ca.pem"),
        ),
        lease: ::std::time::Duration::from_millis(15000),
        instance_env: ::std::borrow::Cow::Borrowed("POD_NAME"),
    }),
    health_listen: ::std::option::Option::Some(
        ::std::borrow::Cow::Borrowed("127.0.0.1:9180"),
    ),
    log: ::st2bot::__private::LogSpec {
        format: ::st2bot::__private::LogFormat::Json,
        level: ::std::borrow::Cow::Borrowed("st2bot=debug,info"),
        audit_file: ::std::option::Option::None,
        audit_stdout: false,
    },
};
const _: &[u8] = ::core::include_bytes!("tests/expand/full.yaml");
fn main() -> ::std::process::ExitCode {
    ::st2bot::__private::main(
        &__ST2BOT_SPEC,
        ::st2bot::__private::Linked {
            backend: ::st2bot::__private::factory::slack,
            simulator: ::core::option::Option::None,
            ha: ::core::option::Option::Some(::st2bot::__private::linked::HA),
            sessions: ::core::option::Option::Some(
                ::st2bot::__private::linked::SESSIONS,
            ),
            results_file: ::core::option::Option::None,
        },
    )
}
