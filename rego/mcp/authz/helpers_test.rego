package mcp.authz_test

import rego.v1

# Helpers for the table-driven unit tests. A row is
#   {"note": ..., "profile"?: "default"|"operator", "data"?: {...},
#    "set"?: {...}, "remove"?: [paths], "expect": {...}}
# where data is deep-merged over the profile (as the PDP merges operator
# data: objects merge, arrays and scalars replace, null drops a constraint),
# set is deep-merged over base_input and remove lists json.remove paths.

day := 1764115200 # 2025-11-26T00:00:00Z

at(h, m, s) := ((day + (h * 3600)) + (m * 60)) + s

now := at(10, 0, 0)

# A fully privileged caller of an uncatalogued tool at 10:00 UTC: allowed
# under the default profile (destructive via unknown_tool).
base_input := {
	"subject": {"type": "user", "id": "alice", "properties": {
		"authenticated": true,
		"scopes": ["mcp:read", "mcp:write", "mcp:admin"],
		"acr": "mfa",
		"auth_time": now - 300,
		"auth_age_s": 300,
		"client_id": "c1",
	}},
	"action": {"name": "tools/call"},
	"resource": {"type": "tool", "id": "fetch", "properties": {"server": "web", "tool": "fetch"}},
	"context": {
		"time": {"rfc3339": "2025-11-26T10:00:00Z", "unix_s": now},
		"ip": "10.1.2.3",
		"device": {"trust": "compliant"},
		"location": {"country": "DE"},
		"session": {"id": "s1"},
	},
}

# The context time (and a consistent auth_time) at another moment.
time_at(t) := {
	"context": {"time": {"rfc3339": time.format([t * 1000000000, "UTC", "2006-01-02T15:04:05Z07:00"]), "unix_s": t}},
	"subject": {"properties": {"auth_time": t - 300}},
}

# A tools/call of server/tool with the given annotations.
tool_call(server, name, annotations) := {"resource": {"type": "tool", "id": name, "properties": {
	"server": server,
	"tool": name,
	"annotations": annotations,
}}}

# A tools/call without annotations.
plain_call(server, name) := {"resource": {"type": "tool", "id": name, "properties": {"server": server, "tool": name}}}

method_call(name) := {"action": {"name": name}, "resource": {"type": "method", "id": name}}

scopes(list) := {"subject": {"properties": {"scopes": list}}}

row_input(row) := json.remove(object.union(base_input, object.get(row, "set", {})), object.get(row, "remove", []))

row_data(row) := object.union(profiles[object.get(row, "profile", "default")], object.get(row, "data", {}))

table_mismatches(rows) := {sprintf("%q:\n  want %v\n  got  %v", [row.note, row.expect, got]) |
	some row in rows
	got := row_outcome(row)
	got != row.expect
}

row_outcome(row) := got if {
	got := summary(row_input(row), row_data(row))
} else := "<row input or data could not be built>"

# True when every row matches; prints the rows that do not.
table_passes(rows) if {
	bad := table_mismatches(rows)
	every m in bad {
		print(m)
	}
	count(bad) == 0
	count(rows) > 0
}

# Expectation builders.
allowed(risk) := {"allow": true, "reasons": [], "risk": risk, "obligations": {}}

denied(codes, risk) := {"allow": false, "reasons": sort(codes), "risk": risk, "obligations": {}}

denied_step_up(codes, risk, step_up) := {"allow": false, "reasons": sort(codes), "risk": risk, "obligations": {"step_up": step_up}}

risk_of(class, source) := {"class": class, "source": source}

# The admin messages of a decision, for the few tests that check wording.
admin_messages(row) := {r.admin | some r in decide(row_input(row), row_data(row)).reasons}
