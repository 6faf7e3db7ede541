//! The tiller engine.
//!
//! A [`Session`] is an actor task: front ends hold a [`SessionHandle`], submit
//! [`Op`](tiller_protocol::Op)s and read [`Event`](tiller_protocol::Event)s. The
//! turn lifecycle (start, interrupt, replace, steer, approval) lives in one
//! module as one enum; the model client, the tools and the history are
//! separate modules the turn drives.
#![deny(missing_docs)]

pub mod config;
pub mod process_tree;
pub mod tools;
