//go:build e2e

package e2e

// host_access and networks without a parent on real engines:
//
//	TestHostAccessEngine     one standalone engine (SCOPE=local, any engine
//	                         version): the node and its container exchange
//	                         traffic both ways through the shim; refusals;
//	                         a plugin restart keeps the shim and puts back
//	                         a route deleted behind its back
//	TestHostAccessSwarm      two-node swarm, a global service: each node
//	                         routes only its own task through its shim and
//	                         reaches the other node's task over the LAN
//	TestParentlessNetwork    a network without parent (the built-in
//	                         driver's NilParent / MultiSubnetNoParent cases):
//	                         containers on the node reach each other on a
//	                         private lower link, get no gateway, survive a
//	                         plugin restart; the link goes with the network

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/test/e2e/lab"
)

// haSubnet is the lab LAN itself: a node's own LAN address (lab.LANPrefix
// .10+K) is in it, so the shim borrows it. Containers take the upper half.
const (
	haSubnet  = lab.LANSubnet
	haIPRange = lab.LANPrefix + ".128/25"
)

// nodePing pings addr once from the node's namespace (the host side), with
// one more try for a first packet lost to address resolution.
func nodePing(n *lab.Node, addr string) (bool, string) {
	var out, errOut string
	var err error
	for try := 0; try < 2; try++ {
		out, errOut, err = n.ExecErr("busybox", "ping", "-c1", "-W2", addr)
		if err == nil && strings.Contains(out, "1 packets received") {
			return true, out
		}
	}
	return false, fmt.Sprintf("%v\n%s\n%s", err, out, errOut)
}

func wantNodePing(t *testing.T, n *lab.Node, addr, what string) {
	t.Helper()
	if ok, out := nodePing(n, addr); !ok {
		t.Errorf("%s: ping %s from %s's namespace: no answer: %s", what, addr, n.Name, out)
	}
}

// shimRoutes lists the destinations of the plugin's routes (protocol 109)
// in the node's main table, sorted, with the device each goes through.
func shimRoutes(t *testing.T, n *lab.Node) []string {
	t.Helper()
	out := n.Exec(t, "ip", "-4", "route", "show", "proto", "109")
	var got []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[1] == "dev" {
			got = append(got, f[0]+" dev "+f[2])
		}
	}
	slices.Sort(got)
	return got
}

func shimLinks(t *testing.T, n *lab.Node) []string {
	t.Helper()
	var out []string
	for _, name := range n.LinkNames(t) {
		if strings.HasPrefix(name, "mvh") {
			out = append(out, name)
		}
	}
	return out
}

func TestHostAccessEngine(t *testing.T) {
	step := lab.Steps(t)
	n, b, pluginDir := oneEngine(t)
	n.InstallPluginFromDir(t, pluginRef, pluginDir, "SCOPE=local")
	step("standalone engine with the plugin (SCOPE=local)")

	before := n.LinkNames(t)
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"bad value", []string{"-o", "host_access=yes-please"}, `host_access "yes-please" is not valid: use true or false`},
		{"private mode", []string{"-o", "host_access=true", "-o", "macvlan_mode=private"}, "host_access needs macvlan_mode bridge: in private mode"},
		{"internal", []string{"-o", "host_access=true", "--internal"}, "host_access is refused on an --internal network"},
		{"no address in the subnet", []string{"-o", "host_access=true", "--subnet", "10.96.7.0/24"}, "has no IPv4 address in the network's subnets 10.96.7.0/24"},
	} {
		args := []string{"network", "create", "-d", pluginRef, "-o", "parent=" + n.LANLink}
		if !slices.Contains(c.args, "--subnet") {
			args = append(args, "--subnet", haSubnet)
		}
		args = append(append(args, c.args...), "ha-refused")
		_, errOut, err := n.DockerErr(args...)
		if err == nil {
			b.removeNetwork(t, "ha-refused")
			t.Errorf("%s: network created, want a refusal", c.name)
			continue
		}
		if !strings.Contains(errOut, c.want) {
			t.Errorf("%s: refusal %q does not say %q", c.name, errOut, c.want)
		}
	}
	if after := n.LinkNames(t); !slices.Equal(after, before) {
		t.Errorf("refusals changed the node's links: %v, then %v", before, after)
	}
	step("refusals")

	b.network(t, "ha", "--subnet", haSubnet, "--ip-range", haIPRange, "--gateway", lab.BridgeAddr,
		"-o", "parent="+n.LANLink, "-o", "host_access=true")
	b.run(t, "ha-c1", "ha")
	ip := b.ipv4(t, "ha-c1", "ha")
	shims := shimLinks(t, n)
	if len(shims) != 1 {
		t.Fatalf("shim links on the node: %v, want one", shims)
	}
	if got, want := shimRoutes(t, n), []string{ip + " dev " + shims[0]}; !slices.Equal(got, want) {
		t.Errorf("routes of protocol 109: %v, want %v", got, want)
	}
	if out := n.Exec(t, "ip", "-4", "addr", "show", "dev", shims[0]); !strings.Contains(out, n.Addr+"/32") {
		t.Errorf("shim %s addresses:\n%s\nwant the parent's own %s/32", shims[0], out, n.Addr)
	}
	wantNodePing(t, n, ip, "node to its container")
	b.ping(t, "ha-c1", n.Addr)
	step("node and container reach each other through the shim")

	// The control: without its route the node's packets go to the parent,
	// which never hands them to its own macvlan children. The restart
	// below must put the route back.
	n.Exec(t, "ip", "route", "del", ip+"/32", "dev", shims[0])
	if ok, out := nodePing(n, ip); ok {
		t.Errorf("the node reached its container without the shim's route; the test cannot tell the shim works: %s", out)
	}
	n.Docker(t, "plugin", "disable", "-f", pluginRef)
	n.Docker(t, "plugin", "enable", pluginRef)
	if got, want := shimLinks(t, n), shims; !slices.Equal(got, want) {
		t.Errorf("shims after a plugin restart: %v, want %v", got, want)
	}
	if got, want := shimRoutes(t, n), []string{ip + " dev " + shims[0]}; !slices.Equal(got, want) {
		t.Errorf("routes after a plugin restart: %v, want %v", got, want)
	}
	wantNodePing(t, n, ip, "node to its container after a plugin restart")
	step("route deleted, plugin restart")

	n.Docker(t, "rm", "-f", "ha-c1")
	lab.Eventually(t, 20*time.Second, 100*time.Millisecond, "route of the removed container gone", func() error {
		if got := shimRoutes(t, n); len(got) > 0 {
			return fmt.Errorf("routes of protocol 109: %v", got)
		}
		return nil
	})
	b.removeNetwork(t, "ha")
	if got := shimLinks(t, n); len(got) > 0 {
		t.Errorf("shim left after the network went: %v", got)
	}
	b.waitNoDriverLinks(t)
	step("container and network removed")
}

func TestHostAccessSwarm(t *testing.T) {
	step := lab.Steps(t)
	pluginDir := lab.PluginDir(t)
	l := lab.New(t, lab.Options{Nodes: 2})
	n1, n2 := l.Node(1), l.Node(2)
	var img string
	for _, n := range l.Nodes {
		img = lab.BusyboxImage(t, n)
		n.InstallPluginFromDir(t, pluginRef, pluginDir)
	}
	l.InitSwarm(t, 1, 1)
	lab.WaitPluginListed(t, n1, pluginRef, l.Nodes...)
	step("two-node swarm with the plugin")

	n1.Docker(t, "network", "create", "-d", pluginRef, "--subnet", haSubnet, "--ip-range", haIPRange,
		"--gateway", lab.BridgeAddr, "-o", "parent="+n1.LANLink, "-o", "host_access=true", "ha")
	t.Cleanup(func() {
		lab.Eventually(t, 30*time.Second, 250*time.Millisecond, "remove network ha", func() error {
			if _, errOut, err := n1.DockerErr("network", "rm", "ha"); err != nil && !nbGone(errOut) {
				return fmt.Errorf("%v: %s", err, errOut)
			}
			return nil
		})
	})
	n1.Docker(t, "service", "create", "--detach", "--name", "ha-g", "--mode", "global", "--network", "ha",
		"--endpoint-mode", "dnsrr", "--no-resolve-image", img, "sh", "-c", lab.Sleeper[2])
	t.Cleanup(func() { n1.DockerErr("service", "rm", "ha-g") })

	// Each node's task: its container and address.
	ips := map[*lab.Node]string{}
	ctrs := map[*lab.Node]string{}
	lab.Eventually(t, 45*time.Second, 250*time.Millisecond, "one running task per node", func() error {
		for _, n := range l.Nodes {
			id, _, err := n.DockerErr("ps", "-q", "--filter", "label=com.docker.swarm.service.name=ha-g")
			if err != nil || id == "" || strings.Contains(id, "\n") {
				return fmt.Errorf("%s: containers %q (%v)", n.Name, id, err)
			}
			ip, _, err := n.DockerErr("inspect", "-f", `{{(index .NetworkSettings.Networks "ha").IPAddress}}`, id)
			if err != nil || ip == "" {
				return fmt.Errorf("%s: no address yet (%v)", n.Name, err)
			}
			ips[n], ctrs[n] = ip, id
		}
		return nil
	})
	step("global service running")

	for _, n := range l.Nodes {
		other := n1
		if n == n1 {
			other = n2
		}
		shims := shimLinks(t, n)
		if len(shims) != 1 {
			t.Errorf("%s: shim links %v, want one", n.Name, shims)
			continue
		}
		// Only its own task goes through the shim; the other node's task
		// is reached over the LAN (the connected route of the parent).
		if got, want := shimRoutes(t, n), []string{ips[n] + " dev " + shims[0]}; !slices.Equal(got, want) {
			t.Errorf("%s: routes of protocol 109 %v, want only its own task's %v", n.Name, got, want)
		}
		if out := n.Exec(t, "ip", "-4", "route", "get", ips[other]); !strings.Contains(out, "dev "+n.LANLink) {
			t.Errorf("%s: the route to the other node's task %s is %q, want it over %s", n.Name, ips[other], out, n.LANLink)
		}
		wantNodePing(t, n, ips[n], "node to its own task")
		wantNodePing(t, n, ips[other], "node to the other node's task")
		for _, target := range []string{n.Addr, other.Addr} {
			var out, errOut string
			var err error
			// Two tries: the first packet may be lost to ARP.
			for try := 0; try < 2; try++ {
				if out, errOut, err = n.DockerErr("exec", ctrs[n], "ping", "-c1", "-W2", target); err == nil {
					break
				}
			}
			if err != nil {
				t.Errorf("%s: its task cannot ping %s: %v\n%s\n%s", n.Name, target, err, out, errOut)
			}
		}
	}
	step("each node reaches its own task through its shim and the other over the LAN")
}

func TestParentlessNetwork(t *testing.T) {
	step := lab.Steps(t)
	pluginDir := lab.PluginDir(t)
	l := lab.New(t, lab.Options{Nodes: 1})
	n := l.Node(1)
	b := &netBench{n: n, img: lab.BusyboxImage(t, n)}
	n.InstallPluginFromDir(t, pluginRef, pluginDir, "SCOPE=local")
	lanIndex := b.nodeLink(t, n.LANLink).Index
	step("standalone engine with the plugin (SCOPE=local)")

	_, errOut, err := n.DockerErr("network", "create", "-d", pluginRef, "--subnet", "10.95.0.0/24", "-o", "host_access=true", "pl-refused")
	if err == nil {
		b.removeNetwork(t, "pl-refused")
		t.Errorf("host_access without a parent accepted")
	} else if !strings.Contains(errOut, "host_access needs a parent") {
		t.Errorf("host_access without a parent: %q", errOut)
	}

	for _, c := range []struct {
		name string
		args []string
	}{
		{"pl-multi", []string{"--subnet", "10.95.1.0/24", "--subnet", "10.95.2.0/24", "--ipv6", "--subnet", "fd95::/64"}},
		{"pl-internal", []string{"--internal", "--subnet", "10.95.3.0/24"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			id := b.network(t, c.name, c.args...)
			lower := "mvi" + id[:12]
			l := b.nodeLink(t, lower)
			if l.LinkInfo.Kind != "veth" && l.LinkInfo.Kind != "dummy" {
				t.Errorf("private lower link %s is a %q, want veth or dummy", lower, l.LinkInfo.Kind)
			}
			c1, c2 := c.name+"-a", c.name+"-b"
			b.run(t, c1, c.name)
			b.run(t, c2, c.name)
			for _, ctr := range []string{c1, c2} {
				cl := b.containerLink(t, ctr, "eth0")
				if cl.LinkIndex != l.Index || cl.LinkIndex == lanIndex {
					t.Errorf("%s eth0 sits on link %d, want the private lower link %s (%d)", ctr, cl.LinkIndex, lower, l.Index)
				}
				if routes := b.exec(t, ctr, "ip", "route"); strings.Contains(routes, "default") {
					t.Errorf("%s has a default route on a network without parent:\n%s", ctr, routes)
				}
			}
			b.ping(t, c1, b.ipv4(t, c2, c.name))
			if strings.Contains(strings.Join(c.args, " "), "--ipv6") {
				b.ping6(t, c2, b.ipv6(t, c1, c.name))
			}
			n.Docker(t, "plugin", "disable", "-f", pluginRef)
			n.Docker(t, "plugin", "enable", pluginRef)
			if after := b.nodeLink(t, lower); after.Index != l.Index {
				t.Errorf("plugin restart replaced %s", lower)
			}
			b.ping(t, c2, b.ipv4(t, c1, c.name))
			n.Docker(t, "rm", "-f", c1, c2)
			b.removeNetwork(t, c.name)
			for _, name := range n.LinkNames(t) {
				if name == lower || name == "mvj"+id[:12] {
					t.Errorf("%s left after the network went", name)
				}
			}
		})
	}
	b.waitNoDriverLinks(t)
	step("subtests")
}
