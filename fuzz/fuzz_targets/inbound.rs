//! Inbound chat events → `Incoming`, for each JSON backend: never a panic, and never the
//! bot's own message. The first byte picks the backend: 0 Slack (Events API payload), 1
//! Mattermost (`posted` event data), 2 Discord (gateway frame), 3 Rocket.Chat (DDP
//! `changed` frame), 4 Matrix (`/sync` answer).
#![no_main]

use bot_runtime::__fuzz::{
    discord_inbound, matrix_inbound, mattermost_inbound, rocketchat_inbound, slack_inbound,
};
use bot_runtime::backend::Incoming;
use libfuzzer_sys::fuzz_target;

/// The bot never takes its own messages as commands.
fn check(message: &Incoming, me: &str) {
    assert_ne!(message.user_id, me, "the bot's own message: {message:?}");
}

fuzz_target!(|data: &[u8]| {
    let [selector, body @ ..] = data else {
        return;
    };
    match selector % 5 {
        0 => {
            if let Some(m) = slack_inbound(body, "UBOT00001") {
                check(&m, "UBOT00001");
            }
        }
        1 => {
            if let Some(m) = mattermost_inbound(body, "botid", "st2bot") {
                check(&m, "botid");
            }
        }
        2 => {
            if let Some(m) = discord_inbound(body, "1000") {
                check(&m, "1000");
            }
        }
        3 => {
            if let Some(m) = rocketchat_inbound(body, "botid", "st2bot") {
                check(&m, "botid");
            }
        }
        _ => {
            for m in matrix_inbound(body, "@st2bot:localhost") {
                check(&m, "@st2bot:localhost");
            }
        }
    }
});
