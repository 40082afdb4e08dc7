package rules_test

import (
	"fmt"

	"github.com/splitrelay/splitrelay/rules"
)

func Example() {
	cfg := `
[organization]
domains = ["example.com"]

[directory]
users = ["alice@example.com"]

[routes.legacy]
host = "exchange.example.net"

[[split_delivery]]
name = "Unknown addresses stay on Exchange"
messages = ["inbound", "internal"]
accounts = ["unrecognized"]
route = "legacy"
`
	rs, err := rules.Load("splitrelay.toml", []byte(cfg), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	// One transaction, as the milter drives it: MAIL FROM, each RCPT TO
	// (the verdict is the reply), then end of message.
	t := rs.Begin(rules.Client{}, "someone@elsewhere.test", 0, nil)
	for _, rcpt := range []string{"alice@example.com", "Carol@Example.com"} {
		if v := t.Rcpt(rules.RcptIn{Raw: rcpt, Stored: rcpt}); v.Action != rules.Keep {
			fmt.Println(rcpt, v.Reply)
		}
	}
	d := t.End(rules.Message{HeaderFrom: "Someone <someone@elsewhere.test>"})
	for _, r := range d.Recipients {
		if r.Action == rules.Reroute {
			fmt.Printf("%s: %s via %s -> %s (rule %q)\n", r.Address, r.Action, r.Route.Name, rs.RoutedAddress(r.Addr, r.Route, r.Choice), r.Rule)
			continue
		}
		fmt.Printf("%s: %s\n", r.Address, r.Action)
	}
	// Output:
	// alice@example.com: accept
	// Carol@Example.com: route via legacy -> Carol@Example.com.legacy.splitrelay.invalid (rule "Unknown addresses stay on Exchange")
}

func ExampleLoad_errors() {
	_, err := rules.Load("splitrelay.toml", []byte(`
[organization]
domains = ["example.com"]

[routes.legacy]
host = "exchange.example.net"
port = 465

[[split_delivery]]
name = "x"
messages = ["inbound"]
accounts = ["unrecognized"]
route = "legcy"
`), nil)
	fmt.Println(err)
	// Output:
	// splitrelay.toml:7:8: routes.legacy.port: 465 is not allowed for a single host
	// splitrelay.toml:13:9: split_delivery[0].route: unknown route "legcy": define [routes.legcy]
}
