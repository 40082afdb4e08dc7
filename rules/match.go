package rules

// Matcher is one envelope filter entry: "address:", "pattern:" or "group:".
type Matcher struct {
	Kind  string // address | pattern | group
	Value string // as written after the prefix
	match func(rs *Ruleset, addr string) bool
}
