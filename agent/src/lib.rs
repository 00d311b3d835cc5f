//! `cocoon-agent`: the COCOON worker's guest agent: the confidential inference server
//! (OpenAI-compatible API over a llama.cpp engine), self-attestation (RTMR3 measurement, RA-TLS
//! listener; [`attest`]) and billing.

pub mod api;
pub mod attest;
pub mod billing;
pub mod cli;
pub mod config;
pub mod control;
pub mod data_disk;
pub mod data_key;
pub mod demo;
pub mod engine;
pub mod integrity;
pub mod logging;
pub mod metrics;
pub mod readiness;
pub mod server;
