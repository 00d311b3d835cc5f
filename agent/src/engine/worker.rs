//! The engine thread: model loading and the continuous-batching scheduler.
//!
//! Each loop iteration (one "step"):
//! 1. admits queued requests into free sequence slots (blocking only when nothing is active);
//! 2. frees the slots of requests whose receiver is gone (client disconnected), removing their
//!    KV-cache cells;
//! 3. builds one batch: the last sampled token of every generating sequence, then prompt
//!    chunks of sequences still prefilling, up to the batch capacity;
//! 4. decodes it and samples one token for every sequence whose logits were requested.
//!
//! Invariants: slot `i` uses KV sequence id `i`; a slot's positions never exceed the
//! per-sequence context (the API rejects prompt + max_tokens > ctx before submitting); the batch
//! capacity is at least `parallel`, so every generating sequence fits in each step.

use super::prompt::ChatTemplate;
use super::text::{Step, TextAssembler};
use super::{
    EngineConfig, EngineError, EngineHandle, Event, FinishReason, GenRequest, HandleInner, Usage,
};
use crate::metrics::Metrics;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use std::num::NonZeroU32;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::Instant;

type Ready = Result<(Arc<LlamaModel>, ChatTemplate, u32), EngineError>;

pub(super) fn start(
    config: EngineConfig,
    metrics: Arc<Metrics>,
) -> Result<EngineHandle, EngineError> {
    let queue = config.queue.max(1);
    let (tx, rx) = std::sync::mpsc::sync_channel::<GenRequest>(queue);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Ready>();
    let thread_metrics = metrics.clone();
    std::thread::Builder::new()
        .name("engine".into())
        .spawn(move || run(config, rx, ready_tx, thread_metrics))
        .map_err(EngineError::Spawn)?;
    let (model, template, ctx_per_seq) =
        ready_rx.recv().map_err(|_| EngineError::ThreadExited)??;
    Ok(EngineHandle {
        inner: Arc::new(HandleInner {
            model,
            template,
            tx,
            queue,
            ctx_per_seq,
            metrics,
        }),
    })
}

fn run(
    config: EngineConfig,
    rx: Receiver<GenRequest>,
    ready: std::sync::mpsc::Sender<Ready>,
    metrics: Arc<Metrics>,
) {
    // llama.cpp's own log lines go through tracing (target `llama_cpp_2`), not raw stderr.
    llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
    let backend = match LlamaBackend::init() {
        Ok(b) => b,
        Err(e) => {
            let _ = ready.send(Err(EngineError::Backend(e)));
            return;
        }
    };
    let model = match load(&backend, &config) {
        Ok(m) => Arc::new(m),
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let parallel = config.parallel.max(1);
    let batch_cap = config.batch_tokens.max(parallel);
    let n_ctx = config.ctx_per_seq.saturating_mul(parallel);
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(batch_cap)
        .with_n_ubatch(batch_cap)
        .with_n_seq_max(parallel)
        .with_kv_unified(false)
        .with_n_threads(config.threads)
        .with_n_threads_batch(config.threads);
    let ctx = match model.new_context(&backend, params) {
        Ok(c) => c,
        Err(source) => {
            let _ = ready.send(Err(EngineError::Context {
                n_ctx,
                parallel,
                source,
            }));
            return;
        }
    };
    let got = ctx.n_ctx() / parallel;
    if got < config.ctx_per_seq {
        let _ = ready.send(Err(EngineError::ContextMismatch {
            got,
            want: config.ctx_per_seq,
        }));
        return;
    }
    let template = match ChatTemplate::resolve(&model, config.chat_template.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            let _ = ready.send(Err(EngineError::Template(e)));
            return;
        }
    };
    tracing::info!(
        n_ctx = ctx.n_ctx(),
        ctx_per_seq = config.ctx_per_seq,
        parallel,
        batch_cap,
        threads = config.threads,
        template = template.label.as_str(),
        template_source = template.source.as_str(),
        "engine ready"
    );
    if ready
        .send(Ok((model.clone(), template, config.ctx_per_seq)))
        .is_err()
    {
        return;
    }
    let mut sched = Scheduler {
        model: &model,
        ctx,
        batch: LlamaBatch::new(batch_cap as usize, 1),
        batch_cap: batch_cap as i32,
        slots: (0..parallel).map(|_| None).collect(),
        penalty_window: config.ctx_per_seq as i32,
        metrics,
    };
    sched.run(&rx);
    tracing::info!("engine stopped: all request senders are gone");
}

fn load(backend: &LlamaBackend, config: &EngineConfig) -> Result<LlamaModel, EngineError> {
    let params = LlamaModelParams::default();
    let params = if cfg!(feature = "cuda") {
        params.with_n_gpu_layers(config.gpu_layers)
    } else {
        params
    };
    let model =
        LlamaModel::load_from_file(backend, &config.model_path, &params).map_err(|source| {
            EngineError::Load {
                path: config.model_path.clone(),
                source,
            }
        })?;
    let train = model.n_ctx_train();
    if config.ctx_per_seq > train {
        return Err(EngineError::ContextTooLarge {
            ctx: config.ctx_per_seq,
            train,
        });
    }
    Ok(model)
}

struct Slot {
    req: GenRequest,
    sampler: LlamaSampler,
    text: TextAssembler,
    /// Prompt tokens already decoded.
    fed: usize,
    /// Next KV position of this sequence.
    n_past: i32,
    /// The token sampled last, to be decoded in the next step.
    pending: Option<LlamaToken>,
    completion: u32,
    first_token: bool,
    /// Index of this sequence's logits in the current batch.
    logits_at: Option<i32>,
}

struct Scheduler<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    batch_cap: i32,
    slots: Vec<Option<Slot>>,
    penalty_window: i32,
    metrics: Arc<Metrics>,
}

impl Scheduler<'_> {
    fn active(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    fn run(&mut self, rx: &Receiver<GenRequest>) {
        loop {
            if !self.admit(rx) {
                return;
            }
            self.drop_cancelled();
            self.metrics.set_active_sequences(self.active());
            if self.active() == 0 {
                continue;
            }
            self.step();
            self.metrics.set_active_sequences(self.active());
        }
    }

    /// Moves queued requests into free slots. Returns false when the engine should stop.
    fn admit(&mut self, rx: &Receiver<GenRequest>) -> bool {
        while let Some(free) = self.slots.iter().position(Option::is_none) {
            let req = if self.active() == 0 {
                match rx.recv() {
                    Ok(r) => r,
                    Err(_) => return false,
                }
            } else {
                match rx.try_recv() {
                    Ok(r) => r,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => break,
                }
            };
            self.metrics.queue_depth_add(-1);
            if req.events.is_closed() {
                self.metrics.cancelled();
                continue;
            }
            let sampler = req
                .sampling
                .build(self.model.n_vocab(), self.penalty_window);
            let text = TextAssembler::new(req.stop.clone());
            self.slots[free] = Some(Slot {
                req,
                sampler,
                text,
                fed: 0,
                n_past: 0,
                pending: None,
                completion: 0,
                first_token: true,
                logits_at: None,
            });
        }
        true
    }

    fn drop_cancelled(&mut self) {
        for i in 0..self.slots.len() {
            if self.slots[i]
                .as_ref()
                .is_some_and(|s| s.req.events.is_closed())
            {
                self.free(i);
                self.metrics.cancelled();
            }
        }
    }

    /// Releases slot `i` and its KV-cache cells.
    fn free(&mut self, i: usize) {
        self.slots[i] = None;
        if let Err(e) = self.ctx.clear_kv_cache_seq(Some(i as u32), None, None) {
            tracing::error!(seq = i, error = %e, "removing a sequence from the KV cache failed");
        }
    }

    fn step(&mut self) {
        self.batch.clear();
        // Generating sequences first: one token each.
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(s) = slot else { continue };
            s.logits_at = None;
            if let Some(tok) = s.pending.take() {
                if self.batch.add(tok, s.n_past, &[i as i32], true).is_err() {
                    s.pending = Some(tok);
                    continue;
                }
                s.n_past += 1;
                s.logits_at = Some(self.batch.n_tokens() - 1);
            }
        }
        // Then prompt chunks, in slot order, while there is room.
        let mut prompt_tokens = 0u64;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(s) = slot else { continue };
            let remaining = s.req.prompt.len() - s.fed;
            if remaining == 0 || s.logits_at.is_some() {
                continue;
            }
            let room = (self.batch_cap - self.batch.n_tokens()).max(0) as usize;
            let take = remaining.min(room);
            if take == 0 {
                break;
            }
            let start = s.fed;
            for tok in s.req.prompt.iter().skip(start).take(take) {
                let last = s.fed + 1 == s.req.prompt.len();
                if self.batch.add(*tok, s.n_past, &[i as i32], last).is_err() {
                    break;
                }
                s.fed += 1;
                s.n_past += 1;
                if last {
                    s.logits_at = Some(self.batch.n_tokens() - 1);
                }
            }
            prompt_tokens += (s.fed - start) as u64;
        }
        if self.batch.n_tokens() == 0 {
            return;
        }
        let started = Instant::now();
        if let Err(e) = self.ctx.decode(&mut self.batch) {
            tracing::error!(error = %e, batch = self.batch.n_tokens(), "decode failed");
            self.metrics.error("decode");
            for i in 0..self.slots.len() {
                if let Some(s) = &self.slots[i] {
                    let _ = s
                        .req
                        .events
                        .send(Event::Failed(format!("decode failed: {e}")));
                    self.free(i);
                }
            }
            return;
        }
        let mut generated = 0u64;
        for i in 0..self.slots.len() {
            let Some(s) = self.slots[i].as_mut() else {
                continue;
            };
            let Some(idx) = s.logits_at else { continue };
            let tok = s.sampler.sample(&self.ctx, idx);
            let vocab = self.model.vocab();
            let mut finish = None;
            if vocab.is_eog(tok) {
                finish = Some(FinishReason::Stop);
            } else {
                s.completion += 1;
                s.req
                    .progress
                    .store(s.completion, std::sync::atomic::Ordering::Relaxed);
                generated += 1;
                if s.first_token {
                    s.first_token = false;
                    self.metrics.ttft(s.req.received.elapsed());
                }
                let bytes = vocab.token_to_piece(tok, false, None);
                match s.text.push(&bytes) {
                    Step::Continue(delta) => {
                        if !delta.is_empty() {
                            let _ = s.req.events.send(Event::Text(delta));
                        }
                        if s.completion >= s.req.max_tokens {
                            finish = Some(FinishReason::Length);
                        } else {
                            s.pending = Some(tok);
                        }
                    }
                    Step::Stopped(delta) => {
                        if !delta.is_empty() {
                            let _ = s.req.events.send(Event::Text(delta));
                        }
                        finish = Some(FinishReason::Stop);
                    }
                }
            }
            if let Some(finish) = finish {
                let tail = s.text.finish();
                if !tail.is_empty() {
                    let _ = s.req.events.send(Event::Text(tail));
                }
                let usage = Usage {
                    prompt_tokens: s.req.prompt.len() as u32,
                    completion_tokens: s.completion,
                };
                let elapsed = s.req.received.elapsed();
                tracing::info!(
                    seq = i,
                    prompt_tokens = usage.prompt_tokens,
                    completion_tokens = usage.completion_tokens,
                    finish = finish.as_str(),
                    ms = elapsed.as_millis() as u64,
                    "request finished"
                );
                self.metrics.finished(usage, elapsed);
                let _ = s.req.events.send(Event::Done { finish, usage });
                self.free(i);
            }
        }
        self.metrics
            .decode_step(prompt_tokens, generated, started.elapsed());
    }
}
