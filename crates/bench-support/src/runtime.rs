//! The tokio runtimes the benches run on.

use tokio::runtime::{Builder, Runtime};

/// A multi-thread runtime of `workers` worker threads named `name`, with I/O
/// and timers. The benches give the mock model one of its own with one
/// worker, as a remote model would run elsewhere: its thread's CPU time can
/// then be read and subtracted, and it takes none of the engine's workers.
///
/// # Panics
/// If the runtime cannot be built: a bench cannot run without it.
pub fn runtime(name: &str, workers: usize) -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .enable_all()
        .build()
        .unwrap_or_else(|error| panic!("cannot build the {name} runtime: {error}"))
}
