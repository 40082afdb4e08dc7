package rules_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/splitrelay/splitrelay/rules"
)

func TestKeys(t *testing.T) {
	keys := rules.Keys()
	for _, want := range []string{"milter.listen", "metrics.listen", "directory.groups.*", "routes.*.primary.load", "split_delivery.envelope.senders", "relay.networks.enabled", "relay.limits.message_size"} {
		if !slices.Contains(keys, want) {
			t.Errorf("Keys() lacks %q: %q", want, keys)
		}
	}
}

func ExampleKeys() {
	for _, k := range rules.Keys()[:4] {
		fmt.Println(k)
	}
	// Output:
	// milter.listen
	// milter.routing_suffix
	// milter.dry_run
	// log.level
}
