package rules

import (
	"fmt"
	"slices"
	"testing"
)

func loadRoutes(t *testing.T) *Ruleset {
	t.Helper()
	rs, err := loadTestdata(t, "routes-valid.toml")
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// fixed returns a Rand that yields xs in turn (each taken modulo n).
func fixed(xs ...int) func(int) int {
	i := 0
	return func(n int) int {
		x := xs[i%len(xs)] % n
		i++
		return x
	}
}

func TestPickWeighted(t *testing.T) {
	hs := []Host{{Host: "a", Load: 70}, {Host: "b", Load: 0}, {Host: "c", Load: 30}}
	tests := []struct {
		x, want int
	}{
		{0, 0}, {69, 0}, {70, 2}, {99, 2},
		{150, 2}, // out of range: the last host, deterministically
	}
	for _, tc := range tests {
		if got := pickWeighted(hs, func(int) int { return tc.x }); got != tc.want {
			t.Errorf("pickWeighted(x=%d) = %d, want %d", tc.x, got, tc.want)
		}
	}
	if got := pickWeighted(hs, nil); got != 0 {
		t.Errorf("pickWeighted(nil) = %d, want 0 (file order)", got)
	}
	// Over every x in [0,100) each host is picked exactly load times.
	count := make([]int, len(hs))
	for x := range 100 {
		count[pickWeighted(hs, func(int) int { return x })]++
	}
	if !slices.Equal(count, []int{70, 0, 30}) {
		t.Errorf("picks over [0,100) = %v, want the loads [70 0 30]", count)
	}
}

func TestLabelsAndOrder(t *testing.T) {
	rs := loadRoutes(t)
	tests := []struct {
		route  string
		choice Choice
		label  string
		order  string
	}{
		{"single", Choice{}, "", "[exchange.corp.example.com:587]"},
		{"balanced", Choice{0, 0}, "p1", "[ex1.corp.example.com:25 192.0.2.10:2525 backup.corp.example.com:25]"},
		{"balanced", Choice{1, 0}, "p2", "[192.0.2.10:2525 ex1.corp.example.com:25 backup.corp.example.com:25]"},
		{"weighted-backup", Choice{0, 1}, "p1s2", "[a.example.net:25 c.example.net:25 b.example.net:25]"},
		{"weighted-backup", Choice{0, 0}, "p1s1", "[a.example.net:25 b.example.net:25 c.example.net:25]"},
	}
	for _, tc := range tests {
		r := rs.Routes[tc.route]
		if got := r.Label(tc.choice); got != tc.label {
			t.Errorf("%s.Label(%v) = %q, want %q", tc.route, tc.choice, got, tc.label)
		}
		if got := fmt.Sprint(r.Order(tc.choice)); got != tc.order {
			t.Errorf("%s.Order(%v) = %s, want %s", tc.route, tc.choice, got, tc.order)
		}
	}
	var labels []string
	for _, c := range rs.Routes["weighted-backup"].Labels() {
		labels = append(labels, rs.Routes["weighted-backup"].Label(c))
	}
	if !slices.Equal(labels, []string{"p1s1", "p1s2"}) {
		t.Errorf("Labels = %q", labels)
	}
	if rs.Routes["single"].Labels() != nil {
		t.Error("a single-host route has labels")
	}
	if !rs.Routes["smtps"].ImplicitTLS() || rs.Routes["balanced"].ImplicitTLS() || rs.Routes["single"].ImplicitTLS() {
		t.Error("ImplicitTLS wrong")
	}
}

func TestIsHostLabel(t *testing.T) {
	for l, want := range map[string]bool{
		"p1": true, "p12s3": true, "p0": true,
		"p": false, "ps1": false, "p1s": false, "p1t2": false, "com": false, "p1s2s3": false, "xn--p1ai": false,
	} {
		if got := isHostLabel(l); got != want {
			t.Errorf("isHostLabel(%q) = %v, want %v", l, got, want)
		}
	}
}

// TestDecideChoosesPerMessage: one pick per multiple-host route and
// message, shared by every recipient and copy on that route; the routed
// address carries the label, and a client may not use it.
func TestDecideChoosesPerMessage(t *testing.T) {
	rs := loadRoutes(t)
	env := Envelope{
		Sender:     "x@elsewhere.test",
		Recipients: []string{"carol@example.com", "zed@example.com"},
		Rand:       fixed(85), // 85 >= 70: the second primary (30%)
	}
	d := decide(rs, env)
	for _, r := range d.Recipients {
		if r.Route == nil || r.Route.Name != "balanced" || r.Choice != (Choice{Primary: 1}) {
			t.Fatalf("%s: route %v choice %v, want balanced primary 2", r.Address, r.Route, r.Choice)
		}
		routed := rs.RoutedAddress(r.Addr, r.Route, r.Choice)
		if want := r.Address + ".p2.balanced.splitrelay.invalid"; routed != want {
			t.Errorf("routed %q, want %q", routed, want)
		}
		if r.Route.Chosen(r.Choice).String() != "192.0.2.10:2525" {
			t.Errorf("chosen host %s", r.Route.Chosen(r.Choice))
		}
		if !rs.inNamespace(routed) {
			t.Errorf("client may use the labelled form %q", routed)
		}
	}
	// Without a random source: file order, the first primary.
	env.Rand = nil
	if c := decide(rs, env).Recipients[0].Choice; c != (Choice{}) {
		t.Errorf("nil Rand chose %v", c)
	}
}

// TestDecideBalance: over many messages with a uniform source the picks
// follow the loads.
func TestDecideBalance(t *testing.T) {
	rs := loadRoutes(t)
	count := map[int]int{}
	for x := range 1000 {
		d := decide(rs, Envelope{Sender: "x@elsewhere.test", Recipients: []string{"carol@example.com"}, Rand: fixed(x)})
		count[d.Recipients[0].Choice.Primary]++
	}
	if count[0] != 700 || count[1] != 300 {
		t.Errorf("picks %v, want 700/300", count)
	}
}
