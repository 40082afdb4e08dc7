package limits

import (
	"errors"
	"testing"
)

func TestControlSocket(t *testing.T) {
	dir := t.TempDir()
	if _, err := Dial(dir); !errors.Is(err, ErrNoDaemon) {
		t.Fatalf("no daemon: %v", err)
	}
	clk := &clock{t: t0}
	m := NewMemory(clk.now)
	sendN(t, m, "alice@example.com", 2, "a")
	ctl, err := ServeControl(dir, m)
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	if _, err := ServeControl(dir, m); err == nil {
		t.Error("a second daemon could serve the same control socket")
	}
	c, err := Dial(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Show("")
	if err != nil || len(r.Users) != 1 || r.Users[0].Messages != 2 || r.Store != "memory" {
		t.Fatalf("show: %+v %v", r, err)
	}
	if had, err := c.Reset("alice@example.com"); !had || err != nil {
		t.Fatalf("reset: %v %v", had, err)
	}
	if had, _ := c.Reset("alice@example.com"); had {
		t.Error("second reset found counts")
	}
	if r, _ := c.Show("alice@example.com"); len(r.Users) != 0 {
		t.Errorf("after reset: %+v", r.Users)
	}
}
