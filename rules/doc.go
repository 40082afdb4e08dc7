// Package rules is splitrelay's rule engine: it loads the TOML configuration
// into prepared, immutable structures (Load) and turns an envelope into a
// per-recipient decision (Ruleset.Decide).
//
// The package is pure on purpose: no sockets, no files (users_files are read
// through the Files interface the caller passes), no logging and no clock, so
// every decision it makes can be reproduced by a table test or by
// `splitrelay explain` without an MTA.
//
// Precedence of split-delivery rules (Google does not document its own; this
// is ours): rules are evaluated in file order; for each recipient the first
// matching rule that changes the route wins; every matching dual-delivery
// rule (also_deliver = true) adds one copy via its route, at most one copy
// per route, and never a copy via the route the recipient already takes.
package rules
