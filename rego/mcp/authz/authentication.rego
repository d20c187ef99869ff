package mcp.authz

import rego.v1

# The PDP verifies the caller's token (or trusts a gateway that asserted the
# subject) before evaluation, and records the outcome in subject.properties:
# authenticated (true or false) and, when false, token_error {code, message}.
# Only an explicit true counts as authenticated.
authenticated if input.subject.properties.authenticated == true

# Methods anonymous callers may use (data.anonymous_methods, globs), e.g. ping.
# Their rule's requirements still apply.
anonymous_allowed if {
	not authenticated
	some pattern in data.anonymous_methods
	glob.match(pattern, ["/"], method)
}

# An unauthenticated request is denied for that reason alone: requirements on
# scopes, acr or device say nothing useful about a caller nobody identified.
authentication_denial := deny(token_error_code, token_error_message) if {
	not authenticated
	not anonymous_allowed
}

token_error_code := code if {
	code := input.subject.properties.token_error.code
	is_string(code)
} else := "token_missing"

token_error_message := message if {
	message := input.subject.properties.token_error.message
	is_string(message)
} else := "the request carries no verified identity"
