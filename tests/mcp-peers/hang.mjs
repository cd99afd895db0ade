// A stdio MCP server that completes the handshake and lists one tool, then never answers
// a tools/call: the peer of the host's timeout tests.
import { serveStdio } from "./stdio-peer.mjs";

serveStdio({
  name: "hang",
  tools: () => [
    {
      name: "never_answers",
      description: "Accepts the call and never replies",
      inputSchema: { type: "object", properties: {} },
    },
  ],
  call: (params) => {
    process.stderr.write(`hang: swallowing tools/call ${params.name}\n`);
    return undefined; // never answered
  },
});
