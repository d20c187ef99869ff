package mcp.authz_test

import rego.v1

# Tool risk resolution beyond what the two shared profiles can reach: exact
# vs glob, overlapping globs, unknown_tool "deny" or a low class, annotations
# raising a class for an untrusted server, and malformed resources.

risk_rows := [
	{
		"note": "an exact catalog entry beats a matching glob of a higher class",
		"data": {"tools": {"files/*": "destructive", "files/read_file": "read"}},
		"set": object.union(plain_call("files", "read_file"), scopes(["mcp:read"])),
		"expect": allowed(risk_of("read", "catalog")),
	},
	{
		"note": "an exact catalog entry beats a matching glob of a lower class",
		"data": {"tools": {"files/*": "read", "files/rm": "destructive"}},
		"set": object.union(plain_call("files", "rm"), scopes(["mcp:read"])),
		"expect": denied_step_up(["scope_missing"], risk_of("destructive", "catalog"), {"scopes": ["mcp:admin"]}),
	},
	{
		"note": "overlapping globs: the highest class wins",
		"data": {"tools": {"files/*": "read", "*/delete_*": "destructive", "files/del*": "write"}},
		"set": object.union(plain_call("files", "delete_tmp"), scopes(["mcp:read", "mcp:write"])),
		"expect": denied_step_up(["scope_missing"], risk_of("destructive", "catalog"), {"scopes": ["mcp:admin"]}),
	},
	{
		"note": "overlapping globs: write beats read",
		"data": {"tools": {"files/*": "read", "files/w*": "write"}},
		"set": object.union(plain_call("files", "write_file"), scopes(["mcp:read"])),
		"expect": denied_step_up(["scope_missing"], risk_of("write", "catalog"), {"scopes": ["mcp:write"]}),
	},
	{
		"note": "overlapping globs: a class missing from risk_order ranks highest, then has no rule",
		"data": {"tools": {"files/*": "destructive", "files/d*": "bogus"}},
		"set": plain_call("files", "delete_tmp"),
		"expect": denied(["risk_class_undefined"], risk_of("bogus", "catalog")),
	},
	{
		"note": "a catalogued class without a risk_classes entry: risk_class_undefined, annotations cannot rank it",
		"data": {"tools": {"files/x": "admin"}},
		"set": tool_call("files", "x", {}),
		"expect": denied(["risk_class_undefined"], risk_of("admin", "catalog")),
	},
	{
		"note": "unknown_tool 'deny': tool_unknown even for a fully privileged caller, reported at the highest class, no step-up",
		"data": {"unknown_tool": "deny"},
		"expect": denied(["tool_unknown"], risk_of("destructive", "unknown_tool")),
	},
	{
		"note": "unknown_tool 'deny' with a hint from an untrusted server: still tool_unknown",
		"data": {"unknown_tool": "deny"},
		"set": object.union(tool_call("web", "fetch", {"readOnlyHint": true}), scopes(["mcp:read"])),
		"expect": denied(["scope_missing", "tool_unknown"], risk_of("destructive", "unknown_tool")),
	},
	{
		"note": "unknown_tool 'deny' reports the last class of a longer risk_order",
		"data": {
			"unknown_tool": "deny",
			"risk_order": ["read", "write", "destructive", "critical"],
			"risk_classes": {"critical": {"scopes_all": ["mcp:root"]}},
		},
		"expect": denied(["scope_missing", "tool_unknown"], risk_of("critical", "unknown_tool")),
	},
	{
		"note": "unknown_tool 'deny' does not apply to a trusted server's annotated tool",
		"data": {"unknown_tool": "deny", "trusted_servers": ["files"]},
		"set": object.union(tool_call("files", "list_dir", {"readOnlyHint": true}), scopes(["mcp:read"])),
		"expect": allowed(risk_of("read", "annotations")),
	},
	{
		"note": "unknown_tool 'deny' applies to a trusted server's tool without annotations",
		"data": {"unknown_tool": "deny", "trusted_servers": ["files"]},
		"set": plain_call("files", "list_dir"),
		"expect": denied(["tool_unknown"], risk_of("destructive", "unknown_tool")),
	},
	{
		"note": "unknown_tool 'read': an unannotated unknown tool is read",
		"data": {"unknown_tool": "read"},
		"set": scopes(["mcp:read"]),
		"expect": allowed(risk_of("read", "unknown_tool")),
	},
	{
		"note": "unknown_tool 'read': an untrusted server's empty annotations still raise it to destructive",
		"data": {"unknown_tool": "read"},
		"set": object.union(tool_call("web", "fetch", {}), scopes(["mcp:read"])),
		"expect": denied_step_up(["scope_missing"], risk_of("destructive", "unknown_tool+annotations"), {"scopes": ["mcp:admin"]}),
	},
	{
		"note": "untrusted server: destructiveHint false raises a catalogued read tool to write",
		"data": {"tools": {"web/fetch": "read"}},
		"set": object.union(tool_call("web", "fetch", {"destructiveHint": false}), scopes(["mcp:read"])),
		"expect": denied_step_up(["scope_missing"], risk_of("write", "catalog+annotations"), {"scopes": ["mcp:write"]}),
	},
	{
		"note": "untrusted server: readOnlyHint true on a catalogued read tool changes nothing",
		"data": {"tools": {"web/fetch": "read"}},
		"set": object.union(tool_call("web", "fetch", {"readOnlyHint": true}), scopes(["mcp:read"])),
		"expect": allowed(risk_of("read", "catalog")),
	},
	{
		"note": "trusted server: annotations that are not an object are ignored (unknown_tool)",
		"profile": "operator",
		"set": object.union(tool_call("files", "list_dir", "readOnly"), scopes(["mcp:read"])),
		"expect": denied_step_up(["scope_missing"], risk_of("destructive", "unknown_tool"), {"scopes": ["mcp:admin"]}),
	},
	{
		"note": "trusted server: null annotations are ignored (unknown_tool)",
		"profile": "operator",
		"set": object.union(tool_call("files", "list_dir", null), scopes(["mcp:read"])),
		"expect": denied_step_up(["scope_missing"], risk_of("destructive", "unknown_tool"), {"scopes": ["mcp:admin"]}),
	},
	{
		"note": "trusted server: readOnlyHint must be the boolean true; the string \"true\" counts as absent (destructive)",
		"profile": "operator",
		"set": object.union(tool_call("files", "list_dir", {"readOnlyHint": "true"}), scopes(["mcp:read"])),
		"expect": denied_step_up(["scope_missing"], risk_of("destructive", "annotations"), {"scopes": ["mcp:admin"]}),
	},
	{
		"note": "trusted server: destructiveHint must be the boolean false; 0 counts as absent (destructive)",
		"profile": "operator",
		"set": object.union(tool_call("files", "move_file", {"destructiveHint": 0}), scopes(["mcp:read"])),
		"expect": denied_step_up(["scope_missing"], risk_of("destructive", "annotations"), {"scopes": ["mcp:admin"]}),
	},
	{
		"note": "without properties.tool the tool name is resource.id",
		"profile": "operator",
		"set": object.union({"resource": {"id": "read_file", "properties": {"server": "files"}}}, scopes(["mcp:read"])),
		"remove": ["resource/properties/tool"],
		"expect": allowed(risk_of("read", "catalog")),
	},
	{
		"note": "without a server the key is \"/<tool>\", which no files/ entry matches",
		"profile": "operator",
		"set": object.union(plain_call("files", "read_file"), scopes(["mcp:read"])),
		"remove": ["resource/properties/server"],
		"expect": denied_step_up(["scope_missing"], risk_of("destructive", "unknown_tool"), {"scopes": ["mcp:admin"]}),
	},
	{
		"note": "no tool name at all (no properties.tool, no resource.id) under unknown_tool 'deny': still tool_unknown",
		"data": {"unknown_tool": "deny"},
		"remove": ["resource/id", "resource/properties/tool"],
		"expect": denied(["tool_unknown"], risk_of("destructive", "unknown_tool")),
	},
	{
		"note": "a non-string server under unknown_tool 'deny': still tool_unknown",
		"data": {"unknown_tool": "deny"},
		"set": {"resource": {"properties": {"server": 7}}},
		"expect": denied(["tool_unknown"], risk_of("destructive", "unknown_tool")),
	},
	{
		"note": "no resource at all: classified as unknown_tool",
		"remove": ["resource"],
		"set": scopes(["mcp:read"]),
		"expect": denied_step_up(["scope_missing"], risk_of("destructive", "unknown_tool"), {"scopes": ["mcp:admin"]}),
	},
]

test_risk if table_passes(risk_rows)

test_tool_unknown_message if {
	admin_messages({"data": {"unknown_tool": "deny"}}) == {`tool "web/fetch" is not in the catalog and unknown_tool is deny`}
	admin_messages({"data": {"unknown_tool": "deny"}, "remove": ["resource"]}) == {`tool "unknown" is not in the catalog and unknown_tool is deny`}
}
