# METADATA
# title: MCP tool-call authorization
# description: |
#   The default mcp-pdp policy. It answers one decision document for an
#   AuthZEN-shaped input (subject, action, resource, context). Everything an
#   operator tunes lives in data (risk_order, risk_classes, tools,
#   trusted_servers, unknown_tool, methods, unknown_method,
#   anonymous_methods); see README.
package mcp.authz

import rego.v1

# The one document the PDP evaluates (entrypoint mcp/authz/decision).
decision := {
	"allow": allow,
	"reasons": reasons,
	"risk": risk,
	"obligations": obligations,
}

# Default deny: a request is allowed only when its subject is authenticated
# (or the method is open to anonymous callers), the method resolved to a rule
# that grants it, and no requirement of that rule failed.
default allow := false

allow if {
	authenticated
	granted
	count(denials) == 0
}

allow if {
	anonymous_allowed
	granted
	count(denials) == 0
}

# What the answer reports: the authentication failure alone, or the failed
# requirements.
final_denials := {authentication_denial} if authentication_denial

else := denials

# Granted when the method is open ("allow") or a risk class applies to it.
granted if method_rule == "allow"

granted if required_class

# Ordered by code, so that clients and logs see a stable order.
reasons := [d |
	some code in sort(denial_codes)
	some d in final_denials
	d.code == code
]

# Step-up is offered only when every failed requirement is one the caller can
# fix by re-authenticating (more scopes, a stronger acr, a fresh login); a
# step-up that could not turn the deny into an allow would mislead the client.
obligations := {"step_up": step_up} if {
	not allow
	count(final_denials) > 0
	every d in final_denials {
		d.code in step_up_codes
	}
} else := {}

step_up_codes := {"scope_missing", "acr_insufficient", "auth_too_old"}

step_up["scopes"] := sort(step_up_scopes) if count(step_up_scopes) > 0

step_up["acr_values"] := required_rule.acr if "acr_insufficient" in denial_codes

step_up["max_age"] := required_rule.max_auth_age_s if "auth_too_old" in denial_codes

denial_codes := {d.code | some d in final_denials}
