package mcp.authz

import rego.v1

# Which rule governs the MCP method: "allow", "deny" or a risk class name.
# tools/call is always resolved per tool (risk.rego); the methods table does
# not apply to it.
method := input.action.name

# mcp/opaque is a POST whose method the PDP cannot see (a headers-only proxy
# without Mcp-Method): it is judged as the riskiest thing it could be, a call
# of an unseen tool.
method_rule := "tool" if method in tool_methods

tool_methods := {"tools/call", "mcp/opaque"}

method_rule := data.methods[method] if {
	not method in tool_methods
}

# Without an exact entry, the most restrictive matching glob wins, so that
# overlapping patterns can only make a method stricter.
method_rule := most_restrictive(glob_rules) if {
	not method in tool_methods
	not data.methods[method]
	count(glob_rules) > 0
}

method_rule := data.unknown_method if {
	not method in tool_methods
	not data.methods[method]
	count(glob_rules) == 0
}

glob_rules contains rule if {
	some pattern, rule in data.methods
	contains(pattern, "*")
	glob.match(pattern, ["/"], method)
}

most_restrictive(rules) := "deny" if "deny" in rules

most_restrictive(rules) := top if {
	not "deny" in rules
	ranked := [[rank, rule] |
		some rule in rules
		rank := rule_rank(rule)
	]
	top := max(ranked)[1]
}

rule_rank("allow") := -1

# A class the operator did not order ranks above every ordered class, so a
# typo can never make a method more permissive.
rule_rank(rule) := rank if {
	rule != "allow"
	rank := class_rank(rule)
}

rule_rank(rule) := count(data.risk_order) if {
	rule != "allow"
	not class_rank(rule)
}

class_rank(class) := i if {
	some i, c in data.risk_order
	c == class
}

# The class whose requirements apply to this request.
required_class := tool_risk.class if {
	method_rule == "tool"
	tool_risk.class != null
}

required_class := method_rule if {
	not method_rule in {"tool", "allow", "deny"}
}

# Only an object is a rule: a class set to null (or any non-object) must not
# apply as a class without requirements.
required_rule := data.risk_classes[required_class] if is_object(data.risk_classes[required_class])
