//! A tiny Matrix client for tests: a person (alice, bob) talking to the bot through the
//! same Synapse. Logs in with a password, creates rooms, invites, joins, sends text, and
//! collects the `m.room.message` events it sees through `/sync`.
// Shared by several test binaries; each uses a part.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// One logged-in test user.
pub struct TestUser {
    http: reqwest::Client,
    base: String,
    token: String,
    /// Full user id.
    pub user_id: String,
    since: Option<String>,
    /// Every `m.room.message` seen so far, as (room id, event), oldest first.
    seen: Vec<(String, Value)>,
    /// Rooms this user has been invited to and not yet joined.
    invites: Vec<String>,
    txn: u64,
    /// `origin_server_ts` of the messages the last `take_messages` returned.
    last_taken_ts: Vec<i64>,
}

impl TestUser {
    /// Logs in with a password and does a first sync (so later waits see only new events).
    pub async fn login(base: &str, user: &str, password: &str) -> Self {
        let http = bot_runtime::http::client(true, None, None).expect("HTTP client");
        let response: Value = http
            .post(format!("{base}/_matrix/client/v3/login"))
            .json(&json!({
                "type": "m.login.password",
                "identifier": { "type": "m.id.user", "user": user },
                "password": password,
            }))
            .send()
            .await
            .expect("login request")
            .json()
            .await
            .expect("login answer");
        let token = response["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("login of {user} failed: {response}"))
            .to_owned();
        let mut client = Self {
            http,
            base: base.to_owned(),
            token,
            user_id: response["user_id"].as_str().unwrap_or_default().to_owned(),
            since: None,
            seen: Vec::new(),
            invites: Vec::new(),
            txn: 0,
            last_taken_ts: Vec::new(),
        };
        client.sync(0).await;
        client.seen.clear();
        client
    }

    /// The access token (to hand to a bot under test).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// One more sync, to see anything still on its way.
    pub async fn settle(&mut self) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.sync(0).await;
    }

    /// Calls an endpoint under `/_matrix/client/v3`; panics on an error status.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/_matrix/client/v3/{path}", self.base);
        self.call_url(method, &url, body).await
    }

    /// Calls a Synapse admin endpoint under `/_synapse/admin/v1` (needs a server admin).
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/_synapse/admin/v1/{path}", self.base);
        self.call_url(method, &url, body).await
    }

    async fn call_url(&self, method: reqwest::Method, url: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method.clone(), url)
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{method} {url}: {status} {value}");
        value
    }

    /// `POST /createRoom`; returns the room id.
    pub async fn create_room(&self, body: Value) -> String {
        let r = self
            .call(reqwest::Method::POST, "createRoom", Some(body))
            .await;
        r["room_id"].as_str().expect("room_id").to_owned()
    }

    /// `POST /rooms/{id}/invite`.
    pub async fn invite(&self, room_id: &str, user_id: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("rooms/{}/invite", enc(room_id)),
            Some(json!({ "user_id": user_id })),
        )
        .await;
    }

    /// `POST /join/{roomIdOrAlias}`.
    pub async fn join(&self, room: &str) -> String {
        let r = self
            .call(
                reqwest::Method::POST,
                &format!("join/{}", enc(room)),
                Some(json!({})),
            )
            .await;
        r["room_id"].as_str().expect("room_id").to_owned()
    }

    /// Sends `m.text` content (a plain body, or any extra fields merged in); returns the event id.
    pub async fn send(&mut self, room_id: &str, body: &str, extra: Value) -> String {
        self.txn += 1;
        let mut content = json!({ "msgtype": "m.text", "body": body });
        if let (Some(c), Some(e)) = (content.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                c.insert(k.clone(), v.clone());
            }
        }
        let r = self
            .call(
                reqwest::Method::PUT,
                &format!(
                    "rooms/{}/send/m.room.message/test{}",
                    enc(room_id),
                    self.txn
                ),
                Some(content),
            )
            .await;
        r["event_id"].as_str().expect("event_id").to_owned()
    }

    /// Joined members of a room.
    pub async fn joined_members(&self, room_id: &str) -> Vec<String> {
        let r = self
            .call(
                reqwest::Method::GET,
                &format!("rooms/{}/joined_members", enc(room_id)),
                None,
            )
            .await;
        r["joined"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Waits until `user_id` has joined `room_id`.
    pub async fn wait_for_member(&self, room_id: &str, user_id: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self
            .joined_members(room_id)
            .await
            .iter()
            .any(|m| m == user_id)
        {
            assert!(
                Instant::now() < deadline,
                "{user_id} never joined {room_id}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One `/sync`, recording messages and invites.
    async fn sync(&mut self, timeout_ms: u64) {
        let mut url = format!("{}/_matrix/client/v3/sync?timeout={timeout_ms}", self.base);
        if let Some(since) = &self.since {
            url.push_str(&format!("&since={since}"));
        }
        let response = self.http.get(&url).bearer_auth(&self.token).send().await;
        let Ok(response) = response else { return };
        let Ok(body) = response.json::<Value>().await else {
            return;
        };
        if let Some(next) = body["next_batch"].as_str() {
            self.since = Some(next.to_owned());
        }
        if let Some(rooms) = body["rooms"]["join"].as_object() {
            for (room_id, room) in rooms {
                for event in room["timeline"]["events"].as_array().into_iter().flatten() {
                    if event["type"] == "m.room.message" {
                        self.seen.push((room_id.clone(), event.clone()));
                    }
                }
            }
        }
        if let Some(rooms) = body["rooms"]["invite"].as_object() {
            self.invites.extend(rooms.keys().cloned());
        }
    }

    /// Waits for `count` messages from `sender` in `room_id` after those already taken;
    /// returns their contents and removes them from what was seen.
    pub async fn take_messages(&mut self, room_id: &str, sender: &str, count: usize) -> Vec<Value> {
        self.take_events(room_id, sender, count)
            .await
            .into_iter()
            .map(|e| e["content"].clone())
            .collect()
    }

    /// [`Self::take_messages`], returning the whole events (with their `event_id`).
    pub async fn take_events(&mut self, room_id: &str, sender: &str, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let matching: Vec<usize> = self
                .seen
                .iter()
                .enumerate()
                .filter(|(_, (r, e))| r == room_id && e["sender"] == sender)
                .map(|(i, _)| i)
                .take(count)
                .collect();
            if matching.len() == count {
                let mut taken = Vec::new();
                for i in matching.into_iter().rev() {
                    taken.push(self.seen.remove(i).1);
                }
                taken.reverse();
                self.last_taken_ts = taken
                    .iter()
                    .map(|e| e["origin_server_ts"].as_i64().unwrap_or_default())
                    .collect();
                return taken;
            }
            assert!(
                Instant::now() < deadline,
                "{} saw {} of {count} messages from {sender} in {room_id}",
                self.user_id,
                matching.len()
            );
            self.sync(1000).await;
        }
    }

    /// Server timestamps (ms) of the messages the last `take_messages` returned.
    pub fn last_taken_timestamps(&self) -> &[i64] {
        &self.last_taken_ts
    }

    /// Takes messages from `sender` in `room_id`, one at a time, until one whose body
    /// contains `needle`; returns them all (the match last).
    pub async fn take_until(&mut self, room_id: &str, sender: &str, needle: &str) -> Vec<Value> {
        let mut taken = Vec::new();
        loop {
            let next = self.take_messages(room_id, sender, 1).await.remove(0);
            let found = next["body"].as_str().is_some_and(|b| b.contains(needle));
            taken.push(next);
            if found {
                return taken;
            }
        }
    }

    /// Waits for an invite and returns the room id.
    pub async fn take_invite(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if !self.invites.is_empty() {
                return self.invites.remove(0);
            }
            assert!(Instant::now() < deadline, "{} got no invite", self.user_id);
            self.sync(1000).await;
        }
    }

    /// Messages already seen that are not yet taken, for assertions that nothing extra came.
    pub fn untaken(&self, room_id: &str, sender: &str) -> Vec<Value> {
        self.seen
            .iter()
            .filter(|(r, e)| r == room_id && e["sender"] == sender)
            .map(|(_, e)| e["content"].clone())
            .collect()
    }
}

/// Percent-encodes a path segment (room ids and aliases contain `!`, `#`, `:`).
pub fn enc(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
