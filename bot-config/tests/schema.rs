//! The checked-in JSON Schema (`schema/bot.schema.json`) is exactly what the raw types
//! derive today, and it describes the definitions in `bots/`.
//!
//! Regenerate after changing `bot-config/src/raw.rs` or `schema.rs`:
//! `ST2BOT_BLESS=1 cargo test -p bot-config --test schema`.

use std::path::PathBuf;

fn checked_in() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schema/bot.schema.json")
}

#[test]
fn checked_in_schema_is_current() {
    let fresh = bot_config::schema::json_schema_text();
    let path = checked_in();
    if std::env::var_os("ST2BOT_BLESS").is_some() {
        std::fs::write(&path, &fresh).expect("write schema/bot.schema.json");
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == fresh,
        "schema/bot.schema.json is stale: the raw types changed. Regenerate it with\n    ST2BOT_BLESS=1 cargo test -p bot-config --test schema\nand commit the result."
    );
}

#[test]
fn schema_knows_every_backend_and_the_secret_rule() {
    let schema = bot_config::schema::json_schema();
    let kinds = &schema["definitions"]["Backend"]["properties"]["kind"]["enum"];
    for kind in bot_config::backend_kinds() {
        assert!(
            kinds.as_array().unwrap().iter().any(|k| k == kind),
            "{kind} in {kinds}"
        );
    }
    let api_key = &schema["definitions"]["StackStormAuth"]["properties"]["api_key"];
    assert!(api_key["pattern"].as_str().unwrap().contains(r"\$\{"));
    assert_eq!(schema["additionalProperties"], false);
    assert!(
        schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "stackstorm")
    );
}
