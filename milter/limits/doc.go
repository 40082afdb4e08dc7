// Package limits keeps the relay limit counters that rules.Limiter
// reserves against: exact at the edges (check and reservation in one
// atomic step; only committed, that is accepted, mail counts), durable in
// an embedded bbolt file under [state] dir, or shared by a fleet of
// gateways in Redis.
//
// Precision: the per-user windows and the organisation's 24-hour window
// roll per minute, the organisation's 10-minute window per 10 seconds. An
// entry counted at 12:00:30 leaves the 24-hour window at 12:00 the next
// day (at most a minute early).
//
// Memory (embedded store, measured by BenchmarkMemory): per tracked user
// about 250 bytes plus 8 bytes per minute in which the user sent, plus
// about 30 bytes per unique recipient (a 64-bit FNV-1a hash of the
// normalised address and the minute it was last seen; two recipients of
// one user collide with probability ~n²/2⁶⁵, 3·10⁻¹² at 10,000). Users are
// forgotten when their windows are empty. A user is therefore bounded by
// 1,440 minutes and user_recipients_per_day unique recipients.
package limits
