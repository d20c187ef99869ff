package mcp.authz_test

import rego.v1

# Method resolution beyond what the two shared profiles can reach: deny
# entries, overlapping globs, unknown_method set to a class or "allow", and
# malformed action names.

method_rows := [
	{
		"note": "an exact 'deny' entry is method_denied, not method_unknown; risk null",
		"data": {"methods": {"ping": "deny"}},
		"set": method_call("ping"),
		"expect": denied(["method_denied"], null),
	},
	{
		"note": "a 'deny' glob is method_denied",
		"data": {"methods": {"admin/*": "deny"}},
		"set": method_call("admin/reset"),
		"expect": denied(["method_denied"], null),
	},
	{
		"note": "overlapping globs: deny beats allow",
		"data": {"methods": {"x/*": "allow", "*/reset": "deny"}},
		"set": method_call("x/reset"),
		"expect": denied(["method_denied"], null),
	},
	{
		"note": "overlapping globs: a class beats allow",
		"data": {"methods": {"x/*": "allow", "*/reset": "write"}},
		"set": object.union(method_call("x/reset"), scopes([])),
		"expect": denied_step_up(["scope_missing"], risk_of("write", "method"), {"scopes": ["mcp:write"]}),
	},
	{
		"note": "overlapping globs: the higher class of risk_order wins",
		"data": {"methods": {"x/*": "read", "*/reset": "destructive", "x/res*": "write"}},
		"set": object.union(method_call("x/reset"), scopes(["mcp:read", "mcp:write"])),
		"expect": denied_step_up(["scope_missing"], risk_of("destructive", "method"), {"scopes": ["mcp:admin"]}),
	},
	{
		"note": "overlapping globs: a class missing from risk_order ranks above every ordered class",
		"data": {"methods": {"x/*": "destructive", "*/reset": "bogus"}},
		"set": method_call("x/reset"),
		"expect": denied(["risk_class_undefined"], risk_of("bogus", "method")),
	},
	{
		"note": "an exact entry beats every glob, even a stricter one",
		"data": {"methods": {"x/reset": "allow", "*/reset": "deny"}},
		"set": method_call("x/reset"),
		"expect": allowed(null),
	},
	{
		"note": "glob '*' does not match across '/': a catch-all for one segment only",
		"data": {"methods": {"*": "write"}},
		"set": method_call("a/b"),
		"expect": denied(["method_unknown"], null),
	},
	{
		"note": "glob '*' classifies single-segment methods without an exact entry",
		"data": {"methods": {"*": "write"}},
		"set": method_call("shutdown"),
		"expect": allowed(risk_of("write", "method")),
	},
	{
		"note": "unknown_method as a class: an unknown method is governed by that class",
		"data": {"unknown_method": "read"},
		"set": object.union(method_call("sampling/createMessage"), scopes([])),
		"expect": denied_step_up(["scope_missing"], risk_of("read", "method"), {"scopes": ["mcp:read"]}),
	},
	{
		"note": "unknown_method as a class: passes when its requirements hold",
		"data": {"unknown_method": "read"},
		"set": method_call("sampling/createMessage"),
		"expect": allowed(risk_of("read", "method")),
	},
	{
		"note": "unknown_method 'allow' opens every unknown method; risk null",
		"data": {"unknown_method": "allow"},
		"set": object.union(method_call("sampling/createMessage"), scopes([])),
		"expect": allowed(null),
	},
	{
		"note": "unknown_method naming a class without an entry: risk_class_undefined",
		"data": {"unknown_method": "bogus"},
		"set": method_call("sampling/createMessage"),
		"expect": denied(["risk_class_undefined"], risk_of("bogus", "method")),
	},
	{
		"note": "a methods entry for tools/call is ignored: tools/call is always resolved per tool",
		"data": {"methods": {"tools/call": "allow"}},
		"set": scopes([]),
		"expect": denied_step_up(["scope_missing"], risk_of("destructive", "unknown_tool"), {"scopes": ["mcp:admin"]}),
	},
	{
		"note": "no action.name: method_unknown, risk null",
		"remove": ["action/name"],
		"expect": denied(["method_unknown"], null),
	},
	{
		"note": "no action at all: method_unknown, risk null",
		"remove": ["action"],
		"expect": denied(["method_unknown"], null),
	},
	{
		"note": "an empty method name is unknown",
		"set": method_call(""),
		"expect": denied(["method_unknown"], null),
	},
	{
		"note": "a non-string method name is unknown (glob matching it fails closed)",
		"set": {"action": {"name": 42}},
		"expect": denied(["method_unknown"], null),
	},
	{
		"note": "a non-string method name stays unknown even when a catch-all glob opens everything",
		"data": {"methods": {"*": "allow"}},
		"set": {"action": {"name": ["ping"]}},
		"expect": denied(["method_unknown"], null),
	},
]

test_methods if table_passes(method_rows)

test_method_messages if {
	admin_messages({"set": method_call("x/y")}) == {`no rule for MCP method "x/y" and unknown_method is deny`}
	admin_messages({"remove": ["action"]}) == {"the request names no MCP method"}
	admin_messages({"data": {"methods": {"ping": "deny"}}, "set": method_call("ping")}) == {`MCP method "ping" is denied by configuration`}
}

# The default table decides both protocol eras the PDP reads: every client
# request method of MCP 2026-07-28 (core and the tasks extension) and every
# client method of 2025-11-25 that 2026-07-28 removed has an exact entry, so
# none of them falls to unknown_method by accident. tools/call is left out: it
# is always resolved per tool.
client_methods_2026_07_28 := {
	"server/discover", "subscriptions/listen", "tools/list", "prompts/get",
	"prompts/list", "resources/list", "resources/templates/list", "resources/read",
	"completion/complete", "tasks/get", "tasks/update", "tasks/cancel",
	"notifications/cancelled", "notifications/progress",
}

client_methods_removed_by_2026_07_28 := {
	"initialize", "ping", "logging/setLevel", "resources/subscribe",
	"resources/unsubscribe", "tasks/list", "tasks/result",
	"notifications/initialized", "notifications/roots/list_changed",
	"notifications/tasks/status",
}

test_default_methods_cover_both_eras if {
	missing := {m |
		some m in (client_methods_2026_07_28 | client_methods_removed_by_2026_07_28)
		data.mcp.authz.method_rule == data.unknown_method with input.action.name as m
	}
	every m in missing {
		print("no default rule:", m)
	}
	count(missing) == 0
}

# Reading a task's state is read; changing a running task (input, cancel) is
# write: the PDP cannot know the class of the tool that started the task, so
# changing it needs at least what changing anything needs.
test_default_task_methods if {
	rules := {m: rule |
		some m in {"tasks/get", "tasks/list", "tasks/result", "tasks/update", "tasks/cancel"}
		rule := data.mcp.authz.method_rule with input.action.name as m
	}
	rules == {"tasks/get": "read", "tasks/list": "read", "tasks/result": "read", "tasks/update": "write", "tasks/cancel": "write"}
}
