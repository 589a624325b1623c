//! Whole-bot tests against Microsoft's own local Teams client, the Agents Playground
//! (`@microsoft/m365agentsplayground`, installed by scripts/setup-test-deps under
//! `~/.cache/st2bot/agentsplayground` or `$ST2BOT_AGENTSPLAYGROUND_DIR`), with the
//! StackStorm simulator. The playground is driven over HTTP as its web client does:
//! `GET /_internal/v1/config` (the mocked tenant), `POST
//! /_conversation/v1/conversations/<id>/messages` (a user says something; in a channel it
//! reaches the bot only with a `mentions` entry for it, as in Teams), and its WebSocket
//! `/_ws_conversation/v1/conversations/stream` shows what the bot posted. The playground
//! does not sign activities, so the bot runs with the documented test-only switch
//! (loopback only); its Connector does not check tokens, so the bot's token comes from the
//! in-repo fake token endpoint (testkit/src/fakes/msteams.rs).

use st2bot_testkit::backend as harness;
use st2bot_testkit::fakes::msteams as fake;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fake::{APP_ID, APP_SECRET, FakeTeams};
use futures_util::StreamExt as _;
use harness::{WAIT, WholeBot, eventually};
use serde_json::{Value, json};
use st2bot_testkit::{TempDir, free_port};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

fn playground_bin() -> PathBuf {
    let dir = std::env::var_os("ST2BOT_AGENTSPLAYGROUND_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache")
                });
            cache.join("st2bot/agentsplayground")
        });
    let bin = dir.join("node_modules/.bin/agentsplayground");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/setup-test-deps (it installs Microsoft's Agents Playground with npm)",
        bin.display()
    );
    bin
}

/// The playground, killed on drop.
struct Playground {
    _child: tokio::process::Child,
    base: String,
    http: reqwest::Client,
    config: Value,
}

impl Playground {
    /// Starts it in `dir` (it writes its logs under `dir/devTools`).
    async fn start(bot_port: u16, dir: &std::path::Path) -> Self {
        let mut child = tokio::process::Command::new(playground_bin())
            .args([
                "-e",
                &format!("http://127.0.0.1:{bot_port}/api/messages"),
                "-c",
                "msteams",
                "-p",
                &free_port().to_string(),
                "--dt",
            ])
            .env("TEAMSAPPTESTER_BROWSER", "none")
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("agentsplayground starts");
        // It prints `Listening on <port>` (another port when the one asked for is taken).
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = tokio::time::timeout(WAIT, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(p) = line.trim().strip_prefix("Listening on ") {
                    return p.trim().parse::<u16>().unwrap();
                }
            }
            panic!("agentsplayground exited before listening");
        })
        .await
        .expect("agentsplayground listens");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let base = format!("http://127.0.0.1:{port}");
        let http =
            st2bot::runtime::http::client(true, None, Some(Duration::from_secs(10))).unwrap();
        // Ask until it answers (it may still be starting).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let config: Value = loop {
            let answer = http.get(format!("{base}/_internal/v1/config")).send().await;
            if let Ok(r) = answer
                && r.status().is_success()
            {
                break r.json().await.unwrap();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the playground never answered /_internal/v1/config"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        Self {
            _child: child,
            base,
            http,
            config: config["config"].clone(),
        }
    }

    fn bot_id(&self) -> String {
        self.config["bot"]["id"].as_str().unwrap().to_owned()
    }

    fn bot_name(&self) -> String {
        self.config["bot"]["name"].as_str().unwrap().to_owned()
    }

    fn personal_chat(&self) -> String {
        self.config["personalChat"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The team's first channel.
    fn channel(&self) -> (String, String) {
        let c = &self.config["teams"][0]["channels"][0];
        (
            c["id"].as_str().unwrap().to_owned(),
            c["name"].as_str().unwrap().to_owned(),
        )
    }

    /// `user-id-0` says `text`; `mention`: with a mention of the bot in front.
    async fn say(&self, conversation: &str, text: &str, mention: bool) -> Value {
        let mut body =
            json!({ "from": { "id": "user-id-0" }, "text": text, "textFormat": "plain" });
        if mention {
            let at = format!("<at>{}</at>", self.bot_name());
            body["text"] = Value::String(format!("{at} {text}"));
            body["mentions"] = json!([{ "mentioned": { "id": self.bot_id() }, "text": at }]);
        }
        let response = self
            .http
            .post(format!(
                "{}/_conversation/v1/conversations/{conversation}/messages",
                self.base
            ))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        response.json().await.unwrap()
    }

    async fn watch(&self) -> Watch {
        let url = format!(
            "{}/_ws_conversation/v1/conversations/stream",
            self.base.replace("http://", "ws://")
        );
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("stream");
        Watch {
            ws,
            seen: Vec::new(),
        }
    }
}

/// What the playground's web client would show.
struct Watch {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    seen: Vec<String>,
}

impl Watch {
    /// Reads frames until one contains every one of `needles`; returns it.
    async fn until(&mut self, needles: &[&str]) -> String {
        if let Some(f) = self
            .seen
            .iter()
            .find(|f| needles.iter().all(|n| f.contains(n)))
        {
            return f.clone();
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .unwrap_or_else(|_| {
                    panic!("timed out waiting for {needles:?}; seen: {:#?}", self.seen)
                })
                .expect("stream open")
                .expect("frame");
            if let Message::Text(t) = frame {
                let t = t.to_string();
                self.seen.push(t.clone());
                if needles.iter().all(|n| t.contains(n)) {
                    return t;
                }
            }
        }
    }
}

#[tokio::test]
async fn the_whole_bot_in_microsofts_agents_playground() {
    let sim = st2_sim::Sim::start(st2_sim::SimConfig::demo())
        .await
        .expect("simulator");
    let tokens = FakeTeams::start().await;
    let bot_port = free_port();
    let state_dir = TempDir::new("msteams-playground");
    let password_path = state_dir.file("app-password", APP_SECRET);
    let yaml = format!(
        "name: msteams-playground\n\
         backend:\n  kind: msteams\n  app_id: {APP_ID}\n  app_password: file:{password_path}\n  \
         listen: 127.0.0.1:{bot_port}\n  state_file: {}\n  url: {}\n\
         stackstorm:\n  url: {{st2_url}}\n  auth:\n    api_key: {{st2_key}}\n\
         chat:\n  prefix: \"!\"\n\
         access:\n  default: allow\n",
        state_dir.join("refs.json").display(),
        tokens.login_url(),
    );
    let options = st2bot::runtime::cli::Options {
        msteams_unsigned_inbound: Some("1".into()),
        ..Default::default()
    };
    let bot = WholeBot::start_with(&yaml, &sim.url(), Vec::new(), options.clone());
    eventually("a token and the stream", || {
        tokens.tokens_issued() == 1 && sim.stream_clients() == 1
    })
    .await;
    // The playground waits for the bot's endpoint before it answers anything: start it
    // once the bot listens.
    let pg = Playground::start(bot_port, state_dir.path()).await;
    let mut watch = pg.watch().await;

    // Help in the personal chat.
    let personal = pg.personal_chat();
    pg.say(&personal, "help", false).await;
    watch.until(&["!local"]).await;

    // In a channel, a message without a mention never reaches the bot; with one, the
    // command runs, the ack and the result come back in the message's reply chain.
    let (channel, _) = pg.channel();
    pg.say(&channel, "!local date", false).await;
    let said = pg.say(&channel, "!local date", true).await;
    let root = said["messageId"].as_str().expect("messageId").to_owned();
    eventually("one execution", || sim.executions().len() == 1).await;
    let execution = sim.executions()[0].clone();
    assert_eq!(execution.user, "Alex Wilber");
    let thread = format!("{channel};messageid={root}");
    let ack = watch.until(&["running", &execution.id]).await;
    assert!(ack.contains(&thread), "the ack in the reply chain: {ack}");
    let result = watch
        .until(&[&format!("Execution {} succeeded", execution.id)])
        .await;
    assert!(
        result.contains(&thread),
        "the result in the reply chain: {result}"
    );
    let edit = watch.until(&["updateMessage", "succeeded in"]).await;
    assert!(edit.contains(&thread), "the ack edited in place: {edit}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sim.executions().len(),
        1,
        "the unmentioned message ran nothing"
    );

    // A message inside the reply chain is answered there.
    pg.say(&thread, "!help local", true).await;
    let reply = watch
        .until(&["!local {{cmd}}", &thread, "createMessage"])
        .await;
    assert!(
        !reply.contains("!pack"),
        "the help for `local` only: {reply}"
    );

    // An announcement to the channel by id, a whisper to the personal chat.
    sim.announce(
        "chatops",
        json!({ "message": "deploy finished", "channel": channel, "user": "Alex Wilber", "whisper": false }),
    );
    watch.until(&["deploy finished"]).await;
    sim.announce(
        "chatops",
        json!({ "message": "psst only you", "channel": channel, "user": "Alex Wilber", "whisper": true }),
    );
    let whisper = watch.until(&["psst only you"]).await;
    assert!(
        whisper.contains(&personal),
        "the whisper went to the personal chat: {whisper}"
    );

    // Restart: the references come back from the state file; an announcement needs no
    // message first.
    drop(bot);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _bot = WholeBot::start_with(&yaml, &sim.url(), Vec::new(), options);
    eventually("the stream again", || sim.stream_clients() >= 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    sim.announce(
        "chatops",
        json!({ "message": "after the restart", "channel": channel, "user": "Alex Wilber", "whisper": false }),
    );
    watch.until(&["after the restart"]).await;
}
