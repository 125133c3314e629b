# Writes: what may run without a human, and why the rest needs approval.
package policy.assistant.v1

import rego.v1

# A low-risk, namespace- or cluster-scoped write outside production, without break-glass.
low_write_allowed if {
	is_write
	risk_level == "low"
	not prod_env
	blast_radius != "account"
	not break_glass
}

approval_reasons contains "production_environment" if {
	is_write
	prod_env
}

approval_reasons contains "account_blast_radius" if {
	is_write
	blast_radius == "account"
}

approval_reasons contains sprintf("risk_%s", [risk_level]) if {
	is_write
	risk_level in {"medium", "high"}
}

# A production write plan with no expectation on any verify step would be judged by exit codes
# alone: a person approves it, whatever else policy allows.
approval_reasons contains "unverified_production_write" if {
	is_write
	prod_env
	plan_action
	not verified_plan
}

approval_reasons contains "break_glass" if {
	is_write
	break_glass
}

# Constraints are collected as [key, value] pairs and folded into one object, so the output is a
# complete rule that can be queried by its full path (and is {} when nothing applies).
constraint_entries contains ["break_glass_required", true] if {
	is_write
	risk_level == "high"
}

constraint_entries contains ["break_glass_used", true] if {
	is_write
	break_glass
}

constraint_entries contains ["max_targets", max_prod_targets] if {
	is_write
	prod_env
}

# Two different people approve a production write that is high risk or reaches a whole account:
# the plan stays pending until both have approved the same revision (any denial ends it).
constraint_entries contains ["approvals_required", 2] if {
	is_write
	prod_env
	risk_level == "high"
}

constraint_entries contains ["approvals_required", 2] if {
	is_write
	prod_env
	blast_radius == "account"
}

constraints := {entry[0]: entry[1] | some entry in constraint_entries}
