# Rego unit tests for the blast-radius rules (policies/write_blast_radius.rego).
package policy.assistant.v1_test

import rego.v1

import data.policy.assistant.v1 as p

blast_planner := {"id": "alice", "roles": ["operator"], "tenant_id": "acme"}

blast_plan_write(env, level, blast) := {
	"actor": blast_planner,
	"action": {"name": "plan.create", "type": "write"},
	"context": {"tenant_id": "acme", "environment": env},
	"resources": {"break_glass": false, "verification": {"verify_steps_with_expectations": 1}},
	"risk": {"level": level, "blast_radius": "namespace", "targets": 1},
	"blast_radius": blast,
}

blast_small := {"unknown": false, "services": 3, "namespaces": 1, "teams": 1, "rps": 12.5, "tier": "medium", "targets": 1}

blast_unknown_estimate := {"unknown": true, "services": 0, "namespaces": 0, "teams": 0, "rps": 0, "tier": "", "targets": 1}

test_unknown_blast_radius_on_a_production_write_needs_approval if {
	inp := blast_plan_write("prod", "medium", blast_unknown_estimate)
	p.decision == "require_approval" with input as inp
	"unknown_blast_radius" in p.reasons with input as inp
	not p.constraints.approvals_required with input as inp
}

test_a_known_small_blast_radius_adds_nothing if {
	inp := blast_plan_write("prod", "medium", blast_small)
	not "unknown_blast_radius" in p.reasons with input as inp
	not "large_blast_radius" in p.reasons with input as inp
	not p.constraints.approvals_required with input as inp
}

test_unknown_outside_production_changes_nothing if {
	p.decision == "allow" with input as blast_plan_write("dev", "low", blast_unknown_estimate)
}

test_an_estimate_missing_its_unknown_flag_counts_as_unknown if {
	inp := blast_plan_write("prod", "medium", {"services": 1})
	"unknown_blast_radius" in p.reasons with input as inp
}

test_no_estimate_leaves_other_decisions_alone if {
	inp := object.remove(blast_plan_write("prod", "medium", blast_small), ["blast_radius"])
	not "unknown_blast_radius" in p.reasons with input as inp
	not p.constraints.approvals_required with input as inp
}

test_traffic_services_or_tier_over_the_thresholds_need_two_approvers if {
	every blast in [
		object.union(blast_small, {"rps": 100}),
		object.union(blast_small, {"services": 10}),
		object.union(blast_small, {"tier": "critical"}),
	] {
		p.constraints.approvals_required == 2 with input as blast_plan_write("prod", "medium", blast)
		"large_blast_radius" in p.reasons with input as blast_plan_write("prod", "medium", blast)
	}
	not p.constraints.approvals_required with input as blast_plan_write("prod", "medium", object.union(blast_small, {"rps": 99.9}))
	not p.constraints.approvals_required with input as blast_plan_write("staging", "medium", object.union(blast_small, {"rps": 500}))
}

test_a_large_blast_radius_with_high_risk_still_asks_for_two if {
	p.constraints.approvals_required == 2 with input as blast_plan_write("prod", "high", object.union(blast_small, {"services": 40}))
}
