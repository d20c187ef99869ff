package mcp.authz_test

import rego.v1

# Runs the shared decision cases (cases/*.json, loaded at data.mcp.authz.cases)
# that the TypeScript tests replay over HTTP. Each case file names a profile:
#   default   rego/data.json alone
#   operator  rego/data.json deep-merged with examples/operator-data.yaml,
#             loaded as data.fixtures.operator:
#   opa test rego fixtures.operator:examples/operator-data.yaml

# The data keys the policy reads; decide() overrides every one of them.
profile_keys := {"risk_order", "risk_classes", "tools", "trusted_servers", "unknown_tool", "methods", "unknown_method", "anonymous_methods"}

default_profile := {
	"risk_order": data.risk_order,
	"risk_classes": data.risk_classes,
	"tools": data.tools,
	"trusted_servers": data.trusted_servers,
	"unknown_tool": data.unknown_tool,
	"methods": data.methods,
	"unknown_method": data.unknown_method,
	"anonymous_methods": data.anonymous_methods,
}

profiles := {
	"default": default_profile,
	"operator": object.union(default_profile, data.fixtures.operator),
}

# The decision for an input under a complete profile (an object with every
# key in profile_keys).
decide(inp, d) := dec if {
	dec := data.mcp.authz.decision with input as inp
		with data.risk_order as d.risk_order
		with data.risk_classes as d.risk_classes
		with data.tools as d.tools
		with data.trusted_servers as d.trusted_servers
		with data.unknown_tool as d.unknown_tool
		with data.methods as d.methods
		with data.unknown_method as d.unknown_method
		with data.anonymous_methods as d.anonymous_methods
}

config_errors_for(d) := errs if {
	errs := data.mcp.authz.config_errors with data.risk_order as d.risk_order
		with data.risk_classes as d.risk_classes
		with data.tools as d.tools
		with data.trusted_servers as d.trusted_servers
		with data.unknown_tool as d.unknown_tool
		with data.methods as d.methods
		with data.unknown_method as d.unknown_method
		with data.anonymous_methods as d.anonymous_methods
}

# The comparable part of a decision: reasons reduced to their sorted codes.
summary(inp, d) := {
	"allow": dec.allow,
	"reasons": sort([r.code | some r in dec.reasons]),
	"risk": dec.risk,
	"obligations": dec.obligations,
} if {
	dec := decide(inp, d)
} else := "<no decision>"

all_cases contains [name, i, c, suite.profile] if {
	some name, suite in data.mcp.authz.cases
	some i, c in suite.cases
}

case_mismatches contains sprintf("%s[%d] %q (profile %s):\n  want %v\n  got  %v", [name, i, c.note, p, c.expect, got]) if {
	some [name, i, c, p] in all_cases
	got := summary(c.input, profiles[p])
	got != c.expect
}

test_shared_cases if {
	every m in case_mismatches {
		print(m)
	}
	count(case_mismatches) == 0
}

# The runner must not pass vacuously: both profiles are exercised.
test_shared_cases_present if {
	count(all_cases) >= 40
	used := {p | some [_, _, _, p] in all_cases}
	used == {"default", "operator"}
}

test_operator_fixture_loaded if {
	is_object(data.fixtures.operator)
	count(data.fixtures.operator) > 0
}

# Every key of the operator file must be one the runner overrides, or the
# "operator" profile would silently ignore it.
test_operator_keys_overridden if {
	extra := {k | some k, _ in data.fixtures.operator; not k in profile_keys}
	every k in extra {
		print("operator key not overridden by decide():", k)
	}
	count(extra) == 0
}

# Both profiles are valid configurations.
test_profiles_have_no_config_errors if {
	every p, d in profiles {
		errs := config_errors_for(d)
		print_errors(p, errs)
		count(errs) == 0
	}
}

print_errors(p, errs) if {
	every e in errs {
		print(p, "config error:", e)
	}
}

# The case files are replayed by the TypeScript tests against a clock frozen at
# context.time.unix_s, so every case must be well-formed and self-consistent.
case_problems contains problem(name, i, c, "profile must be default or operator") if {
	some [name, i, c, p] in all_cases
	not profiles[p]
}

case_problems contains problem(name, i, c, "note must be a non-empty string") if {
	some [name, i, c, _] in all_cases
	not non_empty_string(c.note)
}

case_problems contains problem(name, i, c, "case keys must be exactly note, input, expect") if {
	some [name, i, c, _] in all_cases
	object.keys(c) != {"note", "input", "expect"}
}

case_problems contains problem(name, i, c, "expect keys must be exactly allow, reasons, risk, obligations") if {
	some [name, i, c, _] in all_cases
	object.keys(c.expect) != {"allow", "reasons", "risk", "obligations"}
}

case_problems contains problem(name, i, c, "expect.reasons must be a sorted list of codes") if {
	some [name, i, c, _] in all_cases
	c.expect.reasons != sort(c.expect.reasons)
}

case_problems contains problem(name, i, c, "context.time.rfc3339 must match unix_s") if {
	some [name, i, c, _] in all_cases
	not time_consistent(c.input.context.time)
}

case_problems contains problem(name, i, c, "auth_age_s must equal unix_s - auth_time, and be absent without auth_time") if {
	some [name, i, c, _] in all_cases
	not auth_consistent(c.input.subject.properties, c.input.context.time.unix_s)
}

problem(name, i, c, msg) := sprintf("%s[%d] %q: %s", [name, i, object.get(c, "note", ""), msg])

non_empty_string(s) if {
	is_string(s)
	s != ""
}

time_consistent(t) if time.parse_rfc3339_ns(t.rfc3339) == t.unix_s * 1000000000

auth_consistent(props, _) if {
	not "auth_time" in object.keys(props)
	not "auth_age_s" in object.keys(props)
}

auth_consistent(props, now) if props.auth_age_s == now - props.auth_time

test_cases_well_formed if {
	every m in case_problems {
		print(m)
	}
	count(case_problems) == 0
}

test_case_notes_unique if {
	notes := [c.note | some [_, _, c, _] in all_cases]
	count(notes) == count({n | some n in notes})
}

# The bundle names the label values its reasons and methods may take in the
# metrics (data.metric_labels; anything else is counted as "other"). Every
# reason the policy gives in a shared case is one of them (a token_error's
# code is the PDP's own, labelled by the PDP), and so is every method the
# data names without a glob.
unlabelled_reasons contains sprintf("%s[%d] %q: reason %s", [name, i, c.note, code]) if {
	some [name, i, c, _] in all_cases
	not c.input.subject.properties.token_error
	some code in c.expect.reasons
	not code in data.metric_labels.reason
}

test_case_reasons_are_labels if {
	every m in unlabelled_reasons {
		print("not in metric_labels.reason:", m)
	}
	count(unlabelled_reasons) == 0
}

unlabelled_methods contains method if {
	some method, _ in data.methods
	not contains(method, "*")
	not method in data.metric_labels.action
}

test_methods_are_labels if {
	every m in unlabelled_methods {
		print("not in metric_labels.action:", m)
	}
	count(unlabelled_methods) == 0
}
