//! Secrets: values tiller must never write, print, or let a tool read.
//!
//! Two leaks are closed here.
//!
//! - **Out of tiller's own process.** A tool runs as the same user as tiller,
//!   and `/proc/<tiller>/environ` shows the environment tiller was started with
//!   (the block the kernel copied onto the initial stack; `setenv` does not
//!   change it). [`seal_environment`], called first thing in `main`, copies every
//!   variable to the heap (where the C library and child processes read it from
//!   then on) and overwrites the values of secret-looking variables in that
//!   block; [`conceal_env_var`] does the same later for a provider's key
//!   variable, whatever its name. It also makes tiller non-dumpable
//!   (`PR_SET_DUMPABLE 0`): another process of the same user can then neither
//!   read tiller's `/proc/<pid>/environ` or `/proc/<pid>/mem` nor attach to it,
//!   and tiller leaves no core dump. root can still read tiller's memory; no
//!   process can hide from root.
//! - **Into what tiller records.** A gateway that echoes the `Authorization`
//!   header in an error body, or a tool that prints a dotfile, would put the key
//!   into an error message, a tool output, the rollout and the next request.
//!   Every key tiller reads is [registered](register), and [`redact`] replaces
//!   each registered value with [`REDACTED`]: the model client redacts what a
//!   server says, the shell tool what a command prints, and the rollout writer
//!   every line it writes.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Mutex, OnceLock, PoisonError, RwLock};

/// What a redacted secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Secrets shorter than this are not redacted: replacing every `ab` in every
/// output would destroy the output and hide nothing.
const MIN_SECRET_LEN: usize = 4;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Remember `value` as a secret: from now on [`redact`] hides it.
pub fn register(value: &str) {
    let value = value.trim();
    if value.len() < MIN_SECRET_LEN {
        return;
    }
    let mut secrets = SECRETS.write().unwrap_or_else(PoisonError::into_inner);
    if !secrets.iter().any(|s| s == value) {
        secrets.push(value.to_string());
        // JSON escapes some characters; the escaped form is what a JSON
        // line would carry.
        if let Ok(quoted) = serde_json::to_string(value) {
            let escaped = &quoted[1..quoted.len() - 1];
            if escaped != value {
                secrets.push(escaped.to_string());
            }
        }
    }
}

/// `text` with every registered secret replaced by [`REDACTED`].
pub fn redact(text: &str) -> Cow<'_, str> {
    let secrets = SECRETS.read().unwrap_or_else(PoisonError::into_inner);
    if !secrets.iter().any(|s| text.contains(s.as_str())) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), REDACTED);
        }
    }
    Cow::Owned(out)
}

/// [`redact`] for an owned string: no copy when there is nothing to hide.
pub fn redact_owned(text: String) -> String {
    match redact(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(redacted) => redacted,
    }
}

/// Whether a variable's name says it holds a secret: one of its `_`-separated
/// words is `KEY`, `TOKEN`, `SECRET`, `PASSWORD`, … (`OPENAI_API_KEY`,
/// `GH_TOKEN`, `AWS_SECRET_ACCESS_KEY`; not `SSH_AUTH_SOCK` or `KEYMAP`).
pub fn looks_secret(name: &str) -> bool {
    name.to_ascii_uppercase().split('_').any(|word| {
        matches!(
            word,
            "KEY" | "APIKEY" | "TOKEN" | "SECRET" | "PASSWORD" | "PASSWD" | "CREDENTIAL"
        ) || word.ends_with("KEY") && word.len() > 3 && word.starts_with("API")
    })
}

/// Where the values of the environment tiller started with are in its memory.
struct EnvBlock {
    /// `/proc/self/mem`, opened before tiller became non-dumpable (after that
    /// the kernel hands the file to root).
    mem: File,
    /// The address of each variable's value in the block, and its length.
    values: HashMap<Vec<u8>, (u64, usize)>,
}

static ENV_BLOCK: OnceLock<Mutex<EnvBlock>> = OnceLock::new();

/// Keep secrets out of the environment block other processes can read, and
/// make tiller non-dumpable. See the [module docs](self).
///
/// Failures (no `/proc`) are logged at debug level: the process still works,
/// only less sealed.
///
/// # Safety
///
/// Must be called before any other thread exists: it sets every environment
/// variable again (`std::env::set_var`), which is undefined behaviour while
/// another thread may read the environment. Call it as the first statement of
/// `main`.
#[allow(unsafe_code)]
pub unsafe fn seal_environment() {
    match read_env_block() {
        Ok(block) => {
            for (name, value) in std::env::vars_os() {
                // SAFETY: the caller guarantees that no other thread exists.
                // With the same value, this only moves the variable out of
                // the initial block into memory the C library allocates.
                unsafe { std::env::set_var(&name, &value) };
            }
            let _ = ENV_BLOCK.set(Mutex::new(block));
            for (name, _) in std::env::vars_os() {
                if let Some(name) = name.to_str()
                    && looks_secret(name)
                {
                    conceal_env_var(name);
                }
            }
        }
        Err(e) => tracing::debug!("cannot seal the environment block: {e}"),
    }
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        tracing::debug!("cannot make tiller non-dumpable: {e}");
    }
}

/// Overwrite the value of `name` in the environment block tiller started with
/// (a no-op unless [`seal_environment`] ran). The variable keeps its value for
/// tiller itself and its children.
pub fn conceal_env_var(name: &str) {
    let Some(block) = ENV_BLOCK.get() else {
        return;
    };
    let block = block.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(&(address, len)) = block.values.get(name.as_bytes())
        && let Err(e) = block.mem.write_at(&vec![0; len], address)
    {
        tracing::debug!("cannot conceal {name}: {e}");
    }
}

fn read_env_block() -> std::io::Result<EnvBlock> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let bad = || std::io::Error::other("unexpected /proc/self/stat");
    // Fields after the command name, which is in parentheses: field 3 first.
    let rest = &stat[stat.rfind(')').ok_or_else(bad)? + 1..];
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    let field = |n: usize| -> std::io::Result<u64> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(bad)
    };
    // proc(5): field 50 is env_start, 51 env_end.
    let (start, end) = (field(50)?, field(51)?);
    let len = usize::try_from(end.saturating_sub(start)).map_err(|_| bad())?;
    let mem = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/proc/self/mem")?;
    let mut bytes = vec![0; len];
    mem.read_exact_at(&mut bytes, start)?;
    let mut values = HashMap::new();
    let mut offset = 0u64;
    for entry in bytes.split(|&b| b == 0) {
        if let Some(eq) = entry.iter().position(|&b| b == b'=') {
            let value_at = start + offset + eq as u64 + 1;
            values
                .entry(entry[..eq].to_vec())
                .or_insert((value_at, entry.len() - eq - 1));
        }
        offset += entry.len() as u64 + 1;
    }
    Ok(EnvBlock { mem, values })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_are_redacted_and_short_ones_are_not() {
        register("sk-test-redaction-0123456789");
        register("ab");
        let text = "Bearer sk-test-redaction-0123456789 was sent; ab stays";
        assert_eq!(redact(text), "Bearer [REDACTED] was sent; ab stays");
        assert!(matches!(redact("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn the_json_escaped_form_of_a_secret_is_redacted_too() {
        register("pa\"ss\\word-42");
        let line = serde_json::to_string(&serde_json::json!({"m": "key pa\"ss\\word-42"})).unwrap();
        assert!(!redact(&line).contains("word-42"), "{}", redact(&line));
    }

    #[test]
    fn secret_looking_names() {
        for name in [
            "OPENAI_API_KEY",
            "GH_TOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "DB_PASSWORD",
            "my_apikey",
        ] {
            assert!(looks_secret(name), "{name}");
        }
        for name in ["PATH", "SSH_AUTH_SOCK", "KEYMAP", "GIT_AUTHOR_NAME", "HOME"] {
            assert!(!looks_secret(name), "{name}");
        }
    }
}
