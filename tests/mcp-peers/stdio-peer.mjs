// The skeleton of the test MCP peers that speak JSON-RPC over stdio (mutable.mjs,
// hang.mjs): the initialize handshake, tools/list, ping and tools/call dispatch, one JSON
// message per line; notifications and responses are ignored; exits when stdin closes.
//
//   serveStdio({ name, tools: () => [tool, ...], call: (params) => result | undefined })
//
// `tools` is asked on every tools/list; `call` answers a tools/call with its result, or
// `undefined` to leave the call unanswered.
import { createInterface } from "node:readline";

export function serveStdio({ name, tools, call }) {
  const send = (msg) => process.stdout.write(JSON.stringify(msg) + "\n");
  const rl = createInterface({ input: process.stdin });
  rl.on("line", (line) => {
    let msg;
    try {
      msg = JSON.parse(line);
    } catch {
      return;
    }
    if (msg.id === undefined || msg.method === undefined) return; // notifications, responses
    const reply = (result) => send({ jsonrpc: "2.0", id: msg.id, result });
    switch (msg.method) {
      case "initialize":
        reply({
          protocolVersion: msg.params?.protocolVersion ?? "2025-06-18",
          capabilities: { tools: {} },
          serverInfo: { name, version: "1.0.0" },
        });
        break;
      case "tools/list":
        reply({ tools: tools() });
        break;
      case "ping":
        reply({});
        break;
      case "tools/call": {
        const result = call(msg.params ?? {});
        if (result !== undefined) reply(result);
        break;
      }
      default:
        send({ jsonrpc: "2.0", id: msg.id, error: { code: -32601, message: "method not found" } });
    }
  });
  rl.on("close", () => process.exit(0));
}
