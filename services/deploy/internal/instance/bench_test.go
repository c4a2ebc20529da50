package instance

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pyleeai/pylee/services/deploy/internal/plan"
	rt "github.com/pyleeai/pylee/services/deploy/internal/runtime"
)

// BenchmarkIdleInstanceMemory starts 20 idle instances of the Go SDK test
// server and reports what each costs: the bridge and supervisor in the
// deploy process (heap in use after GC, per instance) and the child
// process (its resident set).
func BenchmarkIdleInstanceMemory(b *testing.B) {
	const n = 20
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		var ins []*Instance
		for j := 0; j < n; j++ {
			p := plan.Plan{Runtime: plan.Command, Command: testServer, Transport: "stdio", Env: []string{"API_KEY=k"}}
			in, err := Start(fmt.Sprint(j), "1.0.0", "", p, rt.Local(true, "", "bench")[plan.Command], Options{HealthInterval: time.Hour}, nil)
			if err != nil {
				b.Fatal(err)
			}
			ins = append(ins, in)
		}
		for _, in := range ins {
			deadline := time.Now().Add(20 * time.Second)
			for in.Status().State != Healthy {
				if time.Now().After(deadline) {
					b.Fatalf("instance not healthy: %+v", in.Status())
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		var rss int64
		for _, in := range ins {
			in.mu.Lock()
			pid := in.proc.(interface{ Pid() int }).Pid()
			in.mu.Unlock()
			rss += vmRSS(pid)
		}
		b.ReportMetric(float64(int64(after.HeapInuse)-int64(before.HeapInuse))/n/1024, "bridge-KiB/instance")
		b.ReportMetric(float64(rss)/n, "child-RSS-KiB/instance")
		for _, in := range ins {
			in.Stop()
		}
	}
}

// vmRSS is a process's resident set in KiB.
func vmRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kb)
			return kb
		}
	}
	return 0
}
