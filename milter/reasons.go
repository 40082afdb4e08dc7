package milter

// RejectReasons are every reason label Observer.Rejected is called with
// (see rejectLabel), so that metrics can export each at zero from the
// start.
var RejectReasons = []string{
	"relay_denied", "invalid_credentials", "sending_denied", "tls_required",
	"too_many_recipients", "user_daily_limit", "org_daily_limit", "org_peak_limit",
	"message_size", "multi_recipient_bounce", "routing_namespace", "other",
}

// Outcomes are every outcome Observer.Message is called with.
var Outcomes = []string{"accept", "tempfail", "reject"}
