//! `tiller mcp list|get|add|remove` through the real binary: what `add`
//! writes is what the config loader reads back, the rest of the file
//! (comments, other keys) is kept byte for byte, secrets given with `--env`
//! are never printed, and every refusal (a bad name, a change that would not
//! load, a broken file, a read-only folder, a full disk) exits non-zero and
//! leaves the old file exactly as it was.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;

use serde_json::{Value, json};
use tiller_core::config::{Config, ConfigOverrides, McpServerConfig, McpTransport};
use tokio::process::Command;

use super::support::{Finished, Scratch, TILLER, run};

/// A config file someone wrote by hand: a comment and a key `mcp` has no
/// business touching.
const HAND_WRITTEN: &str = "# Written by hand: keep this comment.\n\
                            model = \"gpt-5-codex\" # and this one\n\
                            \n\
                            [model_providers.local]\n\
                            base_url = \"http://127.0.0.1:9/v1\"\n";

/// `tiller mcp ARGS` in `scratch`, run to the end.
async fn mcp(scratch: &Scratch, args: &[&str]) -> Finished {
    let mut full = vec!["mcp"];
    full.extend_from_slice(args);
    run(&mut scratch.tiller(&full)).await
}

/// The MCP servers the config loader reads from `scratch`'s home.
fn loaded_servers(scratch: &Scratch) -> BTreeMap<String, McpServerConfig> {
    Config::load_with_env(&scratch.home(), ConfigOverrides::default(), &|_| None)
        .unwrap()
        .config
        .mcp_servers
}

/// Where `scratch`'s config file is, whether or not it exists.
fn config_path(scratch: &Scratch) -> std::path::PathBuf {
    scratch.home().join("config.toml")
}

/// The entries of `dir` but `config.toml`: what a failed write left behind.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "config.toml")
        .collect()
}

/// `tiller mcp ARGS` as [`Scratch::tiller`] runs it, but through `sh -c
/// SCRIPT`, which ends with `exec "$@"`.
fn tiller_through_sh(scratch: &Scratch, script: &str, args: &[&str]) -> Command {
    let mut command = Command::new("sh");
    command
        .args(["-c", script, "sh", TILLER, "mcp"])
        .args(args)
        .env("TILLER_HOME", scratch.home())
        .env("HOME", scratch.home())
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

#[tokio::test]
async fn add_writes_a_server_the_loader_reads_and_keeps_the_rest_of_the_file() {
    let scratch = Scratch::new();
    let path = scratch.config(HAND_WRITTEN);

    let added = mcp(
        &scratch,
        &[
            "add",
            "docs",
            "--env",
            "DOCS_TOKEN=s3cret-value",
            "--env",
            "MODE=fast",
            "--",
            "docs-server",
            "--port",
            "4000",
        ],
    )
    .await;
    added.assert_exit(0);
    assert!(
        added.stdout.contains("Added MCP server 'docs'"),
        "{}",
        added.stdout
    );

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with(HAND_WRITTEN),
        "the hand-written part changed:\n{text}"
    );
    let server = &loaded_servers(&scratch)["docs"];
    assert!(server.enabled);
    assert_eq!(
        server.transport,
        McpTransport::Stdio {
            command: "docs-server".to_owned(),
            args: vec!["--port".to_owned(), "4000".to_owned()],
            env: BTreeMap::from([
                ("DOCS_TOKEN".to_owned(), "s3cret-value".to_owned()),
                ("MODE".to_owned(), "fast".to_owned()),
            ]),
            cwd: None,
        }
    );

    let listed_text = mcp(&scratch, &["list"]).await;
    listed_text.assert_exit(0);
    let row = listed_text
        .stdout
        .lines()
        .find(|line| line.starts_with("docs "))
        .unwrap_or_else(|| panic!("no row for docs:\n{}", listed_text.stdout));
    for part in [
        "docs-server --port 4000",
        "yes",
        "DOCS_TOKEN=*****",
        "MODE=*****",
    ] {
        assert!(row.contains(part), "{part:?} is not in the row {row:?}");
    }

    let listed = mcp(&scratch, &["list", "--json"]).await;
    listed.assert_exit(0);
    let servers: Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(
        servers,
        json!([{
            "name": "docs",
            "enabled": true,
            "transport": {
                "type": "stdio",
                "command": "docs-server",
                "args": ["--port", "4000"],
                "env": {"DOCS_TOKEN": "*****", "MODE": "*****"},
            },
            "startup_timeout_sec": 10.0,
            "tool_timeout_sec": 60.0,
        }])
    );

    let shown = mcp(&scratch, &["get", "docs"]).await;
    shown.assert_exit(0);
    for line in [
        "docs",
        "  transport: stdio",
        "  command: docs-server",
        "  args: --port 4000",
        "  env: DOCS_TOKEN=*****, MODE=*****",
    ] {
        assert!(
            shown.stdout.lines().any(|l| l == line),
            "{line:?} is not in:\n{}",
            shown.stdout
        );
    }
    let shown_json = mcp(&scratch, &["get", "docs", "--json"]).await;
    shown_json.assert_exit(0);
    let shown_json: Value = serde_json::from_str(&shown_json.stdout).unwrap();
    assert_eq!(shown_json, servers[0]);

    for output in [&listed_text, &listed, &shown] {
        assert!(
            !output.stdout.contains("s3cret") && !output.stderr.contains("s3cret"),
            "a secret was printed:\n{}{}",
            output.stdout,
            output.stderr
        );
    }
}

#[tokio::test]
async fn add_url_writes_a_streamable_http_server_with_its_bearer_variable() {
    let scratch = Scratch::new();
    scratch.config(HAND_WRITTEN);

    let added = mcp(
        &scratch,
        &[
            "add",
            "web",
            "--url",
            "https://mcp.example.com/mcp",
            "--bearer-token-env-var",
            "WEB_MCP_TOKEN",
        ],
    )
    .await;
    added.assert_exit(0);

    assert_eq!(
        loaded_servers(&scratch)["web"].transport,
        McpTransport::Http {
            url: "https://mcp.example.com/mcp".to_owned(),
            bearer_token_env_var: Some("WEB_MCP_TOKEN".to_owned()),
            http_headers: BTreeMap::new(),
            env_http_headers: BTreeMap::new(),
        }
    );
    let shown = mcp(&scratch, &["get", "web", "--json"]).await;
    shown.assert_exit(0);
    let shown: Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(
        shown["transport"],
        json!({
            "type": "streamable_http",
            "url": "https://mcp.example.com/mcp",
            "bearer_token_env_var": "WEB_MCP_TOKEN",
        })
    );
}

#[tokio::test]
async fn adding_a_name_again_replaces_that_server_and_says_so() {
    let scratch = Scratch::new();
    mcp(&scratch, &["add", "docs", "--", "old-server"])
        .await
        .assert_exit(0);

    let again = mcp(&scratch, &["add", "docs", "--", "new-server"]).await;
    again.assert_exit(0);
    assert!(again.stdout.contains("Replaced"), "{}", again.stdout);
    let servers = loaded_servers(&scratch);
    assert_eq!(servers.len(), 1);
    assert_eq!(
        servers["docs"].transport,
        McpTransport::Stdio {
            command: "new-server".to_owned(),
            args: Vec::new(),
            env: BTreeMap::new(),
            cwd: None,
        }
    );
}

#[tokio::test]
async fn remove_takes_the_server_out_and_removing_it_again_names_what_is_configured() {
    let scratch = Scratch::new();
    let path = scratch.config(HAND_WRITTEN);
    mcp(&scratch, &["add", "docs", "--", "docs-server"])
        .await
        .assert_exit(0);
    mcp(&scratch, &["add", "web", "--url", "http://127.0.0.1:9/mcp"])
        .await
        .assert_exit(0);

    let removed = mcp(&scratch, &["remove", "docs"]).await;
    removed.assert_exit(0);
    let servers = loaded_servers(&scratch);
    assert_eq!(servers.keys().collect::<Vec<_>>(), ["web"]);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with(HAND_WRITTEN), "{text}");
    assert!(!text.contains("docs"), "{text}");

    let again = mcp(&scratch, &["remove", "docs"]).await;
    again.assert_exit(1);
    assert!(
        again.stderr.contains("'docs'") && again.stderr.contains("configured: web"),
        "{}",
        again.stderr
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

#[tokio::test]
async fn list_with_no_server_says_how_to_add_one() {
    let scratch = Scratch::new();
    let listed = mcp(&scratch, &["list"]).await;
    listed.assert_exit(0);
    assert!(
        listed.stdout.contains("tiller mcp add NAME -- COMMAND"),
        "{}",
        listed.stdout
    );
    let listed = mcp(&scratch, &["list", "--json"]).await;
    listed.assert_exit(0);
    assert_eq!(
        serde_json::from_str::<Value>(&listed.stdout).unwrap(),
        json!([])
    );
}

#[tokio::test]
async fn a_bad_name_or_env_pair_is_a_usage_error_and_writes_nothing() {
    let scratch = Scratch::new();
    let path = config_path(&scratch);

    for args in [
        &["add", "has space", "--", "srv"][..],
        &["add", "mcp.dotted", "--", "srv"],
        &["add", "docs", "--env", "NO_EQUALS_SIGN", "--", "srv"],
        &["add", "docs", "--bearer-token-env-var", "T", "--", "srv"],
    ] {
        let refused = mcp(&scratch, args).await;
        refused.assert_exit(2);
        assert!(!path.exists(), "{args:?} created {}", path.display());
    }

    scratch.config(HAND_WRITTEN);
    let refused = mcp(&scratch, &["add", "has space", "--", "srv"]).await;
    refused.assert_exit(2);
    assert!(
        refused.stderr.contains("letters, digits"),
        "{}",
        refused.stderr
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), HAND_WRITTEN);
}

#[tokio::test]
async fn a_change_that_would_not_load_is_not_written_and_the_key_is_named() {
    let scratch = Scratch::new();
    let path = scratch.config(HAND_WRITTEN);

    let refused = mcp(&scratch, &["add", "web", "--url", "ftp://example.com"]).await;
    refused.assert_exit(1);
    assert!(
        refused.stderr.contains("mcp_servers.web.url") && refused.stderr.contains("not written"),
        "{}",
        refused.stderr
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), HAND_WRITTEN);
    assert_eq!(leftovers(&scratch.home()), Vec::<String>::new());
}

#[tokio::test]
async fn a_broken_file_is_reported_with_its_line_and_left_untouched() {
    let scratch = Scratch::new();
    let broken = "# mine\nmodel = \"gpt-5-codex\"\n[mcp_servers.docs\ncommand = \"x\"\n";
    let path = scratch.config(broken);

    for args in [
        &["add", "web", "--url", "http://127.0.0.1:9/mcp"][..],
        &["remove", "docs"],
    ] {
        let refused = mcp(&scratch, args).await;
        refused.assert_exit(1);
        let location = format!("{}:3:", path.display());
        assert!(
            refused.stderr.contains(&location) && refused.stderr.contains("invalid TOML"),
            "{args:?}: stderr does not name {location}:\n{}",
            refused.stderr
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), broken);
    }
}

#[tokio::test]
async fn a_read_only_home_fails_with_exit_1_and_keeps_the_old_file() {
    let scratch = Scratch::new();
    let path = scratch.config(HAND_WRITTEN);
    // chmod does not stop root, so the home is made read-only the way that
    // stops everyone: a read-only bind mount, in a mount namespace of the
    // child's own (with a user namespace when not root, to be allowed to).
    let mut command = Command::new("unshare");
    if !nix::unistd::geteuid().is_root() {
        command.args(["--user", "--map-root-user"]);
    }
    command
        .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(
            "mount --bind \"$1\" \"$1\" && mount -o remount,bind,ro \"$1\" || exit 99; \
             shift; exec \"$@\"",
        )
        .arg("sh")
        .arg(scratch.home())
        .args([TILLER, "mcp", "add", "docs", "--", "docs-server"])
        .env("TILLER_HOME", scratch.home())
        .env("HOME", scratch.home())
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .kill_on_drop(true);

    let refused = run(&mut command).await;
    assert_ne!(
        refused.status.code(),
        Some(99),
        "could not make a read-only mount:\n{}",
        refused.stderr
    );
    refused.assert_exit(1);
    assert!(
        refused.stderr.contains("read-only") && refused.stderr.contains("unchanged"),
        "{}",
        refused.stderr
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), HAND_WRITTEN);
    assert_eq!(leftovers(&scratch.home()), Vec::<String>::new());
}

#[tokio::test]
async fn a_full_disk_fails_with_exit_1_and_keeps_the_old_file() {
    let scratch = Scratch::new();
    let path = scratch.config(HAND_WRITTEN);
    // A file size limit of 0 fails every write with EFBIG, as a full disk
    // fails it with ENOSPC, for root too; SIGXFSZ is ignored so that the
    // write returns the error instead of killing tiller.
    let mut command = tiller_through_sh(
        &scratch,
        "trap '' XFSZ; ulimit -f 0 || exit 99; exec \"$@\"",
        &["add", "docs", "--env", "K=V", "--", "docs-server"],
    );

    let refused = run(&mut command).await;
    refused.assert_exit(1);
    assert!(
        refused.stderr.contains("cannot write the new config")
            && refused.stderr.contains("unchanged"),
        "{}",
        refused.stderr
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), HAND_WRITTEN);
    assert_eq!(leftovers(&scratch.home()), Vec::<String>::new());

    // The same for `remove`, whose file shrinks.
    mcp(&scratch, &["add", "docs", "--", "docs-server"])
        .await
        .assert_exit(0);
    let before = std::fs::read_to_string(&path).unwrap();
    let mut command = tiller_through_sh(
        &scratch,
        "trap '' XFSZ; ulimit -f 0 || exit 99; exec \"$@\"",
        &["remove", "docs"],
    );
    run(&mut command).await.assert_exit(1);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
    assert_eq!(leftovers(&scratch.home()), Vec::<String>::new());
}
