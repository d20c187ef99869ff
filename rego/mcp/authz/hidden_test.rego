package mcp.authz_test

import rego.v1

# What a headers-only proxy lets the PDP see: a tools/call whose tool is
# hidden, or a POST whose method is hidden (mcp/opaque). Both are judged at
# the highest class; and the forward-auth pseudo-methods for GET, DELETE and
# JSON-RPC responses.
hidden_rows := [
	{
		"note": "a tools/call of a hidden tool is destructive (the highest class), source hidden",
		"profile": "operator",
		"set": {"resource": {"type": "tool", "id": "", "properties": {"server": "files", "hidden": true}}},
		"remove": ["resource/properties/tool"],
		"expect": allowed(risk_of("destructive", "hidden")),
	},
	{
		"note": "a hidden tool needs what destructive needs: a reader is denied with step-up to admin",
		"profile": "operator",
		"set": object.union(
			{"resource": {"type": "tool", "id": "", "properties": {"server": "files", "hidden": true}}},
			scopes(["mcp:read"]),
		),
		"remove": ["resource/properties/tool"],
		"expect": denied_step_up(["scope_missing"], risk_of("destructive", "hidden"), {"scopes": ["mcp:admin"]}),
	},
	{
		"note": "hidden beats a catalogued name: hidden: true is never read as files/read_file",
		"profile": "operator",
		"set": object.union(
			{"resource": {"type": "tool", "id": "read_file", "properties": {"server": "files", "tool": "read_file", "hidden": true}}},
			scopes(["mcp:read"]),
		),
		"expect": denied_step_up(["scope_missing"], risk_of("destructive", "hidden"), {"scopes": ["mcp:admin"]}),
	},
	{
		"note": "an opaque POST (no visible method) is judged as a hidden tool call",
		"profile": "operator",
		"set": object.union(
			{"action": {"name": "mcp/opaque"}, "resource": {"type": "tool", "id": "", "properties": {"server": "files", "hidden": true}}},
			scopes(["mcp:read"]),
		),
		"remove": ["resource/properties/tool"],
		"expect": denied_step_up(["scope_missing"], risk_of("destructive", "hidden"), {"scopes": ["mcp:admin"]}),
	},
	{
		"note": "mcp/stream (GET, the SSE stream) is read",
		"set": method_call("mcp/stream"),
		"expect": allowed(risk_of("read", "method")),
	},
	{
		"note": "mcp/session_end (DELETE) is allowed for an authenticated subject",
		"set": method_call("mcp/session_end"),
		"expect": allowed(null),
	},
	{
		"note": "mcp/response (the client answering the server) is allowed for an authenticated subject",
		"set": method_call("mcp/response"),
		"expect": allowed(null),
	},
	{
		"note": "mcp/session_end still needs an authenticated subject",
		"set": object.union(method_call("mcp/session_end"), {"subject": {"properties": {"authenticated": false}}}),
		"expect": denied(["token_missing"], null),
	},
]

test_hidden if table_passes(hidden_rows)
