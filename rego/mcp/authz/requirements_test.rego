package mcp.authz_test

import rego.v1

# Requirements beyond what the two shared profiles can reach: countries,
# midnight-spanning hours, multi-scope scopes_all, null dropping a constraint,
# and hostile or incomplete inputs, which must always fail closed.

requirement_rows := [
	# location_denied: no profile sets countries.
	{
		"note": "countries: DE is in [DE, AT]",
		"data": {"risk_classes": {"destructive": {"countries": ["DE", "AT"]}}},
		"expect": allowed(risk_of("destructive", "unknown_tool")),
	},
	{
		"note": "countries: FR is not in [DE, AT]; no step-up",
		"data": {"risk_classes": {"destructive": {"countries": ["DE", "AT"]}}},
		"set": {"context": {"location": {"country": "FR"}}},
		"expect": denied(["location_denied"], risk_of("destructive", "unknown_tool")),
	},
	{
		"note": "countries: a context without location is 'unknown' and denied",
		"data": {"risk_classes": {"destructive": {"countries": ["DE", "AT"]}}},
		"remove": ["context/location"],
		"expect": denied(["location_denied"], risk_of("destructive", "unknown_tool")),
	},
	{
		"note": "countries: compared exactly, 'de' is not 'DE'",
		"data": {"risk_classes": {"destructive": {"countries": ["DE"]}}},
		"set": {"context": {"location": {"country": "de"}}},
		"expect": denied(["location_denied"], risk_of("destructive", "unknown_tool")),
	},
	# hours_utc spanning midnight: [22, 6).
	{
		"note": "hours [22, 6): 22:00 is inside (start inclusive)",
		"data": {"risk_classes": {"destructive": {"hours_utc": [22, 6]}}},
		"set": time_at(at(22, 0, 0)),
		"expect": allowed(risk_of("destructive", "unknown_tool")),
	},
	{
		"note": "hours [22, 6): 00:00 is inside",
		"data": {"risk_classes": {"destructive": {"hours_utc": [22, 6]}}},
		"set": time_at(at(0, 0, 0)),
		"expect": allowed(risk_of("destructive", "unknown_tool")),
	},
	{
		"note": "hours [22, 6): 05:59:59 is inside",
		"data": {"risk_classes": {"destructive": {"hours_utc": [22, 6]}}},
		"set": time_at(at(5, 59, 59)),
		"expect": allowed(risk_of("destructive", "unknown_tool")),
	},
	{
		"note": "hours [22, 6): 06:00 is outside (end exclusive)",
		"data": {"risk_classes": {"destructive": {"hours_utc": [22, 6]}}},
		"set": time_at(at(6, 0, 0)),
		"expect": denied(["outside_hours"], risk_of("destructive", "unknown_tool")),
	},
	{
		"note": "hours [22, 6): 21:59:59 is outside",
		"data": {"risk_classes": {"destructive": {"hours_utc": [22, 6]}}},
		"set": time_at(at(21, 59, 59)),
		"expect": denied(["outside_hours"], risk_of("destructive", "unknown_tool")),
	},
	{
		"note": "hours [0, 24): 23:59:59 is inside, the whole day is open",
		"data": {"risk_classes": {"destructive": {"hours_utc": [0, 24]}}},
		"set": time_at(at(23, 59, 59)),
		"expect": allowed(risk_of("destructive", "unknown_tool")),
	},
	{
		"note": "hours: a context without time is outside every window",
		"profile": "operator",
		"remove": ["context/time"],
		"expect": denied(["outside_hours"], risk_of("destructive", "unknown_tool")),
	},
	{
		"note": "hours: a string unix_s is outside every window",
		"profile": "operator",
		"set": {"context": {"time": {"unix_s": "1764151200"}}},
		"expect": denied(["outside_hours"], risk_of("destructive", "unknown_tool")),
	},
	{
		"note": "hours: a fractional unix_s is outside every window (modulo needs an integer)",
		"profile": "operator",
		"set": {"context": {"time": {"unix_s": 1764151200.5}}},
		"expect": denied(["outside_hours"], risk_of("destructive", "unknown_tool")),
	},
	{
		"note": "hours: a class without hours_utc does not need a time",
		"remove": ["context/time"],
		"expect": allowed(risk_of("destructive", "unknown_tool")),
	},
	# scopes_all with several scopes, and scopes_any with scopes_all.
	{
		"note": "scopes_all [mcp:admin, mcp:delete] with only mcp:admin: step-up asks for the missing one only",
		"data": {"risk_classes": {"destructive": {"scopes_all": ["mcp:admin", "mcp:delete"]}}},
		"expect": denied_step_up(["scope_missing"], risk_of("destructive", "unknown_tool"), {"scopes": ["mcp:delete"]}),
	},
	{
		"note": "scopes_all [mcp:delete, mcp:admin] with neither: step-up asks for both, sorted",
		"data": {"risk_classes": {"destructive": {"scopes_all": ["mcp:delete", "mcp:admin"]}}},
		"set": scopes(["mcp:read"]),
		"expect": denied_step_up(["scope_missing"], risk_of("destructive", "unknown_tool"), {"scopes": ["mcp:admin", "mcp:delete"]}),
	},
	{
		"note": "scopes_any and scopes_all both failing: two scope_missing reasons, one step-up with both scopes",
		"data": {"risk_classes": {"destructive": {"scopes_any": ["mcp:write", "mcp:files"]}}},
		"set": scopes(["mcp:read"]),
		"expect": denied_step_up(["scope_missing", "scope_missing"], risk_of("destructive", "unknown_tool"), {"scopes": ["mcp:admin", "mcp:write"]}),
	},
	# null drops a constraint (object.union keeps the null, every check skips it).
	{
		"note": "null drops networks: write from 192.168.1.10 passes once networks is null",
		"profile": "operator",
		"data": {"risk_classes": {"write": {"networks": null}}},
		"set": object.union(plain_call("files", "write_file"), {"context": {"ip": "192.168.1.10"}}),
		"expect": allowed(risk_of("write", "catalog")),
	},
	{
		"note": "null drops every requirement of read: tools/list passes for a bare authenticated subject",
		"data": {"risk_classes": {"read": {"scopes_any": null, "device_trust": null, "max_auth_age_s": null}}},
		"set": method_call("tools/list"),
		"remove": ["subject/properties/scopes", "subject/properties/acr", "subject/properties/auth_time", "subject/properties/auth_age_s", "context/device"],
		"expect": allowed(risk_of("read", "method")),
	},
	{
		"note": "a risk class set to null is not a class without requirements: risk_class_undefined",
		"data": {"risk_classes": {"write": null}},
		"set": method_call("logging/setLevel"),
		"expect": denied(["risk_class_undefined"], risk_of("write", "method")),
	},
	# networks: IPv6 and malformed addresses.
	{
		"note": "networks: an IPv6 address inside an IPv6 network passes",
		"data": {"risk_classes": {"destructive": {"networks": ["10.0.0.0/8", "2001:db8::/32"]}}},
		"set": {"context": {"ip": "2001:db8::1"}},
		"expect": allowed(risk_of("destructive", "unknown_tool")),
	},
	{
		"note": "networks: an IPv6 address outside every network is denied",
		"data": {"risk_classes": {"destructive": {"networks": ["10.0.0.0/8"]}}},
		"set": {"context": {"ip": "::1"}},
		"expect": denied(["network_denied"], risk_of("destructive", "unknown_tool")),
	},
	{
		"note": "networks: a malformed ip is denied",
		"data": {"risk_classes": {"destructive": {"networks": ["10.0.0.0/8"]}}},
		"set": {"context": {"ip": "10.1.2.3.4"}},
		"expect": denied(["network_denied"], risk_of("destructive", "unknown_tool")),
	},
	# Hostile or incomplete subjects.
	{
		"note": "authenticated subject without scopes, acr or auth age: all fail closed",
		"remove": ["subject/properties/scopes", "subject/properties/acr", "subject/properties/auth_time", "subject/properties/auth_age_s"],
		"expect": denied_step_up(["acr_insufficient", "auth_too_old", "scope_missing"], risk_of("destructive", "unknown_tool"), {"scopes": ["mcp:admin"], "acr_values": ["mfa"], "max_age": 900}),
	},
	{
		"note": "no subject.properties: not authenticated, so token_missing alone",
		"remove": ["subject/properties"],
		"expect": denied(["token_missing"], risk_of("destructive", "unknown_tool")),
	},
	{
		"note": "no subject at all: token_missing",
		"remove": ["subject"],
		"expect": denied(["token_missing"], risk_of("destructive", "unknown_tool")),
	},
	{
		"note": "scopes as a space-separated string (not an array) grant nothing",
		"set": {"subject": {"properties": {"scopes": "mcp:read mcp:write mcp:admin"}}},
		"expect": denied_step_up(["scope_missing"], risk_of("destructive", "unknown_tool"), {"scopes": ["mcp:admin"]}),
	},
	{
		"note": "scopes as a single string equal to the required scope still grant nothing",
		"set": {"subject": {"properties": {"scopes": "mcp:admin"}}},
		"expect": denied_step_up(["scope_missing"], risk_of("destructive", "unknown_tool"), {"scopes": ["mcp:admin"]}),
	},
	{
		"note": "scopes as an object grant nothing, not even its values",
		"set": {"subject": {"properties": {"scopes": {"admin": "mcp:admin"}}}},
		"expect": denied_step_up(["scope_missing"], risk_of("destructive", "unknown_tool"), {"scopes": ["mcp:admin"]}),
	},
	{
		"note": "auth_age_s null counts as unknown, not as fresh",
		"set": {"subject": {"properties": {"auth_age_s": null}}},
		"expect": denied_step_up(["auth_too_old"], risk_of("destructive", "unknown_tool"), {"max_age": 900}),
	},
	{
		"note": "auth_age_s as a string counts as unknown, even a small one",
		"set": {"subject": {"properties": {"auth_age_s": "5"}}},
		"expect": denied_step_up(["auth_too_old"], risk_of("destructive", "unknown_tool"), {"max_age": 900}),
	},
	{
		"note": "auth_age_s false counts as unknown",
		"set": {"subject": {"properties": {"auth_age_s": false}}},
		"expect": denied_step_up(["auth_too_old"], risk_of("destructive", "unknown_tool"), {"max_age": 900}),
	},
	{
		"note": "an auth_time an hour in the future (auth_age_s -3600) is not credible, so not fresh",
		"set": {"subject": {"properties": {"auth_age_s": -3600}}},
		"expect": denied_step_up(["auth_too_old"], risk_of("destructive", "unknown_tool"), {"max_age": 900}),
	},
	{
		"note": "an auth_time within the 60 s clock skew ahead of the PDP still counts as fresh",
		"set": {"subject": {"properties": {"auth_age_s": -60}}},
		"expect": {"allow": true, "reasons": [], "risk": risk_of("destructive", "unknown_tool"), "obligations": {}},
	},
	{
		"note": "acr null is not mfa",
		"set": {"subject": {"properties": {"acr": null}}},
		"expect": denied_step_up(["acr_insufficient"], risk_of("destructive", "unknown_tool"), {"acr_values": ["mfa"]}),
	},
	# Hostile or incomplete contexts.
	{
		"note": "no context at all (default profile): device fails closed",
		"remove": ["context"],
		"expect": denied(["device_untrusted"], risk_of("destructive", "unknown_tool")),
	},
	{
		"note": "no context at all (operator profile, write): device, network fail closed",
		"profile": "operator",
		"set": object.union(plain_call("files", "write_file"), scopes(["mcp:write"])),
		"remove": ["context"],
		"expect": denied(["device_untrusted", "network_denied"], risk_of("write", "catalog")),
	},
	{
		"note": "no context at all (operator profile, destructive): device, network, location and hours fail closed",
		"profile": "operator",
		"data": {"risk_classes": {"destructive": {"networks": ["10.0.0.0/8"], "countries": ["DE"]}}},
		"remove": ["context"],
		"expect": denied(["device_untrusted", "location_denied", "network_denied", "outside_hours"], risk_of("destructive", "unknown_tool")),
	},
	{
		"note": "device trust null is not a trusted device",
		"set": {"context": {"device": {"trust": null}}},
		"expect": denied(["device_untrusted"], risk_of("destructive", "unknown_tool")),
	},
	{
		"note": "device as a string instead of an object is 'unknown'",
		"set": {"context": {"device": "compliant"}},
		"expect": denied(["device_untrusted"], risk_of("destructive", "unknown_tool")),
	},
]

test_requirements if table_passes(requirement_rows)

test_requirement_messages if {
	admin_messages({
		"profile": "operator",
		"remove": ["context"],
		"data": {"risk_classes": {"destructive": {"networks": ["10.0.0.0/8"], "countries": ["DE"]}}},
	}) == {
		`device trust unknown is not one of ["compliant"]`,
		`client address unknown is outside the allowed networks`,
		`country unknown is not one of ["DE"]`,
		`hour unknown UTC is outside [7, 19)`,
	}
	admin_messages({"remove": ["subject/properties/scopes", "subject/properties/acr", "subject/properties/auth_time", "subject/properties/auth_age_s"]}) == {
		`requires the scopes ["mcp:admin"]`,
		`acr none is not one of ["mfa"]`,
		`authentication age unknown s exceeds 900 s`,
	}
	admin_messages({"profile": "operator", "set": time_at(at(20, 0, 0))}) == {`hour 20 UTC is outside [7, 19)`}
}

# Every denial carries a user message safe to show the end user.
test_every_code_has_a_user_message if {
	codes := {
		"method_unknown", "method_denied", "tool_unknown", "risk_class_undefined", "scope_missing", "device_untrusted",
		"auth_too_old", "acr_insufficient", "network_denied", "location_denied", "outside_hours",
	}
	every code in codes {
		data.mcp.authz.user_messages[code]
	}
}

# Token failures the PDP reports reach the client with a user message, known
# codes with their own, any other with a generic one.
test_token_errors_have_user_messages if {
	data.mcp.authz.user_message("token_expired") == "Your session has expired; please sign in again."
	data.mcp.authz.user_message("token_bad_signature") == "Your access could not be verified."
}

# Step-up is offered exactly when the request is denied and every denial is
# scope, acr or auth age: checked on the actual decisions of every shared case
# and every unit row.
all_decisions contains [note, dec] if {
	some [_, _, c, p] in all_cases
	dec := decide(c.input, profiles[p])
	note := c.note
}

all_decisions contains [row.note, dec] if {
	some rows in [method_rows, risk_rows, requirement_rows]
	some row in rows
	dec := decide(row_input(row), row_data(row))
}

step_up_codes := {"scope_missing", "acr_insufficient", "auth_too_old"}

offers_step_up(dec) if dec.obligations.step_up

should_offer(dec) if {
	not dec.allow
	codes := {r.code | some r in dec.reasons}
	count(codes) > 0
	count(codes - step_up_codes) == 0
}

step_up_violations contains sprintf("%q offers step-up but should not", [note]) if {
	some [note, dec] in all_decisions
	offers_step_up(dec)
	not should_offer(dec)
}

step_up_violations contains sprintf("%q should offer step-up but does not", [note]) if {
	some [note, dec] in all_decisions
	should_offer(dec)
	dec.obligations == {}
}

test_step_up_only_when_every_denial_is_fixable if {
	count(all_decisions) > 100
	every v in step_up_violations {
		print(v)
	}
	count(step_up_violations) == 0
}

# show() and quote() render values as OPA's %v and %q did, without relying on
# sprintf verbs that opa-wasm's JavaScript sprintf lacks or mishandles.
test_show_and_quote if {
	data.mcp.authz.show("unknown") == "unknown"
	data.mcp.authz.show(null) == "null"
	data.mcp.authz.show(900) == "900"
	data.mcp.authz.show(false) == "false"
	data.mcp.authz.show([]) == "[]"
	data.mcp.authz.show(["compliant", "managed"]) == `["compliant", "managed"]`
	data.mcp.authz.show({"a": 1}) == `{"a":1}`
	data.mcp.authz.quote("x/y") == `"x/y"`
	data.mcp.authz.quote(null) == "null"
}
