// Package metrics is the Prometheus side of the milter: a milter.Observer
// that counts decisions, and the daemon's reload and build information,
// on a registry of its own served at /metrics.
//
// It is a package apart from milter so that the protocol adapter (and its
// tests) do not import the Prometheus client; only the daemon wires the
// two together, and only when [metrics] listen is set.
//
// Label values are bounded: action, outcome, stage and result are fixed
// sets, reason is the milter's stable reject label, and route and rule are
// names from the configuration. Every series is exported from the start,
// at zero: the fixed sets up front, routes and rules by Configure.
package metrics

import (
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/splitrelay/splitrelay/milter"
	"github.com/splitrelay/splitrelay/rules"
)

// Metrics holds the collectors. It implements milter.Observer.
type Metrics struct {
	reg        *prometheus.Registry
	recipients *prometheus.CounterVec
	messages   *prometheus.CounterVec
	rejects    *prometheus.CounterVec
	badHelo    *prometheus.CounterVec
	callback   *prometheus.HistogramVec
	reloads    *prometheus.CounterVec
	reloadTime prometheus.Gauge
	reloadOK   prometheus.Gauge
	configInfo *prometheus.GaugeVec
	sessions   prometheus.Gauge
	protoErrs  prometheus.Counter
	lim        *limitMetrics // limits.go
	dir        directory     // directory.go
	now        func() time.Time
}

var (
	_ milter.Observer     = (*Metrics)(nil)
	_ milter.HeloObserver = (*Metrics)(nil)
)

// New registers the collectors, Go runtime and process metrics, and
// splitrelay_build_info{version,commit,goversion}. The configuration
// loaded at start counts as the first successful load; call Configure with
// it.
func New(version, commit string) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), now: time.Now, lim: newLimitMetrics()}
	m.recipients = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "splitrelay_recipients_total",
		Help: "Recipients by decision (accept = normal delivery, route, copy = dual delivery, reject), route and rule (empty when none applies). Dry run counts the would-be decision.",
	}, []string{"action", "route", "rule"})
	m.messages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "splitrelay_messages_total",
		Help: "Messages at end of data by outcome (accept, tempfail, reject).",
	}, []string{"outcome"})
	m.rejects = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "splitrelay_rejects_total",
		Help: "Refusals sent to the client, by reason.",
	}, []string{"reason"})
	m.badHelo = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "splitrelay_relay_bad_helo_total",
		Help: "SMTP sessions that relayed (or tried to) with a HELO/EHLO name the relay service advises against, by reason (localhost, gateway_name); counted only with [relay] log_bad_helo = true.",
	}, []string{"reason"})
	m.callback = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "splitrelay_callback_duration_seconds",
		Help:    "Time spent in a milter callback (stage rcpt or eom), the milter's share of the SMTP session.",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	}, []string{"stage"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "splitrelay_config_reloads_total",
		Help: "Configuration reloads (SIGHUP) by result: success, or failure (the file did not validate; the running rules stay).",
	}, []string{"result"})
	m.reloadTime = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "splitrelay_config_last_reload_success_timestamp_seconds",
		Help: "When the running configuration was loaded (start or last successful reload), Unix time.",
	})
	m.reloadOK = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "splitrelay_config_last_reload_successful",
		Help: "1 if the last load or reload of the configuration succeeded, 0 if it was refused.",
	})
	m.configInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "splitrelay_config_info",
		Help: "Always 1; id is the running configuration's id (splitrelay check prints it; the logs carry it as config_id).",
	}, []string{"id"})
	m.sessions = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "splitrelay_milter_sessions",
		Help: "MTA sessions (milter connections) in progress.",
	})
	m.protoErrs = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "splitrelay_milter_protocol_errors_total",
		Help: "Milter protocol errors: broken or timed-out MTA connections, failed negotiations.",
	})
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "splitrelay_build_info",
		Help: "Always 1; the labels name the running build.",
	}, []string{"version", "commit", "goversion"})
	build.WithLabelValues(version, commit, runtime.Version()).Set(1)

	m.reg.MustRegister(m.recipients, m.messages, m.rejects, m.badHelo, m.callback, m.reloads, m.reloadTime, m.reloadOK,
		m.configInfo, m.sessions, m.protoErrs, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.reg.MustRegister(m.lim.collectors()...)
	// Series that exist from the start, so that rate() and alerts see
	// a zero before the first event.
	for _, r := range []string{"success", "failure"} {
		m.reloads.WithLabelValues(r)
	}
	for _, o := range milter.Outcomes {
		m.messages.WithLabelValues(o)
	}
	for _, r := range milter.RejectReasons {
		m.rejects.WithLabelValues(r)
	}
	for _, a := range []string{"accept", "reject"} {
		m.recipients.WithLabelValues(a, "", "")
	}
	for _, st := range []string{"rcpt", "eom"} {
		m.callback.WithLabelValues(st)
	}
	m.loaded()
	return m
}

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Reload records a configuration reload: rs is the new configuration, or
// nil when the file was refused (the running one stays).
func (m *Metrics) Reload(rs *rules.Ruleset) {
	if rs == nil {
		m.reloads.WithLabelValues("failure").Inc()
		m.reloadOK.Set(0)
		return
	}
	m.reloads.WithLabelValues("success").Inc()
	m.Configure(rs)
	m.loaded()
}

// Configure names the configuration in force (at start, and after each
// successful reload): its id, and a zero for every route and copy its
// rules can count, so that rate() and alerts see them before the first
// message. Series of rules that are gone stay, with their last value, as
// Prometheus counters should.
func (m *Metrics) Configure(rs *rules.Ruleset) {
	m.lim.configure(rs)
	m.configInfo.Reset()
	m.configInfo.WithLabelValues(rs.ID).Set(1)
	for _, r := range rs.Rules {
		if r.Route == nil {
			continue
		}
		action := "route"
		if r.AlsoDeliver {
			action = "copy"
		}
		m.recipients.WithLabelValues(action, r.Route.Name, r.Name)
	}
}

func (m *Metrics) loaded() {
	m.reloadOK.Set(1)
	m.reloadTime.Set(float64(m.now().UnixNano()) / 1e9)
}

// Recipient implements milter.Observer.
func (m *Metrics) Recipient(action, route, rule string) {
	m.recipients.WithLabelValues(action, route, rule).Inc()
}

// Message implements milter.Observer.
func (m *Metrics) Message(outcome string) { m.messages.WithLabelValues(outcome).Inc() }

// Rejected implements milter.Observer.
func (m *Metrics) Rejected(reason string) { m.rejects.WithLabelValues(reason).Inc() }

// Session implements milter.Observer.
func (m *Metrics) Session(delta int) { m.sessions.Add(float64(delta)) }

// ProtocolError implements milter.Observer.
func (m *Metrics) ProtocolError() { m.protoErrs.Inc() }

// Callback implements milter.Observer.
func (m *Metrics) Callback(stage string, d time.Duration) {
	m.callback.WithLabelValues(stage).Observe(d.Seconds())
}

// BadHelo implements milter.HeloObserver.
func (m *Metrics) BadHelo(reason string) { m.badHelo.WithLabelValues(reason).Inc() }
