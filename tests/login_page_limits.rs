//! The login page under abuse (issue 12, items 11–14): slow bodies from one address do not
//! take it offline, `X-Forwarded-For` is believed only from `trusted_proxies`, and password guessing is limited per chat user and per StackStorm
//! username across links.

use st2bot_testkit::sessions as harness;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use harness::{PASSWORD, Page, sim, specs};
use st2bot::config::AuthPageSpec;
use st2bot::runtime::stackstorm::St2Client;
use st2bot_testkit::{TempDir, free_port};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn setup_with(
    name: &str,
    edit: impl FnOnce(&mut AuthPageSpec),
) -> (st2_sim::Sim, TempDir, Page, SocketAddr) {
    let sim = sim().await;
    let dir = TempDir::new(name);
    let (st2_spec, mut auth) = specs(&sim, dir.path(), free_port(), "http");
    edit(&mut auth);
    let st2 = St2Client::new(&st2_spec).unwrap();
    let page = Page::start(&auth, st2, None).await;
    let addr = auth.listen.parse().unwrap();
    (sim, dir, page, addr)
}

/// One attacker connection from 127.0.0.2: request headers announcing a large body, then
/// one byte a second for at most 40 s. Returns how long the server kept it open, or `None`
/// if it was still open after 40 s.
async fn trickle(page: SocketAddr) -> Option<Duration> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let started = Instant::now();
    let Ok(mut stream) = socket.connect(page).await else {
        return Some(started.elapsed());
    };
    let head = "POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n";
    if stream.write_all(head.as_bytes()).await.is_err() {
        return Some(started.elapsed());
    }
    let mut buf = [0u8; 4096];
    for _ in 0..40 {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return Some(started.elapsed()),
                Ok(_) => {} // the refusal page; the close follows
            },
            () = tokio::time::sleep(Duration::from_secs(1)) => {
                if stream.write_all(b"a").await.is_err() {
                    return Some(started.elapsed());
                }
            }
        }
    }
    None
}

/// 300 connections from one address send headers and trickle their bodies (the old page
/// served 256 at once, none with a body deadline: honest requests were reset for as long as
/// the attack lasted). Now that address holds at most 8 connections, each cut off when its
/// body is late, and an honest visitor from another address is served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_from_one_address_do_not_take_the_page_offline() {
    let (_sim, _dir, page, addr) = setup_with("slow-bodies", |_| {}).await;
    let attackers: Vec<_> = (0..300).map(|_| tokio::spawn(trickle(addr))).collect();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let link = page.request_link("U1", "alice").await;
    let (status, _, fields) = tokio::time::timeout(Duration::from_secs(5), page.open_link(&link))
        .await
        .expect("the honest request is served during the attack");
    assert_eq!(status, 200);
    assert!(fields.is_some());

    for attacker in attackers {
        let held = attacker.await.unwrap();
        let held = held.expect("an attacker connection still open after 40 s");
        assert!(
            held <= Duration::from_secs(25),
            "an attacker connection was held {held:?}"
        );
    }
}

/// Without `trusted_proxies` (the default) a loopback client cannot pick its own address
/// with `X-Forwarded-For`: 40 requests naming 40 addresses share one budget (the old page
/// believed any loopback peer and served all of them).
#[tokio::test]
async fn forwarded_addresses_from_untrusted_peers_are_ignored() {
    let (_sim, _dir, page, addr) = setup_with("xff-untrusted", |_| {}).await;
    let url = format!("http://{addr}/login?id=00");
    let mut statuses = Vec::new();
    for i in 0..40 {
        let response = page
            .http
            .get(&url)
            .header("X-Forwarded-For", format!("198.51.100.{i}"))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert!(limited >= 15, "{statuses:?}");
}

/// From a trusted proxy, the forwarded address is the client: each gets its own budget.
#[tokio::test]
async fn forwarded_addresses_from_a_trusted_proxy_are_the_clients() {
    let (_sim, _dir, page, addr) = setup_with("xff-trusted", |auth| {
        auth.trusted_proxies = vec!["127.0.0.1/32".into()].into();
    })
    .await;
    let url = format!("http://{addr}/login?id=00");
    for i in 0..40 {
        let response = page
            .http
            .get(&url)
            .header("X-Forwarded-For", format!("198.51.100.{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 410, "client {i}");
    }
    // One client behind the proxy is still limited.
    let mut limited = 0;
    for _ in 0..30 {
        let response = page
            .http
            .get(&url)
            .header("X-Forwarded-For", "203.0.113.9")
            .send()
            .await
            .unwrap();
        limited += usize::from(response.status().as_u16() == 429);
    }
    assert!(limited >= 9, "{limited} of 30 limited");
}

/// Guessing passwords: a chat user gets 3 links at once, and one StackStorm username gets 5
/// refused passwords across all links and chat users before the page stops asking
/// StackStorm (the old page allowed 5 guesses per link and links without limit).
#[tokio::test]
async fn password_guessing_is_limited_per_chat_user_and_per_stackstorm_user() {
    let (sim, _dir, page, _) = setup_with("guessing", |_| {}).await;
    let mut links = Vec::new();
    for _ in 0..3 {
        links.push(page.request_link("U-mallory", "mallory").await);
    }
    let refused = page
        .manager
        .command("U-mallory", "mallory", true, &["login"])
        .await;
    let text = refused.public.clone().expect("a refusal");
    assert!(text.contains("too many login links"), "{text}");
    assert!(refused.private.is_none(), "no link: {refused:?}");

    let last = links.last().unwrap();
    let mut statuses = Vec::new();
    for i in 0..5 {
        let (status, _) = page.log_in(last, "st2admin", &format!("guess{i}")).await;
        statuses.push(status);
    }
    // Another chat user's link, the same StackStorm username: refused without asking
    // StackStorm, even with the right password.
    let other = page.request_link("U-eve", "eve").await;
    let (status, body) = page.log_in(&other, "st2admin", PASSWORD).await;
    assert_eq!(status, 429, "{statuses:?} then {body}");
    assert!(body.contains("Too many wrong passwords"), "{body}");
    let asked = sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/tokens"))
        .count();
    assert_eq!(asked, 5, "guesses that reached StackStorm");
    assert!(page.manager.token_for("U-eve").is_none());
    // The refusal did not burn eve's link.
    let (status, _, fields) = page.open_link(&other).await;
    assert_eq!(status, 200);
    assert!(fields.is_some());
}
