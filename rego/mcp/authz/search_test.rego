package mcp.authz_test

import rego.v1

# The search candidates (search.rego) and the validation of their data
# (config.rego). What a search returns is decided elsewhere: the PDP asks
# mcp/authz/decision about every candidate (test/api/authzen-search.test.ts).

search_catalog := {
	"files/read_*": "read",
	"files/write_file": "write",
	"files/delete_repo": "destructive",
	"git/push": "write",
	"files/": "read",
}

tools_of(server) := {c.id | some c in found} if {
	found := data.mcp.authz.search_resource with input as {"subject": {"type": "user"}, "resource": {"type": "tool", "properties": {"server": server}}}
		with data.tools as search_catalog
		with data.inventory as {"files": ["read_file", "list_dir", "write_file"], "git": ["status"]}
}

test_resource_candidates_exact_catalog_and_inventory if {
	tools_of("files") == {"files/write_file", "files/delete_repo", "files/read_file", "files/list_dir"}
	tools_of("git") == {"git/push", "git/status"}
	tools_of("web") == set()
}

test_resource_candidates_without_inventory if {
	got := {c.id | some c in data.mcp.authz.search_resource} with input as {"resource": {"type": "tool", "properties": {"server": "files"}}}
		with data.tools as search_catalog
	got == {"files/write_file", "files/delete_repo"}
}

test_resource_candidates_need_a_server_and_the_tool_type if {
	count(data.mcp.authz.search_resource) == 0 with input as {"resource": {"type": "tool"}}
		with data.tools as search_catalog
	count(data.mcp.authz.search_resource) == 0 with input as {"resource": {"type": "prompt", "properties": {"server": "files"}}}
		with data.tools as search_catalog
	count(data.mcp.authz.search_resource) == 0 with input as {"resource": {"type": "tool", "properties": {"server": 7}}}
		with data.tools as search_catalog
}

test_inventory_skips_what_names_no_tool if {
	got := {c.id | some c in data.mcp.authz.search_resource} with input as {"resource": {"type": "tool", "properties": {"server": "files"}}}
		with data.tools as {}
		with data.inventory as {"files": ["ok", "", "read_*", 3]}
	got == {"files/ok"}
}

test_action_candidates if {
	data.mcp.authz.search_action == {{"name": "tools/call"}} with input as {"resource": {"type": "tool", "id": "files/read_file"}}
	names := {a.name | some a in data.mcp.authz.search_action} with input as {"resource": {"type": "mcp_server", "id": "files"}}
		with data.methods as {"tools/list": "read", "ping": "allow", "notifications/*": "allow", "mcp/stream": "read"}
	names == {"tools/list", "ping"}
}

test_subject_candidates if {
	listed := [{"type": "user", "id": "alice"}, {"type": "agent", "id": "bot"}, "junk"]
	data.mcp.authz.search_subject == {{"type": "user", "id": "alice"}} with input as {"subject": {"type": "user"}}
		with data.subjects as listed
	count(data.mcp.authz.search_subject) == 0 with input as {"subject": {"type": "user"}}
}

search_config_errors(d) := errs if {
	errs := data.mcp.authz.config_errors with data.inventory as d.inventory
		with data.subjects as d.subjects
}

test_search_data_errors if {
	search_config_errors({"inventory": {"files": ["a", "b"]}, "subjects": [{"type": "user", "id": "alice"}]}) == set()
	search_config_errors({"inventory": ["a"], "subjects": {"alice": 1}}) == {
		"inventory: must be an object of server name → list of tool names",
		"subjects: must be a list of {type, id} objects",
	}
	search_config_errors({"inventory": {"files": "read_file", "git": ["ok", "", "x*", 1]}, "subjects": [{"type": "user"}, {"type": "user", "id": "bob"}]}) == {
		"inventory.files: must be a list of tool names",
		`inventory.git[1]: "" is not a tool name (a non-empty string without *)`,
		`inventory.git[2]: "x*" is not a tool name (a non-empty string without *)`,
		`inventory.git[3]: 1 is not a tool name (a non-empty string without *)`,
		"subjects[0]: must be an object with string type and id",
	}
}
