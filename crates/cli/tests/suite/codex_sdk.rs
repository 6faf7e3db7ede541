//! The official Codex TypeScript SDK (`@openai/codex-sdk` on npm) driving the
//! real `tiller` binary, unchanged, as its `codexPathOverride`.
//!
//! The checks themselves are in `tests/sdk/codex_sdk.mjs`, run by Node.js: a
//! turn with a command, a resumed thread, and a run aborted through an
//! `AbortSignal` whose tool must die and whose thread must resume. This test
//! installs the pinned SDK once into the target folder, serves the script's
//! steps from one `tiller mock-model` process that `config.toml` points at (the
//! SDK has no way to pass `--script`), and runs the checks.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

use super::support::{Finished, MockModelProcess, Running, Scratch, assert_dead};

/// The SDK release the test is pinned to.
const SDK_VERSION: &str = "0.163.0";

/// The oldest Node.js the SDK supports (its `engines.node`).
const NODE_MIN_MAJOR: u32 = 18;

/// The checks, run by Node.js.
const CHECKS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/codex_sdk.mjs");

/// How long `npm install` may take: it downloads two small packages.
const NPM_DEADLINE: Duration = Duration::from_secs(180);

/// How long the checks may take in all. Each step inside has its own deadline
/// and reports which step hung; this one only stops a Node.js that hangs.
const CHECKS_DEADLINE: Duration = Duration::from_secs(120);

#[tokio::test]
async fn official_codex_typescript_sdk_drives_tiller() {
    require_node_and_npm().await;
    let sdk = installed_sdk().await;
    let scratch = Scratch::new();
    let pidfile = scratch.work_file("abort.pids");

    let printed = finish(
        node(&["script", "--pidfile", path_str(&pidfile)]),
        Duration::from_secs(30),
    )
    .await;
    printed.assert_exit(0);
    let steps: Value = serde_json::from_str(&printed.stdout)
        .unwrap_or_else(|e| panic!("the mock script is not JSON ({e}):\n{}", printed.stdout));
    let script = scratch.script(steps);
    let mock = MockModelProcess::start(&scratch, &script).await;
    scratch.mock_config(&mock.url, "");

    let home = scratch.home();
    let work = scratch.work();
    let checks = finish(
        node(&[
            "run",
            "--sdk",
            path_str(&sdk),
            "--tiller",
            super::support::TILLER,
            "--home",
            path_str(&home),
            "--work",
            path_str(&work),
            "--pidfile",
            path_str(&pidfile),
        ]),
        CHECKS_DEADLINE,
    )
    .await;
    let stopped = mock.stop().await;
    // Shown with `--nocapture`: one line per check, with timings.
    print!("{}", checks.stdout);
    assert_eq!(
        checks.status.code(),
        Some(0),
        "the Codex SDK checks failed ({:?})\n--- node stdout:\n{}\n--- node stderr:\n{}\n--- mock model stderr:\n{}",
        checks.status,
        checks.stdout,
        checks.stderr,
        stopped.stderr
    );
    assert!(
        checks.stdout.contains("codex-sdk: 3 passed, 0 failed"),
        "node exited 0 without reporting three passed checks:\n{}",
        checks.stdout
    );
    stopped.assert_exit(0);

    // The script checked this already, but only from inside; the aborted tool
    // must not outlive the test either.
    let pids: Vec<i32> = std::fs::read_to_string(&pidfile)
        .unwrap()
        .split_whitespace()
        .map(|pid| pid.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2, "{}: {pids:?}", pidfile.display());
    assert_dead(&pids);
}

/// Fail, saying what to install, unless `node` (new enough for the SDK) and
/// `npm` are on `PATH`. The test is never skipped: a machine without them
/// would otherwise pass without checking anything.
async fn require_node_and_npm() {
    let install = format!(
        "this test runs the Codex TypeScript SDK and needs Node.js {NODE_MIN_MAJOR} or newer \
         and npm on PATH (e.g. `apt-get install nodejs npm`)"
    );
    let version = version_of("node", &install).await;
    let major = version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|major| major.parse::<u32>().ok());
    assert!(
        major.is_some_and(|major| major >= NODE_MIN_MAJOR),
        "{install}; found node {}",
        version.trim()
    );
    version_of("npm", &install).await;
}

/// `program --version`, or a failure that says what to install.
async fn version_of(program: &str, install: &str) -> String {
    let mut command = Command::new(program);
    command
        .arg("--version")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = match tokio::time::timeout(Duration::from_secs(60), command.output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => panic!("{install}; could not run `{program} --version`: {e}"),
        Err(_) => panic!("{install}; `{program} --version` did not answer within 60 s"),
    };
    assert!(
        output.status.success(),
        "{install}; `{program} --version` failed ({:?}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The SDK's entry point (`dist/index.js`), installed with npm into the cargo
/// target folder on first use and reused after that.
///
/// npm installs into a fresh folder that is then renamed into place, so a run
/// that is interrupted, or two test runs installing at once, never leave a
/// half-installed SDK behind. Optional dependencies are left out: they are the
/// native `codex` binaries (`@openai/codex-linux-x64`, ...), which the SDK
/// needs only when no `codexPathOverride` is given; without them the SDK
/// cannot fall back to a real Codex by mistake.
async fn installed_sdk() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let root = target.join(format!("codex-sdk-{SDK_VERSION}"));
    let package = root.join("node_modules/@openai/codex-sdk");
    if !package.join("package.json").exists() {
        std::fs::create_dir_all(target).unwrap();
        let staging = tempfile::Builder::new()
            .prefix("codex-sdk-install-")
            .tempdir_in(target)
            .unwrap();
        let mut npm = Command::new("npm");
        npm.args(["install", "--no-audit", "--no-fund", "--omit=optional"])
            .arg("--prefix")
            .arg(staging.path())
            .arg(format!("@openai/codex-sdk@{SDK_VERSION}"));
        let installed = finish(npm, NPM_DEADLINE).await;
        // npm's stderr may hold harmless warnings (such as `Unknown user config
        // "nodedir"` from the system's npmrc): only the exit code counts.
        installed.assert_exit(0);
        match std::fs::rename(staging.path(), &root) {
            Ok(()) => {}
            // Another test run installed it first: use that one.
            Err(_) if package.join("package.json").exists() => {}
            Err(e) => panic!(
                "could not move {} to {}: {e}",
                staging.path().display(),
                root.display()
            ),
        }
    }

    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(package.join("package.json")).unwrap())
            .unwrap();
    assert_eq!(
        manifest["version"],
        SDK_VERSION,
        "{} holds another SDK version; delete {} and run again",
        package.display(),
        root.display()
    );
    package.join("dist/index.js")
}

/// `node codex_sdk.mjs ARGS`.
fn node(args: &[&str]) -> Command {
    let mut command = Command::new("node");
    command.arg(CHECKS).args(args);
    command
}

/// Run `command` with no stdin and its output captured, to the end, within
/// `limit` (a child still running then is killed and the test fails, showing
/// what it printed so far).
async fn finish(mut command: Command, limit: Duration) -> Finished {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    Running::spawn(&mut command).finish(limit).await
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}
