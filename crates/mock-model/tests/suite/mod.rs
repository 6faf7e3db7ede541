mod chat;
mod contract;
mod errors;
mod faults;
mod recording;
mod script_files;
mod streaming;
mod support;
