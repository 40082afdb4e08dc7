package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/splitrelay/splitrelay/milter/ldapsync"
	"github.com/splitrelay/splitrelay/rules"
)

var _ ldapsync.Observer = (*Metrics)(nil)

// directory holds the collectors of the LDAP directory sync, registered on
// the first sync (a daemon without [directory.ldap] does not show them).
type directory struct {
	once     sync.Once
	mu       sync.Mutex
	dataTime time.Time
	syncs    *prometheus.CounterVec
	entries  *prometheus.GaugeVec
	lastOK   prometheus.Gauge
	success  prometheus.Gauge
	data     prometheus.Gauge
}

func (m *Metrics) registerDirectory() {
	d := &m.dir
	d.syncs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "splitrelay_directory_syncs_total",
		Help: "LDAP directory syncs by result: success, or failure (the directory in use stays).",
	}, []string{"result"})
	d.entries = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "splitrelay_directory_entries",
		Help: "Entries of the synced directory in use, by kind (users, groups, aliases).",
	}, []string{"kind"})
	d.lastOK = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "splitrelay_directory_last_sync_successful",
		Help: "1 if the last LDAP directory sync succeeded, 0 if it failed.",
	})
	d.success = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "splitrelay_directory_last_sync_success_timestamp_seconds",
		Help: "When the last successful LDAP directory sync read the server, Unix time (0: none since start).",
	})
	d.data = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "splitrelay_directory_data_timestamp_seconds",
		Help: "When the synced directory in use was read from the server (from the snapshot after a restart), Unix time.",
	})
	age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "splitrelay_directory_age_seconds",
		Help: "Age of the synced directory in use: seconds since it was read from the server.",
	}, func() float64 {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.dataTime.IsZero() {
			return 0
		}
		return m.now().Sub(d.dataTime).Seconds()
	})
	m.reg.MustRegister(d.syncs, d.entries, d.lastOK, d.success, d.data, age)
	for _, r := range []string{"success", "failure"} {
		d.syncs.WithLabelValues(r)
	}
}

// DirectorySync implements ldapsync.Observer. A restored snapshot counts
// as data, not as a sync.
func (m *Metrics) DirectorySync(result string, dataTime time.Time, st rules.DirectoryStats) {
	d := &m.dir
	d.once.Do(m.registerDirectory)
	if result == ldapsync.Failure {
		d.syncs.WithLabelValues("failure").Inc()
		d.lastOK.Set(0)
		return
	}
	d.mu.Lock()
	restored := result == ldapsync.Restored
	d.dataTime = dataTime
	d.mu.Unlock()
	d.data.Set(float64(dataTime.UnixNano()) / 1e9)
	d.entries.WithLabelValues("users").Set(float64(st.Users))
	d.entries.WithLabelValues("groups").Set(float64(st.Groups))
	d.entries.WithLabelValues("aliases").Set(float64(st.Aliases))
	if !restored {
		d.syncs.WithLabelValues("success").Inc()
		d.lastOK.Set(1)
		d.success.Set(float64(dataTime.UnixNano()) / 1e9)
	}
}
