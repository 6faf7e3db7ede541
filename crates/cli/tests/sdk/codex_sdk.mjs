// The official Codex TypeScript SDK (`@openai/codex-sdk`) driving the real
// `tiller` binary, unchanged, as `codexPathOverride`: the SDK builds the
// command line, writes the prompt to stdin, parses the JSONL events and turns a
// non-zero exit into an exception, exactly as it does with `codex`.
//
// Two modes, so that the mock model's script and the checks that depend on it
// live side by side in this one file:
//
//   node codex_sdk.mjs script --pidfile FILE
//       print the mock model's script (a JSON array of steps) on stdout;
//   node codex_sdk.mjs run --sdk INDEX_JS --tiller BIN --home DIR --work DIR --pidfile FILE
//       run the checks against one `tiller mock-model` serving that script,
//       which `DIR/config.toml` (the tiller home) already points at.
//
// The run mode prints one line per check and ends with
// `codex-sdk: N passed, M failed`; it exits 0 only if every check passed.
// `crates/cli/tests/suite/codex_sdk.rs` runs both modes.

import { existsSync, readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

// The command of the first thread's only tool call, and what it prints.
const HELLO_COMMAND = "echo hello from sdk; exit 3";
const HELLO_OUTPUT = "hello from sdk\n";
const HELLO_EXIT = 3;

const ANSWER_AFTER_COMMAND = "The command printed hello from sdk and exited 3.";
const ANSWER_ON_RESUME = "Yes, I remember the command.";
const ANSWER_AFTER_ABORT = "The long command was stopped.";

// How long anything may take before the script gives up on it.
const DEADLINE_MS = 20_000;
// How long the tool's processes may outlive an abort (tiller's interrupt
// budget is far below the shell tool's 10 s timeout, so waiting out the
// timeout cannot pass).
const GONE_MS = 5_000;

// The mock model's steps, one per model request, in the order the checks
// below make them. A turn with a tool call makes two requests (the call, then
// the answer once the output is in); a turn without one makes one; the
// aborted turn makes one (the call), and nothing after it.
function mockScript(pidfile) {
  const q = shellQuote;
  // The shell writes its pid and its child's pid, then waits on the child;
  // the file appears whole (by rename) once both pids are in it.
  const longTool =
    `echo $$ > ${q(pidfile + ".tmp")}; sleep 60 & echo $! >> ${q(pidfile + ".tmp")}; ` +
    `mv ${q(pidfile + ".tmp")} ${q(pidfile)}; wait`;
  return [
    // Check 1: a new thread, one tool call, then the answer.
    call("call_hello", HELLO_COMMAND),
    text(ANSWER_AFTER_COMMAND),
    // Check 2: the same thread resumed, answered without a tool.
    text(ANSWER_ON_RESUME),
    // Check 3: a new thread whose tool runs until the turn is aborted...
    call("call_long", longTool),
    // ... and then resumed: this request carries the aborted call in its
    // history, and the mock refuses it (HTTP 400) unless the call has an output.
    text(ANSWER_AFTER_ABORT),
  ];
}

function call(callId, script) {
  return {
    type: "response",
    items: [
      {
        type: "function_call",
        name: "shell",
        call_id: callId,
        arguments: { command: ["bash", "-lc", script] },
      },
    ],
  };
}

function text(answer) {
  return { type: "response", items: [{ type: "text", text: answer }] };
}

function shellQuote(s) {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

class CheckFailed extends Error {}

function check(condition, message, detail) {
  if (!condition) {
    const shown = detail === undefined ? "" : `\n${JSON.stringify(detail, null, 2)}`;
    throw new CheckFailed(`${message}${shown}`);
  }
}

// `promise`, or a failure naming `what` once `ms` have passed.
async function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new CheckFailed(`${what}: no result within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// Poll until `ready()` is true, failing after `ms`: for files and processes
// the test did not start, there is no event to wait on.
async function waitUntil(ms, what, ready) {
  const deadline = Date.now() + ms;
  while (!ready()) {
    if (Date.now() >= deadline) {
      throw new CheckFailed(`${what}: not within ${ms} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

// Whether `pid` is a live process; a zombie (or a pid with no /proc entry)
// counts as gone.
function pidAlive(pid) {
  let stat;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return false;
  }
  const state = stat.slice(stat.lastIndexOf(")") + 1).trim().split(/\s+/)[0];
  return !(state === "Z" || state === "X");
}

async function runChecks(options) {
  const { Codex } = await import(pathToFileURL(options.sdk).href);
  const codex = new Codex({
    codexPathOverride: options.tiller,
    // The SDK passes this instead of its own environment: the tiller home
    // (with the config that points at the mock model) and nothing else that
    // could change what tiller does.
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: options.home,
      TILLER_HOME: options.home,
      NO_COLOR: "1",
    },
  });
  // The thread options an SDK user typically sets; each becomes a flag.
  const threadOptions = {
    workingDirectory: options.work,
    skipGitRepoCheck: true,
    sandboxMode: "workspace-write",
    approvalPolicy: "never",
    model: "gpt-5-codex",
  };

  const results = [];
  const runCheck = async (name, body) => {
    const started = Date.now();
    try {
      await body();
      results.push(true);
      console.log(`ok   ${name} (${Date.now() - started} ms)`);
    } catch (error) {
      results.push(false);
      const message = error instanceof CheckFailed ? error.message : (error?.stack ?? String(error));
      console.log(`FAIL ${name} (${Date.now() - started} ms)\n  ${message.replaceAll("\n", "\n  ")}`);
    }
  };

  let firstThreadId = null;

  await runCheck("a new thread runs a command and answers", async () => {
    const thread = codex.startThread(threadOptions);
    const turn = await within(DEADLINE_MS, "thread.run", thread.run("run the hello command"));
    check(typeof thread.id === "string" && thread.id.length > 0, "thread.id is not set", thread.id);
    firstThreadId = thread.id;
    const commands = turn.items.filter((item) => item.type === "command_execution");
    check(commands.length === 1, "expected one command_execution item", turn.items);
    const [command] = commands;
    check(command.command.includes(HELLO_COMMAND), "the item names another command", command);
    check(command.aggregated_output === HELLO_OUTPUT, "unexpected aggregated_output", command);
    check(command.exit_code === HELLO_EXIT, "unexpected exit_code", command);
    check(command.status === "failed", "a non-zero exit should be status failed", command);
    check(turn.finalResponse === ANSWER_AFTER_COMMAND, "unexpected finalResponse", turn);
    check(turn.usage !== null, "no usage: the turn did not end with turn.completed", turn);
  });

  await runCheck("resumeThread(id) continues the thread", async () => {
    check(firstThreadId !== null, "nothing to resume: the first check failed");
    const thread = codex.resumeThread(firstThreadId, threadOptions);
    const turn = await within(DEADLINE_MS, "thread.run", thread.run("do you remember the command?"));
    check(turn.finalResponse === ANSWER_ON_RESUME, "unexpected finalResponse", turn);
    check(thread.id === firstThreadId, `the resumed thread reports another id than ${firstThreadId}`, thread.id);
  });

  await runCheck("an aborted run kills the tool, and the thread resumes", async () => {
    const thread = codex.startThread(threadOptions);
    const controller = new AbortController();
    const running = thread.run("run something long", { signal: controller.signal });
    // Observe the outcome now, so a rejection before the abort is not unhandled.
    const outcome = running.then(
      (turn) => ({ turn }),
      (error) => ({ error }),
    );
    await Promise.race([
      waitUntil(DEADLINE_MS, `the tool writing ${options.pidfile}`, () => existsSync(options.pidfile)),
      outcome.then((early) => {
        throw new CheckFailed(`the run ended before the tool started: ${JSON.stringify(early.turn ?? String(early.error))}`);
      }),
    ]);
    const pids = readFileSync(options.pidfile, "utf8").split(/\s+/).filter(Boolean).map(Number);
    check(pids.length === 2, "the pid file should hold the shell's and sleep's pids", pids);

    const abortedAt = Date.now();
    controller.abort();
    const ended = await within(DEADLINE_MS, "the aborted thread.run", outcome);
    const threwAfter = Date.now() - abortedAt;
    check(ended.error !== undefined, "the aborted run did not throw", ended.turn);
    check(ended.error?.name === "AbortError", `the aborted run threw something else than an AbortError: ${ended.error?.stack}`);
    await waitUntil(GONE_MS, `the tool's processes ${pids.join(", ")} exiting`, () => !pids.some(pidAlive));
    console.log(`     the SDK threw ${threwAfter} ms after the abort; the tool's processes were gone by ${Date.now() - abortedAt} ms`);
    check(typeof thread.id === "string" && thread.id.length > 0, "thread.id is not set after the aborted run", thread.id);

    const resumed = codex.resumeThread(thread.id, threadOptions);
    const turn = await within(DEADLINE_MS, "the resumed thread.run", resumed.run("what happened?"));
    check(turn.finalResponse === ANSWER_AFTER_ABORT, "unexpected finalResponse after the abort", turn);
  });

  const passed = results.filter(Boolean).length;
  const failed = results.length - passed;
  console.log(`codex-sdk: ${passed} passed, ${failed} failed`);
  return failed === 0;
}

const usage =
  "usage: node codex_sdk.mjs script --pidfile FILE\n" +
  "       node codex_sdk.mjs run --sdk INDEX_JS --tiller BIN --home DIR --work DIR --pidfile FILE";

async function main() {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      sdk: { type: "string" },
      tiller: { type: "string" },
      home: { type: "string" },
      work: { type: "string" },
      pidfile: { type: "string" },
    },
  });
  const [mode] = positionals;
  if (mode === "script" && values.pidfile) {
    console.log(JSON.stringify(mockScript(values.pidfile), null, 2));
    return 0;
  }
  const needed = ["sdk", "tiller", "home", "work", "pidfile"];
  if (mode === "run" && needed.every((name) => values[name])) {
    return (await runChecks(values)) ? 0 : 1;
  }
  console.error(usage);
  return 2;
}

process.exitCode = await main();
