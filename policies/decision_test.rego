# Rego unit tests for the decision rules; `cargo test -p carapulse-core` runs every test_* rule
# through regorus.
package policy.assistant.v1_test

import rego.v1

import data.policy.assistant.v1 as p

operator := {"id": "alice", "roles": ["operator"], "tenant_id": "acme"}

viewer := {"id": "vic", "roles": ["viewer"], "tenant_id": "acme"}

write_input(actor, env, level, blast, targets) := {
	"actor": actor,
	"action": {"name": "plan.create", "type": "write"},
	"context": {"tenant_id": "acme", "environment": env},
	"resources": {"break_glass": false},
	"risk": {"level": level, "blast_radius": blast, "targets": targets},
}

test_read_allowed_for_authenticated_actor if {
	inp := {"actor": viewer, "action": {"name": "plan.list", "type": "read"}, "context": {"tenant_id": "acme"}}
	p.decision == "allow" with input as inp
	p.ttl == 300 with input as inp
}

test_read_denied_without_actor if {
	inp := {"action": {"name": "plan.list", "type": "read"}}
	p.decision == "deny" with input as inp
	"unauthenticated" in p.reasons with input as inp
	p.ttl == 0 with input as inp
}

test_read_denied_for_other_tenant if {
	inp := {"actor": viewer, "action": {"name": "plan.get", "type": "read"}, "context": {"tenant_id": "other"}}
	p.decision == "deny" with input as inp
	"tenant_mismatch" in p.reasons with input as inp
}

test_unknown_action_type_denied if {
	inp := {"actor": operator, "action": {"name": "x", "type": "execute"}, "context": {"tenant_id": "acme"}}
	p.decision == "deny" with input as inp
}

test_low_write_outside_prod_allowed if {
	p.decision == "allow" with input as write_input(operator, "dev", "low", "namespace", 1)
	count(p.constraints) == 0 with input as write_input(operator, "dev", "low", "namespace", 1)
}

test_medium_write_requires_approval if {
	inp := write_input(operator, "staging", "medium", "namespace", 1)
	p.decision == "require_approval" with input as inp
	"risk_medium" in p.reasons with input as inp
}

test_high_write_requires_approval_and_break_glass if {
	inp := write_input(operator, "dev", "high", "namespace", 1)
	p.decision == "require_approval" with input as inp
	p.constraints.break_glass_required == true with input as inp
}

test_prod_low_write_requires_approval if {
	inp := write_input(operator, "prod", "low", "namespace", 1)
	p.decision == "require_approval" with input as inp
	"production_environment" in p.reasons with input as inp
	p.constraints.max_targets == 10 with input as inp
}

test_prod_high_or_account_write_needs_two_approvers if {
	p.constraints.approvals_required == 2 with input as write_input(operator, "prod", "high", "namespace", 1)
	p.constraints.approvals_required == 2 with input as write_input(operator, "prod", "medium", "account", 1)
	not p.constraints.approvals_required with input as write_input(operator, "prod", "medium", "namespace", 1)
	not p.constraints.approvals_required with input as write_input(operator, "dev", "high", "account", 1)
}

test_production_spelling_counts_as_prod if {
	p.decision == "require_approval" with input as write_input(operator, "production", "low", "namespace", 1)
}

test_account_blast_radius_requires_approval if {
	inp := write_input(operator, "dev", "low", "account", 1)
	p.decision == "require_approval" with input as inp
	"account_blast_radius" in p.reasons with input as inp
}

test_write_without_role_denied if {
	inp := write_input(viewer, "dev", "low", "namespace", 1)
	p.decision == "deny" with input as inp
	"missing_write_role" in p.reasons with input as inp
}

test_unknown_environment_denied if {
	inp := write_input(operator, "nope", "low", "namespace", 1)
	p.decision == "deny" with input as inp
	"unknown_environment" in p.reasons with input as inp
}

test_missing_environment_denied_for_writes if {
	p.decision == "deny" with input as write_input(operator, "", "low", "namespace", 1)
}

test_too_many_prod_targets_denied if {
	inp := write_input(operator, "prod", "medium", "cluster", 11)
	p.decision == "deny" with input as inp
	"too_many_prod_targets" in p.reasons with input as inp
}

test_ten_prod_targets_need_approval if {
	p.decision == "require_approval" with input as write_input(operator, "prod", "medium", "cluster", 10)
}

test_unknown_risk_level_denied if {
	p.decision == "deny" with input as write_input(operator, "dev", "extreme", "namespace", 1)
}

test_write_with_read_risk_denied if {
	p.decision == "deny" with input as write_input(operator, "dev", "read", "namespace", 1)
}

test_break_glass_low_write_requires_approval if {
	inp := object.union(write_input(operator, "dev", "low", "namespace", 1), {"resources": {"break_glass": true}})
	p.decision == "require_approval" with input as inp
	p.constraints.break_glass_used == true with input as inp
}

test_admin_may_write if {
	admin := {"id": "root", "roles": ["admin"], "tenant_id": "acme"}
	p.decision == "allow" with input as write_input(admin, "local", "low", "cluster", 3)
}

test_write_denied_for_other_tenant_even_with_role if {
	other := {"id": "mallory", "roles": ["admin"], "tenant_id": "evil"}
	p.decision == "deny" with input as write_input(other, "dev", "low", "namespace", 1)
}

test_empty_input_denied if {
	p.decision == "deny" with input as {}
}

verified(inp, n) := object.union(inp, {"resources": {"break_glass": false, "verification": {"expectations": n, "verify_steps_with_expectations": n}}})

test_unverified_production_write_plan_needs_approval if {
	inp := verified(write_input(operator, "prod", "low", "namespace", 1), 0)
	p.decision == "require_approval" with input as inp
	"unverified_production_write" in p.reasons with input as inp
}

test_production_plan_without_verification_section_counts_as_unverified if {
	inp := write_input(operator, "prod", "low", "namespace", 1)
	"unverified_production_write" in p.reasons with input as inp
}

test_verified_production_write_plan_has_no_unverified_reason if {
	inp := verified(write_input(operator, "prod", "low", "namespace", 1), 2)
	p.decision == "require_approval" with input as inp
	not "unverified_production_write" in p.reasons with input as inp
	"production_environment" in p.reasons with input as inp
}

test_unverified_write_outside_production_is_not_flagged if {
	inp := verified(write_input(operator, "dev", "low", "namespace", 1), 0)
	p.decision == "allow" with input as inp
}

test_unverified_rule_leaves_single_tool_calls_alone if {
	inp := object.union(write_input(operator, "prod", "low", "namespace", 1), {"action": {"name": "tool.execute", "type": "write"}})
	not "unverified_production_write" in p.reasons with input as inp
}
