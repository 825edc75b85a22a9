//! Spiral: B2B funnel journeys from touchpoint streams.
//!
//! A map of who owns what (the pipeline reads top to bottom):
//!
//! - [`event`]: bytes → a validated [`event::Event`] or a counted rejection (SPEC §1).
//! - [`time`]: event time in milliseconds, RFC 3339 in and out, config durations.
//! - [`config`]: the TOML file, validated into typed settings (SPEC §7).
//! - [`engine`]: the pure core — dedup, identity, funnels, journeys, outcomes, watermark,
//!   summary (SPEC §1–§5.1). No I/O, no clocks: everything else calls into it.
//! - [`replay`]: JSON Lines files through the engine, with the rejected-lines output (SPEC §8).
//! - [`report`]: the human funnel table printed after a replay.
//! - [`generate`]: seeded synthetic B2B traffic for demos, tests and benches.
//! - [`topology`]: scale-out's stages over Spiral's internal topics, as pure state machines.
//! - [`codec`]: the little-endian reader and writer of engine snapshots.
//! - [`mem`]: big short-lived buffers on huge pages (checkpoints).

pub mod checkpoint;
pub mod codec;
pub mod config;
pub mod demo;
pub mod engine;
pub mod event;
pub mod export;
pub mod funnel;
pub mod generate;
pub mod mem;
pub mod replay;
pub mod report;
pub mod service;
pub mod summary;
pub mod time;
pub mod topology;
