# Reasons to deny outright. Any reason present makes the decision `deny`.
package policy.assistant.v1

import rego.v1

# Hard cap on how many production objects one write may touch.
max_prod_targets := 10

deny_reasons contains "unauthenticated" if not authenticated

deny_reasons contains "unknown_action_type" if {
	not is_read
	not is_write
}

deny_reasons contains "tenant_mismatch" if {
	context_tenant != ""
	context_tenant != actor_tenant
}

deny_reasons contains "missing_write_role" if {
	is_write
	not has_write_role
}

deny_reasons contains "unknown_environment" if {
	is_write
	not known_environment
}

deny_reasons contains "unknown_risk_level" if {
	is_write
	not known_write_risk
}

deny_reasons contains "too_many_prod_targets" if {
	is_write
	prod_env
	targets > max_prod_targets
}
