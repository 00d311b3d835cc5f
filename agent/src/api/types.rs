//! OpenAI request bodies and their validation into engine parameters.
//!
//! Unknown fields are ignored (clients send many optional ones); known fields are type-checked by
//! serde and range-checked here. Every rejection names the offending parameter.

use crate::engine::sampling::RANDOM_SEED;
use crate::engine::SamplingParams;
use serde::Deserialize;

use super::error::ApiError;

/// Most stop sequences per request (OpenAI's limit).
pub const MAX_STOPS: usize = 4;
/// Longest stop sequence, in bytes.
pub const MAX_STOP_LEN: usize = 256;

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum StopSpec {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize, Default)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// Fields shared by both endpoints.
#[derive(Debug, Deserialize)]
pub struct Common {
    pub model: String,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub top_p: Option<f32>,
    #[serde(default)]
    pub seed: Option<i64>,
    #[serde(default)]
    pub stop: Option<StopSpec>,
    #[serde(default)]
    pub n: Option<u32>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub presence_penalty: Option<f32>,
    #[serde(default)]
    pub frequency_penalty: Option<f32>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<MessageContent>,
}

/// A chat request: `messages` plus the common fields (parsed separately so that type errors
/// keep the path of the offending field).
#[derive(Debug)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    pub common: Common,
}

#[derive(Debug, Deserialize)]
struct ChatOnly {
    messages: Vec<ChatMessage>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PromptSpec {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug)]
pub struct CompletionRequest {
    pub prompt: PromptSpec,
    pub common: Common,
}

#[derive(Debug, Deserialize)]
struct CompletionOnly {
    prompt: PromptSpec,
}

/// Validated, endpoint-independent generation options.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// `None`: until the context is full.
    pub max_tokens: Option<u32>,
    pub sampling: SamplingParams,
    pub stop: Vec<String>,
    pub stream: bool,
    pub include_usage: bool,
}

fn range(param: &str, v: Option<f32>, lo: f32, hi: f32, default: f32) -> Result<f32, ApiError> {
    match v {
        None => Ok(default),
        Some(x) if x.is_finite() && x >= lo && x <= hi => Ok(x),
        Some(x) => Err(ApiError::invalid(
            param,
            format!("{param} must be between {lo} and {hi}, got {x}"),
        )),
    }
}

impl Common {
    /// Checks ranges and the model name; `served` is the id of the model this worker serves.
    pub fn validate(&self, served: &str) -> Result<Options, ApiError> {
        if self.model != served {
            return Err(ApiError::model_not_found(&self.model));
        }
        if let Some(n) = self.n {
            if n != 1 {
                return Err(ApiError::invalid(
                    "n",
                    format!("only n=1 is supported, got n={n}"),
                ));
            }
        }
        let max_tokens = match (self.max_completion_tokens, self.max_tokens) {
            (Some(0), _) => {
                return Err(ApiError::invalid(
                    "max_completion_tokens",
                    "max_completion_tokens must be at least 1",
                ))
            }
            (None, Some(0)) => {
                return Err(ApiError::invalid(
                    "max_tokens",
                    "max_tokens must be at least 1",
                ))
            }
            (Some(m), _) => Some(m),
            (None, m) => m,
        };
        let temperature = range("temperature", self.temperature, 0.0, 2.0, 1.0)?;
        let top_p = range("top_p", self.top_p, 0.0, 1.0, 1.0)?;
        if top_p == 0.0 {
            return Err(ApiError::invalid("top_p", "top_p must be greater than 0"));
        }
        let presence_penalty = range("presence_penalty", self.presence_penalty, -2.0, 2.0, 0.0)?;
        let frequency_penalty = range("frequency_penalty", self.frequency_penalty, -2.0, 2.0, 0.0)?;
        // llama.cpp takes a 32-bit seed; larger seeds are folded (deterministically).
        let seed = match self.seed {
            None => RANDOM_SEED,
            Some(s) => {
                let folded = (s as u64 ^ ((s as u64) >> 32)) as u32;
                if folded == RANDOM_SEED {
                    0
                } else {
                    folded
                }
            }
        };
        let stop = match &self.stop {
            None => Vec::new(),
            Some(StopSpec::One(s)) => vec![s.clone()],
            Some(StopSpec::Many(v)) => v.clone(),
        };
        if stop.len() > MAX_STOPS {
            return Err(ApiError::invalid(
                "stop",
                format!(
                    "at most {MAX_STOPS} stop sequences are allowed, got {}",
                    stop.len()
                ),
            ));
        }
        if stop.iter().any(|s| s.is_empty() || s.len() > MAX_STOP_LEN) {
            return Err(ApiError::invalid(
                "stop",
                format!("stop sequences must be 1 to {MAX_STOP_LEN} bytes long"),
            ));
        }
        let stream = self.stream.unwrap_or(false);
        let include_usage = self
            .stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        Ok(Options {
            max_tokens,
            sampling: SamplingParams {
                temperature,
                top_p,
                seed,
                presence_penalty,
                frequency_penalty,
            },
            stop,
            stream,
            include_usage,
        })
    }
}

/// Roles accepted in `messages` (`developer` is OpenAI's newer name for `system`).
const ROLES: &[&str] = &["system", "developer", "user", "assistant"];

impl ChatRequest {
    /// The messages as `(role, text)` pairs for the chat template.
    pub fn transcript(&self) -> Result<Vec<(String, String)>, ApiError> {
        if self.messages.is_empty() {
            return Err(ApiError::invalid("messages", "messages must not be empty"));
        }
        let mut out = Vec::with_capacity(self.messages.len());
        for (i, m) in self.messages.iter().enumerate() {
            if !ROLES.contains(&m.role.as_str()) {
                let shown: String = m.role.chars().take(32).collect();
                return Err(ApiError::invalid(
                    &format!("messages[{i}].role"),
                    format!(
                        "unsupported role `{shown}` (expected one of {})",
                        ROLES.join(", ")
                    ),
                ));
            }
            let role = if m.role == "developer" {
                "system"
            } else {
                m.role.as_str()
            };
            let text = match &m.content {
                None => {
                    return Err(ApiError::invalid(
                        &format!("messages[{i}].content"),
                        "content is required",
                    ))
                }
                Some(MessageContent::Text(t)) => t.clone(),
                Some(MessageContent::Parts(parts)) => {
                    let mut t = String::new();
                    for (j, p) in parts.iter().enumerate() {
                        match (p.kind.as_str(), &p.text) {
                            ("text", Some(s)) => t.push_str(s),
                            _ => {
                                return Err(ApiError::invalid(
                                    &format!("messages[{i}].content[{j}]"),
                                    "only text content parts are supported",
                                ))
                            }
                        }
                    }
                    t
                }
            };
            out.push((role.to_string(), text));
        }
        Ok(out)
    }
}

impl CompletionRequest {
    pub fn prompt_text(&self) -> Result<&str, ApiError> {
        match &self.prompt {
            PromptSpec::One(s) => Ok(s),
            PromptSpec::Many(v) => match v.as_slice() {
                [one] => Ok(one),
                _ => Err(ApiError::invalid(
                    "prompt",
                    "exactly one prompt is supported per request",
                )),
            },
        }
    }
}

/// Parses a JSON body into a value: syntax errors (including invalid UTF-8) are reported here.
fn parse_value(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    let v: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_json(format!("Malformed JSON body: {e}"), None))?;
    if !v.is_object() {
        return Err(ApiError::bad_json(
            "The request body must be a JSON object",
            None,
        ));
    }
    Ok(v)
}

/// Deserializes a typed view of the body, reporting the path of a mistyped field.
fn typed<'a, T: Deserialize<'a>>(v: &'a serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let param = (path != "." && !path.is_empty()).then_some(path);
        ApiError::bad_json(format!("Invalid request body: {inner}"), param)
    })
}

/// Parses `POST /v1/chat/completions`.
pub fn parse_chat(bytes: &[u8]) -> Result<ChatRequest, ApiError> {
    let v = parse_value(bytes)?;
    let only: ChatOnly = typed(&v)?;
    Ok(ChatRequest {
        messages: only.messages,
        common: typed(&v)?,
    })
}

/// Parses `POST /v1/completions`.
pub fn parse_completion(bytes: &[u8]) -> Result<CompletionRequest, ApiError> {
    let v = parse_value(bytes)?;
    let only: CompletionOnly = typed(&v)?;
    Ok(CompletionRequest {
        prompt: only.prompt,
        common: typed(&v)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: &str) -> Result<ChatRequest, ApiError> {
        parse_chat(body.as_bytes())
    }

    #[test]
    fn minimal_chat_request_validates() {
        let r = chat(r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0,"stop":"x","seed":7}"#).unwrap();
        let o = r.common.validate("m").unwrap();
        assert_eq!(o.sampling.temperature, 0.0);
        assert_eq!(o.stop, vec!["x".to_string()]);
        assert_eq!(r.transcript().unwrap(), vec![("user".into(), "hi".into())]);
    }

    #[test]
    fn wrong_types_name_the_field() {
        let e = chat(r#"{"model":"m","messages":[],"max_tokens":"ten"}"#).unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(e.param.as_deref(), Some("max_tokens"));
        let e = chat(r#"{"model":"m","messages":[{"role":"user","content":"hi"}"#).unwrap_err();
        assert!(e.message.starts_with("Malformed JSON"));
        let e = chat("[1,2").unwrap_err();
        assert_eq!(e.code, "invalid_json");
        assert!(parse_chat(b"{\"model\":\"m\xff\",\"messages\":[]}").is_err());
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        let base = |extra: &str| {
            chat(&format!(
                r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}]{extra}}}"#
            ))
            .unwrap()
        };
        for (extra, param) in [
            (r#","n":2"#, "n"),
            (r#","temperature":3"#, "temperature"),
            (r#","top_p":0"#, "top_p"),
            (r#","max_tokens":0"#, "max_tokens"),
            (r#","presence_penalty":-5"#, "presence_penalty"),
            (r#","stop":["a","b","c","d","e"]"#, "stop"),
            (r#","stop":[""]"#, "stop"),
        ] {
            let e = base(extra).common.validate("m").unwrap_err();
            assert_eq!(e.param.as_deref(), Some(param), "{extra}");
        }
        assert_eq!(base("").common.validate("other").unwrap_err().status, 404);
    }

    #[test]
    fn messages_are_checked() {
        let empty = chat(r#"{"model":"m","messages":[]}"#).unwrap();
        assert_eq!(
            empty.transcript().unwrap_err().param.as_deref(),
            Some("messages")
        );
        let role = chat(r#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#).unwrap();
        assert_eq!(
            role.transcript().unwrap_err().param.as_deref(),
            Some("messages[0].role")
        );
        let parts = chat(r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}"#).unwrap();
        assert_eq!(parts.transcript().unwrap()[0].1, "ab");
        let image =
            chat(r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#)
                .unwrap();
        assert!(image.transcript().is_err());
    }

    #[test]
    fn seeds_are_deterministic_and_never_random() {
        let o = |s: &str| {
            chat(&format!(
                r#"{{"model":"m","messages":[{{"role":"user","content":"x"}}],"seed":{s}}}"#
            ))
            .unwrap()
            .common
            .validate("m")
            .unwrap()
            .sampling
            .seed
        };
        assert_eq!(o("42"), o("42"));
        assert_ne!(o("4294967295"), RANDOM_SEED);
        assert_ne!(o("-1"), RANDOM_SEED);
    }
}
