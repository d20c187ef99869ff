package mcp.authz

import rego.v1

# Problems in the operator's data that would make decisions surprising. The
# PDP evaluates this (entrypoint mcp/authz/config_errors) when it loads the
# bundle and the operator data, and refuses to start while it is not empty.
# Each message names the data key at fault. Only %s with strings in sprintf:
# see show() and quote() in requirements.rego.

known_classes := {c | some c, _ in data.risk_classes}

config_errors contains sprintf("risk_order[%s]: %s has no entry in risk_classes", [show(i), quote(c)]) if {
	some i, c in data.risk_order
	not c in known_classes
}

config_errors contains sprintf("risk_classes.%s: must be an object", [c]) if {
	some c, rule in data.risk_classes
	not is_object(rule)
}

# A requirement of the wrong type would be skipped (each check tests its type),
# silently dropping a constraint; null is the documented way to drop one.
config_errors contains sprintf("risk_classes.%s.%s: must be a list or null", [c, key]) if {
	some c, rule in data.risk_classes
	some key in list_requirements
	value := rule[key]
	value != null
	not is_array(value)
}

config_errors contains sprintf("risk_classes.%s.max_auth_age_s: must be a number or null", [c]) if {
	some c, rule in data.risk_classes
	value := rule.max_auth_age_s
	value != null
	not is_number(value)
}

list_requirements := {"scopes_any", "scopes_all", "device_trust", "acr", "networks", "countries", "hours_utc"}

# A misspelt requirement (scope_any for scopes_any) would be ignored, silently
# dropping the constraint the operator meant to set.
config_errors contains sprintf("risk_classes.%s.%s: unknown requirement (known: %s)", [c, key, concat(", ", sort(known_requirements))]) if {
	some c, rule in data.risk_classes
	is_object(rule)
	some key, _ in rule
	not key in known_requirements
}

known_requirements := list_requirements | {"max_auth_age_s"}

config_errors contains sprintf("risk_classes.%s: not listed in risk_order", [c]) if {
	some c in known_classes
	not class_rank(c)
}

config_errors contains sprintf("tools[%s]: unknown risk class %s", [quote(pattern), quote(class)]) if {
	some pattern, class in data.tools
	not class in known_classes
}

config_errors contains sprintf("unknown_tool: %s is neither a risk class nor \"deny\"", [quote(data.unknown_tool)]) if {
	data.unknown_tool != "deny"
	not data.unknown_tool in known_classes
}

config_errors contains sprintf("methods[%s]: %s is neither a risk class, \"allow\" nor \"deny\"", [quote(m), quote(rule)]) if {
	some m, rule in data.methods
	not rule in known_classes
	not rule in {"allow", "deny"}
}

config_errors contains sprintf("unknown_method: %s is neither a risk class, \"allow\" nor \"deny\"", [quote(data.unknown_method)]) if {
	not data.unknown_method in known_classes
	not data.unknown_method in {"allow", "deny"}
}

config_errors contains sprintf("risk_classes.%s.networks[%s]: %s is not a CIDR", [c, show(i), quote(cidr)]) if {
	some c, rule in data.risk_classes
	some i, cidr in rule.networks
	not valid_cidr(cidr)
}

valid_cidr(cidr) if net.cidr_contains(cidr, cidr)

config_errors contains sprintf("risk_classes.%s.hours_utc: must be [start, end] with whole hours 0..24", [c]) if {
	some c, rule in data.risk_classes
	is_array(rule.hours_utc)
	not valid_hours(rule.hours_utc)
}

valid_hours([start, end]) if {
	start >= 0
	start <= 24
	end >= 0
	end <= 24
	start != end
	floor(start) == start
	floor(end) == end
}

config_errors contains "anonymous_methods: must be a list of method names or globs" if {
	not valid_anonymous_methods
}

valid_anonymous_methods if {
	is_array(data.anonymous_methods)
	every m in data.anonymous_methods {
		is_string(m)
	}
}

# The search APIs' optional data (search.rego): a malformed entry would
# silently drop candidates.
config_errors contains "inventory: must be an object of server name → list of tool names" if {
	inventory := data.inventory
	not is_object(inventory)
}

config_errors contains sprintf("inventory.%s: must be a list of tool names", [srv]) if {
	some srv, names in search_inventory
	not is_array(names)
}

config_errors contains sprintf("inventory.%s[%s]: %s is not a tool name (a non-empty string without *)", [srv, show(i), quote(name)]) if {
	some srv, names in search_inventory
	is_array(names)
	some i, name in names
	not valid_tool_name(name)
}

config_errors contains "subjects: must be a list of {type, id} objects" if {
	subjects := data.subjects
	not is_array(subjects)
}

config_errors contains sprintf("subjects[%s]: must be an object with string type and id", [show(i)]) if {
	some i, s in search_subjects
	not valid_subject(s)
}

search_inventory := data.inventory if is_object(data.inventory)

search_subjects := data.subjects if is_array(data.subjects)

valid_subject(s) if {
	is_string(s.type)
	is_string(s.id)
	s.id != ""
}
