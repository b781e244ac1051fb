"""Drives `ceso mcp` with the client of the Python `mcp` package (the official MCP SDK), over
stdio, the way an MCP host does.

Reads a session description as JSON on standard input:

    {"command": "/path/to/ceso", "args": ["mcp", "--inventory", "DIR"],
     "env": {"NAME": "value"}, "cwd": "DIR",
     "listTools": true, "timeoutSeconds": 300,
     "calls": [{"name": "plan", "arguments": {}}]}

starts the server, initializes the session, lists the tools (when asked), makes the calls in
order, and prints what the server answered as one JSON document on standard output:

    {"initialize": {...InitializeResult...}, "tools": [...Tool...],
     "calls": [{...CallToolResult...}]}

The objects are the SDK's own models dumped with their protocol (camelCase) names. The Rust test
(tests/cli_mcp.rs) checks them; this script checks nothing itself.
"""

import json
import sys

import anyio
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client


def dump(model):
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


async def session(spec):
    server = StdioServerParameters(
        command=spec["command"],
        args=spec.get("args", []),
        env=spec.get("env"),
        cwd=spec.get("cwd"),
    )
    answer = {}
    async with stdio_client(server, errlog=sys.stderr) as (read, write):
        # A request the server does not answer in time fails the session instead of hanging it.
        timeout = spec.get("timeoutSeconds", 300)
        async with ClientSession(read, write, read_timeout_seconds=timeout) as client:
            answer["initialize"] = dump(await client.initialize())
            if spec.get("listTools"):
                answer["tools"] = [dump(tool) for tool in (await client.list_tools()).tools]
            answer["calls"] = []
            for call in spec.get("calls", []):
                result = await client.call_tool(call["name"], call.get("arguments", {}))
                answer["calls"].append(dump(result))
    return answer


def main():
    spec = json.load(sys.stdin)
    answer = anyio.run(session, spec)
    json.dump(answer, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
