//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/test/e2e/lab"
)

// pluginRef is the name every test installs the driver under.
const pluginRef = "macvlan-swarm:latest"

// TestSmokePing: on a one-node swarm, two containers on an attachable
// macvlan-swarm network reach each other, and once they and the network
// are gone the node has no host link of the driver left.
func TestSmokePing(t *testing.T) {
	step := lab.Steps(t)
	pluginDir := lab.PluginDir(t) // skips while the daemon does not exist yet
	step("plugin built")
	l := lab.New(t, lab.Options{Nodes: 1})
	n := l.Node(1)
	img := lab.BusyboxImage(t, n)
	step("busybox imported")
	// Before the swarm: the node's first description then lists the plugin
	// (enabled later, the managers learn of it only ~20 s later).
	n.InstallPluginFromDir(t, pluginRef, pluginDir)
	step("plugin installed")
	lab.SingleNodeSwarm(t, n)
	lab.WaitPluginListed(t, n, pluginRef, n)
	step("single-node swarm")

	n.Docker(t, "network", "create", "-d", pluginRef, "--attachable",
		"--subnet", "10.98.0.0/24", "--gateway", "10.98.0.1", "-o", "parent="+n.LANLink, "testnet")
	n.Docker(t, append([]string{"run", "-d", "--name", "target", "--network", "testnet", img}, lab.Sleeper...)...)
	ip := n.Docker(t, "inspect", "-f", `{{(index .NetworkSettings.Networks "testnet").IPAddress}}`, "target")
	if !strings.HasPrefix(ip, "10.98.0.") {
		t.Fatalf("target address %q, want one in 10.98.0.0/24", ip)
	}
	out := n.Docker(t, "run", "--rm", "--name", "pinger", "--network", "testnet", img, "ping", "-c1", "-W2", ip)
	if !strings.Contains(out, "1 packets received") {
		t.Errorf("ping %s:\n%s", ip, out)
	}
	step("network, two containers, ping")

	n.Docker(t, "rm", "-f", "target")
	n.Docker(t, "network", "rm", "testnet")
	// Host links may be deleted in batches a moment after the endpoint goes.
	lab.Eventually(t, 10*time.Second, 100*time.Millisecond, "no driver link left on the node", func() error {
		var left []string
		for _, name := range n.LinkNames(t) {
			if strings.HasPrefix(name, "mvs") {
				left = append(left, name)
			}
		}
		if len(left) > 0 {
			return fmt.Errorf("links left in %s: %v", n.NetNS, left)
		}
		return nil
	})
	step("containers, network and links removed")
}
