//! `--doctor`: the self-check an operator runs after installing a bot, modelled on what
//! st2chatops's `scripts/self-check.sh` verifies. One line per check, each with a fix hint:
//!
//! 1. StackStorm's API is reachable and accepts the bot's credentials;
//! 2. at least one action alias is enabled (otherwise the bot can run nothing);
//! 3. the `chatops` pack has an enabled notify rule for the bot's notification route, and that
//!    rule announces on the route the bot listens to (otherwise acks arrive, results never do);
//! 4. the event stream connects;
//! 5. a test announcement the doctor triggers itself (`chatops.post_message` through
//!    `POST /v1/executions`) arrives on that stream.
//!
//! The rule check reads `GET /v1/rules?pack=chatops` (StackStorm's `RuleAPI` documents:
//! `criteria."trigger.route".pattern`, `enabled`, `action.ref`, `action.parameters.route`).
//! The test announcement goes to a channel named `st2bot-doctor-<nonce>`, like st2chatops's
//! random channel: a running bot on the same route will try to post it there.

use std::time::{Duration, Instant};

use bot_config::{BotSpec, St2AuthSpec};
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

use crate::check::CheckLine;
use crate::stackstorm::stream::{SseParser, StreamEvent, decode};
use crate::stackstorm::{St2Client, St2Error};

/// How long the stream may take to answer.
const STREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the test announcement may take to arrive (an action runner picks it up first).
const ANNOUNCEMENT_TIMEOUT: Duration = Duration::from_secs(20);

/// The pack whose rules turn execution notifications into announcements.
const CHATOPS_PACK: &str = "chatops";

fn pass(what: &str, detail: impl Into<String>) -> CheckLine {
    CheckLine {
        ok: true,
        what: what.into(),
        detail: detail.into(),
    }
}

fn fail(what: &str, detail: impl Into<String>) -> CheckLine {
    CheckLine {
        ok: false,
        what: what.into(),
        detail: detail.into(),
    }
}

fn skipped(what: &str, because: &str) -> CheckLine {
    fail(what, format!("not checked: {because}"))
}

/// Runs every check against the StackStorm `client` talks to, for the bot `spec` describes.
pub async fn run(spec: &BotSpec, client: &St2Client) -> Vec<CheckLine> {
    let st2 = &spec.stackstorm;
    let mut lines = Vec::new();

    // 1 + 2: the API and the aliases (one call proves both reachability and credentials).
    match client.list_aliases().await {
        Ok(aliases) => {
            lines.push(pass(
                "StackStorm API",
                format!(
                    "{} answers and accepts the bot's {}",
                    st2.api_url,
                    credential_kind(&st2.auth)
                ),
            ));
            lines.push(alias_check(&aliases));
        }
        Err(e) => {
            lines.push(fail("StackStorm API", api_hint(spec, &e)));
            for what in [
                "action aliases",
                "notify rule",
                "event stream",
                "test announcement",
            ] {
                lines.push(skipped(what, "the StackStorm API check failed"));
            }
            return lines;
        }
    }

    // 3: the notify rule for our route.
    let rules_url = format!("{}/v1/rules?pack={CHATOPS_PACK}&limit=100", st2.api_url);
    lines.push(
        match client
            .call::<Vec<Value>>("rules", Method::GET, rules_url, None, None)
            .await
        {
            Ok(rules) => notify_rule_check(&rules, &st2.notification_route, &st2.announcement_route),
            Err(e) => fail(
                "notify rule",
                format!(
                    "cannot list the rules of the `{CHATOPS_PACK}` pack: {e}; the bot's StackStorm user needs permission to view rules"
                ),
            ),
        },
    );

    // 4 + 5: the stream and a test announcement through it.
    let event = format!("st2.announcement__{}", st2.announcement_route);
    let opened = tokio::time::timeout(STREAM_CONNECT_TIMEOUT, client.open_stream(&event)).await;
    let stream = match opened {
        Ok(Ok(response)) => {
            lines.push(pass(
                "event stream",
                format!("{} is connected, listening for `{event}`", st2.stream_url),
            ));
            response
        }
        Ok(Err(e)) => {
            lines.push(fail("event stream", stream_hint(spec, &e)));
            lines.push(skipped(
                "test announcement",
                "the event stream did not connect",
            ));
            return lines;
        }
        Err(_) => {
            lines.push(fail(
                "event stream",
                format!(
                    "{} did not answer within {}s: is st2stream running, and does a proxy in front of it pass `/stream` through unbuffered?",
                    st2.stream_url,
                    STREAM_CONNECT_TIMEOUT.as_secs()
                ),
            ));
            lines.push(skipped(
                "test announcement",
                "the event stream did not connect",
            ));
            return lines;
        }
    };
    lines.push(test_announcement(spec, client, stream).await);
    lines
}

/// The lines to print when the StackStorm client cannot even be set up (a missing secret).
pub fn client_unavailable(error: &St2Error) -> Vec<CheckLine> {
    vec![fail(
        "StackStorm credentials",
        format!(
            "{error}; put it in the bot's environment (e.g. /etc/st2bot/<bot>.env) and run the doctor again"
        ),
    )]
}

fn credential_kind(auth: &St2AuthSpec) -> String {
    match auth {
        St2AuthSpec::ApiKey(r) => format!("API key ({r})"),
        St2AuthSpec::Token(r) => format!("token ({r})"),
        St2AuthSpec::Password { username, .. } => format!("token for user `{username}`"),
    }
}

/// The API check's failure, with what to do about it.
fn api_hint(spec: &BotSpec, e: &St2Error) -> String {
    let st2 = &spec.stackstorm;
    match e {
        St2Error::Unreachable { .. } => format!(
            "{e}; is StackStorm running, and is `stackstorm.url` (or `--stackstorm-url`) right?"
        ),
        St2Error::Unauthorized { .. } => {
            let fix = match &st2.auth {
                St2AuthSpec::ApiKey(r) => format!(
                    "is the key in {r} a current StackStorm API key? (`st2 apikey list`; create one with `st2 apikey create -k -m '{{\"used_by\": \"{}\"}}'`)",
                    spec.name
                ),
                St2AuthSpec::Token(r) => format!(
                    "the token in {r} was refused; tokens expire, so prefer an API key or username+password"
                ),
                St2AuthSpec::Password { username, password } => format!(
                    "StackStorm refused user `{username}` with the password from {password}; check both (`st2 login {username}`)"
                ),
            };
            format!("{e}; {fix}")
        }
        St2Error::Api { status: 404, .. } => format!(
            "{e}; {} is not StackStorm's API: behind StackStorm's nginx it is https://<host>/api",
            st2.api_url
        ),
        St2Error::Secret(_) => format!("{e}; put it in the bot's environment"),
        _ => format!("{e}; is {} StackStorm's API?", st2.api_url),
    }
}

fn alias_check(aliases: &[Value]) -> CheckLine {
    let enabled = aliases
        .iter()
        .filter(|a| a.get("enabled").and_then(Value::as_bool) != Some(false))
        .count();
    if enabled > 0 {
        pass(
            "action aliases",
            format!("{enabled} of {} enabled", aliases.len()),
        )
    } else {
        fail(
            "action aliases",
            format!(
                "{} registered, none enabled: the bot can run nothing. Install a pack with aliases (`st2 pack install st2`), register them (`st2ctl reload --register-aliases`) or enable one (`st2 action-alias enable <pack.alias>`)",
                aliases.len()
            ),
        )
    }
}

/// Whether a rule's criteria select exactly `route` (`equals`, or `iequals` ignoring case).
fn selects_route(rule: &Value, route: &str) -> bool {
    let Some(criteria) = rule.get("criteria") else {
        return false;
    };
    ["trigger.route", "trigger.channel"].iter().any(|key| {
        let Some(c) = criteria.get(*key) else {
            return false;
        };
        let pattern = c.get("pattern").and_then(Value::as_str);
        match c.get("type").and_then(Value::as_str).unwrap_or("equals") {
            "equals" | "eq" => pattern == Some(route),
            "iequals" => pattern.is_some_and(|p| p.eq_ignore_ascii_case(route)),
            _ => false,
        }
    })
}

/// Where a rule's action announces, when that can be known without running it:
/// `chatops.post_result`/`post_message` use their `route` parameter (default `chatops`);
/// `{{ trigger.route }}` is the notification route itself.
fn announced_route(rule: &Value, notification: &str) -> Option<String> {
    let action = rule.get("action")?;
    let reference = action.get("ref").and_then(Value::as_str)?;
    if !matches!(reference, "chatops.post_result" | "chatops.post_message") {
        return None;
    }
    match action.get("parameters").and_then(|p| p.get("route")) {
        None | Some(Value::Null) => Some("chatops".into()),
        Some(Value::String(r)) => {
            let compact: String = r.chars().filter(|c| !c.is_whitespace()).collect();
            if compact == "{{trigger.route}}" {
                Some(notification.to_owned())
            } else if r.contains("{{") || r.contains("{%") {
                None
            } else {
                Some(r.clone())
            }
        }
        Some(_) => None,
    }
}

/// Checks the `chatops` pack's rules for one that turns `notification`-route results into
/// announcements on `announcement`.
pub fn notify_rule_check(rules: &[Value], notification: &str, announcement: &str) -> CheckLine {
    let what = "notify rule";
    let reference = |r: &Value| {
        r.get("ref")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| {
                format!(
                    "{CHATOPS_PACK}.{}",
                    r.get("name").and_then(Value::as_str).unwrap_or("?")
                )
            })
    };
    let for_route: Vec<&Value> = rules
        .iter()
        .filter(|r| selects_route(r, notification))
        .collect();
    if for_route.is_empty() {
        return fail(
            what,
            format!(
                "no rule in the `{CHATOPS_PACK}` pack handles notification route `{notification}`, so results never come back. Install the stock pack (`st2 pack install chatops`; its `chatops.notify` handles `hubot`) or add a rule with `criteria: {{trigger.route: {{type: equals, pattern: {notification}}}}}` calling `chatops.post_result` with `route: {announcement}` (docs/operations.md)"
            ),
        );
    }
    let Some(rule) = for_route
        .iter()
        .find(|r| r.get("enabled").and_then(Value::as_bool) == Some(true))
    else {
        let name = reference(for_route[0]);
        return fail(
            what,
            format!(
                "`{name}` handles route `{notification}` but is disabled, so results never come back: `st2 rule enable {name}`"
            ),
        );
    };
    let name = reference(rule);
    match announced_route(rule, notification) {
        Some(route) if route == announcement => pass(
            what,
            format!(
                "`{name}` is enabled: results of route `{notification}` are announced on `{route}`"
            ),
        ),
        Some(route) => fail(
            what,
            format!(
                "`{name}` announces results on `{route}`, but the bot listens on `{announcement}`: set `stackstorm.announcement_route: {route}` in the definition, or change the rule's `route` parameter"
            ),
        ),
        None => pass(
            what,
            format!(
                "`{name}` is enabled for route `{notification}` (its action decides the announcement route; not checked)"
            ),
        ),
    }
}

fn stream_hint(spec: &BotSpec, e: &St2Error) -> String {
    let url = &spec.stackstorm.stream_url;
    match e {
        St2Error::Unreachable { .. } => format!(
            "{e}; is st2stream running, and is the stream URL right ({url}; behind StackStorm's nginx it is https://<host>/stream)?"
        ),
        St2Error::Api { status: 404, .. } => {
            format!(
                "{e}; {url} is not StackStorm's stream: behind its nginx it is https://<host>/stream"
            )
        }
        St2Error::Api { status, .. } if *status >= 500 => {
            format!("{e}; st2stream is down or restarting (`st2ctl status`)")
        }
        St2Error::Unauthorized { .. } => {
            format!(
                "{e}; the stream refused credentials the API accepted: do both URLs point at the same StackStorm?"
            )
        }
        _ => e.to_string(),
    }
}

/// A short random hex string (so concurrent doctors never see each other's message).
fn nonce() -> String {
    let a = crate::backend::backoff::fraction();
    let b = crate::backend::backoff::fraction();
    format!(
        "{:08x}{:08x}",
        (a * f64::from(u32::MAX)) as u32,
        (b * f64::from(u32::MAX)) as u32
    )
}

/// Posts a message with `chatops.post_message` and waits for it on the open stream.
async fn test_announcement(
    spec: &BotSpec,
    client: &St2Client,
    stream: reqwest::Response,
) -> CheckLine {
    let what = "test announcement";
    let st2 = &spec.stackstorm;
    let route = st2.announcement_route.to_string();
    let nonce = nonce();
    let channel = format!("st2bot-doctor-{nonce}");
    let message = format!(
        "st2bot doctor: test announcement {nonce} from {}",
        spec.name
    );
    let body = json!({
        "action": "chatops.post_message",
        "parameters": {"channel": channel, "message": message, "route": route},
    });
    let started = Instant::now();
    let execution: Value = match client
        .call(
            "post_message",
            Method::POST,
            format!("{}/v1/executions", st2.api_url),
            None,
            Some(body),
        )
        .await
    {
        Ok(e) => e,
        Err(e) => {
            let hint = match &e {
                St2Error::Api {
                    status: 400,
                    faultstring,
                    ..
                } if faultstring.contains("cannot be found") => {
                    "install the chatops pack (`st2 pack install chatops`)"
                }
                St2Error::Api { status: 403, .. } => {
                    "the bot's StackStorm user may not run `chatops.post_message` (RBAC): grant it"
                }
                _ => "see StackStorm's st2api log for the request id",
            };
            return fail(
                what,
                format!("running `chatops.post_message` failed: {e}; {hint}"),
            );
        }
    };
    let id = execution
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned();
    let wait = async {
        let mut parser = SseParser::default();
        let mut body = stream.bytes_stream();
        while let Some(chunk) = body.next().await {
            let Ok(chunk) = chunk else {
                return Err("the stream broke while waiting");
            };
            let Ok(events) = parser.feed(&chunk) else {
                return Err("the stream sent a line or event over the size limit");
            };
            for (event, data) in events {
                if let Ok(Some(StreamEvent::Announcement(a))) = decode(&route, &event, &data)
                    && a.message.as_deref() == Some(message.as_str())
                {
                    return Ok(());
                }
            }
        }
        Err("the server closed the stream while waiting")
    };
    match tokio::time::timeout(ANNOUNCEMENT_TIMEOUT, wait).await {
        Ok(Ok(())) => pass(
            what,
            format!(
                "`chatops.post_message` (execution {id}) arrived on `st2.announcement__{route}` after {} ms",
                started.elapsed().as_millis()
            ),
        ),
        Ok(Err(why)) => fail(
            what,
            format!(
                "execution {id} was accepted but {why}; check st2stream and any proxy in front of it"
            ),
        ),
        Err(_) => fail(
            what,
            format!(
                "execution {id} was accepted but nothing arrived on `st2.announcement__{route}` within {}s: check `st2 execution get {id}` (are st2actionrunner and st2stream running?)",
                ANNOUNCEMENT_TIMEOUT.as_secs()
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(pattern: &str, enabled: bool, route_param: Option<&str>) -> Value {
        let mut parameters = json!({"channel": "{{trigger.data.source_channel}}"});
        if let Some(r) = route_param {
            parameters["route"] = json!(r);
        }
        json!({
            "ref": format!("chatops.notify-{pattern}"), "name": format!("notify-{pattern}"),
            "pack": "chatops", "enabled": enabled,
            "criteria": {"trigger.route": {"pattern": pattern, "type": "equals"}},
            "action": {"ref": "chatops.post_result", "parameters": parameters},
        })
    }

    #[test]
    fn stock_rules_pass_for_their_routes() {
        let rules = [
            rule("hubot", true, None),
            rule("errbot", true, Some("{{ trigger.route }}")),
        ];
        assert!(notify_rule_check(&rules, "hubot", "chatops").ok);
        assert!(notify_rule_check(&rules, "errbot", "errbot").ok);
    }

    #[test]
    fn missing_disabled_and_mismatched_rules_fail_with_a_fix() {
        let rules = [rule("hubot", false, None), rule("errbot", true, None)];
        let missing = notify_rule_check(&rules, "mybot", "chatops");
        assert!(!missing.ok && missing.detail.contains("pattern: mybot"));
        let disabled = notify_rule_check(&rules, "hubot", "chatops");
        assert!(
            !disabled.ok
                && disabled
                    .detail
                    .contains("st2 rule enable chatops.notify-hubot")
        );
        let mismatch = notify_rule_check(&rules, "errbot", "errbot");
        assert!(
            !mismatch.ok && mismatch.detail.contains("announcement_route: chatops"),
            "{mismatch:?}"
        );
    }

    #[test]
    fn templated_routes_other_than_the_trigger_route_are_not_judged() {
        let rules = [rule("hubot", true, Some("{{ st2kv.system.route }}"))];
        let line = notify_rule_check(&rules, "hubot", "chatops");
        assert!(line.ok && line.detail.contains("not checked"), "{line:?}");
    }
}
