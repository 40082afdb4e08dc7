package rules

import (
	"net"
	"strconv"
)

// Metrics is the [metrics] section: the optional Prometheus endpoint.
type Metrics struct {
	// Listen is "host:port" for the HTTP server that serves /metrics;
	// "" (the default) serves no metrics.
	Listen string
}

type fileMetrics struct {
	Listen string `toml:"listen"`
}

// metrics checks [metrics]. The address must name its host: an empty host
// would listen on every interface, and metrics reveal routes and rule names.
func (l *loader) metrics(f *file, rs *Ruleset) {
	m := f.Metrics
	rs.Metrics = Metrics(m)
	if m.Listen == "" {
		return
	}
	host, port, err := net.SplitHostPort(m.Listen)
	if err != nil {
		l.errorf(nil, "metrics.listen", "%q: want host:port, e.g. 127.0.0.1:9477", m.Listen)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		l.errorf(nil, "metrics.listen", "%q: port must be 1-65535", m.Listen)
	}
	if host == "" {
		l.errorf(nil, "metrics.listen", "%q: name the address to listen on (e.g. 127.0.0.1, or 0.0.0.0 for every interface)", m.Listen)
	}
}
