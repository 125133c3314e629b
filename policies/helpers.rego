# Derived values shared by the decision rules. Every value is read with an explicit fallback so a
# missing input field can never make a rule undefined in a way that flips a `not` check.
package policy.assistant.v1

import rego.v1

# Each input section once per decision: rules are evaluated once and reused, a function would be
# called again at every use (and the compiled path pays for every call).
actor_section := object.get(input, "actor", {})

action_section := object.get(input, "action", {})

context_section := object.get(input, "context", {})

risk_section := object.get(input, "risk", {})

resources_section := object.get(input, "resources", {})

actor_id := object.get(actor_section, "id", "")

actor_tenant := object.get(actor_section, "tenant_id", "")

roles := object.get(actor_section, "roles", [])

action_type := object.get(action_section, "type", "")

env := lower(object.get(context_section, "environment", ""))

context_tenant := object.get(context_section, "tenant_id", "")

risk_level := object.get(risk_section, "level", "")

blast_radius := object.get(risk_section, "blast_radius", "")

targets := object.get(risk_section, "targets", 0)

is_read if action_type == "read"

is_write if action_type == "write"

authenticated if actor_id != ""

break_glass if object.get(resources_section, "break_glass", false) == true

writer_roles := {"operator", "admin"}

has_write_role if {
	some role in roles
	role in writer_roles
}

known_environments := {"local", "dev", "development", "test", "staging", "prod", "production"}

known_environment if env in known_environments

prod_env if env in {"prod", "production"}

write_risk_levels := {"low", "medium", "high"}

known_write_risk if risk_level in write_risk_levels

# Plan decisions carry what the plan's steps verify (`resources.verification`); other decisions
# (a single tool call, a read) do not, and the verification rules leave them alone.
plan_action if object.get(action_section, "name", "") in {"plan.create", "plan.execute"}

verification := object.get(resources_section, "verification", {})

verified_plan if object.get(verification, "verify_steps_with_expectations", 0) > 0
