package mcp.authz_test

import rego.v1

# config_errors: every message kind, and none for valid data. Each row's data
# is deep-merged over its profile (default unless named), as the PDP merges
# operator data; expect is the exact set of messages.

config_rows := [
	{
		"note": "the default data.json has no errors",
		"data": {},
		"expect": set(),
	},
	{
		"note": "the example operator file has no errors",
		"profile": "operator",
		"data": {},
		"expect": set(),
	},
	{
		"note": "a class in risk_order without a risk_classes entry",
		"data": {"risk_order": ["read", "write", "critical", "destructive"]},
		"expect": {`risk_order[2]: "critical" has no entry in risk_classes`},
	},
	{
		"note": "a risk_classes entry missing from risk_order",
		"data": {"risk_classes": {"critical": {"scopes_all": ["mcp:root"]}}},
		"expect": {"risk_classes.critical: not listed in risk_order"},
	},
	{
		"note": "a tools entry naming an unknown class",
		"data": {"tools": {"files/*": "admin"}},
		"expect": {`tools["files/*"]: unknown risk class "admin"`},
	},
	{
		"note": "a tools entry cannot be 'deny' (only unknown_tool can)",
		"data": {"tools": {"files/rm": "deny"}},
		"expect": {`tools["files/rm"]: unknown risk class "deny"`},
	},
	{
		"note": "unknown_tool that is neither a class nor deny",
		"data": {"unknown_tool": "block"},
		"expect": {`unknown_tool: "block" is neither a risk class nor "deny"`},
	},
	{
		"note": "unknown_tool 'allow' is not accepted (tools have no open rule)",
		"data": {"unknown_tool": "allow"},
		"expect": {`unknown_tool: "allow" is neither a risk class nor "deny"`},
	},
	{
		"note": "unknown_tool null (an operator dropping it) is an error, not a silent gap",
		"data": {"unknown_tool": null},
		"expect": {`unknown_tool: null is neither a risk class nor "deny"`},
	},
	{
		"note": "unknown_tool 'deny' and a class are both valid",
		"data": {"unknown_tool": "deny", "methods": {"x/*": "deny", "y/*": "destructive"}, "unknown_method": "read"},
		"expect": set(),
	},
	{
		"note": "a methods entry that is neither a class, allow nor deny",
		"data": {"methods": {"tools/list": "public"}},
		"expect": {`methods["tools/list"]: "public" is neither a risk class, "allow" nor "deny"`},
	},
	{
		"note": "unknown_method that is neither a class, allow nor deny",
		"data": {"unknown_method": "reject"},
		"expect": {`unknown_method: "reject" is neither a risk class, "allow" nor "deny"`},
	},
	{
		"note": "networks entries that are not CIDRs: a prefix too long and a bare address",
		"data": {"risk_classes": {"write": {"networks": ["10.0.0.0/8", "10.0.0.0/33", "10.0.0.1"]}}},
		"expect": {
			`risk_classes.write.networks[1]: "10.0.0.0/33" is not a CIDR`,
			`risk_classes.write.networks[2]: "10.0.0.1" is not a CIDR`,
		},
	},
	{
		"note": "IPv6 networks are CIDRs too",
		"data": {"risk_classes": {"write": {"networks": ["2001:db8::/32", "::/0"]}}},
		"expect": set(),
	},
	{
		"note": "hours_utc valid: a day window, a midnight-spanning window, the whole day",
		"data": {"risk_classes": {
			"read": {"hours_utc": [7, 19]},
			"write": {"hours_utc": [22, 6]},
			"destructive": {"hours_utc": [0, 24]},
		}},
		"expect": set(),
	},
	{
		"note": "hours_utc with one element",
		"data": {"risk_classes": {"read": {"hours_utc": [7]}}},
		"expect": {"risk_classes.read.hours_utc: must be [start, end] with whole hours 0..24"},
	},
	{
		"note": "hours_utc with start == end (an empty or full window is ambiguous)",
		"data": {"risk_classes": {"read": {"hours_utc": [7, 7]}}},
		"expect": {"risk_classes.read.hours_utc: must be [start, end] with whole hours 0..24"},
	},
	{
		"note": "hours_utc with a negative start",
		"data": {"risk_classes": {"read": {"hours_utc": [-1, 5]}}},
		"expect": {"risk_classes.read.hours_utc: must be [start, end] with whole hours 0..24"},
	},
	{
		"note": "hours_utc with an end past 24",
		"data": {"risk_classes": {"read": {"hours_utc": [5, 25]}}},
		"expect": {"risk_classes.read.hours_utc: must be [start, end] with whole hours 0..24"},
	},
	{
		"note": "hours_utc with a start past 24",
		"data": {"risk_classes": {"read": {"hours_utc": [30, 5]}}},
		"expect": {"risk_classes.read.hours_utc: must be [start, end] with whole hours 0..24"},
	},
	{
		"note": "hours_utc with a negative end",
		"data": {"risk_classes": {"read": {"hours_utc": [5, -1]}}},
		"expect": {"risk_classes.read.hours_utc: must be [start, end] with whole hours 0..24"},
	},
	{
		"note": "hours_utc with a fractional hour",
		"data": {"risk_classes": {"read": {"hours_utc": [7.5, 19]}}},
		"expect": {"risk_classes.read.hours_utc: must be [start, end] with whole hours 0..24"},
	},
	{
		"note": "hours_utc with strings",
		"data": {"risk_classes": {"read": {"hours_utc": ["7", "19"]}}},
		"expect": {"risk_classes.read.hours_utc: must be [start, end] with whole hours 0..24"},
	},
	{
		"note": "a risk class that is not an object (null would otherwise be a class without requirements)",
		"data": {"risk_classes": {"write": null}},
		"expect": {"risk_classes.write: must be an object"},
	},
	{
		"note": "list requirements given as a string would be skipped: each is an error",
		"data": {"risk_classes": {"write": {"networks": "10.0.0.0/8", "scopes_any": "mcp:write"}}},
		"expect": {
			"risk_classes.write.networks: must be a list or null",
			"risk_classes.write.scopes_any: must be a list or null",
		},
	},
	{
		"note": "every list requirement is type-checked",
		"data": {"risk_classes": {"destructive": {
			"scopes_all": "mcp:admin",
			"device_trust": "compliant",
			"acr": "mfa",
			"countries": "DE",
			"hours_utc": "7-19",
		}}},
		"expect": {
			"risk_classes.destructive.scopes_all: must be a list or null",
			"risk_classes.destructive.device_trust: must be a list or null",
			"risk_classes.destructive.acr: must be a list or null",
			"risk_classes.destructive.countries: must be a list or null",
			"risk_classes.destructive.hours_utc: must be a list or null",
		},
	},
	{
		"note": "max_auth_age_s as a string would be skipped: an error",
		"data": {"risk_classes": {"destructive": {"max_auth_age_s": "900"}}},
		"expect": {"risk_classes.destructive.max_auth_age_s: must be a number or null"},
	},
	{
		"note": "anonymous_methods must be a list of strings",
		"data": {"anonymous_methods": "ping"},
		"expect": {"anonymous_methods: must be a list of method names or globs"},
	},
	{
		"note": "anonymous_methods entries must be strings",
		"data": {"anonymous_methods": ["ping", 7]},
		"expect": {"anonymous_methods: must be a list of method names or globs"},
	},
	{
		"note": "a misspelt requirement key is an error, not a silently dropped constraint",
		"data": {"risk_classes": {"write": {"scope_any": ["mcp:write"]}}},
		"expect": {"risk_classes.write.scope_any: unknown requirement (known: acr, countries, device_trust, hours_utc, max_auth_age_s, networks, scopes_all, scopes_any)"},
	},
	{
		"note": "null drops a requirement and is not an error",
		"profile": "operator",
		"data": {"risk_classes": {
			"write": {"networks": null, "max_auth_age_s": null},
			"destructive": {"hours_utc": null, "acr": null},
		}},
		"expect": set(),
	},
	{
		"note": "several problems are all reported",
		"data": {
			"risk_order": ["read", "destructive"],
			"tools": {"a/b": "write", "c/*": "nope"},
			"unknown_method": "maybe",
		},
		"expect": {
			"risk_classes.write: not listed in risk_order",
			`tools["c/*"]: unknown risk class "nope"`,
			`unknown_method: "maybe" is neither a risk class, "allow" nor "deny"`,
		},
	},
]

config_mismatches contains sprintf("%q:\n  want %v\n  got  %v", [row.note, row.expect, got]) if {
	some row in config_rows
	got := config_errors_for(row_data(row))
	got != row.expect
}

test_config_errors if {
	every m in config_mismatches {
		print(m)
	}
	count(config_mismatches) == 0
}
