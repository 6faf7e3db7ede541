//! Placeholder; replaced shortly.

fn main() {}
