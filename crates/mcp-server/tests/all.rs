//! Integration tests of `tiller mcp-server`, in process, with the rmcp client.

// Tests may unwrap: a panic is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod suite;
