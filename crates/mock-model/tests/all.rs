//! Integration tests: a real HTTP client against a running `MockModel`.

// Tests may unwrap: a panic is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod suite;
