package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/splitrelay/splitrelay/milter/metrics"
	"github.com/splitrelay/splitrelay/rules"

	"github.com/splitrelay/splitrelay/milter"
)

// metricsServer serves /metrics on [metrics] listen.
type metricsServer struct {
	m   *metrics.Metrics
	srv *http.Server
}

// startMetrics listens on addr and serves m in the background.
func startMetrics(log *slog.Logger, addr string, m *metrics.Metrics) (*metricsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("splitrelay: metrics at /metrics\n"))
	})
	log.Info("metrics listening", milter.KeyMetricsListen, ln.Addr().String())
	s := &metricsServer{m: m, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", milter.KeyErr, err)
		}
	}()
	return s, nil
}

// buildVersion is the version and commit of versionString, for the
// splitrelay_build_info labels.
func buildVersion() (version, commit string) {
	// "splitrelay VERSION (commit COMMIT, GOVERSION)"
	f := strings.Fields(versionString())
	return f[1], strings.TrimSuffix(f[3], ",")
}

// reload records a reload (rs nil: refused); s may be nil (no [metrics]).
func (s *metricsServer) reload(rs *rules.Ruleset) {
	if s != nil {
		s.m.Reload(rs)
	}
}

func (s *metricsServer) shutdown(ctx context.Context) {
	if s != nil {
		s.srv.Shutdown(ctx)
	}
}
