//! Command-line interface.

use crate::config::RawServe;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "cocoon-agent",
    version,
    about = "COCOON worker guest agent: confidential LLM inference over an OpenAI-compatible API",
    long_about = "COCOON worker guest agent: serves LLM inference (llama.cpp) over an \
OpenAI-compatible HTTP API: POST /v1/chat/completions, POST /v1/completions (streaming and not), \
GET /v1/models, GET /healthz, GET /metrics.\n\nNot implemented yet: TDX attestation, the RA-TLS \
listener and payments. The plain HTTP listener only binds loopback addresses and is meant for \
local development."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a GGUF model pinned by its SHA-256.
    Serve(ServeArgs),
    /// Serve the bundled Gemma 3 270M model on 127.0.0.1:8080 and print how to query it.
    Demo(DemoArgs),
}

/// Engine sizing, shared by `serve` and `demo`.
#[derive(Debug, Args, Clone)]
pub struct EngineArgs {
    /// Context length of one request (prompt + completion), in tokens.
    #[arg(long, default_value_t = 2048)]
    pub ctx: u32,
    /// Requests decoded together (KV-cache sequences); memory grows with ctx x parallel.
    #[arg(long, default_value_t = 4)]
    pub parallel: u32,
    /// CPU threads for llama.cpp [default: all available cores].
    #[arg(long)]
    pub threads: Option<u32>,
    /// Requests waiting for a free sequence; more get 429 with Retry-After.
    #[arg(long, default_value_t = 64)]
    pub queue: usize,
    /// Most tokens per decode call (long prompts are split into chunks of this size).
    #[arg(long, default_value_t = 512)]
    pub batch: u32,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub body_limit: usize,
    /// Seconds allowed for a request's headers or body to arrive, or for a response write to
    /// make progress.
    #[arg(long, default_value_t = 30)]
    pub io_timeout: u64,
    /// Concurrent HTTP connections; further connections wait in the kernel backlog.
    #[arg(long, default_value_t = 256)]
    pub max_connections: usize,
    /// Chat template: a llama.cpp built-in name (chatml, gemma, llama3, ...) overriding the
    /// model's own [default: the model's template; gemma/chatml fallback when it has none].
    #[arg(long)]
    pub chat_template: Option<String>,
    /// Layers to offload to the GPU (effective only in builds with the `cuda` feature).
    #[arg(long, default_value_t = 999)]
    pub gpu_layers: u32,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The GGUF model file.
    #[arg(long)]
    pub model: PathBuf,
    /// Expected SHA-256 of the model file (64 hex digits); the agent refuses to start otherwise.
    #[arg(long)]
    pub model_sha256: String,
    /// The model id clients pass as `model` [default: the file name without .gguf].
    #[arg(long)]
    pub model_id: Option<String>,
    /// Plain HTTP listen address (loopback only; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Plain HTTP listen address (loopback only).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub engine: EngineArgs,
}

impl EngineArgs {
    pub fn into_raw(
        self,
        model: PathBuf,
        model_sha256: String,
        model_id: Option<String>,
        listen: SocketAddr,
    ) -> RawServe {
        RawServe {
            model,
            model_sha256,
            model_id,
            listen,
            ctx: self.ctx,
            parallel: self.parallel,
            threads: self.threads,
            queue: self.queue,
            batch: self.batch,
            body_limit: self.body_limit,
            io_timeout_secs: self.io_timeout,
            max_connections: self.max_connections,
            chat_template: self.chat_template,
            gpu_layers: self.gpu_layers,
        }
    }
}
