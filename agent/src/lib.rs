//! `cocoon-agent`: the COCOON worker's guest agent. This crate currently holds the confidential
//! inference server (OpenAI-compatible API over a llama.cpp engine); attestation, RA-TLS and
//! payments are separate, later pieces.

pub mod api;
pub mod cli;
pub mod config;
pub mod demo;
pub mod engine;
pub mod integrity;
pub mod logging;
pub mod metrics;
pub mod readiness;
pub mod server;
