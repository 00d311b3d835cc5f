//! Per-request sampler chains built from validated OpenAI parameters.

use llama_cpp_2::sampling::LlamaSampler;

/// llama.cpp's "pick a random seed" value.
pub const RANDOM_SEED: u32 = 0xFFFF_FFFF;

/// Validated sampling parameters (ranges are checked by the API layer).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingParams {
    /// 0 means greedy.
    pub temperature: f32,
    /// 1 disables nucleus sampling.
    pub top_p: f32,
    pub seed: u32,
    /// OpenAI presence penalty (llama.cpp `penalty_present`), 0 disables.
    pub presence_penalty: f32,
    /// OpenAI frequency penalty (llama.cpp `penalty_freq`), 0 disables.
    pub frequency_penalty: f32,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 1.0,
            top_p: 1.0,
            seed: RANDOM_SEED,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
        }
    }
}

impl SamplingParams {
    /// The chain: penalties (over all generated tokens, `penalty_window` of them at most), then
    /// greedy when temperature is 0, else top-p, temperature and a seeded draw.
    pub fn build(&self, n_vocab: i32, penalty_window: i32) -> LlamaSampler {
        let mut chain = Vec::new();
        if self.presence_penalty != 0.0 || self.frequency_penalty != 0.0 {
            chain.push(LlamaSampler::penalties(
                n_vocab,
                penalty_window,
                1.0,
                self.frequency_penalty,
                self.presence_penalty,
            ));
        }
        if self.temperature <= 0.0 {
            chain.push(LlamaSampler::greedy());
        } else {
            if self.top_p < 1.0 {
                chain.push(LlamaSampler::top_p(self.top_p, 1));
            }
            chain.push(LlamaSampler::temp(self.temperature));
            chain.push(LlamaSampler::dist(self.seed));
        }
        LlamaSampler::chain_simple(chain)
    }
}
