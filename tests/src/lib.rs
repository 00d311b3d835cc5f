//! Shared test support for the workspace: deterministic fixtures, generated once and cached.
//!
//! Fixtures live under `$COCOON_CACHE` (default `~/.cache/cocoon-worker`), created by the
//! generators in `tests/fixtures/` that `ci/setup` installs the dependencies for.

pub mod chain_emulator;
pub mod fixtures;
pub mod process;
