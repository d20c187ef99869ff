package mcp.authz

import rego.v1

# Tool risk resolution (DESIGN §4), in order:
#   1. the operator's catalog (data.tools), exact "<server>/<tool>" first,
#      else the highest class among matching globs;
#   2. MCP ToolAnnotations, which are untrusted hints: they classify an
#      uncatalogued tool only for a server in data.trusted_servers, and may
#      only ever raise a class;
#   3. data.unknown_tool: a class, or "deny".
server := object.get(input.resource, ["properties", "server"], "")

tool := object.get(input.resource, ["properties", "tool"], input.resource.id)

tool_key := concat("/", [server, tool])

# For messages: a tool_key that cannot be built must not drop the denial.
tool_label := tool_key

tool_label := "unknown" if not tool_key

annotations := input.resource.properties.annotations if is_object(input.resource.properties.annotations)

catalog_class := data.tools[tool_key]

catalog_class := highest(globbed) if {
	not data.tools[tool_key]
	globbed := {class |
		some pattern, class in data.tools
		contains(pattern, "*")
		glob.match(pattern, ["/"], tool_key)
	}
	count(globbed) > 0
}

# MCP defaults: readOnlyHint false, destructiveHint true. An absent hint is
# the worse case, so a tool must say readOnlyHint: true to be "read" and
# destructiveHint: false to be "write".
annotation_class := "read" if annotations.readOnlyHint == true

annotation_class := "write" if {
	not annotations.readOnlyHint == true
	annotations.destructiveHint == false
}

annotation_class := "destructive" if {
	annotations
	not annotations.readOnlyHint == true
	not annotations.destructiveHint == false
}

trusted_server if server in data.trusted_servers

base := {"class": catalog_class, "source": "catalog"}

base := {"class": annotation_class, "source": "annotations"} if {
	not catalog_class
	trusted_server
	annotation_class
}

base := {"class": data.unknown_tool, "source": "unknown_tool"} if {
	not catalog_class
	not trusted_annotated
	data.unknown_tool != "deny"
}

# An unknown tool the operator wants denied is reported at the highest
# class: a call the PDP cannot classify is never the lowest risk.
base := {"class": highest_class, "source": "unknown_tool"} if {
	not catalog_class
	not trusted_annotated
	data.unknown_tool == "deny"
}

trusted_annotated if {
	trusted_server
	annotation_class
}

tool_unknown if {
	base.source == "unknown_tool"
	data.unknown_tool == "deny"
}

# A tool the PDP cannot see is never the lowest risk: it is the highest.
tool_risk := {"class": highest_class, "source": "hidden"} if tool_hidden

tool_hidden if input.resource.properties.hidden == true

tool_risk := raised if {
	not tool_hidden
	annotation_class
	class_rank(annotation_class) > class_rank(base.class)
	raised := {"class": annotation_class, "source": concat("+", [base.source, "annotations"])}
} else := base if not tool_hidden

highest_class := data.risk_order[count(data.risk_order) - 1]

highest(classes) := top if {
	ranked := [[rank, c] |
		some c in classes
		rank := rule_rank(c)
	]
	top := max(ranked)[1]
}

# The risk reported with every decision: the tool's for tools/call, the
# method's class otherwise, null for open or denied methods.
risk := tool_risk if method_rule == "tool"

risk := {"class": method_rule, "source": "method"} if {
	not method_rule in {"tool", "allow", "deny"}
}

risk := null if method_rule in {"allow", "deny"}

risk := null if not method_rule
