package mcp.authz

import rego.v1

# Every failed requirement is one denial: a stable code, a message for the
# operator (admin) and one safe to show the end user (user).

denials contains deny("method_unknown", concat("", ["no rule for MCP method ", quote(method), " and unknown_method is deny"])) if {
	method_rule == "deny"
	method_unknown_rule
}

denials contains deny("method_unknown", "the request names no MCP method") if not method

denials contains deny("method_denied", concat("", ["MCP method ", quote(method), " is denied by configuration"])) if {
	method_rule == "deny"
	not method_unknown_rule
}

method_unknown_rule if {
	not data.methods[method]
	count(glob_rules) == 0
}

denials contains deny("tool_unknown", concat("", ["tool ", quote(tool_label), " is not in the catalog and unknown_tool is deny"])) if tool_unknown

denials contains deny("risk_class_undefined", concat("", ["risk class ", quote(required_class), " has no entry in risk_classes"])) if {
	required_class
	not required_rule
}

denials contains deny("scope_missing", concat("", ["requires one of the scopes ", show(required_rule.scopes_any)])) if {
	is_array(required_rule.scopes_any)
	count({s | some s in required_rule.scopes_any; s in subject_scopes}) == 0
}

denials contains deny("scope_missing", concat("", ["requires the scopes ", show(sort(missing_all_scopes))])) if {
	count(missing_all_scopes) > 0
}

missing_all_scopes := {s |
	is_array(required_rule.scopes_all)
	some s in required_rule.scopes_all
	not s in subject_scopes
}

denials contains deny("device_untrusted", concat("", ["device trust ", show(device_trust), " is not one of ", show(required_rule.device_trust)])) if {
	is_array(required_rule.device_trust)
	not device_trust in required_rule.device_trust
}

denials contains deny("auth_too_old", concat("", ["authentication age ", show(auth_age), " s exceeds ", show(required_rule.max_auth_age_s), " s"])) if {
	is_number(required_rule.max_auth_age_s)
	not auth_fresh
}

# Only a number can be fresh: Rego orders null and false below every number.
# An auth_time in the future (beyond clock skew between the IdP and the PDP)
# is not credible, so it proves nothing about freshness.
auth_fresh if {
	is_number(auth_age)
	auth_age >= 0 - auth_time_skew_s
	auth_age <= required_rule.max_auth_age_s
}

auth_time_skew_s := 60

denials contains deny("acr_insufficient", concat("", ["acr ", show(acr), " is not one of ", show(required_rule.acr)])) if {
	is_array(required_rule.acr)
	not acr in required_rule.acr
}

denials contains deny("network_denied", concat("", ["client address ", show(client_ip), " is outside the allowed networks"])) if {
	is_array(required_rule.networks)
	not in_allowed_network
}

in_allowed_network if {
	some cidr in required_rule.networks
	net.cidr_contains(cidr, input.context.ip)
}

denials contains deny("location_denied", concat("", ["country ", show(country), " is not one of ", show(required_rule.countries)])) if {
	is_array(required_rule.countries)
	not country in required_rule.countries
}

denials contains deny("outside_hours", concat("", ["hour ", show(hour_label), " UTC is outside [", show(required_rule.hours_utc[0]), ", ", show(required_rule.hours_utc[1]), ")"])) if {
	is_array(required_rule.hours_utc)
	not within_hours
}

# [start, end) in UTC hours; start > end spans midnight (e.g. [22, 6]).
within_hours if {
	[start, end] := required_rule.hours_utc
	start <= end
	start <= hour_utc
	hour_utc < end
}

within_hours if {
	[start, end] := required_rule.hours_utc
	start > end
	hour_utc >= start
}

within_hours if {
	[start, end] := required_rule.hours_utc
	start > end
	hour_utc < end
}

# Facts about the request, with "unknown" where the caller did not send one,
# so that messages stay readable and checks stay closed. Paths start at input
# so that a missing subject.properties or context still yields the default.
# Only an array holds scopes: iterating an object would grant its values.
subject_scopes := {s |
	is_array(input.subject.properties.scopes)
	some s in input.subject.properties.scopes
}

device_trust := object.get(input, ["context", "device", "trust"], "unknown")

auth_age := object.get(input, ["subject", "properties", "auth_age_s"], "unknown")

acr := object.get(input, ["subject", "properties", "acr"], "none")

client_ip := object.get(input, ["context", "ip"], "unknown")

country := object.get(input, ["context", "location", "country"], "unknown")

# The PDP sets context.time from its own clock; policies never read a clock.
hour_utc := floor((input.context.time.unix_s % 86400) / 3600)

hour_label := hour_utc

hour_label := "unknown" if not hour_utc

step_up_scopes contains s if {
	"scope_missing" in denial_codes
	is_array(required_rule.scopes_any)
	count({x | some x in required_rule.scopes_any; x in subject_scopes}) == 0
	s := required_rule.scopes_any[0]
}

step_up_scopes contains s if some s in missing_all_scopes

deny(code, admin) := {"code": code, "admin": admin, "user": user_message(code)}

user_message(code) := user_messages[code]

user_message(code) := "Your access could not be verified." if not user_messages[code]

# Messages are built with concat and json.marshal, which the Wasm module runs
# natively. sprintf would call out to JavaScript (opa-wasm's sprintf-js) for
# every denial, several times slower, and sprintf-js has no %q and throws on
# %v of null. show(x) renders x as OPA's %v does for the values used here;
# quote(x) as %q does for a plain string.
show(x) := x if is_string(x)

show(x) := concat("", ["[", concat(", ", [json.marshal(e) | some e in x]), "]"]) if is_array(x)

show(x) := json.marshal(x) if {
	not is_string(x)
	not is_array(x)
}

quote(x) := json.marshal(x)

user_messages := {
	"method_unknown": "This operation is not permitted.",
	"method_denied": "This operation is not permitted.",
	"tool_unknown": "This tool is not available to you.",
	"risk_class_undefined": "This tool is not available because of a configuration problem.",
	"scope_missing": "Your access token lacks a permission this tool requires.",
	"device_untrusted": "This tool is not available from this device.",
	"auth_too_old": "Please sign in again to use this tool.",
	"acr_insufficient": "This tool requires a stronger sign-in, such as multi-factor authentication.",
	"network_denied": "This tool is not available from your network.",
	"location_denied": "This tool is not available from your location.",
	"outside_hours": "This tool is not available at this time.",
	"token_missing": "Please sign in.",
	"token_expired": "Your session has expired; please sign in again.",
	"token_not_yet_valid": "Your access token is not valid yet; check your device clock.",
	"jwks_unavailable": "Sign-in could not be verified right now; please try again shortly.",
}
