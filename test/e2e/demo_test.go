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

// TestDemo is what `make demo` runs, and the suite's smoke test: a private
// engine in a network namespace of its own, the plugin installed from
// build/plugin, a macvlan-swarm network on the node's LAN link (engine 20.10
// takes global-scope drivers only in swarm mode: there the node becomes a
// single-node swarm and the network is attachable; newer engines take it
// standalone), two containers that reach each other by name, and then
// everything removed with no host link of the driver left behind.
func TestDemo(t *testing.T) {
	say := func(format string, args ...any) { t.Helper(); t.Logf("demo: "+format, args...) }
	pluginDir := lab.PluginDir(t)
	l := lab.New(t, lab.Options{Nodes: 1})
	n := l.Node(1)
	say("started a private dockerd %s in network namespace %s; its LAN link is %s (%s)", n.Engine(), n.NetNS, n.LANLink, n.Addr)
	img := lab.BusyboxImage(t, n)

	// Before the swarm: the node's first description then lists the plugin
	// (enabled later, the managers learn of it only ~20 s later).
	n.InstallPluginFromDir(t, pluginRef, pluginDir)
	say("installed the plugin: %s", n.Docker(t, "plugin", "ls", "--no-trunc", "--format", "{{.Name}} enabled={{.Enabled}} {{.Description}}"))
	nets := readyForPluginNets(t, n, pluginRef)
	if nets.Swarm {
		say("made it a single-node swarm (engine %s needs swarm mode for a global-scope driver)", n.Engine().Name)
	} else {
		say("no swarm: engine %s takes a global-scope driver standalone", n.Engine().Name)
	}

	create := append(append([]string{"network", "create", "-d", pluginRef}, nets.Flags...),
		"--subnet", "10.98.0.0/24", "--gateway", "10.98.0.1", "-o", "parent="+n.LANLink, "demo")
	n.Docker(t, create...)
	say("docker %s", strings.Join(create, " "))

	n.Docker(t, append([]string{"run", "-d", "--name", "server", "--network", "demo", img}, lab.Sleeper...)...)
	ip := n.Docker(t, "inspect", "-f", `{{(index .NetworkSettings.Networks "demo").IPAddress}}`, "server")
	mac := n.Docker(t, "inspect", "-f", `{{(index .NetworkSettings.Networks "demo").MacAddress}}`, "server")
	if !strings.HasPrefix(ip, "10.98.0.") {
		t.Fatalf("server address %q, want one in 10.98.0.0/24", ip)
	}
	say("container server: address %s, MAC %s; inside it:\n%s", ip, mac, n.Docker(t, "exec", "server", "ip", "link", "show", "eth0"))

	out := n.Docker(t, "run", "--rm", "--name", "client", "--network", "demo", img,
		"sh", "-c", "ip -o -4 addr show eth0; ip link show eth0 | grep ether; ping -c2 -W2 server")
	say("container client, pinging server by name:\n%s", out)
	if !strings.Contains(out, "2 packets received") {
		t.Fatalf("client could not reach server:\n%s", out)
	}

	n.Docker(t, "rm", "-f", "server")
	n.Docker(t, "network", "rm", "demo")
	// Host links are deleted in batches a moment after their endpoint goes.
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
	say("removed the containers and the network; the node has no link of the driver left; the lab goes next")
}
