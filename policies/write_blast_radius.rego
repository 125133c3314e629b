# Blast radius: who depends on what a plan changes and how much traffic flows through it
# (`input.blast_radius`, estimated from the service graph before policy is asked). An estimate
# that could not be made is `unknown`, never zero. (Named to load after decision.rego: see
# vendor/regorus/CARAPULSE.md.)
package policy.assistant.v1

import rego.v1

# Above any of these a production write needs two different approvers. Change them here; the
# policy what-if and impact tools show what a change would have decided.
blast_two_approvers_rps := 100

blast_two_approvers_services := 10

blast_two_approvers_tiers := {"critical"}

blast_section := object.get(input, "blast_radius", {})

# Only plans carry an estimate; single tool calls and reads do not, and these rules leave them
# alone.
blast_estimated if is_object(input.blast_radius)

blast_unknown if {
	blast_estimated
	object.get(blast_section, "unknown", true) != false
}

blast_known if {
	blast_estimated
	not blast_unknown
}

large_blast_radius if {
	blast_known
	object.get(blast_section, "rps", 0) >= blast_two_approvers_rps
}

large_blast_radius if {
	blast_known
	object.get(blast_section, "services", 0) >= blast_two_approvers_services
}

large_blast_radius if {
	blast_known
	object.get(blast_section, "tier", "") in blast_two_approvers_tiers
}

# Nobody knows who depends on it: a person looks before a production write runs.
approval_reasons contains "unknown_blast_radius" if {
	is_write
	prod_env
	plan_action
	blast_unknown
}

approval_reasons contains "large_blast_radius" if {
	is_write
	prod_env
	plan_action
	large_blast_radius
}

constraint_entries contains ["approvals_required", 2] if {
	is_write
	prod_env
	plan_action
	large_blast_radius
}
