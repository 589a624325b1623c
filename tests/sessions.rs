//! Per-user StackStorm sessions through the login page (issue 5), end to end: the chat
//! command, a real HTTP client against the page on 127.0.0.1, the StackStorm simulator
//! issuing and checking tokens, the encrypted store across restarts, and the logs.

use st2bot_testkit::sessions as harness;

use std::time::Duration;

use harness::{KEY, LogBuffer, PASSWORD, Page, rewrite, sim, specs};
use st2bot::runtime::secret::Secret;
use st2bot::runtime::session::{LoginMethod, SessionError, SessionManager};
use st2bot::runtime::stackstorm::St2Client;
use st2bot::runtime::stackstorm::types::ExecuteRequest;
use st2bot_testkit::{TempDir, free_port};

/// Starts a simulator and a page; returns both, the temp dir and a StackStorm client.
async fn setup(name: &str) -> (st2_sim::Sim, TempDir, Page, St2Client) {
    let sim = sim().await;
    let dir = TempDir::new(name);
    let (st2_spec, auth) = specs(&sim, dir.path(), free_port(), "http");
    let st2 = St2Client::new(&st2_spec).unwrap();
    let page = Page::start(&auth, st2.clone(), None).await;
    (sim, dir, page, st2)
}

#[tokio::test]
async fn full_login_flow_binds_the_token_the_simulator_issued_and_commands_use_it() {
    let logs = LogBuffer::default();
    let _capture = logs.capture();
    let sim = sim().await;
    let dir = TempDir::new("flow");
    let (st2_spec, auth) = specs(&sim, dir.path(), free_port(), "http");
    let st2 = St2Client::new(&st2_spec).unwrap();
    let mut page = Page::start(&auth, st2.clone(), None).await;

    // Asked in a room: the room hears only that a link was sent privately.
    let link = page.request_link("U042", "alice").await;
    assert!(
        link.starts_with(&format!("{}?id=", auth.public_url)),
        "{link}"
    );
    let link_id = link.split("id=").nth(1).unwrap().to_owned();
    assert_eq!(link_id.len(), 64, "256-bit id in hex");

    // The form, with the page's security headers.
    let response = page.http.get(&link).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let h = response.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "style-src 'unsafe-inline'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["cache-control"], "no-store");
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    let body = response.text().await.unwrap();
    assert!(body.contains("alice"), "the page names the chat user");
    for external in ["<script", "src=", "<link", "http://", "https://"] {
        assert!(!body.contains(external), "{external} on the page");
    }
    let (_, _, fields) = page.open_link(&link).await;
    let (id, csrf) = fields.unwrap();
    assert_eq!(id, link_id);

    // Log in.
    let (status, _, body) = page
        .post(
            &link,
            &[
                ("id", &id),
                ("csrf", &csrf),
                ("kind", "password"),
                ("username", "st2admin"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("Logged in") && body.contains("st2admin"),
        "{body}"
    );

    // Confirmation for the chat side, and the token the simulator issued is bound.
    let (user, text) = page.next_notification().await;
    assert_eq!(user, "U042");
    assert!(text.contains("st2admin"), "{text}");
    let issued = sim.issued_tokens();
    let bound = page.manager.token_for("U042").expect("a session");
    assert_eq!(bound.expose(), issued.last().unwrap());
    let info = page.manager.session_of("U042").unwrap();
    assert_eq!(info.st2_user, "st2admin");
    assert_eq!(info.method, LoginMethod::Password);
    let left = info
        .expires
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(left <= Duration::from_secs(12 * 3600) && left > Duration::from_secs(11 * 3600));
    let token_request = sim
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/tokens") && r.body.is_some())
        .unwrap();
    assert_eq!(
        token_request.body.unwrap()["ttl"],
        12 * 3600,
        "asks for session_ttl"
    );

    // A command runs with that token: the simulator records the credential used.
    let request = ExecuteRequest {
        name: "local",
        format: "local {{cmd}}",
        command: "local date",
        user: "alice",
        source_channel: "ops",
        source_context: &serde_json::Value::Null,
        notification_route: "hubot",
    };
    st2.execute(&request, Some(&bound)).await.expect("execute");
    let execution = sim.executions().pop().unwrap();
    assert_eq!(
        execution.credential,
        Some(("token".to_owned(), bound.expose().to_owned()))
    );

    let status = page
        .manager
        .command("U042", "alice", true, &["status"])
        .await;
    let status = status.public.unwrap();
    assert!(
        status.contains("st2admin") && status.contains("left"),
        "{status}"
    );
    assert!(
        page.manager.token_for("U999").is_none(),
        "other users are unbound"
    );

    // Nothing secret in any log line (runtime, hyper, reqwest, at TRACE level).
    page.stop().await;
    let text = logs.text();
    assert!(text.contains("session bound"), "logs were captured: {text}");
    for (what, secret) in [
        ("password", PASSWORD),
        ("token", bound.expose()),
        ("link id", link_id.as_str()),
        ("csrf token", csrf.as_str()),
        ("encryption key", KEY),
    ] {
        assert!(!text.contains(secret), "the {what} appears in the logs");
    }
}

#[tokio::test]
async fn in_a_direct_message_the_link_comes_privately_without_a_room_note() {
    let (_sim, _dir, page, _) = setup("dm").await;
    let reply = page.manager.command("U1", "bob", true, &["login"]).await;
    assert!(reply.public.is_none());
    let private = reply.private.clone().unwrap();
    assert!(
        private.contains("?id=") && private.contains("bob"),
        "{private}"
    );
    assert!(
        !format!("{reply:?}").contains("id="),
        "Debug hides the link"
    );
}

#[tokio::test]
async fn a_link_works_only_once() {
    let (_sim, _dir, mut page, _) = setup("replay").await;
    let link = page.request_link("U1", "alice").await;
    let (_, _, fields) = page.open_link(&link).await;
    let (id, csrf) = fields.unwrap();
    let (status, _) = page.log_in(&link, "st2admin", PASSWORD).await;
    assert_eq!(status, 200);
    page.next_notification().await;
    let first = page.manager.token_for("U1").unwrap();

    let (status, body, _) = page.open_link(&link).await;
    assert_eq!(status, 410, "{body}");
    assert!(body.contains("already used"), "{body}");
    let (status, _, body) = page
        .post(
            &link,
            &[
                ("id", &id),
                ("csrf", &csrf),
                ("kind", "password"),
                ("username", "st2admin"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(status, 410, "{body}");
    assert_eq!(
        page.manager.token_for("U1").unwrap().expose(),
        first.expose()
    );
}

#[tokio::test]
async fn an_expired_link_is_refused() {
    let sim = sim().await;
    let dir = TempDir::new("expired");
    let (st2, mut auth) = specs(&sim, dir.path(), free_port(), "http");
    auth.link_ttl = Duration::from_millis(300);
    let page = Page::start(&auth, St2Client::new(&st2).unwrap(), None).await;
    let link = page.request_link("U1", "alice").await;
    let (_, _, fields) = page.open_link(&link).await;
    let (id, csrf) = fields.expect("fresh link works");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, body, _) = page.open_link(&link).await;
    assert_eq!(status, 410, "{body}");
    let (status, _, _) = page
        .post(
            &link,
            &[
                ("id", &id),
                ("csrf", &csrf),
                ("kind", "password"),
                ("username", "st2admin"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(status, 410);
    assert!(page.manager.token_for("U1").is_none());
}

#[tokio::test]
async fn a_wrong_password_shows_an_error_and_the_link_stays_usable() {
    let (_sim, _dir, mut page, _) = setup("wrongpw").await;
    let link = page.request_link("U1", "alice").await;
    let (status, body) = page.log_in(&link, "st2admin", "wrong").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("did not accept that username and password"),
        "{body}"
    );
    assert!(body.contains("Attempts left: 4"), "{body}");
    assert!(
        body.contains("value=\"st2admin\""),
        "username kept for the retry"
    );
    assert!(page.manager.token_for("U1").is_none());
    let (status, body) = page.log_in(&link, "st2admin", PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    page.next_notification().await;
    assert!(page.manager.token_for("U1").is_some());
}

#[tokio::test]
async fn five_wrong_passwords_burn_the_link() {
    let (_sim, _dir, page, _) = setup("burn").await;
    let link = page.request_link("U1", "alice").await;
    for attempt in 1..=4 {
        let (status, body) = page.log_in(&link, "st2admin", "wrong").await;
        assert_eq!(status, 200, "attempt {attempt}");
        assert!(body.contains(&format!("Attempts left: {}", 5 - attempt)));
    }
    let (status, _, fields) = page.open_link(&link).await;
    assert_eq!(status, 200);
    let (id, csrf) = fields.unwrap();
    let post = |password: &'static str| {
        let (id, csrf) = (id.clone(), csrf.clone());
        let page = &page;
        let link = link.clone();
        async move {
            page.post(
                &link,
                &[
                    ("id", &id),
                    ("csrf", &csrf),
                    ("kind", "password"),
                    ("username", "st2admin"),
                    ("password", password),
                ],
            )
            .await
        }
    };
    let (status, _, body) = post("wrong").await;
    assert_eq!(status, 410);
    assert!(body.contains("Too many failed attempts"), "{body}");
    let (status, _, _) = post(PASSWORD).await;
    assert_eq!(status, 410, "the right password no longer helps");
    assert!(page.manager.token_for("U1").is_none());
}

#[tokio::test]
async fn missing_or_wrong_csrf_tokens_and_foreign_posts_are_forbidden() {
    let (_sim, _dir, mut page, _) = setup("csrf").await;
    let link = page.request_link("U1", "alice").await;
    let other = page.request_link("U2", "bob").await;
    let (_, _, fields) = page.open_link(&link).await;
    let (id, csrf) = fields.unwrap();
    let (_, _, other_fields) = page.open_link(&other).await;
    let (_, other_csrf) = other_fields.unwrap();
    let creds = [
        ("kind", "password"),
        ("username", "st2admin"),
        ("password", PASSWORD),
    ];
    let with = |extra: &[(&'static str, String)]| {
        let mut v: Vec<(&str, String)> = extra.to_vec();
        v.extend(creds.iter().map(|(k, v)| (*k, (*v).to_owned())));
        v
    };
    for (case, fields) in [
        ("missing", with(&[("id", id.clone())])),
        (
            "empty",
            with(&[("id", id.clone()), ("csrf", String::new())]),
        ),
        (
            "another link's",
            with(&[("id", id.clone()), ("csrf", other_csrf.clone())]),
        ),
        (
            "garbage",
            with(&[("id", id.clone()), ("csrf", "zz".repeat(32))]),
        ),
    ] {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, headers, body) = page.post(&link, &fields).await;
        assert_eq!(status, 403, "{case} CSRF token: {body}");
        assert!(headers.contains_key("content-security-policy"));
    }
    // A cross-site post is refused even with the right token.
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("id", id.as_str()), ("csrf", csrf.as_str())])
        .extend_pairs(creds)
        .finish();
    let response = page
        .http
        .post(&link)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Sec-Fetch-Site", "cross-site")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    // JSON instead of a form, and other methods.
    let response = page
        .http
        .post(&link)
        .header("Content-Type", "application/json")
        .body(format!(r#"{{"id":"{id}","csrf":"{csrf}"}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);
    let response = page.http.put(&link).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert!(page.manager.token_for("U1").is_none());
    // None of that used up the link.
    let (status, body) = page.log_in(&link, "st2admin", PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    page.next_notification().await;
    assert!(page.manager.token_for("U1").is_some());
}

#[tokio::test]
async fn brute_force_from_one_address_hits_the_rate_limit() {
    let (sim, _dir, page, _) = setup("ratelimit").await;
    let link = page.request_link("U1", "alice").await;
    let (_, _, fields) = page.open_link(&link).await;
    let (id, csrf) = fields.unwrap();
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..40 {
        // Guessing link ids (and, for the real one, passwords).
        let guess = format!("{i:064x}");
        let (use_id, use_csrf) = if i % 2 == 0 {
            (id.as_str(), csrf.as_str())
        } else {
            (guess.as_str(), "00")
        };
        let (status, headers, _) = page
            .post(
                &link,
                &[
                    ("id", use_id),
                    ("csrf", use_csrf),
                    ("kind", "password"),
                    ("username", "st2admin"),
                    ("password", &format!("guess{i}")),
                ],
            )
            .await;
        if status == 429 {
            retry_after = headers.get("retry-after").cloned();
        }
        statuses.push(status);
    }
    let first_429 = statuses
        .iter()
        .position(|s| *s == 429)
        .expect("rate limited");
    assert!(first_429 <= 20, "limited after the burst: {statuses:?}");
    // (A slow machine may see a token refill during the loop: one every six seconds.)
    let let_through = statuses[first_429..].iter().filter(|s| **s != 429).count();
    assert!(let_through <= 2, "{statuses:?}");
    assert!(retry_after.is_some(), "Retry-After is sent");
    // The page itself is refused to that address now, and StackStorm was asked at most 5
    // times (the link burnt after its attempt limit).
    let (status, _, _) = page.open_link(&link).await;
    assert_eq!(status, 429);
    let token_calls = sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/tokens"))
        .count();
    assert!(
        token_calls <= 5,
        "{token_calls} password guesses reached StackStorm"
    );
    assert!(page.manager.token_for("U1").is_none());
}

#[tokio::test]
async fn the_page_escapes_what_it_reflects() {
    let (_sim, _dir, page, _) = setup("escape").await;
    let evil_name = "<img src=x onerror=alert(1)>";
    let link = page.request_link("U1", evil_name).await;
    let (status, body, _) = page.open_link(&link).await;
    assert_eq!(status, 200);
    assert!(!body.contains(evil_name));
    assert!(body.contains("&lt;img src=x onerror=alert(1)&gt;"));
    let (status, body) = page
        .log_in(&link, "\"><script>alert(1)</script>", "wrong")
        .await;
    assert_eq!(status, 200);
    assert!(!body.contains("<script>"), "{body}");
    assert!(body.contains("&quot;&gt;&lt;script&gt;"), "{body}");
}

#[tokio::test]
async fn a_pasted_token_is_checked_with_stackstorm_then_bound() {
    let (sim, _dir, mut page, st2) = setup("paste").await;
    // A token obtained elsewhere (as `st2 auth` would).
    let own = st2
        .create_token(
            "st2admin",
            &Secret::new(PASSWORD),
            Duration::from_secs(3600),
        )
        .await
        .unwrap();
    let link = page.request_link("U7", "carol").await;
    let (_, _, fields) = page.open_link(&link).await;
    let (id, csrf) = fields.unwrap();
    let paste = |token: String| {
        let (id, csrf, link) = (id.clone(), csrf.clone(), link.clone());
        let page = &page;
        async move {
            page.post(
                &link,
                &[
                    ("id", &id),
                    ("csrf", &csrf),
                    ("kind", "token"),
                    ("token", &token),
                ],
            )
            .await
        }
    };
    let (status, _, body) = paste("0123456789abcdef0123456789abcdef".to_owned()).await;
    assert_eq!(status, 200);
    assert!(body.contains("did not accept that token"), "{body}");
    assert!(body.contains("Attempts left: 4"), "{body}");
    let (status, _, body) = paste(own.token.clone()).await;
    assert_eq!(status, 200, "{body}");
    let (user, _) = page.next_notification().await;
    assert_eq!(user, "U7");
    assert_eq!(page.manager.token_for("U7").unwrap().expose(), own.token);
    assert_eq!(
        page.manager.session_of("U7").unwrap().method,
        LoginMethod::Token
    );
    // The check was one call authenticated with the pasted token itself.
    assert!(
        sim.requests()
            .iter()
            .any(|r| r.credential == Some(("token".to_owned(), own.token.clone())))
    );
}

#[tokio::test]
async fn sessions_survive_a_restart() {
    let sim = sim().await;
    let dir = TempDir::new("restart");
    let port = free_port();
    let (st2, auth) = specs(&sim, dir.path(), port, "http");
    let mut page = Page::start(&auth, St2Client::new(&st2).unwrap(), None).await;
    let link = page.request_link("U1", "alice").await;
    assert_eq!(page.log_in(&link, "st2admin", PASSWORD).await.0, 200);
    page.next_notification().await;
    let token = page.manager.token_for("U1").unwrap();
    let pending = page.request_link("U2", "bob").await;
    page.stop().await;

    let page = Page::start(&auth, St2Client::new(&st2).unwrap(), None).await;
    assert_eq!(
        page.manager.token_for("U1").unwrap().expose(),
        token.expose()
    );
    assert_eq!(page.manager.session_of("U1").unwrap().st2_user, "st2admin");
    // Pending links are not persisted: a restart invalidates them.
    assert_eq!(page.open_link(&pending).await.0, 410);
    // The token is not in the store file in clear.
    let bytes = std::fs::read(dir.path().join("sessions.redb")).unwrap();
    let needle = token.expose().as_bytes();
    assert!(!bytes.windows(needle.len()).any(|w| w == needle));
}

#[tokio::test]
async fn a_changed_key_drops_the_sessions_without_a_panic() {
    let logs = LogBuffer::default();
    let _capture = logs.capture();
    let sim = sim().await;
    let dir = TempDir::new("rekey");
    let (st2, auth) = specs(&sim, dir.path(), free_port(), "http");
    let mut page = Page::start(&auth, St2Client::new(&st2).unwrap(), None).await;
    let link = page.request_link("U1", "alice").await;
    assert_eq!(page.log_in(&link, "st2admin", PASSWORD).await.0, 200);
    page.next_notification().await;
    page.stop().await;

    rewrite(
        &dir.path().join("session-key"),
        "a completely different key, rotated\n",
    );
    let mut page = Page::start(&auth, St2Client::new(&st2).unwrap(), None).await;
    assert!(page.manager.token_for("U1").is_none());
    assert!(
        logs.text().contains("another encryption key"),
        "{}",
        logs.text()
    );
    // Logging in again works under the new key, and survives the next restart.
    let link = page.request_link("U1", "alice").await;
    assert_eq!(page.log_in(&link, "st2admin", PASSWORD).await.0, 200);
    page.next_notification().await;
    page.stop().await;
    let page = Page::start(&auth, St2Client::new(&st2).unwrap(), None).await;
    assert!(page.manager.token_for("U1").is_some());
    // A key that cannot be read, or is too short, is an error at start-up.
    let mut missing = auth.clone();
    missing.encryption_key = st2bot::config::SecretRef::File(
        dir.path().join("no-such-key").display().to_string().into(),
    );
    drop(page);
    let err = SessionManager::open(&missing, "t", St2Client::new(&st2).unwrap()).unwrap_err();
    assert!(matches!(err, SessionError::Key(_)), "{err}");
    rewrite(&dir.path().join("session-key"), "short\n");
    let err = SessionManager::open(&auth, "t", St2Client::new(&st2).unwrap()).unwrap_err();
    assert!(matches!(err, SessionError::WeakKey { .. }), "{err}");
}

#[tokio::test]
async fn logout_removes_the_session_for_good() {
    let sim = sim().await;
    let dir = TempDir::new("logout");
    let (st2, auth) = specs(&sim, dir.path(), free_port(), "http");
    let mut page = Page::start(&auth, St2Client::new(&st2).unwrap(), None).await;
    let link = page.request_link("U1", "alice").await;
    assert_eq!(page.log_in(&link, "st2admin", PASSWORD).await.0, 200);
    page.next_notification().await;
    let reply = page
        .manager
        .command("U1", "alice", false, &["logout"])
        .await;
    let text = reply.public.unwrap();
    assert!(
        text.contains("logged out") && text.contains("st2admin"),
        "{text}"
    );
    assert!(page.manager.token_for("U1").is_none());
    let again = page
        .manager
        .command("U1", "alice", false, &["logout"])
        .await;
    assert!(again.public.unwrap().contains("no StackStorm session"));
    let status = page
        .manager
        .command("U1", "alice", false, &["status"])
        .await;
    assert!(status.public.unwrap().contains("no StackStorm session"));
    page.stop().await;
    let page = Page::start(&auth, St2Client::new(&st2).unwrap(), None).await;
    assert!(
        page.manager.token_for("U1").is_none(),
        "still gone after a restart"
    );
}

#[tokio::test]
async fn a_token_stackstorm_refuses_is_forgotten() {
    let sim = sim().await;
    let dir = TempDir::new("forget");
    let (st2_spec, auth) = specs(&sim, dir.path(), free_port(), "http");
    let st2 = St2Client::new(&st2_spec).unwrap();
    let mut page = Page::start(&auth, st2.clone(), None).await;
    let link = page.request_link("U1", "alice").await;
    assert_eq!(page.log_in(&link, "st2admin", PASSWORD).await.0, 200);
    page.next_notification().await;
    sim.revoke_tokens();
    let token = page.manager.token_for("U1").unwrap();
    let request = ExecuteRequest {
        name: "local",
        format: "local {{cmd}}",
        command: "local date",
        user: "alice",
        source_channel: "ops",
        source_context: &serde_json::Value::Null,
        notification_route: "hubot",
    };
    let err = st2.execute(&request, Some(&token)).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    page.manager.forget("U1");
    assert!(page.manager.token_for("U1").is_none());
    assert!(page.manager.required() == auth.required);
}

#[tokio::test]
async fn list_and_revoke_are_for_admins_only() {
    let (_sim, _dir, mut page, _) = setup("admin").await;
    let m = &page.manager;
    let off = m.command("A1", "root", true, &["list"]).await;
    assert!(
        off.public.unwrap().contains("no bot admins are configured"),
        "refused clearly without admins"
    );
    m.set_admins(st2bot::config::acl::UserSet::new(&["root".into()], &[]).expect("pattern"));
    let link = page.request_link("U1", "alice").await;
    let link_id = link.split("id=").nth(1).unwrap().to_owned();
    assert_eq!(page.log_in(&link, "st2admin", PASSWORD).await.0, 200);
    page.next_notification().await;
    let m = &page.manager;
    let refused = m.command("U1", "alice", true, &["list"]).await;
    assert!(refused.public.unwrap().contains("only bot admins"));
    let refused = m.command("U1", "alice", true, &["revoke", "alice"]).await;
    assert!(refused.public.unwrap().contains("only bot admins"));

    // In a room the list goes privately.
    let listed = m.command("A1", "root", false, &["list"]).await;
    assert!(listed.public.unwrap().contains("private"));
    let list = listed.private.unwrap();
    assert!(
        list.contains("alice") && list.contains("U1") && list.contains("st2admin"),
        "{list}"
    );
    let token = m.token_for("U1").unwrap();
    assert!(!list.contains(token.expose()) && !list.contains(&link_id));

    let unknown = m.command("A1", "root", true, &["revoke", "nobody"]).await;
    assert!(unknown.public.unwrap().contains("No session"));
    let revoked = m.command("A1", "root", true, &["revoke", "@alice"]).await;
    assert!(revoked.public.unwrap().contains("Revoked"));
    assert!(m.token_for("U1").is_none());
    let usage = m.command("A1", "root", true, &["frobnicate"]).await;
    assert!(usage.public.unwrap().contains("Unknown session command"));
}

#[tokio::test]
async fn the_page_is_served_over_tls_when_configured() {
    let sim = sim().await;
    let dir = TempDir::new("tls");
    let (st2, mut auth) = specs(&sim, dir.path(), free_port(), "https");
    let support = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tls");
    auth.tls = Some((
        format!("{support}/cert.pem").into(),
        format!("{support}/key.pem").into(),
    ));
    let mut page = Page::start(
        &auth,
        St2Client::new(&st2).unwrap(),
        Some(&format!("{support}/cert.pem")),
    )
    .await;
    let link = page.request_link("U1", "alice").await;
    assert!(link.starts_with("https://"));
    let response = page.http.get(&link).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers().contains_key("strict-transport-security"));
    assert_eq!(page.log_in(&link, "st2admin", PASSWORD).await.0, 200);
    page.next_notification().await;
    assert!(page.manager.token_for("U1").is_some());
    // Plain HTTP to the TLS port gets nothing useful.
    let plain = link.replacen("https://", "http://", 1);
    let plain_ok = page
        .http
        .get(&plain)
        .send()
        .await
        .map(|r| r.status().is_success())
        .unwrap_or(false);
    assert!(!plain_ok);
}

#[tokio::test]
async fn plain_http_on_a_network_address_is_refused_at_start() {
    let sim = sim().await;
    let dir = TempDir::new("plain");
    let (st2, mut auth) = specs(&sim, dir.path(), free_port(), "http");
    auth.listen = format!("0.0.0.0:{}", free_port()).into();
    let manager = SessionManager::open(&auth, "t", St2Client::new(&st2).unwrap()).unwrap();
    let (notify, _rx) = tokio::sync::mpsc::channel(1);
    let err = manager
        .serve(notify, tokio_util::sync::CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, SessionError::PlainHttp { .. }), "{err}");
}

#[tokio::test]
async fn a_stackstorm_token_cap_below_session_ttl_is_respected() {
    // StackStorm refuses token lifetimes above `auth.token_ttl`; the bot asks for that maximum
    // and the session ends with the token.
    let sim = st2_sim::Sim::start(st2_sim::SimConfig {
        max_token_ttl: Duration::from_secs(3600),
        ..st2_sim::SimConfig::demo()
    })
    .await
    .unwrap();
    let dir = TempDir::new("ttlcap");
    let (st2, auth) = specs(&sim, dir.path(), free_port(), "http");
    let mut page = Page::start(&auth, St2Client::new(&st2).unwrap(), None).await;
    let link = page.request_link("U1", "alice").await;
    let (status, body) = page.log_in(&link, "st2admin", PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    page.next_notification().await;
    let ttls: Vec<serde_json::Value> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/tokens"))
        .map(|r| r.body.unwrap()["ttl"].clone())
        .collect();
    assert_eq!(
        ttls,
        vec![serde_json::json!(43_200), serde_json::json!(3600)]
    );
    let info = page.manager.session_of("U1").unwrap();
    let left = info
        .expires
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(left <= Duration::from_secs(3600), "{left:?}");
    assert!(left > Duration::from_secs(3500), "{left:?}");
}

#[tokio::test]
async fn a_pasted_token_takes_its_user_and_expiry_from_the_user_endpoint() {
    // StackStorm's `GET /api/v1/user` (st2api UserController): the simulator has no such
    // endpoint, so a small fake answers it as StackStorm does.
    let fake = harness::UserEndpoint::start("valid-token-1234", "carol", 600).await;
    let dir = TempDir::new("userapi");
    let (st2_spec, auth) = harness::specs_for(&fake.url(), dir.path(), free_port());
    let mut page = Page::start(&auth, St2Client::new(&st2_spec).unwrap(), None).await;
    let link = page.request_link("U9", "carol-chat").await;
    let (_, _, fields) = page.open_link(&link).await;
    let (id, csrf) = fields.unwrap();
    let (status, _, body) = page
        .post(
            &link,
            &[
                ("id", &id),
                ("csrf", &csrf),
                ("kind", "token"),
                ("token", "valid-token-1234"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("carol"), "{body}");
    page.next_notification().await;
    let info = page.manager.session_of("U9").unwrap();
    assert_eq!(info.st2_user, "carol");
    let left = info
        .expires
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(
        left <= Duration::from_secs(600) && left > Duration::from_secs(500),
        "the token's own expiry wins over session_ttl: {left:?}"
    );
    assert_eq!(fake.calls(), vec!["valid-token-1234".to_owned()]);
}
