mod config;
mod exec_runs;
mod interrupts;
mod mock_model_command;
mod support;
