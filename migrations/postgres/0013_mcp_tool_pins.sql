-- MCP tool pinning (issue 21): the definitions (name, description, input schema) of the
-- MCP tools a plugin's grant covers, pinned by hash when the plugin is approved or an
-- admin pins it. A call to a pinned tool whose server now offers another definition is
-- refused until an admin pins again. `definition` is the pinned definition as JSON;
-- `sha256` the hash of its canonical JSON (host/src/mcp/pins.rs).
-- Numbered 0013: 0012 is taken by the release flow on another branch.
CREATE TABLE mcp_tool_pins (
    plugin TEXT NOT NULL,
    server TEXT NOT NULL,
    tool TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    definition TEXT NOT NULL,
    pinned_by TEXT,
    pinned_at BIGINT NOT NULL,
    PRIMARY KEY (plugin, server, tool)
);
