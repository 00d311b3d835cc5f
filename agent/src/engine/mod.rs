//! The inference engine: one thread owns the llama.cpp context and runs a continuous-batching
//! scheduler over up to `parallel` sequences; HTTP handlers talk to it through [`EngineHandle`].

pub mod backend;
pub mod prompt;
pub mod sampling;
pub mod text;
mod worker;

use crate::metrics::Metrics;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use std::path::PathBuf;
use std::sync::atomic::AtomicU32;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc::UnboundedSender;

pub use sampling::SamplingParams;

/// How the engine is sized.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub model_path: PathBuf,
    /// Context length of one sequence (prompt + completion), in tokens.
    pub ctx_per_seq: u32,
    /// Sequences decoded together in one batch.
    pub parallel: u32,
    /// CPU threads for llama.cpp.
    pub threads: i32,
    /// Requests waiting for a free sequence before new ones get 429.
    pub queue: usize,
    /// Most tokens in one decode call (prompt chunks are split to fit).
    pub batch_tokens: u32,
    /// Chat template override: a llama.cpp built-in template name or a template string.
    pub chat_template: Option<String>,
    /// Layers offloaded to the GPU (only with the `cuda` feature).
    pub gpu_layers: u32,
}

/// Why generation ended, as reported in `finish_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-generation token or a stop string.
    Stop,
    /// `max_tokens` reached.
    Length,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// Exact token counts, measured in the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Tokens of the prompt as decoded (including BOS and template tokens).
    pub prompt_tokens: u32,
    /// Tokens sampled for the completion, including the one that completed a stop string and
    /// excluding an end-of-generation token (which produces no text).
    pub completion_tokens: u32,
}

/// What the engine sends back for one request, in order: `Text`* then `Done` or `Failed`.
#[derive(Debug)]
pub enum Event {
    Text(String),
    Done { finish: FinishReason, usage: Usage },
    Failed(String),
}

/// One generation job, already tokenized and checked against the context size.
pub struct GenRequest {
    pub prompt: Vec<LlamaToken>,
    pub max_tokens: u32,
    pub sampling: SamplingParams,
    pub stop: Vec<String>,
    pub events: UnboundedSender<Event>,
    pub received: Instant,
    /// Completion tokens sampled so far, stored by the engine after each one. Billing reads it
    /// when the client goes away before `Done` (the engine then stops without a final event).
    pub progress: Arc<AtomicU32>,
}

/// Submission failures.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("the admission queue is full ({0} requests waiting)")]
    QueueFull(usize),
    #[error("the engine has stopped")]
    Stopped,
}

/// Engine start-up failures.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("initialising the llama.cpp backend: {0}")]
    Backend(#[source] llama_cpp_2::LlamaCppError),
    #[error("loading model {path}: {source}")]
    Load {
        path: PathBuf,
        #[source]
        source: llama_cpp_2::LlamaModelLoadError,
    },
    #[error("creating a llama.cpp context ({n_ctx} tokens, {parallel} sequences): {source}")]
    Context {
        n_ctx: u32,
        parallel: u32,
        #[source]
        source: llama_cpp_2::LlamaContextLoadError,
    },
    #[error("per-sequence context {ctx} exceeds the model's training context {train}")]
    ContextTooLarge { ctx: u32, train: u32 },
    #[error("llama.cpp gave each sequence {got} tokens of context, {want} were configured")]
    ContextMismatch { got: u32, want: u32 },
    #[error("chat template: {0}")]
    Template(String),
    #[error("the engine thread exited during start-up")]
    ThreadExited,
    #[error("spawning the engine thread: {0}")]
    Spawn(#[source] std::io::Error),
}

/// Cheap-to-clone access to a running engine.
#[derive(Clone)]
pub struct EngineHandle {
    inner: Arc<HandleInner>,
}

struct HandleInner {
    model: Arc<LlamaModel>,
    template: prompt::ChatTemplate,
    tx: SyncSender<GenRequest>,
    queue: usize,
    ctx_per_seq: u32,
    metrics: Arc<Metrics>,
}

impl EngineHandle {
    /// Loads the model and starts the engine thread; blocks until the model is loaded.
    pub fn start(config: EngineConfig, metrics: Arc<Metrics>) -> Result<EngineHandle, EngineError> {
        worker::start(config, metrics)
    }

    pub fn model(&self) -> &LlamaModel {
        &self.inner.model
    }

    pub fn ctx_per_seq(&self) -> u32 {
        self.inner.ctx_per_seq
    }

    pub fn template(&self) -> &prompt::ChatTemplate {
        &self.inner.template
    }

    /// Queues a request without blocking; a full queue is reported, never waited on.
    pub fn submit(&self, req: GenRequest) -> Result<(), SubmitError> {
        self.inner.metrics.queue_depth_add(1);
        match self.inner.tx.try_send(req) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.inner.metrics.queue_depth_add(-1);
                match e {
                    TrySendError::Full(_) => Err(SubmitError::QueueFull(self.inner.queue)),
                    TrySendError::Disconnected(_) => Err(SubmitError::Stopped),
                }
            }
        }
    }
}
