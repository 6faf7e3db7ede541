"""An MCP server for tiller's tests, written on the official Python SDK's
FastMCP (named `MCPServer` since mcp 2). It serves over stdio, or over
streamable HTTP when given `--http PORT_FILE` (it binds port 0 on 127.0.0.1
and writes the port there).

Every event a test checks on the server side is appended as a line to the
file named by `MCP_RECORD`: `up PID`, `started`, `cancelled`, `finished`,
`stubborn finished`, `crash`, `elicited ACTION VALUE`. Its tools: `sleep`,
`stubborn`, `add`, `crash`, `env`, `ask_name`.
"""

import os
import sys

import anyio
from pydantic import BaseModel

from mcp.server.mcpserver import Context, MCPServer

RECORD = os.environ.get("MCP_RECORD")


def record(line: str) -> None:
    if RECORD:
        with open(RECORD, "a") as f:
            f.write(line + "\n")


server = MCPServer("slow")


@server.tool()
async def sleep(seconds: float, ctx: Context) -> str:
    """Sleeps `seconds`, reporting progress every tenth of a second."""
    record("started")
    steps = max(1, int(seconds * 10))
    try:
        for step in range(steps):
            await ctx.report_progress(step, steps, f"slept {step / 10:.1f} s")
            await anyio.sleep(0.1)
    except anyio.get_cancelled_exc_class():
        record("cancelled")
        raise
    record("finished")
    return f"slept {seconds} s"


@server.tool()
async def stubborn(seconds: float) -> str:
    """Sleeps `seconds` and ignores any cancel."""
    record("stubborn started")
    with anyio.CancelScope(shield=True):
        await anyio.sleep(seconds)
    record("stubborn finished")
    return "done"


@server.tool()
def add(a: int, b: int) -> int:
    """Adds two integers (a structured result)."""
    return a + b


@server.tool()
def crash() -> str:
    """Exits the server in the middle of the call."""
    record("crash")
    sys.stdout.flush()
    os._exit(3)


@server.tool()
def write(path: str, text: str) -> str:
    """Writes `text` to the file `path`; says "written" or why not."""
    try:
        with open(path, "w") as f:
            f.write(text)
        return "written"
    except OSError as e:
        return f"error: {e.strerror}"


@server.tool()
def env(name: str) -> str:
    """The value of the environment variable `name`, or "unset"."""
    return os.environ.get(name, "unset")


class Name(BaseModel):
    name: str


@server.tool()
async def ask_name(ctx: Context) -> str:
    """Asks the person for a name (an elicitation)."""
    result = await ctx.elicit("What is your name?", Name)
    value = result.data.name if result.action == "accept" else "-"
    record(f"elicited {result.action} {value}")
    return f"{result.action}: {value}"


if __name__ == "__main__":
    record(f"up {os.getpid()}")
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        import socket

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        with open(sys.argv[2] + ".tmp", "w") as f:
            f.write(str(port))
        os.rename(sys.argv[2] + ".tmp", sys.argv[2])
        server.run("streamable-http", host="127.0.0.1", port=port)
    else:
        server.run()
