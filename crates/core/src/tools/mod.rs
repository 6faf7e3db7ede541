//! Tools the model can call.

pub mod shell;
