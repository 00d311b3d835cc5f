//! Process-wide llama.cpp backend settings that must be in place before the backend starts.
//!
//! Confidential computing: in a TDX guest with an H100 in CC mode, `cudaHostRegister` and pinned
//! host allocations (`cudaMallocHost`) fail or go through bounce buffers. llama.cpp (ggml-cuda)
//! reads two environment variables:
//! - `GGML_CUDA_NO_PINNED` (any value): never allocate pinned host buffers;
//! - `GGML_CUDA_REGISTER_HOST` (any value): register mmapped model memory with
//!   `cudaHostRegister`; off when unset.
//!
//! With the `cuda` feature, [`prepare`] sets the first and removes the second. It must run
//! before any other thread exists (it is the first thing `main` does), because changing the
//! environment is only sound while the process is single-threaded.

/// Environment variables forced for the CUDA backend: `(name, Some(value))` sets, `None` removes.
pub const CUDA_ENV: &[(&str, Option<&str>)] = &[
    ("GGML_CUDA_NO_PINNED", Some("1")),
    ("GGML_CUDA_REGISTER_HOST", None),
];

/// Applies [`CUDA_ENV`] when built with `cuda`; a no-op otherwise.
pub fn prepare() {
    if cfg!(feature = "cuda") {
        for (name, value) in CUDA_ENV {
            match value {
                Some(v) => std::env::set_var(name, v),
                None => std::env::remove_var(name),
            }
        }
    }
}
