mod cancel;
mod results;
mod support;
mod wire;
