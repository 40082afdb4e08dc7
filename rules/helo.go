package rules

import "strings"

// Seed 003 asks relay clients for a unique HELO/EHLO name (their domain or
// server name) instead of generic ones such as localhost or the relay's own
// name (smtp-relay.gmail.com). [relay] log_bad_helo logs and counts the
// clients that do not; their mail is judged as any other (a HELO that names
// none of our domains already fails where the policy needs one: the null
// sender, allowed_senders = "any").

// HELO labels returned by BadHelo, stable for logs and metrics.
const (
	HeloLocalhost   = "localhost"    // localhost, localhost.localdomain, *.localhost (RFC 6761)
	HeloGatewayName = "gateway_name" // the gateway's own host name
)

// BadHelo reports whether helo is a name the seed advises against: a
// localhost name, or gateway, the gateway's own name (Postfix's
// $myhostname, the milter macro j; "" when unknown). Names compare without
// case and without a trailing dot. It returns HeloLocalhost or
// HeloGatewayName, or "" for a real name.
func BadHelo(helo, gateway string) string {
	h := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(helo), "."))
	switch {
	case h == "localhost", h == "localhost.localdomain", strings.HasSuffix(h, ".localhost"),
		h == "[127.0.0.1]", h == "[ipv6:::1]":
		return HeloLocalhost
	case gateway != "" && h == strings.ToLower(strings.TrimSuffix(gateway, ".")):
		return HeloGatewayName
	}
	return ""
}
