package rules

import (
	"fmt"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// Directory scale: 10, 10k and 1M users with 10k groups of 20 members
// (fewer groups for fewer users). Targets (issue 13): 1M users load in
// under 1 s; the daemon stays under 300 MB RSS (see cmd/splitrelay's
// BenchmarkReloadRSS); a decision at 1M users within 10 % of one at 10.
//
//	go test ./rules -run '^$' -bench 'Directory' -benchtime 3x

var dirSizes = []int{10, 10_000, 1_000_000}

// dirConfig returns a configuration with n users in users.txt (every
// tenth with an alias) and min(n, 10k) groups of 20 in a Google export.
func dirConfig(n int) ([]byte, mapFiles) {
	var users strings.Builder
	users.Grow(n * 40)
	for i := range n {
		fmt.Fprintf(&users, "user%07d@example.com", i)
		if i%10 == 0 {
			fmt.Fprintf(&users, " alias%07d@example.com", i)
		}
		users.WriteByte('\n')
	}
	var cfg strings.Builder
	cfg.WriteString(`[organization]
domains = ["example.com"]
domain_aliases = { "example.net" = "example.com" }
[directory]
users_files = ["users.txt"]
google_exports = ["members.csv"]
[routes.legacy]
host = "legacy.example.org"
[[split_delivery]]
name = "Unknown addresses stay on Exchange"
messages = ["inbound", "internal"]
accounts = ["unrecognized"]
route = "legacy"
[[split_delivery]]
name = "Group members get a copy"
messages = ["inbound"]
accounts = ["users"]
route = "legacy"
also_deliver = true
[split_delivery.envelope]
recipients = ["group:group00001@example.com"]
`)
	// The groups as the Admin console exports them, one member per row.
	var members strings.Builder
	members.WriteString("Group Email [Required],Member Email,Member Type,Member Role\n")
	for g := range min(n, 10_000) {
		for m := range 20 {
			fmt.Fprintf(&members, "group%05d@example.com,user%07d@example.com,USER,MEMBER\n", g, (g*20+m)%n)
		}
	}
	return []byte(cfg.String()), mapFiles{"users.txt": users.String(), "members.csv": members.String()}
}

// cpuTime is the process's user and system CPU time in nanoseconds: on a
// shared machine it says more than the wall time.
func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkDirectoryLoad: the time to load (parse and validate) the whole
// configuration, and the heap the loaded rules keep.
func BenchmarkDirectoryLoad(b *testing.B) {
	for _, n := range dirSizes {
		b.Run(fmt.Sprintf("users=%d", n), func(b *testing.B) {
			cfg, files := dirConfig(n)
			before := heapInUse()
			cpu := cpuTime()
			var rs *Ruleset
			for b.Loop() {
				rs = nil
				var err error
				if rs, err = Load("bench.toml", cfg, files); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N)/1e6, "cpu-ms/op")
			b.ReportMetric(float64(int64(heapInUse())-int64(before))/(1<<20), "heap-MB")
			runtime.KeepAlive(rs)
			runtime.KeepAlive(files)
			runtime.KeepAlive(cfg)
		})
	}
}

// BenchmarkDirectoryDecide: one message with a user, an alias in an alias
// domain with a subaddress, a group member and an unrecognized address.
func BenchmarkDirectoryDecide(b *testing.B) {
	for _, n := range dirSizes {
		b.Run(fmt.Sprintf("users=%d", n), func(b *testing.B) {
			cfg, files := dirConfig(n)
			rs, err := Load("bench.toml", cfg, files)
			if err != nil {
				b.Fatal(err)
			}
			last := fmt.Sprintf("user%07d", n-1)
			env := Envelope{
				Sender:     "x@partner.example",
				HeaderFrom: "x@partner.example",
				Recipients: []string{last + "@example.com", "alias0000000+news@example.net", "user0000020@example.com", "nobody@example.com"},
			}
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				decide(rs, env)
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkDirectoryResolve: the directory lookup alone.
func BenchmarkDirectoryResolve(b *testing.B) {
	for _, n := range dirSizes {
		b.Run(fmt.Sprintf("users=%d", n), func(b *testing.B) {
			cfg, files := dirConfig(n)
			rs, err := Load("bench.toml", cfg, files)
			if err != nil {
				b.Fatal(err)
			}
			d := rs.Directory()
			local := fmt.Sprintf("User%07d+tag", n/2)
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				if a, _ := d.Resolve(local, "example.net"); a != User {
					b.Fatal(a)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}
