//! The shell tool (being written).
