package rules

import (
	"fmt"
	"net/url"
	"path/filepath"
)

// State is the [state] section: where the relay limit counters live.
type State struct {
	// Dir holds the durable counters (DefaultStateDir); the daemon creates
	// it when missing. With Redis it keeps only the local fallback.
	Dir string
	// Redis is a redis:// or rediss:// URL shared by every gateway of a
	// fleet; "" keeps the counters in Dir. A master_name query parameter
	// names a Sentinel set (the address is a sentinel's), several addr
	// parameters a Cluster (go-redis URL forms).
	Redis string
	// RedisUnavailable is what happens to relay mail while Redis cannot be
	// reached: "tempfail" (the default: 451, the client retries) or
	// "local" (count in this gateway's own store meanwhile, logged loudly
	// and counted in a metric).
	RedisUnavailable string
}

type fileState struct {
	Dir              string `toml:"dir"`
	Redis            string `toml:"redis"`
	RedisUnavailable string `toml:"redis_unavailable"`
}

// Defaults of [state].
const (
	DefaultStateDir         = "/var/lib/splitrelay"
	DefaultRedisUnavailable = "tempfail"
)

func (l *loader) state(f *file, rs *Ruleset) {
	s := f.State
	rs.State = State(s)
	if s.Dir == "" || !filepath.IsAbs(s.Dir) {
		l.errorf(nil, "state.dir", "%q: want an absolute directory", s.Dir)
	}
	if s.RedisUnavailable != "tempfail" && s.RedisUnavailable != "local" {
		l.errorf(nil, "state.redis_unavailable", "%q: want tempfail or local", s.RedisUnavailable)
	}
	if s.Redis == "" {
		return
	}
	// Messages never repeat a password (url.Redacted).
	u, err := url.Parse(s.Redis)
	switch {
	case err != nil:
		l.errorf(nil, "state.redis", "not a URL: want redis://host:port/db or rediss://… (TLS)")
	case u.Scheme != "redis" && u.Scheme != "rediss":
		l.errorf(nil, "state.redis", "%q: want redis://host:port/db or rediss://… (TLS)", u.Redacted())
	case u.Host == "":
		l.errorf(nil, "state.redis", "%q: name the host, e.g. redis://127.0.0.1:6379/0", u.Redacted())
	}
}

// summary says where the relay counters live, for `check` (no password).
func (s State) summary() string {
	if s.Redis == "" {
		return "Relay counters in " + s.Dir + ". "
	}
	host := s.Redis
	if u, err := url.Parse(s.Redis); err == nil {
		host = u.Host
	}
	return fmt.Sprintf("Relay counters shared in Redis at %s (while it is unreachable: %s). ", host, s.RedisUnavailable)
}
