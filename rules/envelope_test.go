package rules

// Envelope is a whole transaction at once, for table tests: the fields a
// test sets, driven through the same Tx the milter and explain use.
type Envelope struct {
	Client          Client
	SizeParam, Size int64
	Sender          string
	HeaderFrom      string
	Recipients      []string
	Rand            func(n int) int
}

// decide runs env through a transaction without rolling limits.
func decide(rs *Ruleset, env Envelope) Decision {
	t := rs.Begin(env.Client, env.Sender, env.SizeParam, nil)
	for _, r := range env.Recipients {
		t.Rcpt(RcptIn{Raw: r})
	}
	return t.End(Message{HeaderFrom: env.HeaderFrom, Size: env.Size, Rand: env.Rand})
}

// checkRcpt gives env's recipients to a transaction, then rcpt, and
// returns rcpt's verdict as recorded.
func checkRcpt(rs *Ruleset, env Envelope, rcpt string, lim Limiter) Recipient {
	t := rs.Begin(env.Client, env.Sender, env.SizeParam, lim)
	for _, r := range env.Recipients {
		t.Rcpt(RcptIn{Raw: r})
	}
	t.Rcpt(RcptIn{Raw: rcpt})
	return t.rcpts[len(t.rcpts)-1]
}
