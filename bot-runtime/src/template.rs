//! Rendering the bot's reply templates (handlebars) with each slot's typed context
//! (`bot_config::templates::AckContext`…, the same structs the build-time check reads its
//! variables from) and the helpers `bot_config::templates::HELPERS` lists. Templates were
//! checked at build time; a render error at run time (a helper misused on odd data) falls
//! back to the slot's default so a reply is never lost.

use bot_config::TemplatesSpec;
use bot_config::templates::{
    ACK, AMBIGUOUS, DENIED, ERROR, HELP, NO_MATCH, RESULT, SLOTS, SlotContext,
};
use handlebars::{
    Context, Handlebars, Helper, HelperResult, JsonRender, Output, RenderContext, RenderError,
    RenderErrorReason,
};
use serde_json::Value;

/// The compiled templates of one bot.
#[derive(Debug)]
pub struct Templates {
    registry: Handlebars<'static>,
}

/// Why templates could not be compiled (only possible for a spec built at run time without
/// validation).
#[derive(Debug, thiserror::Error)]
#[error("template `{name}` does not compile: {reason}")]
pub struct TemplateError {
    name: &'static str,
    reason: String,
}

impl Templates {
    /// Compiles a bot's templates and the defaults (used as fallbacks).
    pub fn new(spec: &TemplatesSpec) -> Result<Self, TemplateError> {
        let mut registry = Handlebars::new();
        registry.register_escape_fn(handlebars::no_escape);
        registry.set_strict_mode(false);
        registry.register_helper("truncate", Box::new(truncate));
        registry.register_helper("upper", Box::new(upper));
        registry.register_helper("lower", Box::new(lower));
        registry.register_helper("json", Box::new(json));
        registry.register_helper("code", Box::new(code));
        let chosen = [
            (ACK.name, &spec.ack),
            (RESULT.name, &spec.result),
            (ERROR.name, &spec.error),
            (HELP.name, &spec.help),
            (DENIED.name, &spec.denied),
            (NO_MATCH.name, &spec.no_match),
            (AMBIGUOUS.name, &spec.ambiguous),
        ];
        for (name, source) in chosen {
            registry
                .register_template_string(name, source.as_ref())
                .map_err(|e| TemplateError {
                    name,
                    reason: e.to_string(),
                })?;
        }
        for slot in SLOTS {
            registry
                .register_template_string(&format!("default:{}", slot.name), slot.default)
                .map_err(|e| TemplateError {
                    name: slot.name,
                    reason: e.to_string(),
                })?;
        }
        Ok(Self { registry })
    }

    /// Renders the slot of `context` (`AckContext` renders `ack`) with it; on a render
    /// error, logs it and uses the slot's default.
    pub fn render<C: SlotContext>(&self, context: &C) -> String {
        let mut text = self.render_unsized(context);
        // handlebars renders into an 8 KiB buffer: without this, every help line kept for
        // the catalogue (and every ack kept for edits) would hold 8 KiB, whatever its length.
        text.shrink_to_fit();
        text
    }

    fn render_unsized<C: SlotContext>(&self, context: &C) -> String {
        let name = C::SLOT.name;
        match self.registry.render(name, context) {
            Ok(text) => text,
            Err(e) => {
                tracing::warn!(template = name, error = %e, "template failed to render; using the default");
                self.registry
                    .render(&format!("default:{name}"), context)
                    .unwrap_or_else(|_| serde_json::to_string(context).unwrap_or_default())
            }
        }
    }
}

fn param<'a>(h: &'a Helper<'_>, i: usize, name: &'static str) -> Result<&'a Value, RenderError> {
    h.param(i)
        .map(|p| p.value())
        .ok_or_else(|| RenderErrorReason::ParamNotFoundForIndex(name, i).into())
}

/// `{{truncate text 100}}`: at most N characters, `…` added when cut.
fn truncate(
    h: &Helper<'_>,
    _: &Handlebars<'_>,
    _: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    let text = param(h, 0, "truncate")?.render();
    let n = param(h, 1, "truncate")?.as_u64().unwrap_or(100) as usize;
    if text.chars().count() <= n {
        out.write(&text)?;
    } else {
        let cut: String = text.chars().take(n.saturating_sub(1)).collect();
        out.write(&cut)?;
        out.write("…")?;
    }
    Ok(())
}

/// `{{upper text}}`.
fn upper(
    h: &Helper<'_>,
    _: &Handlebars<'_>,
    _: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    out.write(&param(h, 0, "upper")?.render().to_uppercase())?;
    Ok(())
}

/// `{{lower text}}`.
fn lower(
    h: &Helper<'_>,
    _: &Handlebars<'_>,
    _: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    out.write(&param(h, 0, "lower")?.render().to_lowercase())?;
    Ok(())
}

/// `{{json value}}`: compact JSON.
fn json(
    h: &Helper<'_>,
    _: &Handlebars<'_>,
    _: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    out.write(&param(h, 0, "json")?.to_string())?;
    Ok(())
}

/// `{{code text}}`: a fenced code block.
fn code(
    h: &Helper<'_>,
    _: &Handlebars<'_>,
    _: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    let text = param(h, 0, "code")?.render();
    out.write("```\n")?;
    out.write(text.trim_end_matches('\n'))?;
    out.write("\n```")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bot_config::templates::{
        AckContext, ErrorContext, ExecutionContext, HelpContext, NoMatchContext, ResultContext,
        slot,
    };
    use serde_json::json;

    fn defaults() -> TemplatesSpec {
        let d = |n| slot(n).unwrap().default.into();
        TemplatesSpec {
            ack: d("ack"),
            result: d("result"),
            error: d("error"),
            help: d("help"),
            denied: d("denied"),
            no_match: d("no_match"),
            ambiguous: d("ambiguous"),
        }
    }

    /// Rendered text is kept (help lines per catalogue, acks for later edits): it must cost
    /// its length, not the renderer's 8 KiB buffer.
    #[test]
    fn rendered_text_holds_no_spare_buffer() {
        let t = Templates::new(&defaults()).unwrap();
        let line = t.render(&HelpContext {
            pack: "core",
            display: "run {{cmd}}",
            description: "Runs it",
            prefix: "!",
        });
        assert_eq!(line, "!run {{cmd}} - Runs it");
        assert!(line.capacity() < 64, "capacity {}", line.capacity());
    }

    #[test]
    fn defaults_render_with_full_contexts() {
        let t = Templates::new(&defaults()).unwrap();
        let ack = t.render(&AckContext {
            user: "alice",
            alias: "core.run",
            execution: ExecutionContext {
                id: "e1",
                ..ExecutionContext::default()
            },
            url: "http://x/#/history/e1/general",
            message: "",
            ..AckContext::default()
        });
        assert_eq!(
            ack,
            "alice: running `core.run`, execution e1 http://x/#/history/e1/general"
        );
        let suggestions = ["deploy {{app}}".to_owned()];
        let nm = t.render(&NoMatchContext {
            user: "bob",
            command: "dpeloy",
            prefix: "!",
            help_command: "help",
            suggestions: &suggestions,
        });
        assert_eq!(
            nm,
            "bob: no command matches `dpeloy`. Closest:\n  !deploy {{app}}\nSee !help."
        );
        assert_eq!(
            t.render(&ResultContext {
                message: "<done> & ok",
                ..ResultContext::default()
            }),
            "<done> & ok"
        );
    }

    #[test]
    fn helpers_work_and_errors_fall_back() {
        let mut spec = defaults();
        spec.result = "{{truncate message 5}}|{{upper message}}|{{json extra}}".into();
        spec.error = "{{truncate}}".into();
        let t = Templates::new(&spec).unwrap();
        let extra = json!({"a": 1});
        assert_eq!(
            t.render(&ResultContext {
                message: "abcdefgh",
                extra: Some(&extra),
                ..ResultContext::default()
            }),
            "abcd…|ABCDEFGH|{\"a\":1}"
        );
        let fallback = t.render(&ErrorContext {
            user: "u",
            command: "c",
            error: "boom",
            ..ErrorContext::default()
        });
        assert_eq!(fallback, "u: `c` failed: boom");
    }
}
