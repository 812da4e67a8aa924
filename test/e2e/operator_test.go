//go:build e2e

package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/telemetry/telemetrytest"
	"github.com/macvlan-swarm/macvlan-swarm/test/e2e/lab"
)

// opMetricsAddr is where TestNetworkLocalScope's plugin serves metrics,
// inside its node's namespace.
const opMetricsAddr = "127.0.0.1:9337"

// testOperatorViews: what an operator sees on a real engine. After a known
// number of container starts the metrics have counted exactly those
// requests and links; `macvlan-swarm status`, finding the plugin through the
// engine, lists a running container's endpoint and no drift; setting the
// container's interface down behind the plugin's back is drift (exit 1)
// until it is up again.
func (b *netBench) testOperatorViews(t *testing.T) {
	const starts = 5
	net := "ops"
	b.network(t, net, "--subnet", "10.98.40.0/24", "--gateway", "10.98.40.1", "-o", "parent="+b.n.LANLink)
	before := b.scrape(t)
	for range starts {
		b.n.Docker(t, "run", "--rm", "--network", net, b.img, "true")
	}
	var after map[string]float64
	lab.Eventually(t, 10*time.Second, 100*time.Millisecond, "the reaper deletes the containers' links", func() error {
		after = b.scrape(t)
		if d := after["macvlan_swarm_host_links_deleted_total"] - before["macvlan_swarm_host_links_deleted_total"]; d != starts {
			return fmt.Errorf("%v links deleted since the first scrape, want %d", d, starts)
		}
		return nil
	})
	for key, want := range map[string]float64{
		"macvlan_swarm_requests_total/CreateEndpoint":       starts,
		"macvlan_swarm_requests_total/Join":                 starts,
		"macvlan_swarm_requests_total/Leave":                starts,
		"macvlan_swarm_requests_total/DeleteEndpoint":       starts,
		"macvlan_swarm_request_duration_seconds/Join#count": starts,
		"macvlan_swarm_host_links_created_total":            starts,
		"macvlan_swarm_endpoints":                           0,
	} {
		if d := after[key] - before[key]; d != want {
			t.Errorf("%s grew by %v over %d container starts, want %v", key, d, starts, want)
		}
	}
	for key, v := range after {
		if strings.HasPrefix(key, "macvlan_swarm_request_errors_total") && v != before[key] {
			t.Errorf("%s grew from %v to %v: no request failed", key, before[key], v)
		}
	}

	const ctr = "ops-a"
	b.run(t, ctr, net, "--ip", "10.98.40.7")
	out, code := b.statusCmd(t)
	if code != 0 || !strings.Contains(out, "10.98.40.7/24") || !strings.Contains(out, "DRIFT none") {
		t.Fatalf("status with a running container: exit %d, want 0 listing 10.98.40.7/24 and no drift:\n%s", code, out)
	}
	key := b.inspect(t, ctr, "{{.NetworkSettings.SandboxKey}}")
	ipIn := func(args ...string) {
		t.Helper()
		if o, err := exec.Command("nsenter", append([]string{"--net=" + key, "ip"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v in %s: %v\n%s", args, ctr, err, o)
		}
	}
	ipIn("link", "set", "eth0", "down")
	// The plugin gives a container 5 s after Join to bring its link up.
	lab.Eventually(t, 20*time.Second, 500*time.Millisecond, "status reports the downed link", func() error {
		out, code = b.statusCmd(t)
		if code != 1 || !strings.Contains(out, "link_missing") {
			return fmt.Errorf("exit %d:\n%s", code, out)
		}
		return nil
	})
	t.Logf("status with drift:\n%s", out)
	ipIn("link", "set", "eth0", "up")
	if out, code := b.statusCmd(t); code != 0 {
		t.Errorf("status after the link came back: exit %d, want 0:\n%s", code, out)
	}
}

// scrape reads the plugin's metrics from inside the node's namespace.
func (b *netBench) scrape(t *testing.T) map[string]float64 {
	t.Helper()
	m, err := telemetrytest.Scrape(b.n.NetNS, opMetricsAddr)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// statusCmd runs the host command `macvlan-swarm status` as an operator on
// the node would: it finds the plugin through the node's engine.
func (b *netBench) statusCmd(t *testing.T) (string, int) {
	t.Helper()
	bin := filepath.Join(lab.PluginDir(t), "rootfs", "macvlan-swarm")
	var out bytes.Buffer
	c := exec.Command(bin, "status", "--exec-root", b.n.ExecRoot())
	c.Env = append(lab.CleanEnv(), "DOCKER_HOST="+b.n.Host)
	c.Stdout, c.Stderr = &out, &out
	err := c.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return out.String(), c.ProcessState.ExitCode()
}
