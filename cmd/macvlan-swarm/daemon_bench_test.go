package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link/linktest"
)

// BenchmarkDaemon1000Endpoints measures the real binary, not the test
// process: its resident memory idle and with 1000 joined endpoints (1000
// macvlan links on a veth parent in a fresh namespace), and how long a
// restart on that state takes until its socket accepts connections and
// until GetCapabilities is answered. One op is
// the whole scenario; the figures are reported as metrics.
func BenchmarkDaemon1000Endpoints(b *testing.B) {
	lab := linktest.New(b)
	lab.Veth(b, "eth0", 0)
	dir := b.TempDir()
	bin := binary(b)
	for i := 0; i < b.N; i++ {
		state := filepath.Join(dir, fmt.Sprintf("state%d", i))
		sock := filepath.Join(dir, fmt.Sprintf("s%d.sock", i))
		cl := unixClient(sock)
		start := func() *exec.Cmd {
			// nsenter execs the daemon in place: the pid is the daemon's.
			c := exec.Command("nsenter", "--net="+lab.Path(), bin, "-socket", sock, "-state-dir", state, "-log-level", "error")
			c.Stderr = os.Stderr
			if err := c.Start(); err != nil {
				b.Fatal(err)
			}
			return c
		}
		stop := func(c *exec.Cmd) { c.Process.Signal(os.Interrupt); c.Wait() }

		d := start()
		post(b, cl, "GetCapabilities", "")
		idle := rssKiB(b, d.Process.Pid)
		post(b, cl, "CreateNetwork", `{"NetworkID":"n1","Options":{"com.docker.network.generic":{"parent":"eth0"}},"IPv4Data":[{"Pool":"10.0.0.0/16","Gateway":"10.0.0.1/16"}]}`)
		fill := time.Now()
		for e := 0; e < 1000; e++ {
			// Engine ids are random; these differ in their first 12
			// characters too, which name the host link.
			id := fmt.Sprintf("%012x%052x", e+1, e+1)
			post(b, cl, "CreateEndpoint", fmt.Sprintf(`{"NetworkID":"n1","EndpointID":%q,"Interface":{"Address":"10.0.%d.%d/16"}}`, id, 1+e/250, 1+e%250))
			post(b, cl, "Join", fmt.Sprintf(`{"NetworkID":"n1","EndpointID":%q,"SandboxKey":"x"}`, id))
		}
		perEndpoint := time.Since(fill) / 1000
		full := rssKiB(b, d.Process.Pid)
		stop(d)

		t := time.Now()
		d = start()
		for {
			if c, err := net.Dial("unix", sock); err == nil {
				c.Close()
				break
			}
			time.Sleep(100 * time.Microsecond)
		}
		listening := time.Since(t)
		post(b, cl, "GetCapabilities", "")
		ready := time.Since(t)
		stop(d)
		// Clear the links in one batch (one by one would take ~15 s).
		for e := 0; e < 1000; e++ {
			lab.Handle().Retire(fmt.Sprintf("mvs%012x", e+1), 7)
		}
		if err := lab.Handle().DeleteGroup(7); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(idle)/1024, "idle-RSS-MiB")
		b.ReportMetric(float64(full)/1024, "RSS-1000ep-MiB")
		b.ReportMetric(float64(listening.Microseconds())/1000, "restart-listening-ms")
		b.ReportMetric(float64(ready.Microseconds())/1000, "restart-ready-ms")
		b.ReportMetric(float64(perEndpoint.Microseconds())/1000, "create+join-ms")
	}
}

func post(b testing.TB, cl *http.Client, method, body string) {
	b.Helper()
	for try := 0; ; try++ {
		r, err := cl.Post("http://plugin/NetworkDriver."+method, "application/json", bytes.NewBufferString(body))
		if err != nil {
			if try > 500 {
				b.Fatalf("%s: %v", method, err)
			}
			time.Sleep(2 * time.Millisecond) // the daemon is starting
			continue
		}
		var out bytes.Buffer
		out.ReadFrom(r.Body)
		r.Body.Close()
		if r.StatusCode != http.StatusOK {
			b.Fatalf("%s: %d %s", method, r.StatusCode, out.String())
		}
		return
	}
}

func rssKiB(b testing.TB, pid int) int {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
