//! Demo mode (`--simulate`): starts the StackStorm simulator (`st2-sim`) on a free loopback
//! port and points the bot at it with the simulator's API key. Clearly labelled on start:
//! nothing reaches a real StackStorm in this mode.

use bot_config::BotSpec;

use crate::secret::Secret;
use crate::stackstorm::St2Client;
use crate::stackstorm::auth::{Credential, ServiceAuth};

/// [`start`] as a [`crate::linked::SimulatorStart`], for [`crate::linked::SIMULATOR`].
pub(crate) fn start_boxed(
    spec: &BotSpec,
) -> crate::backend::BoxFuture<'_, Result<crate::linked::Simulated, String>> {
    Box::pin(start(spec))
}

/// The demo's workflow that asks before it goes on: `gated deploy {{app}}` runs
/// `examples.gated_deploy`, which pauses on an inquiry with StackStorm's default question
/// (`continue`, yes/no) that anyone may answer; the inquiry rule of docs/inquiries.md is
/// installed on the bot's announcement route, so the bot asks in chat.
fn add_gated_workflow(config: &mut st2_sim::SimConfig, announcement_route: &str) {
    config.aliases.push(serde_json::json!({
        "id": "5f5e0000000000000000a51a", "uid": "action:examples:gated_deploy",
        "ref": "examples.gated_deploy", "name": "gated_deploy", "pack": "examples",
        "description": "Deploy an application once someone approves it (a StackStorm inquiry)",
        "enabled": true, "action_ref": "examples.gated_deploy",
        "formats": ["gated deploy {{app}}"],
        "ack": {"enabled": true, "append_url": true}, "result": {"enabled": true},
    }));
    config.workflows.push((
        "examples.gated_deploy".into(),
        serde_json::json!({"schema": st2_sim::default_inquiry_schema(), "ttl": 60}),
    ));
    config.inquiry_rules.push(announcement_route.to_owned());
}

/// Starts the simulator with its demo packs.
pub async fn start(spec: &BotSpec) -> Result<crate::linked::Simulated, String> {
    let mut config = st2_sim::SimConfig::demo();
    config.webui_url = None;
    add_gated_workflow(&mut config, &spec.stackstorm.announcement_route);
    let key = config.api_keys[0].clone();
    let sim = st2_sim::Sim::start(config)
        .await
        .map_err(|e| e.to_string())?;
    let base = sim.url();
    let mut patched = spec.clone();
    patched.stackstorm.use_base_url(&base);
    patched.stackstorm.webui_url = None;
    let client = St2Client::with_auth(
        &patched.stackstorm,
        ServiceAuth::fixed(Credential::ApiKey(Secret::new(key))),
    )
    .map_err(|e| e.to_string())?;
    eprintln!(
        "DEMO MODE: talking to a simulated StackStorm at {base} (packs: core, packs, examples, linux, jira). Nothing reaches a real StackStorm."
    );
    tracing::warn!(url = %base, "demo mode: StackStorm simulator");
    Ok(crate::linked::Simulated {
        spec: patched,
        client,
        keep_running: Box::new(sim),
    })
}
