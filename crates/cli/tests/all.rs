//! End-to-end tests of the `tiller` binary: each test runs the real executable
//! against the mock model on 127.0.0.1, in a scratch folder with its own
//! `TILLER_HOME`, and checks what a user or a calling program sees: exit codes,
//! stdout, stderr, files the tools wrote, and the processes they left behind.

// Tests may unwrap: a panic is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod suite;
