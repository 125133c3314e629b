# Derived values shared by the decision rules. Every value is read with an explicit fallback so a
# missing input field can never make a rule undefined in a way that flips a `not` check.
package policy.assistant.v1

import rego.v1

section(name) := object.get(input, name, {})

actor_id := object.get(section("actor"), "id", "")

actor_tenant := object.get(section("actor"), "tenant_id", "")

roles := object.get(section("actor"), "roles", [])

action_type := object.get(section("action"), "type", "")

env := lower(object.get(section("context"), "environment", ""))

context_tenant := object.get(section("context"), "tenant_id", "")

risk_level := object.get(section("risk"), "level", "")

blast_radius := object.get(section("risk"), "blast_radius", "")

targets := object.get(section("risk"), "targets", 0)

is_read if action_type == "read"

is_write if action_type == "write"

authenticated if actor_id != ""

break_glass if object.get(section("resources"), "break_glass", false) == true

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
plan_action if object.get(section("action"), "name", "") in {"plan.create", "plan.execute"}

verification := object.get(section("resources"), "verification", {})

verified_plan if object.get(verification, "verify_steps_with_expectations", 0) > 0
