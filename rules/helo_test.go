package rules

import "testing"

func TestBadHelo(t *testing.T) {
	for _, tc := range []struct {
		helo, gateway, want string
	}{
		{"localhost", "mx.example.com", HeloLocalhost},
		{"LocalHost.", "mx.example.com", HeloLocalhost},
		{"localhost.localdomain", "", HeloLocalhost},
		{"printer.localhost", "", HeloLocalhost},
		{"[127.0.0.1]", "", HeloLocalhost},
		{"[IPv6:::1]", "", HeloLocalhost},
		{"MX.example.com", "mx.example.com", HeloGatewayName},
		{"mx.example.com.", "mx.example.com", HeloGatewayName},
		{"mta1.example.com", "mx.example.com", ""},
		{"mta1.example.com", "", ""},
		{"localhost-printer.example.com", "mx.example.com", ""},
		{"[192.0.2.7]", "mx.example.com", ""},
	} {
		if got := BadHelo(tc.helo, tc.gateway); got != tc.want {
			t.Errorf("BadHelo(%q, %q) = %q, want %q", tc.helo, tc.gateway, got, tc.want)
		}
	}
}
