package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/splitrelay/splitrelay/milter"
	"github.com/splitrelay/splitrelay/milter/limits"
	"github.com/splitrelay/splitrelay/rules"
)

// The relay limits: refusals by limit, users near a limit and the
// organisation's windows (read from the store at scrape time), and the
// store's errors, latency and Redis fallback.

var _ milter.LimitsObserver = (*Metrics)(nil)

// limitMetrics are registered by New.
type limitMetrics struct {
	exceeded *prometheus.CounterVec
	storeOps *prometheus.HistogramVec
	storeErr *prometheus.CounterVec
	fallback prometheus.Gauge

	mu    sync.Mutex
	stats func() (limits.Stats, error)
}

var (
	descNear = prometheus.NewDesc("splitrelay_limit_users_near",
		"Registered users above 80 % of a per-user relay limit in its rolling window, by limit.", []string{"limit"}, nil)
	descOrg = prometheus.NewDesc("splitrelay_limit_org_recipients",
		"Relay recipients of the organisation in a rolling window (24h: org_recipients_per_day, 10m: org_recipients_per_10_minutes).", []string{"window"}, nil)
)

func newLimitMetrics() *limitMetrics {
	l := &limitMetrics{
		exceeded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "splitrelay_limit_exceeded_total",
			Help: "Relay recipients refused because a rolling limit was reached (in dry run: that would have been), by limit.",
		}, []string{"limit"}),
		storeOps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "splitrelay_limits_store_duration_seconds",
			Help:    "Time of an operation on the relay limit store (store: embedded, redis, local; op: reserve, commit, release, flush).",
			Buckets: []float64{.00001, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .05, .25, 1},
		}, []string{"store", "op"}),
		storeErr: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "splitrelay_limits_store_errors_total",
			Help: "Failed operations on the relay limit store (Redis unreachable, state file not writable).",
		}, []string{"store", "op"}),
		fallback: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "splitrelay_limits_fallback",
			Help: "1 while Redis cannot be reached and this gateway counts relay limits alone (redis_unavailable = local).",
		}),
	}
	for _, e := range []rules.Exceeded{rules.UserMessages, rules.UserRecipients, rules.OrgDay, rules.OrgPeak} {
		l.exceeded.WithLabelValues(e.String())
	}
	return l
}

func (l *limitMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{l.exceeded, l.storeOps, l.storeErr, l.fallback, l}
}

// Describe and Collect make limitMetrics the collector of the gauges read
// from the store.
func (l *limitMetrics) Describe(ch chan<- *prometheus.Desc) { ch <- descNear; ch <- descOrg }

func (l *limitMetrics) Collect(ch chan<- prometheus.Metric) {
	l.mu.Lock()
	f := l.stats
	l.mu.Unlock()
	var s limits.Stats
	if f != nil {
		var err error
		if s, err = f(); err != nil && s.Near == nil {
			return
		}
	} // no store yet: the gauges exist from the start, at zero
	for _, k := range []string{rules.UserMessages.String(), rules.UserRecipients.String()} {
		ch <- prometheus.MustNewConstMetric(descNear, prometheus.GaugeValue, float64(s.Near[k]), k)
	}
	ch <- prometheus.MustNewConstMetric(descOrg, prometheus.GaugeValue, float64(s.OrgDay), "24h")
	ch <- prometheus.MustNewConstMetric(descOrg, prometheus.GaugeValue, float64(s.OrgPeak), "10m")
}

// SetLimits sets where the limit gauges are read from at scrape time.
func (m *Metrics) SetLimits(stats func() (limits.Stats, error)) {
	m.lim.mu.Lock()
	m.lim.stats = stats
	m.lim.mu.Unlock()
}

// Exceeded implements milter.LimitsObserver.
func (m *Metrics) Exceeded(limit string) { m.lim.exceeded.WithLabelValues(limit).Inc() }

// StoreOp implements limits.Observer.
func (m *Metrics) StoreOp(store, op string, d time.Duration, err bool) {
	m.lim.storeOps.WithLabelValues(store, op).Observe(d.Seconds())
	if err {
		m.lim.storeErr.WithLabelValues(store, op).Inc()
	}
}

// Fallback implements limits.Observer.
func (m *Metrics) Fallback(active bool) {
	v := 0.0
	if active {
		v = 1
	}
	m.lim.fallback.Set(v)
}

// stores names the limit stores a configuration uses, for the series that
// exist from the start: embedded, or redis (and local when Redis being
// down falls back to counting alone).
func stores(rs *rules.Ruleset) []string {
	switch {
	case rs.State.Redis == "":
		return []string{"embedded"}
	case rs.State.RedisUnavailable == "local":
		return []string{"redis", "local"}
	}
	return []string{"redis"}
}

// configure creates the store series of rs at zero.
func (l *limitMetrics) configure(rs *rules.Ruleset) {
	for _, st := range stores(rs) {
		for _, op := range []string{"reserve", "commit", "release", "flush"} {
			l.storeOps.WithLabelValues(st, op)
			l.storeErr.WithLabelValues(st, op)
		}
	}
	if rs.State.Redis != "" && rs.State.RedisUnavailable == "local" {
		// what a gateway counted alone during an outage, pushed to Redis
		// when it is back (limits.Redis)
		l.storeOps.WithLabelValues("redis", "push")
		l.storeErr.WithLabelValues("redis", "push")
	}
}
