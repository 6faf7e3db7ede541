//! Engine tests: the real session against the real mock model over HTTP on
//! 127.0.0.1, with real tool processes. Every test ends with
//! `TestEngine::finish`, which checks invariant I2 on all events and that the
//! mock never rejected a request for a broken history.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod suite;
