"""Drive the real `tiller acp` with the official ACP Python SDK (`agent-client-protocol`).

Run by `crates/cli/tests/suite/acp_python.rs` (so `cargo test --workspace` runs it)
with TILLER_BIN set to the binary under test, against a scripted model
(`tiller mock-model`), under `approval_policy = "untrusted"` so commands ask.
As an editor would see it:

1. initialize (loadSession offered), session/new in a folder;
2. a prompt whose command asks permission (allow once): the tool call is
   announced with kind `execute`, runs, completes; the answer streams as
   agent message chunks; `end_turn`; the file exists. The model's plan is a
   `plan` update; an edit is asked about, then shown with its location and
   as a diff (a new file);
3. a prompt running `sleep 60` (allowed always): once that process exists,
   session/cancel; the prompt answers `cancelled` and the process is gone;
4. a prompt sent while a turn runs is steered in: the first prompt's command
   waits for a file, the second prompt is sent, the file is made; both
   prompts answer `end_turn` and the model's next answer arrives once;
5. a permission answered `cancelled` ends the turn `cancelled`, the command
   never runs; a permission left unanswered while session/cancel is sent
   ends the turn `cancelled` too;
6. a session with the editor's MCP server (stdio, the FastMCP test server):
   the model calls its tool, shown as a tool call that completes;
7. a second connection loads the session: the saved turns are replayed as
   session/updates before the answer.

Every wait has a deadline; nothing sleeps for a fixed time. Exit status 0 means
every check passed.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from acp import PROTOCOL_VERSION, spawn_agent_process, text_block
from acp.schema import (
    AgentMessageChunk,
    AgentPlanUpdate,
    AllowedOutcome,
    ClientCapabilities,
    DeniedOutcome,
    EnvVariable,
    Implementation,
    McpServerStdio,
    RequestPermissionResponse,
    ToolCallProgress,
    ToolCallStart,
    UserMessageChunk,
)

TILLER = os.environ["TILLER_BIN"]
DEADLINE = 20.0
GONE_WITHIN = 1.0


def shell(call_id, script):
    return {
        "type": "response",
        "items": [
            {
                "type": "function_call",
                "name": "shell",
                "call_id": call_id,
                "arguments": {"command": ["bash", "-c", script]},
            }
        ],
    }


def text(answer):
    return {"type": "response", "items": [{"type": "text", "text": answer}]}


def mock_script(work):
    return [
        shell("c_touch", "touch made"),
        text("made it"),
        {
            "type": "response",
            "items": [
                {
                    "type": "function_call",
                    "name": "update_plan",
                    "call_id": "c_plan",
                    "arguments": {
                        "plan": [
                            {"step": "write the notes", "status": "in_progress"},
                            {"step": "say so", "status": "pending"},
                        ]
                    },
                }
            ],
        },
        {
            "type": "response",
            "items": [
                {
                    "type": "function_call",
                    "name": "apply_patch",
                    "call_id": "c_patch",
                    "arguments": {
                        "input": "*** Begin Patch\n*** Add File: notes.txt\n+written by the patch\n*** End Patch"
                    },
                }
            ],
        },
        text("edited"),
        shell("c_sleep", f"echo $$ > {work}/sleep.pid; exec sleep 60"),
        shell("c_wait", f"while [ ! -e {work}/go ]; do sleep 0.02; done; echo went"),
        text("both done"),
        shell("c_rm", "rm -f made"),
        shell("c_rm2", "rm -f made"),
        {
            "type": "response",
            "items": [
                {
                    "type": "function_call",
                    "name": "mcp__slow__add",
                    "call_id": "c_add",
                    "arguments": {"a": 2, "b": 3},
                }
            ],
        },
        text("five"),
    ]


def pid_alive(pid):
    """Whether `pid` is a live process (a zombie counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


async def until(what, check, deadline=DEADLINE):
    """Poll `check` (cheap, local) until it holds, within `deadline`."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not check():
        if loop.time() > end:
            raise AssertionError(f"waited {deadline}s for {what}")
        await asyncio.sleep(0.01)


class Editor:
    """What an editor's agent panel does: show updates, answer permissions."""

    def __init__(self):
        self.updates = []
        self.permissions = []
        # What the next permission request gets: an option kind, "cancelled",
        # or "hold" (wait until released, then answer cancelled).
        self.answers = []
        self.release = asyncio.Event()

    async def session_update(self, session_id, update, **kwargs):
        self.updates.append(update)

    async def request_permission(self, session_id, tool_call, options, **kwargs):
        self.permissions.append(tool_call)
        answer = self.answers.pop(0)
        if answer == "hold":
            await self.release.wait()
            answer = "cancelled"
        if answer == "cancelled":
            return RequestPermissionResponse(outcome=DeniedOutcome(outcome="cancelled"))
        option = next(o for o in options if o.kind == answer)
        return RequestPermissionResponse(
            outcome=AllowedOutcome(outcome="selected", option_id=option.option_id)
        )

    def of(self, kind):
        return [u for u in self.updates if isinstance(u, kind)]

    def message(self):
        return "".join(u.content.text for u in self.of(AgentMessageChunk))


async def connect(editor, home, work):
    return spawn_agent_process(
        editor,
        TILLER,
        "acp",
        "-c",
        'approval_policy="untrusted"',
        env={"TILLER_HOME": str(home), "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        cwd=str(work),
        transport_kwargs={"stderr": None},
    )


async def initialize(conn):
    init = await conn.initialize(
        protocol_version=PROTOCOL_VERSION,
        client_capabilities=ClientCapabilities(),
        client_info=Implementation(name="tiller-acp-test", version="0"),
    )
    assert init.agent_capabilities.load_session, init
    return init


async def drive(conn, editor, work):
    await initialize(conn)
    session = await conn.new_session(cwd=str(work), mcp_servers=[])
    sid = session.session_id

    # 2. A command that asks, allowed once.
    editor.answers = ["allow_once"]
    done = await asyncio.wait_for(
        conn.prompt(session_id=sid, prompt=[text_block("make a file")]), DEADLINE
    )
    assert done.stop_reason == "end_turn", done
    assert (work / "made").exists()
    started = editor.of(ToolCallStart)
    assert started and started[0].kind == "execute" and "touch made" in started[0].title, started
    assert editor.permissions and "touch made" in editor.permissions[0].title, editor.permissions
    ended = [u for u in editor.of(ToolCallProgress) if u.status == "completed"]
    assert ended and ended[-1].tool_call_id == started[0].tool_call_id, editor.updates
    assert editor.message() == "made it", editor.message()

    # An edit: asked about, then shown as a diff with its location.
    editor.answers = ["allow_once"]
    editor.updates.clear()
    done = await asyncio.wait_for(
        conn.prompt(session_id=sid, prompt=[text_block("edit")]), DEADLINE
    )
    assert done.stop_reason == "end_turn", done
    edit = editor.of(ToolCallStart)
    assert edit and edit[0].kind == "edit", edit
    assert edit[0].locations[0].path == str(work / "notes.txt"), edit[0].locations
    diffs = [
        c
        for u in editor.of(ToolCallProgress)
        for c in (u.content or [])
        if getattr(c, "type", None) == "diff"
    ]
    assert diffs and diffs[0].new_text == "written by the patch\n", editor.updates
    assert diffs[0].old_text is None, diffs[0]
    # The model's plan, set out before the edit.
    plans = editor.of(AgentPlanUpdate)
    assert len(plans) == 1, editor.updates
    entries = [(e.content, e.status) for e in plans[0].entries]
    assert entries == [("write the notes", "in_progress"), ("say so", "pending")], entries

    # 3. session/cancel during `sleep 60`.
    editor.answers = ["allow_always"]
    pid_file = work / "sleep.pid"
    prompt = asyncio.create_task(conn.prompt(session_id=sid, prompt=[text_block("sleep")]))
    await until("the sleep's pid", lambda: pid_file.exists() and pid_file.read_text().strip())
    pid = int(pid_file.read_text())
    assert pid_alive(pid)
    await conn.cancel(session_id=sid)
    cancelled = await asyncio.wait_for(prompt, DEADLINE)
    assert cancelled.stop_reason == "cancelled", cancelled
    await until("the sleep to be gone", lambda: not pid_alive(pid), GONE_WITHIN)

    # 4. A prompt while a turn runs is steered in.
    editor.answers = ["allow_once"]
    editor.updates.clear()
    first = asyncio.create_task(conn.prompt(session_id=sid, prompt=[text_block("wait for go")]))
    await until(
        "the waiting command to run",
        lambda: any(u.status == "in_progress" for u in editor.of(ToolCallProgress))
        or any(u.status == "in_progress" for u in editor.of(ToolCallStart)),
    )
    second = asyncio.create_task(conn.prompt(session_id=sid, prompt=[text_block("also this")]))
    # tiller shows the steered message where it joined the turn.
    await until(
        "the steer to join the turn",
        lambda: any(u.content.text == "also this" for u in editor.of(UserMessageChunk)),
    )
    (work / "go").touch()
    first_done = await asyncio.wait_for(first, DEADLINE)
    second_done = await asyncio.wait_for(second, DEADLINE)
    assert first_done.stop_reason == "end_turn", first_done
    assert second_done.stop_reason == "end_turn", second_done
    assert editor.message() == "both done", editor.message()

    # 5. A permission answered `cancelled` ends the turn; the command never ran.
    editor.answers = ["cancelled"]
    done = await asyncio.wait_for(conn.prompt(session_id=sid, prompt=[text_block("rm")]), DEADLINE)
    assert done.stop_reason == "cancelled", done
    assert (work / "made").exists()

    # ... and one left unanswered when session/cancel comes.
    editor.answers = ["hold"]
    asked = len(editor.permissions)
    prompt = asyncio.create_task(conn.prompt(session_id=sid, prompt=[text_block("rm again")]))
    await until("the permission request", lambda: len(editor.permissions) > asked)
    await conn.cancel(session_id=sid)
    done = await asyncio.wait_for(prompt, DEADLINE)
    assert done.stop_reason == "cancelled", done
    editor.release.set()
    assert (work / "made").exists()

    # 6. The editor's MCP server: its tools are the model's (asked about under untrusted).
    server = McpServerStdio(
        name="slow",
        command="python3",
        args=[os.environ["MCP_SERVER_SCRIPT"]],
        env=[EnvVariable(name="PYTHONPATH", value=os.environ["MCP_SITE"])],
    )
    with_mcp = await conn.new_session(cwd=str(work), mcp_servers=[server])
    editor.answers = ["allow_once"]
    editor.updates.clear()
    # The server starts in the background; a call of its tool waits for it.
    done = await asyncio.wait_for(
        conn.prompt(session_id=with_mcp.session_id, prompt=[text_block("add")]), DEADLINE
    )
    assert done.stop_reason == "end_turn", done
    calls = [u for u in editor.of(ToolCallStart) if u.title == "slow.add"]
    assert calls, editor.updates
    ended = [
        u
        for u in editor.of(ToolCallProgress)
        if u.tool_call_id == calls[0].tool_call_id and u.status == "completed"
    ]
    assert ended, editor.updates
    assert editor.message() == "five", editor.message()
    return sid


async def load(conn, editor, work, sid):
    await initialize(conn)
    await asyncio.wait_for(
        conn.load_session(cwd=str(work), session_id=sid, mcp_servers=[]), DEADLINE
    )
    said = [u.content.text for u in editor.of(UserMessageChunk)]
    assert said[:3] == ["make a file", "edit", "sleep"], said
    assert "made it" in editor.message(), editor.updates
    titles = [u.title for u in editor.of(ToolCallStart)]
    assert any("touch made" in t for t in titles), titles


async def main():
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        home, work = tmp / "home", tmp / "work"
        home.mkdir()
        work.mkdir()
        script = tmp / "script.json"
        script.write_text(json.dumps(mock_script(work)))
        mock = subprocess.Popen(
            [TILLER, "mock-model", "--script", str(script)], stdout=subprocess.PIPE, text=True
        )
        try:
            url = mock.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:"), url
            (home / "config.toml").write_text(
                f'model_provider = "mock"\n\n[model_providers.mock]\nbase_url = "{url}"\n'
            )
            editor = Editor()
            async with await connect(editor, home, work) as (conn, _proc):
                sid = await drive(conn, editor, work)
            replayed = Editor()
            async with await connect(replayed, home, work) as (conn, _proc):
                await load(conn, replayed, work, sid)
        finally:
            mock.send_signal(signal.SIGINT)
            mock.wait(timeout=10)
    print("acp python test: ok", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
