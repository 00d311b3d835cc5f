//! Turning requests into prompt tokens: chat-template rendering and tokenization.
//!
//! Template choice, in order: the operator's `--chat-template` (a llama.cpp built-in template
//! name such as `chatml`, `gemma`, `llama3`, or a template string llama.cpp recognises); the
//! template in the model's GGUF metadata; otherwise a fallback by architecture: `gemma` for
//! Gemma-family models (their vocabularies carry `<start_of_turn>`/`<end_of_turn>`), `chatml`
//! for everything else. The fallback is reported in the log and by `GET /v1/models`.

use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::token::LlamaToken;

/// Where the template in use came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateSource {
    Operator,
    Model,
    Fallback,
}

impl TemplateSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateSource::Operator => "operator",
            TemplateSource::Model => "model",
            TemplateSource::Fallback => "fallback",
        }
    }
}

/// The chat template in use.
#[derive(Debug)]
pub struct ChatTemplate {
    template: LlamaChatTemplate,
    pub source: TemplateSource,
    /// The built-in name for operator names and fallbacks, `"gguf"` for the model's own.
    pub label: String,
}

/// Prompt construction failures (all caused by the request).
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("messages[{index}].{field} contains a NUL character")]
    Nul { index: usize, field: &'static str },
    #[error("the chat template could not render these messages (llama.cpp error {0})")]
    Render(i32),
    #[error("the rendered prompt is not valid UTF-8")]
    Utf8,
}

impl ChatTemplate {
    /// Resolves the template as documented on the module and checks that llama.cpp can render
    /// it, so a bad `--chat-template` fails at start-up rather than on every request.
    pub fn resolve(model: &LlamaModel, operator: Option<&str>) -> Result<ChatTemplate, String> {
        let t = Self::pick(model, operator)?;
        t.render(model, &[("user".into(), "ping".into())])
            .map_err(|e| format!("template `{}` ({}): {e}", t.label, t.source.as_str()))?;
        Ok(t)
    }

    fn pick(model: &LlamaModel, operator: Option<&str>) -> Result<ChatTemplate, String> {
        if let Some(name) = operator {
            let template = LlamaChatTemplate::new(name)
                .map_err(|_| "--chat-template contains a NUL character".to_string())?;
            return Ok(ChatTemplate {
                template,
                source: TemplateSource::Operator,
                label: name.chars().take(40).collect(),
            });
        }
        if let Ok(template) = model.chat_template(None) {
            return Ok(ChatTemplate {
                template,
                source: TemplateSource::Model,
                label: "gguf".into(),
            });
        }
        let arch = model
            .meta_val_str("general.architecture")
            .unwrap_or_default();
        let name = fallback_for_architecture(&arch);
        let template = LlamaChatTemplate::new(name).map_err(|e| e.to_string())?;
        Ok(ChatTemplate {
            template,
            source: TemplateSource::Fallback,
            label: name.into(),
        })
    }

    /// Renders `(role, content)` messages with the assistant turn opened.
    pub fn render(
        &self,
        model: &LlamaModel,
        messages: &[(String, String)],
    ) -> Result<String, PromptError> {
        let mut chat = Vec::with_capacity(messages.len());
        for (index, (role, content)) in messages.iter().enumerate() {
            let msg = LlamaChatMessage::new(role.clone(), content.clone()).map_err(|_| {
                let field = if role.contains('\0') {
                    "role"
                } else {
                    "content"
                };
                PromptError::Nul { index, field }
            })?;
            chat.push(msg);
        }
        model
            .apply_chat_template(&self.template, &chat, true)
            .map_err(|e| match e {
                llama_cpp_2::ApplyChatTemplateError::FfiError(code) => PromptError::Render(code),
                _ => PromptError::Utf8,
            })
    }
}

/// The built-in template used when neither the operator nor the model supplies one.
pub fn fallback_for_architecture(arch: &str) -> &'static str {
    if arch.starts_with("gemma") {
        "gemma"
    } else {
        "chatml"
    }
}

/// Tokenizes a prompt the way llama.cpp's server does: BOS added if the model wants it,
/// special-token text parsed (chat templates rely on it).
pub fn tokenize(model: &LlamaModel, text: &str) -> Vec<LlamaToken> {
    model.vocab().tokenize(text.as_bytes(), true, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_names_are_llama_cpp_builtins() {
        assert_eq!(fallback_for_architecture("gemma3"), "gemma");
        assert_eq!(fallback_for_architecture("llama"), "chatml");
        assert_eq!(fallback_for_architecture(""), "chatml");
    }
}
