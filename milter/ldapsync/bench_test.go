package ldapsync

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/splitrelay/splitrelay/milter/slapdtest"
	"github.com/splitrelay/splitrelay/rules"
)

// BenchmarkSync reads a directory of LDAP_BENCH_USERS users (default
// 100000; every tenth with an alias in proxyAddresses) and 1000 groups of
// 20 from a private slapd, and reports the time of a sync and the heap it
// needs at its peak (sampled) and keeps (the built directory).
//
//	LDAP_BENCH_USERS=1000000 go test ./milter/ldapsync -run '^$' -bench Sync -benchtime 1x
func BenchmarkSync(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("LDAP_BENCH_USERS")); err == nil && v > 0 {
		n = v
	}
	s := slapdtest.Start(b)
	ldif := filepath.Join(b.TempDir(), "bench.ldif")
	f, err := os.Create(ldif)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintf(w, "dn: ou=people,%s\nobjectClass: organizationalUnit\nou: people\n\n", slapdtest.BaseDN)
	for i := range n {
		fmt.Fprintf(w, "dn: cn=u%07d,ou=people,%s\nobjectClass: inetOrgPerson\nobjectClass: splitrelayMailbox\ncn: u%07d\nsn: u\nmail: user%07d@example.com\n", i, slapdtest.BaseDN, i, i)
		if i%10 == 0 {
			fmt.Fprintf(w, "proxyAddresses: SMTP:user%07d@example.com\nproxyAddresses: smtp:alias%07d@example.com\n", i, i)
		}
		w.WriteString("\n")
	}
	for g := range 1000 {
		fmt.Fprintf(w, "dn: cn=g%04d,%s\nobjectClass: groupOfNames\nobjectClass: splitrelayMailbox\ncn: g%04d\nmail: group%04d@example.com\n", g, slapdtest.BaseDN, g, g)
		for m := range 20 {
			fmt.Fprintf(w, "member: cn=u%07d,ou=people,%s\n", (g*20+m)%n, slapdtest.BaseDN)
		}
		w.WriteString("\n")
	}
	w.Flush()
	f.Close()
	s.Load(ldif)
	cfg := rules.LDAP{URL: s.URL, StartTLS: true, CAFile: s.CAFile, BindDN: slapdtest.ReaderDN, PasswordFile: s.PasswordFile,
		BaseDN: slapdtest.BaseDN, UserFilter: rules.DefaultLDAPUserFilter, GroupFilter: rules.DefaultLDAPGroupFilter,
		AddressAttributes: []string{"mail", "proxyAddresses"}, MemberAttributes: []string{"member"},
		PageSize: 1000, Refresh: time.Hour, Timeout: time.Minute}
	var dir *rules.Directory
	sy := New(cfg, b.TempDir(), logger(nil), nil, func(d *rules.Directory) { dir = d })
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	peak := uint64(0)
	done := make(chan struct{})
	go func() {
		var m runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapAlloc)
		}
	}()
	for b.Loop() {
		if !sy.Sync(context.Background()) {
			b.Fatal("sync failed")
		}
	}
	close(done)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if st := dir.Stats(); st.Users != n || st.Groups != 1000 {
		b.Fatalf("synced %+v, want %d users and 1000 groups", st, n)
	}
	b.ReportMetric(float64(peak-base.HeapAlloc)/(1<<20), "heap-peak-MB")
	b.ReportMetric(float64(after.HeapAlloc-base.HeapAlloc)/(1<<20), "heap-kept-MB")
	if data, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
				b.ReportMetric(float64(kb)/1024, "rss-peak-MB")
			}
		}
	}
}
