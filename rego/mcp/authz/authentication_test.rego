package mcp.authz_test

import rego.v1

# Authentication outcomes the PDP records in subject.properties, and
# data.anonymous_methods. base_input is authenticated and allowed.
authentication_rows := [
	{
		"note": "a token error reported by the PDP is the only reason, with no step-up",
		"set": {"subject": {"properties": {"authenticated": false, "token_error": {"code": "token_expired", "message": "exp passed"}}}},
		"expect": denied(["token_expired"], risk_of("destructive", "unknown_tool")),
	},
	{
		"note": "no authenticated flag at all: token_missing",
		"remove": ["subject/properties/authenticated"],
		"expect": denied(["token_missing"], risk_of("destructive", "unknown_tool")),
	},
	{
		"note": "authenticated must be exactly true, not a truthy string",
		"set": {"subject": {"properties": {"authenticated": "true"}}},
		"expect": denied(["token_missing"], risk_of("destructive", "unknown_tool")),
	},
	{
		"note": "a token_error whose code is not a string falls back to token_missing",
		"set": {"subject": {"properties": {"authenticated": false, "token_error": {"code": 401}}}},
		"expect": denied(["token_missing"], risk_of("destructive", "unknown_tool")),
	},
	{
		"note": "anonymous ping is denied by default (anonymous_methods is empty)",
		"set": object.union(method_call("ping"), {"subject": {"properties": {"authenticated": false}}}),
		"expect": denied(["token_missing"], null),
	},
	{
		"note": "anonymous ping is allowed when the operator lists it",
		"data": {"anonymous_methods": ["ping"]},
		"set": object.union(method_call("ping"), {"subject": {"properties": {"authenticated": false}}}),
		"expect": allowed(null),
	},
	{
		"note": "anonymous_methods takes globs",
		"data": {"anonymous_methods": ["notifications/*"]},
		"set": object.union(method_call("notifications/initialized"), {"subject": {"properties": {"authenticated": false}}}),
		"expect": allowed(null),
	},
	{
		"note": "listing ping does not open tools/call to anonymous callers",
		"data": {"anonymous_methods": ["ping"]},
		"set": {"subject": {"properties": {"authenticated": false}}},
		"expect": denied(["token_missing"], risk_of("destructive", "unknown_tool")),
	},
	{
		"note": "an anonymous method's requirements still apply (tools/list needs read's scopes)",
		"data": {"anonymous_methods": ["tools/list"]},
		"set": object.union(method_call("tools/list"), {"subject": {"properties": {"authenticated": false}}}),
		"remove": ["subject/properties/scopes"],
		"expect": denied_step_up(["scope_missing"], risk_of("read", "method"), {"scopes": ["mcp:read"]}),
	},
]

test_authentication if table_passes(authentication_rows)

test_authentication_message if {
	dec := decide(row_input({"set": {"subject": {"properties": {"authenticated": false, "token_error": {"code": "token_wrong_audience", "message": "aud is not https://mcp.example.com"}}}}}), row_data({}))
	dec.reasons == [{
		"code": "token_wrong_audience",
		"admin": "aud is not https://mcp.example.com",
		"user": "Your access could not be verified.",
	}]
}
