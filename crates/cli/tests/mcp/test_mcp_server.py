"""Drive the real `tiller mcp-server` with the official Python MCP SDK (`mcp`).

Run by `crates/cli/tests/suite/mcp_python.rs` (so `cargo test --workspace` runs
it) with TILLER_BIN set to the binary under test. Against a scripted model
(`tiller mock-model`) it checks, as an MCP host would see it:

1. initialize, list tools, and the tools' input schemas;
2. `tiller` runs `sleep 60`; once that process exists the call is cancelled
   (the SDK sends `notifications/cancelled`); the process is gone within a
   second and no response ever arrives for the cancelled request id;
3. `tiller-reply` on the same thread completes;
4. `tiller-reply` runs a second `sleep 60`; `tiller-interrupt` answers
   `abortReason: "interrupted"` once the process is gone, and the reply call
   answers `status: "interrupted"`.

Every wait has a deadline; nothing sleeps for a fixed time. Exit status 0 means
every check passed.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.message import SessionMessage

TILLER = os.environ["TILLER_BIN"]
DEADLINE = 20.0
GONE_WITHIN = 1.0


def dump(message):
    """A JSON-RPC message as a plain dict."""
    if hasattr(message, "model_dump"):
        data = message.model_dump(by_alias=True, mode="json", exclude_none=True)
        return data.get("root", data) if isinstance(data, dict) else data
    return message


def pid_alive(pid):
    """Whether `pid` is a live process (a zombie counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        # Gone before the open (ENOENT) or between open and read (ESRCH).
        return False
    return state not in ("Z", "X")


async def read_pid(path):
    """The pid a tool's script wrote to `path`, within the deadline."""
    with anyio.fail_after(DEADLINE):
        while True:
            try:
                text = path.read_text().strip()
                if text:
                    return int(text)
            except FileNotFoundError:
                pass
            # Polling a file the tool writes: there is no event to wait on.
            await anyio.sleep(0.005)


async def wait_gone(pid, within):
    """Seconds until `pid` was gone; fails if it outlives `within`."""
    start = time.monotonic()
    while pid_alive(pid):
        elapsed = time.monotonic() - start
        assert elapsed < within, f"process {pid} still alive after {elapsed:.3f}s"
        await anyio.sleep(0.001)
    return time.monotonic() - start


class Tap:
    """Sits between the SDK session and the stdio transport and records the
    ids of every request sent and every response received, in both directions."""

    def __init__(self):
        self.sent = []  # (id, method, params) of requests and notifications
        self.answered = set()  # ids of responses and errors received
        self.events = []  # params of `tiller/event` notifications received

    def record_sent(self, message):
        data = dump(message)
        self.sent.append((data.get("id"), data.get("method"), data.get("params")))

    def record_received(self, message):
        data = dump(message)
        if "method" not in data and "id" in data:
            self.answered.add(json.dumps(data["id"]))
        elif data.get("method") == "tiller/event":
            self.events.append(data.get("params") or {})

    def request_id(self, method, tool):
        for rid, m, params in self.sent:
            if m == method and (params or {}).get("name") == tool and rid is not None:
                return rid
        return None

    async def pump_in(self, source, sink):
        async with sink:
            async for item in source:
                if isinstance(item, SessionMessage):
                    self.record_received(item.message)
                await sink.send(item)

    async def pump_out(self, source, sink):
        async with source:
            async for item in source:
                if isinstance(item, SessionMessage):
                    self.record_sent(item.message)
                await sink.send(item)


def mock_script(work):
    def sleep_call(call_id, pid_file):
        return {
            "type": "response",
            "items": [
                {
                    "type": "function_call",
                    "name": "shell",
                    "call_id": call_id,
                    "arguments": {"command": ["bash", "-c", f"echo $$ > {pid_file}; exec sleep 60"]},
                }
            ],
        }

    return [
        sleep_call("call_1", work / "first.pid"),
        {"type": "response", "items": [{"type": "text", "text": "back after the cancel"}]},
        sleep_call("call_2", work / "second.pid"),
    ]


async def check_schemas(session):
    tools = {t.name: t for t in (await session.list_tools()).tools}
    assert set(tools) == {"tiller", "tiller-reply", "tiller-interrupt", "codex", "codex-reply"}, sorted(tools)
    tiller = tools["tiller"].input_schema
    assert tiller["type"] == "object"
    assert tiller["required"] == ["prompt"], tiller
    for key in ("prompt", "cwd", "model", "approval-policy", "base-instructions"):
        assert key in tiller["properties"], (key, tiller)
    reply = tools["tiller-reply"].input_schema
    assert sorted(reply["required"]) == ["prompt", "threadId"], reply
    assert tools["tiller-interrupt"].input_schema["required"] == ["threadId"]


async def drive(session, tap, work):
    await session.initialize()
    await check_schemas(session)

    # 2. Cancel a running `tiller` call.

    async def on_progress(progress, total, message):
        pass

    async def first_call(scope_holder, done):
        with anyio.CancelScope() as scope:
            scope_holder.append(scope)
            await session.call_tool(
                "tiller", {"prompt": "sleep a minute", "cwd": str(work)}, progress_callback=on_progress
            )
            raise AssertionError("the cancelled call must not get an answer")
        done.set()

    holder, done = [], anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(first_call, holder, done)
        pid = await read_pid(work / "first.pid")
        assert pid_alive(pid)
        cancelled_at = time.monotonic()
        holder[0].cancel()
        with anyio.fail_after(DEADLINE):
            await done.wait()
        gone_after = await wait_gone(pid, GONE_WITHIN - (time.monotonic() - cancelled_at))
    tiller_id = tap.request_id("tools/call", "tiller")
    assert tiller_id is not None
    cancels = [p for _, m, p in tap.sent if m == "notifications/cancelled"]
    assert any(p.get("requestId") == tiller_id for p in cancels), cancels
    print(f"cancel -> process gone: {gone_after * 1000:.1f} ms", file=sys.stderr)

    # The thread id, from the call's event notifications (`_meta` names the request).
    mine = [e for e in tap.events if e.get("_meta", {}).get("requestId") == tiller_id]
    assert mine, tap.events
    thread_id = mine[0]["_meta"]["threadId"]
    assert all(e["threadId"] == thread_id for e in mine)

    # 3. The thread is still usable.
    with anyio.fail_after(DEADLINE):
        reply = await session.call_tool("tiller-reply", {"threadId": thread_id, "prompt": "go on"})
    assert not reply.is_error, reply
    assert reply.structured_content["threadId"] == thread_id, reply.structured_content
    assert reply.structured_content["status"] == "completed", reply.structured_content
    assert reply.structured_content["lastAgentMessage"] == "back after the cancel"
    assert reply.content[0].text == "back after the cancel"

    # 4. `tiller-interrupt` during a second long command.
    results = {}

    async def second_reply():
        results["reply"] = await session.call_tool(
            "tiller-reply", {"threadId": thread_id, "prompt": "sleep again"}
        )

    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as tg:
            tg.start_soon(second_reply)
            pid = await read_pid(work / "second.pid")
            interrupt = await session.call_tool("tiller-interrupt", {"threadId": thread_id})
            assert not pid_alive(pid), "the process is gone when the interrupt answers"
    assert interrupt.structured_content["abortReason"] == "interrupted", interrupt.structured_content
    assert results["reply"].structured_content["status"] == "interrupted", results["reply"]

    # No response ever arrived for the cancelled request.
    assert json.dumps(tiller_id) not in tap.answered, (tiller_id, tap.answered)


async def main():
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        home, work = tmp / "home", tmp / "work"
        home.mkdir()
        work.mkdir()
        script = tmp / "script.json"
        script.write_text(json.dumps(mock_script(work)))
        mock = subprocess.Popen([TILLER, "mock-model", "--script", str(script)], stdout=subprocess.PIPE, text=True)
        try:
            url = mock.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:"), url
            (home / "config.toml").write_text(
                f'model_provider = "mock"\n\n[model_providers.mock]\nbase_url = "{url}"\n'
            )
            params = StdioServerParameters(
                command=TILLER,
                args=["mcp-server"],
                env={"TILLER_HOME": str(home), "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            )
            tap = Tap()
            async with stdio_client(params) as (read, write):
                in_send, in_recv = anyio.create_memory_object_stream(100)
                out_send, out_recv = anyio.create_memory_object_stream(100)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(tap.pump_in, read, in_send)
                    tg.start_soon(tap.pump_out, out_recv, write)
                    async with ClientSession(in_recv, out_send) as session:
                        await drive(session, tap, work)
                    tg.cancel_scope.cancel()
        finally:
            mock.send_signal(signal.SIGINT)
            mock.wait(timeout=10)
    print("mcp python test: ok", file=sys.stderr)


if __name__ == "__main__":
    anyio.run(main)
