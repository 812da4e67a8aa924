package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
	"github.com/macvlan-swarm/macvlan-swarm/internal/link/linktest"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol/wiretest"
	"github.com/macvlan-swarm/macvlan-swarm/internal/telemetry/telemetrytest"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// binary builds this command once per test process.
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mvsbin")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "macvlan-swarm")
		if out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// daemon is the real binary serving in a lab namespace with one veth
// parent, eth0, and its loopback up for the metrics listener.
type daemon struct {
	lab     *linktest.Lab
	sock    string
	metrics string
	cmd     *exec.Cmd
	client  *http.Client
}

func startDaemon(t *testing.T, metricsAddr string) *daemon {
	t.Helper()
	lab := linktest.New(t)
	lab.Veth(t, "eth0", 0)
	if out, err := exec.Command("ip", "-n", lab.Name(), "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v\n%s", err, out)
	}
	dir := t.TempDir()
	d := &daemon{lab: lab, sock: filepath.Join(dir, "p.sock"), metrics: metricsAddr}
	// nsenter execs the daemon in place: the pid is the daemon's.
	d.cmd = exec.Command("nsenter", "--net="+lab.Path(), binary(t), "-socket", d.sock, "-state-dir", filepath.Join(dir, "state"), "-metrics-addr", metricsAddr, "-log-level", "warn")
	d.cmd.Stdout, d.cmd.Stderr = os.Stderr, os.Stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Registered after the lab's cleanup, so it runs first.
	t.Cleanup(func() { d.cmd.Process.Signal(os.Interrupt); d.cmd.Wait() })
	d.client = unixClient(d.sock)
	for i := 0; ; i++ {
		if c, err := net.Dial("unix", d.sock); err == nil {
			c.Close()
			break
		}
		if i == 500 {
			t.Fatal("the daemon's socket never accepted a connection")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return d
}

// call sends one protocol request and returns the error it was answered
// with ("" on success).
func (d *daemon) call(t *testing.T, method string, req any) string {
	t.Helper()
	body, _ := json.Marshal(req)
	resp, err := d.client.Post("http://plugin/NetworkDriver."+method, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Err string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Err
}

// scrape reads the daemon's metrics from inside its namespace.
func (d *daemon) scrape(t *testing.T) map[string]float64 {
	t.Helper()
	m, err := telemetrytest.Scrape(d.lab.Name(), d.metrics)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// status runs `macvlan-swarm status` with args and returns its output and
// exit code.
func status(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	c := exec.Command(binary(t), append([]string{"status"}, args...)...)
	c.Stdout, c.Stderr = &out, &errOut
	err := c.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return out.String() + errOut.String(), c.ProcessState.ExitCode()
}

// TestStatusAndMetricsOfTheRealDaemon runs containers' worth of protocol
// requests against the real binary and checks what an operator sees: the
// metrics count exactly those requests, links and errors; `status` shows the
// network, the last error and no drift, then drift (exit 1) once a marked
// link appears behind the plugin's back; a socket that answers nothing is
// exit 2.
func TestStatusAndMetricsOfTheRealDaemon(t *testing.T) {
	d := startDaemon(t, "127.0.0.1:9337")
	netID := strings.Repeat("ab", 32)
	if e := d.call(t, "CreateNetwork", wiretest.CreateNetwork(netID, map[string]string{"parent": "eth0"}, wiretest.Pool("10.89.0.0/24", "10.89.0.1/24"))); e != "" {
		t.Fatal(e)
	}
	const containers = 3
	for i := range containers {
		ep := fmt.Sprintf("%02d%062x", i+1, i+1)
		for _, step := range []struct {
			method string
			req    any
		}{
			{"CreateEndpoint", wiretest.CreateEndpoint(netID, ep, fmt.Sprintf("10.89.0.%d/24", 10+i), "", "")},
			{"Join", wiretest.Join(netID, ep)},
			{"Leave", wiretest.Leave(netID, ep)},
			{"DeleteEndpoint", wiretest.DeleteEndpoint(netID, ep)},
		} {
			if e := d.call(t, step.method, step.req); e != "" {
				t.Fatalf("%s: %s", step.method, e)
			}
		}
	}
	refused := d.call(t, "Join", wiretest.Join(netID, strings.Repeat("ee", 32)))
	if refused == "" {
		t.Fatal("a Join of an unknown endpoint was accepted")
	}

	var m map[string]float64
	for i := 0; ; i++ {
		m = d.scrape(t)
		if m["macvlan_swarm_host_links_deleted_total"] == containers || i == 100 {
			break
		}
		time.Sleep(20 * time.Millisecond) // the reaper batches deletions
	}
	want := map[string]float64{
		"macvlan_swarm_requests_total/CreateNetwork":        1,
		"macvlan_swarm_requests_total/CreateEndpoint":       containers,
		"macvlan_swarm_requests_total/Join":                 containers + 1,
		"macvlan_swarm_requests_total/Leave":                containers,
		"macvlan_swarm_requests_total/DeleteEndpoint":       containers,
		"macvlan_swarm_request_errors_total/Join":           1,
		"macvlan_swarm_request_duration_seconds/Join#count": containers + 1,
		"macvlan_swarm_host_links_created_total":            containers,
		"macvlan_swarm_host_links_deleted_total":            containers,
		"macvlan_swarm_host_links_pending":                  0,
		"macvlan_swarm_networks":                            1,
		"macvlan_swarm_endpoints":                           0,
		"macvlan_swarm_build_info":                          1,
		"macvlan_swarm_reaper_batch_duration_seconds#count": m["macvlan_swarm_reaper_batch_duration_seconds#count"],
	}
	for k, v := range want {
		if got, ok := m[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	if b := m["macvlan_swarm_reaper_batch_duration_seconds#count"]; b < 1 || b > containers {
		t.Errorf("reaper batches = %v, want 1 to %d", b, containers)
	}
	if _, ok := m["macvlan_swarm_request_errors_total/CreateEndpoint"]; ok {
		t.Error("an error count for CreateEndpoint, which never failed")
	}

	out, code := status(t, "--socket", d.sock)
	if code != 0 {
		t.Fatalf("status exit %d:\n%s", code, out)
	}
	for _, want := range []string{netID[:12], "eth0", "DRIFT none", "ERRORS (last 1", "Join", refused, "METRICS_ADDR=127.0.0.1:9337"} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
	js, code := status(t, "--socket", d.sock, "--json")
	var r report
	if err := json.Unmarshal([]byte(js), &r); err != nil || code != 0 {
		t.Fatalf("status --json (exit %d) is not a report: %v\n%s", code, err, js)
	}
	if len(r.Networks) != 1 || len(r.Errors) != 1 || r.Errors[0].Method != "Join" || r.Version == "" || r.Settings["SCOPE"] != "global" {
		t.Errorf("status --json = %+v", r)
	}

	// A link carrying our mark that no record accounts for: drift, exit 1.
	ghost := "mvs" + strings.Repeat("9", 12)
	for _, args := range [][]string{
		{"link", "add", ghost, "link", "eth0", "type", "macvlan", "mode", "bridge"},
		{"link", "set", ghost, "alias", link.EndpointMark(strings.Repeat("9", 64))},
	} {
		if out, err := exec.Command("ip", append([]string{"-n", d.lab.Name()}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	out, code = status(t, "--socket", d.sock)
	t.Logf("status with drift:\n%s", out)
	if code != statusDrift || !strings.Contains(out, "orphan_link") || !strings.Contains(out, ghost) {
		t.Errorf("status with an orphan link: exit %d, want %d, naming %s:\n%s", code, statusDrift, ghost, out)
	}

	out, code = status(t, "--socket", filepath.Join(t.TempDir(), "none.sock"))
	if code != statusUnreachable || !strings.Contains(out, "did not answer") {
		t.Errorf("status of a missing socket: exit %d, want %d:\n%s", code, statusUnreachable, out)
	}
}

// Bad METRICS_ADDR values stop the daemon at start with a reason, and so
// does an address it cannot listen on.
func TestMetricsAddrRefused(t *testing.T) {
	for _, bad := range []struct{ addr, why string }{
		{"9337", "not host:port"},
		{"127.0.0.1", "not host:port"},
		{"127.0.0.1:0", "from 1 to 65535"},
		{"127.0.0.1:http", "from 1 to 65535"},
		{"127.0.0.1:70000", "from 1 to 65535"},
		{"metrics.example:9337", "not an IP address"},
	} {
		err := checkMetricsAddr(bad.addr)
		if err == nil || !strings.Contains(err.Error(), bad.why) || !strings.Contains(err.Error(), "METRICS_ADDR") {
			t.Errorf("METRICS_ADDR=%q: err = %v, want one saying %q", bad.addr, err, bad.why)
		}
	}
	for _, good := range []string{"", "127.0.0.1:9337", "[::1]:9337", ":9337", "localhost:9337"} {
		if err := checkMetricsAddr(good); err != nil {
			t.Errorf("METRICS_ADDR=%q refused: %v", good, err)
		}
	}

	// The real binary: a bad value, and a port already taken.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, c := range []struct{ addr, why string }{
		{"127.0.0.1", "is not host:port"},
		{taken.Addr().String(), "cannot listen there"},
	} {
		dir := t.TempDir()
		cmd := exec.Command(binary(t), "-socket", filepath.Join(dir, "s.sock"), "-state-dir", filepath.Join(dir, "state"))
		cmd.Env = append(os.Environ(), "METRICS_ADDR="+c.addr)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.why) {
			t.Errorf("METRICS_ADDR=%s: err %v, output %s; want a refusal saying %q", c.addr, err, out, c.why)
		}
		if _, serr := os.Stat(filepath.Join(dir, "state")); serr == nil {
			t.Errorf("METRICS_ADDR=%s: the refused daemon created its state directory", c.addr)
		}
	}
}

// A bad HOST_ADDRESS stops the daemon at start, before it listens or
// touches its state, and says why.
func TestHostAddressRefused(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(binary(t), "-socket", filepath.Join(dir, "s.sock"), "-state-dir", filepath.Join(dir, "state"))
	cmd.Env = append(os.Environ(), "HOST_ADDRESS=lan=10.1.2.3/24")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), `HOST_ADDRESS entry "lan=10.1.2.3/24": "10.1.2.3/24" is not an IPv4 or IPv6 address`) {
		t.Errorf("err %v, output %s; want the HOST_ADDRESS refusal", err, out)
	}
	for _, p := range []string{"state", "s.sock"} {
		if _, serr := os.Stat(filepath.Join(dir, p)); serr == nil {
			t.Errorf("the refused daemon created %s", p)
		}
	}
}
