# The decision, constraints, ttl and reasons that Carapulse reads (together as `outputs`).
#
# Deny by default. Reads are allowed for authenticated actors of the right tenant. Writes are
# allowed outright only when low risk, outside production, not account-wide and not break-glass;
# every other write that passes the deny checks requires approval.
package policy.assistant.v1

import rego.v1

no_deny_reasons if count(deny_reasons) == 0

default decision := "deny"

decision := "allow" if {
	no_deny_reasons
	is_read
}

decision := "allow" if {
	no_deny_reasons
	low_write_allowed
}

decision := "require_approval" if {
	no_deny_reasons
	is_write
	not low_write_allowed
}

reasons := deny_reasons if not no_deny_reasons

reasons := approval_reasons if {
	no_deny_reasons
	is_write
	not low_write_allowed
}

reasons := set() if {
	no_deny_reasons
	is_read
}

reasons := set() if {
	no_deny_reasons
	low_write_allowed
}

default ttl := 0

ttl := 300 if {
	no_deny_reasons
	is_read
}

# Everything Carapulse reads, as one rule: the compiled (RVM) path evaluates this single entry
# point, so shared rules are computed once per decision. Undefined members fall back to empty.
default output_reasons := set()

output_reasons := reasons

outputs := {
	"decision": decision,
	"constraints": constraints,
	"ttl": ttl,
	"reasons": output_reasons,
}
