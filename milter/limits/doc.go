// Package limits keeps the relay limit counters that rules.Limiter
// reserves against: exact at the edges (check and reservation in one
// atomic step; only committed, that is accepted, mail counts), durable in
// an embedded bbolt file under [state] dir, or shared by a fleet of
// gateways in Redis. A gateway that counts alone while Redis is down
// (redis_unavailable = "local") pushes that usage to Redis when it is
// back (redis_push.go), so that the fleet's limits include it.
//
// Precision: the per-user windows and the organisation's 24-hour window
// roll per minute, the organisation's 10-minute window per 10 seconds. An
// entry counted at 12:00:30 leaves the 24-hour window at 12:00 the next
// day (at most a minute early).
//
// Memory (embedded store, BenchmarkMemory at 100k active users): about
// 360 bytes per tracked user with one message (map entry, maps, one
// per-minute bucket; 8 more bytes per further minute in which the user
// sent) and about 24 bytes per unique recipient (a 64-bit FNV-1a hash of
// the normalised address and the minute it was last seen, in a Go map; two
// recipients of one user collide with probability ~n²/2⁶⁵, 3·10⁻¹² at
// 10,000). Users are forgotten when their windows are empty, so a user is
// bounded by 1,440 minutes and user_recipients_per_day unique recipients:
// 100k users with 21 recipients each take 82 MiB.
package limits
