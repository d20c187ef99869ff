package mcp.authz

import rego.v1

# Candidates for the AuthZEN search APIs (entrypoints mcp/authz/search_resource,
# search_action, search_subject). A candidate is only a question: the PDP asks
# mcp/authz/decision about each one and returns only those it allows, so these
# rules decide nothing; they enumerate what can be enumerated.
#
# The input is the search request (the subject already verified, the token
# removed, no page); the searched entity has its type only.

search_server := input.resource.properties.server if is_string(input.resource.properties.server)

# Resources: the tools of one server. Exact catalog entries "<server>/<tool>"
# (globs name no tool), and the operator's inventory of tool names per server,
# for tools only a glob or nothing classifies.
search_resource contains {"type": "tool", "id": key} if {
	input.resource.type == "tool"
	prefix := concat("", [search_server, "/"])
	some key, _ in data.tools
	not contains(key, "*")
	startswith(key, prefix)
	count(key) > count(prefix)
}

search_resource contains {"type": "tool", "id": concat("/", [search_server, name])} if {
	input.resource.type == "tool"
	some name in data.inventory[search_server]
	valid_tool_name(name)
}

valid_tool_name(name) if {
	is_string(name)
	name != ""
	not contains(name, "*")
}

# Actions: the MCP methods the policy names exactly. A tool is called
# (tools/call); anything else is asked about with the methods table, minus its
# globs and the PDP's own pseudo-methods (mcp/..., forward-auth only).
search_action contains {"name": "tools/call"} if input.resource.type == "tool"

search_action contains {"name": m} if {
	input.resource.type != "tool"
	some m, _ in data.methods
	not contains(m, "*")
	not startswith(m, "mcp/")
}

# Subjects: only those the operator's data lists (none by default); a PDP
# that verifies tokens knows no users.
search_subject contains s if {
	some s in search_subjects
	is_object(s)
	s.type == input.subject.type
}
