//! The bot-definition loader: any text in, a spec or diagnostics out, never a panic; every
//! diagnostic renders in both forms.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = bot_config::SourceFile::new("fuzz.yaml", text);
    // A directory with no catalogue files: catalogue paths resolve to nothing.
    let loaded = bot_config::load_in(&file, std::path::Path::new("/nonexistent/st2bot-fuzz"));
    let diagnostics = match &loaded.result {
        Ok(_) => loaded.warnings.clone(),
        Err(errors) => errors.clone(),
    };
    for d in &diagnostics {
        let _ = d.render_long(&file);
        let _ = d.render_short(&file);
    }
});
