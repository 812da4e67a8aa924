//go:build e2e

package e2e

// The single-engine functional bench: everything a user does with one
// engine, through the docker CLI, checked from inside the containers and
// from the node's namespace.
//
//	TestNetworkBench       plugin with the default SCOPE=global: on 20.10 a
//	                       one-node swarm, on newer engines standalone
//	TestNetworkLocalScope  standalone engine, plugin with SCOPE=local on 20.10;
//	                       newer engines run it with SCOPE=global (the
//	                       setting exists for engines older than 26)
//
// Both share one lab node across their subtests; every subtest removes what
// it created (t.Cleanup), and the last subtest of each checks that nothing
// of the driver is left on the node.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/test/e2e/lab"
)

// TestNetworkBench drives the driver with its default global scope: on the
// 20.10 engine that needs swarm mode (a one-node swarm, --attachable
// networks that plain `docker run` can use); engines from 26 on take it
// standalone.
func TestNetworkBench(t *testing.T) {
	step := lab.Steps(t)
	pluginDir := lab.PluginDir(t)
	l := lab.New(t, lab.Options{Nodes: 1})
	n := l.Node(1)
	// Installed before any swarm exists, so the node's first description
	// already lists it.
	n.InstallPluginFromDir(t, pluginRef, pluginDir)
	nets := readyForPluginNets(t, n, pluginRef)
	b := &netBench{n: n, img: lab.BusyboxImage(t, n), nets: nets}
	step("engine " + n.Engine().Name + " with the plugin, swarm " + strconv.FormatBool(nets.Swarm))

	t.Run("parent_and_candidate_list", b.testParents)
	t.Run("static_ip_and_mac", b.testStaticIPv4AndMAC)
	t.Run("mtu", b.testMTU)
	t.Run("internal", b.testInternal)
	t.Run("dual_stack", b.testDualStack)
	t.Run("several_networks_connect_disconnect", b.testConnectDisconnect)
	t.Run("service_refusals", func(t *testing.T) {
		if !nets.Swarm {
			t.Skipf("engine %s runs this bench standalone and services need swarm mode; its network create refuses at once (TestNetworkLocalScope/refusals), and TestSwarmBench checks per-node refusals of services", n.Engine().Name)
		}
		b.testServiceRefusals(t)
	})
	t.Run("nothing_left", b.testNothingLeft)
	step("subtests")
}

// TestNetworkLocalScope drives the driver on a standalone engine (no
// swarm): with SCOPE=local on 20.10, which refuses a global-scope driver
// outside swarm mode, and with the default SCOPE=global on engines from 26
// on, which take it standalone. Here CreateNetwork runs at `docker network
// create`, so every refusal reaches the user at once.
func TestNetworkLocalScope(t *testing.T) {
	step := lab.Steps(t)
	pluginDir := lab.PluginDir(t)
	l := lab.New(t, lab.Options{Nodes: 1})
	n := l.Node(1)
	b := &netBench{n: n, img: lab.BusyboxImage(t, n), nets: pluginNets{Scope: "local"}}
	settings := []string{"METRICS_ADDR=" + opMetricsAddr}
	if n.Engine().GlobalStandalone {
		b.nets.Scope = "global"
	} else {
		settings = append(settings, "SCOPE=local")
	}
	n.InstallPluginFromDir(t, pluginRef, pluginDir, settings...)
	step(fmt.Sprintf("standalone engine %s with the plugin (%s, metrics on)", n.Engine().Name, strings.Join(settings, " ")))

	t.Run("refusals", b.testRefusals)
	t.Run("vlan_parent", b.testVLANParent)
	t.Run("container_refusals", b.testContainerRefusals)
	t.Run("two_containers_dual_stack", b.testLocalDualStack)
	t.Run("macvlan_modes", b.testModes)
	t.Run("operator_views", b.testOperatorViews)
	t.Run("engine28", b.testEngine28)
	t.Run("nothing_left", b.testNothingLeft)
	step("subtests")
}

// netBench is one lab node with the plugin installed, shared by subtests.
type netBench struct {
	n    *lab.Node
	img  string
	nets pluginNets // how networks are made on this engine, and their scope
}

// ---------------------------------------------------------------------------
// Subtests on the one-node swarm

// testParents: a network on the node's LAN link by name, and one with a
// candidate list whose first name does not exist here. On each, two
// containers reach each other by address and by name (the engine's DNS),
// and the container's link is a bridge-mode macvlan on the node's eth0.
func (b *netBench) testParents(t *testing.T) {
	parentIndex := b.nodeLink(t, b.n.LANLink).Index
	for _, c := range []struct{ net, subnet, parent string }{
		{"par-name", "10.98.1", b.n.LANLink},
		{"par-list", "10.98.11", "nope0|" + b.n.LANLink},
	} {
		b.network(t, c.net, "--subnet", c.subnet+".0/24", "--gateway", c.subnet+".1", "-o", "parent="+c.parent)
		c1, c2 := c.net+"-a", c.net+"-b"
		b.run(t, c1, c.net)
		b.run(t, c2, c.net)
		ip1, ip2 := b.ipv4(t, c1, c.net), b.ipv4(t, c2, c.net)
		for _, ip := range []string{ip1, ip2} {
			if !strings.HasPrefix(ip, c.subnet+".") {
				t.Errorf("%s: container address %q, want one in %s.0/24", c.net, ip, c.subnet)
			}
		}
		b.ping(t, c1, ip2)
		b.ping(t, c2, ip1)
		// By name: the embedded DNS answers with the peer's address.
		if out := b.ping(t, c1, c2); !strings.Contains(out, "("+ip2+")") {
			t.Errorf("%s: ping %s resolved to something else than %s:\n%s", c.net, c2, ip2, out)
		}
		if out := b.ping(t, c2, c1); !strings.Contains(out, "("+ip1+")") {
			t.Errorf("%s: ping %s resolved to something else than %s:\n%s", c.net, c1, ip1, out)
		}
		// From the host side: a macvlan in bridge mode whose lower link is
		// the node's LAN link (not docker0 or anything else).
		l := b.containerLink(t, c1, "eth0")
		if l.LinkInfo.Kind != "macvlan" || l.LinkInfo.Data.Mode != "bridge" {
			t.Errorf("%s: %s eth0 is %q mode %q, want macvlan mode bridge", c.net, c1, l.LinkInfo.Kind, l.LinkInfo.Data.Mode)
		}
		if l.LinkIndex != parentIndex {
			t.Errorf("%s: %s eth0 sits on link index %d, want %d (%s of the node)", c.net, c1, l.LinkIndex, parentIndex, b.n.LANLink)
		}
		if got, want := b.inspectNetwork(t, c.net, "{{.Scope}} {{.Driver}}"), b.nets.Scope+" "+pluginRef; got != want {
			t.Errorf("%s: scope and driver %q, want %q", c.net, got, want)
		}
	}
}

// testStaticIPv4AndMAC: --ip and --mac-address are what the container gets;
// without --mac-address the MAC is 02:42 followed by the IPv4 address.
// (--ip6 is checked on the local-scope engine: on a 20.10 swarm the
// manager's allocator ignores --ip6 for attachable networks, before the
// driver is involved.)
func (b *netBench) testStaticIPv4AndMAC(t *testing.T) {
	const net = "static4"
	b.network(t, net, "--subnet", "10.98.2.0/24", "--gateway", "10.98.2.1", "-o", "parent="+b.n.LANLink)
	const ip, mac = "10.98.2.50", "02:aa:bb:cc:dd:ee"
	b.run(t, "static4-a", net, "--ip", ip, "--mac-address", mac)
	b.run(t, "static4-b", net)

	addr := b.exec(t, "static4-a", "ip", "-o", "addr", "show", "dev", "eth0")
	if !strings.Contains(addr, " inet "+ip+"/24 ") {
		t.Errorf("static4-a: eth0 lacks %s/24:\n%s", ip, addr)
	}
	if link := b.exec(t, "static4-a", "ip", "link", "show", "dev", "eth0"); !strings.Contains(link, "link/ether "+mac+" ") {
		t.Errorf("static4-a: eth0 MAC is not %s:\n%s", mac, link)
	}
	if got := b.inspect(t, "static4-a", `{{(index .NetworkSettings.Networks "`+net+`").MacAddress}}`); got != mac {
		t.Errorf("static4-a: docker inspect MAC %q, want %s", got, mac)
	}
	ipB := b.ipv4(t, "static4-b", net)
	if got, want := b.containerLink(t, "static4-b", "eth0").Address, nbDefaultMAC(t, ipB); got != want {
		t.Errorf("static4-b (%s): MAC %s, want the address-derived %s", ipB, got, want)
	}
	b.ping(t, "static4-b", ip)
	b.ping(t, "static4-a", ipB)
}

// testMTU: both spellings of the MTU option reach the container's link.
// (A too-large MTU is refused: at `network create` on the local-scope
// engine, in the task's error on a swarm; see those subtests.)
func (b *netBench) testMTU(t *testing.T) {
	for _, c := range []struct{ net, subnet, opt string }{
		{"mtu-short", "10.98.3", "mtu=1400"},
		{"mtu-engine", "10.98.13", "com.docker.network.driver.mtu=1400"},
	} {
		b.network(t, c.net, "--subnet", c.subnet+".0/24", "-o", "parent="+b.n.LANLink, "-o", c.opt)
		b.run(t, c.net+"-a", c.net)
		b.run(t, c.net+"-b", c.net)
		if out := b.exec(t, c.net+"-a", "ip", "link", "show", "dev", "eth0"); !strings.Contains(out, " mtu 1400 ") {
			t.Errorf("%s (-o %s): eth0 MTU is not 1400:\n%s", c.net, c.opt, out)
		}
		if l := b.containerLink(t, c.net+"-a", "eth0"); l.MTU != 1400 {
			t.Errorf("%s: host view of eth0: MTU %d, want 1400", c.net, l.MTU)
		}
		// A packet of exactly 1400 bytes (1372 + ICMP 8 + IPv4 20) passes.
		b.ping(t, c.net+"-a", b.ipv4(t, c.net+"-b", c.net), "-s", "1372")
	}
}

// testInternal: an --internal network gives no default route, and its
// containers still reach each other.
func (b *netBench) testInternal(t *testing.T) {
	const net = "internal"
	b.network(t, net, "--internal", "--subnet", "10.98.4.0/24", "--gateway", "10.98.4.1", "-o", "parent="+b.n.LANLink)
	b.run(t, "internal-a", net)
	b.run(t, "internal-b", net)
	for _, c := range []string{"internal-a", "internal-b"} {
		routes := b.exec(t, c, "ip", "route")
		if strings.Contains(routes, "default") {
			t.Errorf("%s on an internal network has a default route:\n%s", c, routes)
		}
		if !strings.Contains(routes, "10.98.4.0/24 dev eth0") {
			t.Errorf("%s: no route to its own subnet:\n%s", c, routes)
		}
	}
	if got := b.inspectNetwork(t, net, "{{.Internal}}"); got != "true" {
		t.Errorf("docker network inspect: Internal %s, want true", got)
	}
	b.ping(t, "internal-a", b.ipv4(t, "internal-b", net))
	b.ping(t, "internal-b", "internal-a")
}

// testDualStack: an IPv4+IPv6 network gives each container both addresses
// and both default routes via the gateways; IPv6 flows between them.
//
// The containers get --ip because of the 20.10 engine, not the driver: the
// swarm manager allocates ONE address per attachment, from whichever of the
// network's pools (IPv4 and IPv6 alike) its map iteration yields first, and
// the node's own IPAM picks the other family by itself. Without --ip a
// second container is then, now and again, refused with "Address already in
// use" (the manager's first IPv6 address is the one the node's IPAM gave
// the first container) before any driver call. A requested IPv4 address is
// out of range for the IPv6 pool, so the manager always allocates it from
// the IPv4 pool and IPv6 is left to the node alone.
func (b *netBench) testDualStack(t *testing.T) {
	const net = "dual"
	b.network(t, net, "--ipv6",
		"--subnet", "10.98.5.0/24", "--gateway", "10.98.5.1",
		"--subnet", "fd00:98:5::/64", "--gateway", "fd00:98:5::1",
		"-o", "parent="+b.n.LANLink)
	b.run(t, "dual-a", net, "--ip", "10.98.5.50")
	b.run(t, "dual-b", net, "--ip", "10.98.5.51")
	b.checkDualStack(t, net, []string{"dual-a", "dual-b"}, "10.98.5", "fd00:98:5::")
}

// checkDualStack checks addresses and default routes of containers on a
// dual-stack network, and pings both ways over IPv6.
func (b *netBench) checkDualStack(t *testing.T, net string, containers []string, v4, v6 string) {
	t.Helper()
	var v6addrs []string
	for _, c := range containers {
		ip4, ip6 := b.ipv4(t, c, net), b.ipv6(t, c, net)
		if !strings.HasPrefix(ip4, v4+".") || !strings.HasPrefix(ip6, v6) {
			t.Errorf("%s: addresses %q and %q, want %s.x and %sx", c, ip4, ip6, v4, v6)
		}
		addrs := b.exec(t, c, "ip", "-o", "addr", "show", "dev", "eth0")
		for _, want := range []string{" inet " + ip4 + "/24 ", " inet6 " + ip6 + "/64 "} {
			if !strings.Contains(addrs, want) {
				t.Errorf("%s: eth0 lacks%s:\n%s", c, strings.TrimRight(want, " "), addrs)
			}
		}
		if r := b.exec(t, c, "ip", "route"); !strings.Contains(r, "default via "+v4+".1 dev eth0") {
			t.Errorf("%s: no IPv4 default route via %s.1:\n%s", c, v4, r)
		}
		if r := b.exec(t, c, "ip", "-6", "route"); !strings.Contains(r, "default via "+v6+"1 dev eth0") {
			t.Errorf("%s: no IPv6 default route via %s1:\n%s", c, v6, r)
		}
		v6addrs = append(v6addrs, ip6)
	}
	b.ping6(t, containers[0], v6addrs[1])
	b.ping6(t, containers[1], v6addrs[0])
}

// testConnectDisconnect: three networks on one parent at once, a container
// on each; one of them is connected to the other two while running (eth1,
// eth2 appear and carry traffic) and disconnected from one (its link goes,
// the other stays).
func (b *netBench) testConnectDisconnect(t *testing.T) {
	nets := []struct{ name, subnet string }{{"multi-a", "10.98.6"}, {"multi-b", "10.98.16"}, {"multi-c", "10.98.26"}}
	// Networks first, then containers: cleanups run in reverse, so every
	// container (the hub holds all three networks) goes before any network.
	for _, nw := range nets {
		b.network(t, nw.name, "--subnet", nw.subnet+".0/24", "-o", "parent="+b.n.LANLink)
	}
	for _, nw := range nets {
		b.run(t, nw.name+"-c", nw.name)
	}
	hub := "multi-a-c"
	for i, nw := range nets[1:] {
		b.n.Docker(t, "network", "connect", nw.name, hub)
		ifname := "eth" + strconv.Itoa(i+1)
		ip := b.ipv4(t, hub, nw.name)
		if !strings.HasPrefix(ip, nw.subnet+".") {
			t.Fatalf("%s on %s: address %q, want one in %s.0/24", hub, nw.name, ip, nw.subnet)
		}
		if out := b.exec(t, hub, "ip", "-o", "addr", "show", "dev", ifname); !strings.Contains(out, " inet "+ip+"/24 ") {
			t.Errorf("%s: %s lacks %s after connect to %s:\n%s", hub, ifname, ip, nw.name, out)
		}
		b.ping(t, hub, b.ipv4(t, nw.name+"-c", nw.name))
		b.ping(t, nw.name+"-c", ip)
	}
	b.n.Docker(t, "network", "disconnect", "multi-b", hub)
	if out, _, err := b.n.DockerErr("exec", hub, "ip", "link", "show", "dev", "eth1"); err == nil {
		t.Errorf("%s: eth1 still there after disconnect from multi-b:\n%s", hub, out)
	}
	if out := b.exec(t, hub, "ip", "-o", "addr", "show", "dev", "eth2"); !strings.Contains(out, " inet 10.98.26.") {
		t.Errorf("%s: eth2 (multi-c) lost its address after the disconnect from multi-b:\n%s", hub, out)
	}
	b.ping(t, hub, b.ipv4(t, "multi-c-c", "multi-c"))
	if r := b.exec(t, hub, "ip", "route"); strings.Contains(r, "10.98.16.") {
		t.Errorf("%s: routes of multi-b left after disconnect:\n%s", hub, r)
	}
	// The disconnected link is deleted from the node, not left behind.
	b.waitNoDriverLinks(t)
}

// testServiceRefusals: in a swarm the network options are checked on each
// node when a task needs the network, not at `docker network create` (an
// error from the manager's AllocateNetwork would not fail the command and
// would leave a silently broken network). The user sees the driver's
// message as the task's error in `docker service ps --no-trunc`.
func (b *netBench) testServiceRefusals(t *testing.T) {
	lan := b.n.LANLink
	before := b.nodeLinkNames(t)
	cases := []struct {
		net  string
		opts []string
		want string
	}{
		{"bad-parent", []string{"-o", "parent=nope0"}, `parent "nope0" not found on this node`},
		{"bad-mtu", []string{"-o", "parent=" + lan, "-o", "mtu=9000"}, `mtu 9000 is larger than parent "` + lan + `"'s MTU 1500`},
		{"bad-option", []string{"-o", "pparent=" + lan}, `unknown option "pparent"; macvlan-swarm accepts parent, macvlan_mode, mtu`},
	}
	for i, c := range cases {
		// Accepted at create: the check happens on the nodes.
		b.network(t, c.net, append([]string{"--subnet", fmt.Sprintf("10.98.%d.0/24", 7+10*i)}, c.opts...)...)
		svc := c.net + "-svc"
		b.n.Docker(t, append([]string{"service", "create", "--detach", "--no-resolve-image",
			"--name", svc, "--network", c.net, b.img}, lab.Sleeper...)...)
		t.Cleanup(func() { b.removeService(t, svc) })
	}
	for _, c := range cases {
		svc := c.net + "-svc"
		lab.Eventually(t, 60*time.Second, 250*time.Millisecond, svc+" task refused with the driver's message", func() error {
			out, errOut, err := b.n.DockerErr("service", "ps", "--no-trunc", "--format", "{{.Error}}", svc)
			if err != nil {
				return fmt.Errorf("docker service ps: %v: %s", err, errOut)
			}
			if !strings.Contains(out, c.want) {
				return fmt.Errorf("task errors do not contain %q:\n%s", c.want, out)
			}
			return nil
		})
		if c.net == "bad-parent" {
			out := b.n.Docker(t, "service", "ps", "--no-trunc", "--format", "{{.Error}}", svc)
			if !strings.Contains(out, "interfaces here: ") || !strings.Contains(out, b.n.LANLink) {
				t.Errorf("%s: the refusal does not list this node's interfaces (%s):\n%s", svc, b.n.LANLink, out)
			}
		}
	}
	// An option every node refuses is already logged by the manager's
	// AllocateNetwork (which must not fail); parent and MTU depend on the
	// node and are checked there only.
	id := b.inspectNetwork(t, "bad-option", "{{.Id}}")
	if !nbLogHas(b.n.Log(t), "network options will be refused on every node", id) {
		t.Errorf("no warning for network bad-option (%s) from AllocateNetwork in the dockerd log", id)
	}
	// The refused tasks made no link on the node.
	var added []string
	for _, name := range b.nodeLinkNames(t) {
		if !slices.Contains(before, name) {
			added = append(added, name)
		}
	}
	if len(added) > 0 {
		t.Errorf("links added on the node by refused tasks: %v", added)
	}
}

// ---------------------------------------------------------------------------
// Subtests on the local-scope standalone engine

// testRefusals: every refusal of `docker network create` carries the
// driver's message, and a refused network leaves nothing: no network, no
// new link on the node.
func (b *netBench) testRefusals(t *testing.T) {
	lan := b.n.LANLink
	base := []string{"--subnet", "10.97.9.0/24"}
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"unknown option", []string{"-o", "pparent=" + lan},
			[]string{`unknown option "pparent"; macvlan-swarm accepts parent, macvlan_mode, mtu (or com.docker.network.driver.mtu)`}},
		{"bad host_access", []string{"-o", "parent=" + lan, "-o", "host_access=yes-please"},
			[]string{`host_access "yes-please" is not valid: use true or false`}},
		{"parent not found", []string{"-o", "parent=nope0"},
			[]string{`parent "nope0" not found on this node`, "interfaces here: ", lan}},
		{"no candidate found", []string{"-o", "parent=nope0|nope1"},
			[]string{`parent "nope0|nope1" not found on this node`, "interfaces here: ", lan}},
		{"loopback parent", []string{"-o", "parent=lo"},
			[]string{`parent "lo": the loopback interface cannot carry macvlan links`}},
		{"bad macvlan_mode", []string{"-o", "parent=" + lan, "-o", "macvlan_mode=bridged"},
			[]string{`macvlan_mode "bridged" is not valid; use one of bridge, private, vepa, passthru`}},
		{"mtu too large", []string{"-o", "parent=" + lan, "-o", "mtu=9000"},
			[]string{`mtu 9000 is larger than parent "` + lan + `"'s MTU 1500`}},
		{"engine mtu too large", []string{"-o", "parent=" + lan, "-o", "com.docker.network.driver.mtu=9000"},
			[]string{`mtu 9000 is larger than parent "` + lan + `"'s MTU 1500`}},
		{"mtu not a number", []string{"-o", "parent=" + lan, "-o", "mtu=big"},
			[]string{`mtu "big" is not valid`}},
		{"mtu spellings disagree", []string{"-o", "parent=" + lan, "-o", "mtu=1400", "-o", "com.docker.network.driver.mtu=1300"},
			[]string{"disagree", "give only one"}},
		{"mtu too small for IPv6", []string{"-o", "parent=" + lan, "-o", "mtu=1200", "--ipv6", "--subnet", "fd00:97:9::/64"},
			[]string{"mtu 1200 is too small for IPv6"}},
		{"parent named twice", []string{"-o", "parent=" + lan + "|" + lan},
			[]string{`parent "` + lan + `|` + lan + `" names "` + lan + `" twice: list each interface once`}},
	}
	for _, c := range cases {
		b.refuse(t, c.name, append(slices.Clone(base), c.args...), c.want...)
	}

	// passthru takes its parent alone, in both orders.
	b.network(t, "bridge-on-lan", "--subnet", "10.97.10.0/24", "-o", "parent="+lan)
	b.refuse(t, "passthru on a used parent",
		[]string{"--subnet", "10.97.11.0/24", "-o", "parent=" + lan, "-o", "macvlan_mode=passthru"},
		`macvlan_mode passthru needs parent "`+lan+`" alone, but network `)
	b.removeNetwork(t, "bridge-on-lan")
	b.network(t, "passthru-on-lan", "--subnet", "10.97.12.0/24", "-o", "parent="+lan, "-o", "macvlan_mode=passthru")
	b.refuse(t, "bridge on a passthru parent",
		[]string{"--subnet", "10.97.13.0/24", "-o", "parent=" + lan},
		`parent "`+lan+`" is taken by network `, "in passthru mode")
	b.removeNetwork(t, "passthru-on-lan")
}

// testContainerRefusals: a --mac-address another container on the same
// parent already has, or the parent's own MAC, is refused at `docker run`
// with a message naming the MAC and its holder, before any link is made; the
// refused containers leave no link and no record behind.
func (b *netBench) testContainerRefusals(t *testing.T) {
	const net, mac = "macchk", "02:aa:bb:cc:dd:11"
	b.network(t, net, "--subnet", "10.97.20.0/24", "-o", "parent="+b.n.LANLink)
	b.run(t, "mac-a", net, "--mac-address", mac)
	links := b.driverLinks(t)
	parentMAC := b.nodeLink(t, b.n.LANLink).Address
	for _, c := range []struct {
		name, mac string
		want      []string
	}{
		{"mac-b", mac, []string{"MAC address " + mac + " is already used on parent \"" + b.n.LANLink + "\" by endpoint "}},
		{"mac-c", parentMAC, []string{"MAC address " + parentMAC + " is parent \"" + b.n.LANLink + "\"'s own address"}},
	} {
		t.Cleanup(func() { _, _, _ = b.n.DockerErr("rm", "-f", c.name) })
		args := append([]string{"run", "-d", "--name", c.name, "--network", net, "--mac-address", c.mac, b.img}, lab.Sleeper...)
		_, errOut, err := b.n.DockerErr(args...)
		if err == nil {
			t.Errorf("docker run --mac-address %s succeeded, want a refusal", c.mac)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("docker run --mac-address %s: refusal lacks %q:\n%s", c.mac, w, errOut)
			}
		}
	}
	if after := b.driverLinks(t); !slices.Equal(after, links) {
		t.Errorf("driver links changed with refused containers: before %v, after %v", links, after)
	}
	if st := b.n.Status(t, pluginRef); len(st.Endpoints) != 1 {
		t.Errorf("plugin holds %d endpoints, want 1 (mac-a's): %+v", len(st.Endpoints), st.Endpoints)
	}
}

// testVLANParent: a parent shaped name.vid that does not exist is created as
// an 802.1q link and deleted with its network; on a kernel without 802.1q
// support (this machine's) it is refused with a message saying so, and
// nothing is left.
func (b *netBench) testVLANParent(t *testing.T) {
	parent := b.n.LANLink + ".20"
	before := b.nodeLinkNames(t)
	out, errOut, err := b.n.DockerErr("network", "create", "-d", pluginRef,
		"--subnet", "10.97.20.0/24", "-o", "parent="+parent, "vlan20")
	if err != nil {
		if !strings.Contains(errOut, "cannot create 802.1q VLAN links") {
			t.Fatalf("network on VLAN parent %s refused with an unexpected message: %s", parent, errOut)
		}
		b.checkNothingCreated(t, "vlan20", before)
		t.Skipf("this kernel cannot create 802.1q links; the refusal is right: %s", errOut)
	}
	t.Cleanup(func() { b.removeNetwork(t, "vlan20") })
	t.Logf("network on VLAN parent %s: %s", parent, out)
	l := b.nodeLink(t, parent)
	if l.LinkInfo.Kind != "vlan" {
		t.Errorf("%s is a %q link, want vlan", parent, l.LinkInfo.Kind)
	}
	b.run(t, "vlan20-a", "vlan20")
	b.run(t, "vlan20-b", "vlan20")
	b.ping(t, "vlan20-a", b.ipv4(t, "vlan20-b", "vlan20"))
	b.n.Docker(t, "rm", "-f", "vlan20-a", "vlan20-b")
	b.removeNetwork(t, "vlan20")
	if slices.Contains(b.nodeLinkNames(t), parent) {
		t.Errorf("VLAN parent %s made by the driver is left after its network went", parent)
	}
}

// testLocalDualStack: on a local-scope network two containers reach each
// other by address, by name and over IPv6; --ip, --ip6 and --mac-address are
// honoured.
func (b *netBench) testLocalDualStack(t *testing.T) {
	const net = "local-dual"
	b.network(t, net, "--ipv6",
		"--subnet", "10.97.1.0/24", "--gateway", "10.97.1.1",
		"--subnet", "fd00:97:1::/64", "--gateway", "fd00:97:1::1",
		"-o", "parent="+b.n.LANLink)
	if got, want := b.inspectNetwork(t, net, "{{.Scope}} {{.Driver}}"), b.nets.Scope+" "+pluginRef; got != want {
		t.Errorf("%s: scope and driver %q, want %q", net, got, want)
	}
	const ip, ip6, mac = "10.97.1.50", "fd00:97:1::50", "02:aa:bb:cc:dd:01"
	b.run(t, "local-a", net, "--ip", ip, "--ip6", ip6, "--mac-address", mac)
	b.run(t, "local-b", net)

	l := b.containerLink(t, "local-a", "eth0")
	if l.Address != mac {
		t.Errorf("local-a: MAC %s, want %s", l.Address, mac)
	}
	if l.LinkInfo.Kind != "macvlan" || l.LinkInfo.Data.Mode != "bridge" {
		t.Errorf("local-a: eth0 is %q mode %q, want macvlan mode bridge", l.LinkInfo.Kind, l.LinkInfo.Data.Mode)
	}
	addrs := b.exec(t, "local-a", "ip", "-o", "addr", "show", "dev", "eth0")
	for _, want := range []string{" inet " + ip + "/24 ", " inet6 " + ip6 + "/64 "} {
		if !strings.Contains(addrs, want) {
			t.Errorf("local-a: eth0 lacks%s:\n%s", strings.TrimRight(want, " "), addrs)
		}
	}
	if got, want := b.containerLink(t, "local-b", "eth0").Address, nbDefaultMAC(t, b.ipv4(t, "local-b", net)); got != want {
		t.Errorf("local-b: MAC %s, want the address-derived %s", got, want)
	}
	b.checkDualStack(t, net, []string{"local-a", "local-b"}, "10.97.1", "fd00:97:1::")
	b.ping(t, "local-b", ip)
	// By name, over each family (the engine's DNS answers A and AAAA).
	if out := b.ping(t, "local-b", "local-a", "-4"); !strings.Contains(out, "("+ip+")") {
		t.Errorf("ping -4 local-a did not resolve to %s:\n%s", ip, out)
	}
	if out := b.ping(t, "local-b", "local-a", "-6"); !strings.Contains(out, "("+ip6+")") {
		t.Errorf("ping -6 local-a did not resolve to %s:\n%s", ip6, out)
	}
	b.ping(t, "local-a", "local-b", "-4")
}

// testModes: macvlan_mode reaches the kernel. private: the link is in
// private mode and two containers on the parent cannot reach each other.
// vepa: the link is in vepa mode. passthru (on a veth pair made for it in
// the node's namespace, not on the node's LAN link): the container's link
// takes the parent's MAC, a second container is refused with the driver's
// message, and the parent is free again as soon as the first one goes.
func (b *netBench) testModes(t *testing.T) {
	b.network(t, "mode-private", "--subnet", "10.97.30.0/24", "-o", "parent="+b.n.LANLink, "-o", "macvlan_mode=private")
	b.network(t, "mode-vepa", "--subnet", "10.97.31.0/24", "-o", "parent="+b.n.LANLink, "-o", "macvlan_mode=vepa")
	b.run(t, "private-a", "mode-private")
	b.run(t, "private-b", "mode-private")
	b.run(t, "vepa-a", "mode-vepa")
	for c, mode := range map[string]string{"private-a": "private", "private-b": "private", "vepa-a": "vepa"} {
		if l := b.containerLink(t, c, "eth0"); l.LinkInfo.Kind != "macvlan" || l.LinkInfo.Data.Mode != mode {
			t.Errorf("%s: eth0 is %q mode %q, want macvlan mode %s", c, l.LinkInfo.Kind, l.LinkInfo.Data.Mode, mode)
		}
	}
	if out, _, err := b.n.DockerErr("exec", "private-a", "ping", "-c1", "-W1", b.ipv4(t, "private-b", "mode-private")); err == nil {
		t.Errorf("private mode: private-a reached private-b on the same parent:\n%s", out)
	}

	const pt = "mvt0" // not "mvs…": that prefix is the driver's own links
	b.n.Exec(t, "ip", "link", "add", pt, "type", "veth", "peer", "name", pt+"p")
	t.Cleanup(func() {
		if _, errOut, err := b.n.ExecErr("ip", "link", "del", pt); err != nil && !strings.Contains(errOut, "Cannot find device") {
			t.Errorf("delete %s: %v: %s", pt, err, errOut)
		}
	})
	b.n.Exec(t, "ip", "link", "set", pt, "up")
	b.n.Exec(t, "ip", "link", "set", pt+"p", "up")
	parentMAC := b.nodeLink(t, pt).Address
	b.network(t, "mode-passthru", "--subnet", "10.97.32.0/24", "-o", "parent="+pt, "-o", "macvlan_mode=passthru")
	b.run(t, "passthru-a", "mode-passthru")
	l := b.containerLink(t, "passthru-a", "eth0")
	if l.LinkInfo.Data.Mode != "passthru" || l.Address != parentMAC {
		t.Errorf("passthru-a: eth0 mode %q MAC %s, want passthru with the parent's MAC %s", l.LinkInfo.Data.Mode, l.Address, parentMAC)
	}
	if got := b.inspect(t, "passthru-a", `{{(index .NetworkSettings.Networks "mode-passthru").MacAddress}}`); got != parentMAC {
		t.Errorf("passthru-a: docker inspect MAC %s, want the parent's %s", got, parentMAC)
	}
	_, errOut, err := b.n.DockerErr(append([]string{"run", "-d", "--name", "passthru-b", "--network", "mode-passthru", b.img}, lab.Sleeper...)...)
	b.n.DockerErr("rm", "-f", "passthru-b")
	if err == nil || !strings.Contains(errOut, "macvlan_mode passthru") || !strings.Contains(errOut, "to one container only") {
		t.Errorf("second container on a passthru network: %v, want the driver's refusal:\n%s", err, errOut)
	}
	b.n.Docker(t, "rm", "-f", "passthru-a")
	// Deleted at once, not batched: the next container gets the parent.
	b.run(t, "passthru-c", "mode-passthru")
	if l := b.containerLink(t, "passthru-c", "eth0"); l.Address != parentMAC {
		t.Errorf("passthru-c: MAC %s, want the parent's %s", l.Address, parentMAC)
	}
}

// ---------------------------------------------------------------------------
// Shared last subtest

// testNothingLeft runs last: with every container and network gone, the
// driver has no network left in the engine, and the node has no link of the
// driver (retired links are deleted by the reaper a moment later) and no
// macvlan, VLAN or other link it made.
func (b *netBench) testNothingLeft(t *testing.T) {
	if out := b.n.Docker(t, "ps", "-aq"); out != "" {
		t.Fatalf("containers left by earlier subtests:\n%s", out)
	}
	lab.Eventually(t, 30*time.Second, 200*time.Millisecond, "no "+pluginRef+" network left", func() error {
		out, errOut, err := b.n.DockerErr("network", "ls", "-q", "--filter", "driver="+pluginRef)
		if err != nil {
			return fmt.Errorf("docker network ls: %v: %s", err, errOut)
		}
		if out != "" {
			return fmt.Errorf("networks left: %s", strings.Join(strings.Fields(out), " "))
		}
		return nil
	})
	b.waitNoDriverLinks(t)
	var bad []string
	for _, l := range b.nodeLinks(t) {
		switch l.LinkInfo.Kind {
		case "macvlan", "vlan", "ipvlan", "dummy":
			bad = append(bad, l.Name+" ("+l.LinkInfo.Kind+")")
		}
		if l.Group == strconv.Itoa(nbRetireGroup) || l.Group == fmt.Sprintf("%#x", nbRetireGroup) {
			bad = append(bad, l.Name+" (in the retire group)")
		}
	}
	if len(bad) > 0 {
		t.Errorf("links left on the node: %s", strings.Join(bad, ", "))
	}
	if st := b.n.Status(t, pluginRef); len(st.Networks)+len(st.Endpoints) != 0 {
		t.Errorf("the plugin still holds networks %+v and endpoints %+v", st.Networks, st.Endpoints)
	}
}

// nbRetireGroup is the driver's kernel link group of links waiting to be
// deleted (driver.RetireGroup, "mvsw").
const nbRetireGroup = 0x6d767377

// ---------------------------------------------------------------------------
// Helpers

// oneEngine starts a lab of one engine and returns its node, a netBench on
// it, and the plugin build to install there.
func oneEngine(t *testing.T) (*lab.Node, *netBench, string) {
	t.Helper()
	pluginDir := lab.PluginDir(t)
	n := lab.New(t, lab.Options{Nodes: 1}).Node(1)
	return n, &netBench{n: n, img: lab.BusyboxImage(t, n)}, pluginDir
}

// network creates a network of the plugin (attachable on a swarm) and
// removes it when the test ends. It returns the network id.
func (b *netBench) network(t *testing.T, name string, args ...string) string {
	t.Helper()
	full := append([]string{"network", "create", "-d", pluginRef}, b.nets.Flags...)
	full = append(append(full, args...), name)
	id := b.n.Docker(t, full...)
	t.Cleanup(func() { b.removeNetwork(t, name) })
	return id
}

// removeNetwork removes a network, waiting while a swarm still counts a task
// on it; a network already gone is fine.
func (b *netBench) removeNetwork(t *testing.T, name string) {
	t.Helper()
	lab.Eventually(t, 30*time.Second, 250*time.Millisecond, "remove network "+name, func() error {
		_, errOut, err := b.n.DockerErr("network", "rm", name)
		if err == nil || nbGone(errOut) {
			return nil
		}
		return fmt.Errorf("docker network rm: %v: %s", err, errOut)
	})
}

// removeService removes a service; gone already is fine.
func (b *netBench) removeService(t *testing.T, name string) {
	t.Helper()
	if _, errOut, err := b.n.DockerErr("service", "rm", name); err != nil && !nbGone(errOut) {
		t.Errorf("docker service rm %s: %v: %s", name, err, errOut)
	}
}

func nbGone(errOut string) bool {
	e := strings.ToLower(errOut)
	return strings.Contains(e, "no such") || strings.Contains(e, "not found")
}

// run starts a container on network and removes it when the test ends.
func (b *netBench) run(t *testing.T, name, network string, args ...string) {
	t.Helper()
	full := append([]string{"run", "-d", "--name", name, "--network", network}, args...)
	full = append(append(full, b.img), lab.Sleeper...)
	t.Cleanup(func() {
		if _, errOut, err := b.n.DockerErr("rm", "-f", name); err != nil && !nbGone(errOut) {
			t.Errorf("docker rm -f %s: %v: %s", name, err, errOut)
		}
	})
	b.n.Docker(t, full...)
}

// exec runs a command in a container and returns its output.
func (b *netBench) exec(t *testing.T, container string, cmd ...string) string {
	t.Helper()
	return b.n.Docker(t, append([]string{"exec", container}, cmd...)...)
}

// ping pings target (an address or a container name) once from container,
// allowing one more try for a first packet lost to address resolution, and
// returns ping's output.
func (b *netBench) ping(t *testing.T, from, target string, extra ...string) string {
	t.Helper()
	return b.pingWith(t, "ping", from, target, extra...)
}

func (b *netBench) ping6(t *testing.T, from, target string) string {
	t.Helper()
	return b.pingWith(t, "ping6", from, target)
}

func (b *netBench) pingWith(t *testing.T, prog, from, target string, extra ...string) string {
	t.Helper()
	args := append(append([]string{"exec", from, prog, "-c1", "-W2"}, extra...), target)
	var out, errOut string
	var err error
	for try := 0; try < 2; try++ {
		out, errOut, err = b.n.DockerErr(args...)
		if err == nil && strings.Contains(out, "1 packets received") {
			if try > 0 {
				t.Logf("%s %s from %s: answered on the second try", prog, target, from)
			}
			return out
		}
	}
	t.Errorf("%s %s from %s: %v\n%s\n%s", prog, target, from, err, out, errOut)
	return out
}

func (b *netBench) inspect(t *testing.T, container, format string) string {
	t.Helper()
	return b.n.Docker(t, "inspect", "-f", format, container)
}

func (b *netBench) inspectNetwork(t *testing.T, network, format string) string {
	t.Helper()
	return b.n.Docker(t, "network", "inspect", "-f", format, network)
}

func (b *netBench) ipv4(t *testing.T, container, network string) string {
	t.Helper()
	return b.inspect(t, container, `{{(index .NetworkSettings.Networks "`+network+`").IPAddress}}`)
}

func (b *netBench) ipv6(t *testing.T, container, network string) string {
	t.Helper()
	return b.inspect(t, container, `{{(index .NetworkSettings.Networks "`+network+`").GlobalIPv6Address}}`)
}

// refuse runs a `docker network create` that must fail with every one of
// want in its message, and checks that it left nothing behind.
func (b *netBench) refuse(t *testing.T, what string, args []string, want ...string) {
	t.Helper()
	const name = "refused"
	before := b.nodeLinkNames(t)
	full := append(append([]string{"network", "create", "-d", pluginRef}, args...), name)
	out, errOut, err := b.n.DockerErr(full...)
	if err == nil {
		t.Errorf("%s: docker %s succeeded (%s), want a refusal", what, strings.Join(full, " "), out)
		b.removeNetwork(t, name)
		return
	}
	for _, w := range want {
		if !strings.Contains(errOut, w) {
			t.Errorf("%s: refusal lacks %q:\n%s", what, w, errOut)
		}
	}
	b.checkNothingCreated(t, name, before)
}

// checkNothingCreated checks that network name does not exist and that the
// node has the same links as before.
func (b *netBench) checkNothingCreated(t *testing.T, name string, before []string) {
	t.Helper()
	if out := b.n.Docker(t, "network", "ls", "-q", "--filter", "name=^"+name+"$"); out != "" {
		t.Errorf("a refused network %s exists: %s", name, out)
	}
	if after := b.nodeLinkNames(t); !slices.Equal(before, after) {
		t.Errorf("links of the node changed with a refused network create: before %v, after %v", before, after)
	}
}

// nbLink is what `ip -j -d link show` says of one link.
type nbLink struct {
	Index     int    `json:"ifindex"`
	LinkIndex int    `json:"link_index"`
	Name      string `json:"ifname"`
	MTU       int    `json:"mtu"`
	Address   string `json:"address"`
	Group     string `json:"group"`
	LinkInfo  struct {
		Kind string `json:"info_kind"`
		Data struct {
			Mode string `json:"mode"`
		} `json:"info_data"`
	} `json:"linkinfo"`
}

// nbLinks lists the links of the network namespace at nsPath (all of them,
// or the one named dev).
func nbLinks(t *testing.T, nsPath string, dev ...string) []nbLink {
	t.Helper()
	args := append([]string{"--net=" + nsPath, "--", "ip", "-j", "-d", "link", "show"}, dev...)
	out, err := exec.Command("nsenter", args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("nsenter %s: %v: %s", strings.Join(args, " "), err, ee.Stderr)
		}
		t.Fatalf("nsenter %s: %v", strings.Join(args, " "), err)
	}
	var links []nbLink
	if err := json.Unmarshal(out, &links); err != nil {
		t.Fatalf("ip -j -d link show: %v\n%s", err, out)
	}
	return links
}

func (b *netBench) nodeLinks(t *testing.T) []nbLink {
	t.Helper()
	return nbLinks(t, b.n.NetNSPath())
}

func (b *netBench) nodeLink(t *testing.T, name string) nbLink {
	t.Helper()
	ls := nbLinks(t, b.n.NetNSPath(), "dev", name)
	if len(ls) != 1 {
		t.Fatalf("node link %s: %d links listed", name, len(ls))
	}
	return ls[0]
}

// nodeLinkNames lists the node's link names, sorted.
func (b *netBench) nodeLinkNames(t *testing.T) []string {
	t.Helper()
	names := b.n.LinkNames(t)
	slices.Sort(names)
	return names
}

// containerLink is one link of a running container, seen from the host
// through the container's network namespace (busybox's ip has no -d).
func (b *netBench) containerLink(t *testing.T, container, dev string) nbLink {
	t.Helper()
	key := b.inspect(t, container, "{{.NetworkSettings.SandboxKey}}")
	ls := nbLinks(t, key, "dev", dev)
	if len(ls) != 1 {
		t.Fatalf("%s: link %s: %d links listed", container, dev, len(ls))
	}
	return ls[0]
}

// driverLinks lists the node's links named like the driver's host links.
func (b *netBench) driverLinks(t *testing.T) []string {
	t.Helper()
	var mine []string
	for _, name := range b.n.LinkNames(t) {
		if strings.HasPrefix(name, "mvs") {
			mine = append(mine, name)
		}
	}
	return mine
}

// waitNoDriverLinks waits (briefly: the reaper deletes retired links ~50 ms
// after they retire) until the node has no link of the driver.
func (b *netBench) waitNoDriverLinks(t *testing.T) {
	t.Helper()
	lab.Eventually(t, 5*time.Second, 50*time.Millisecond, "no driver link left on the node", func() error {
		if left := b.driverLinks(t); len(left) > 0 {
			return fmt.Errorf("links left in %s: %v", b.n.NetNS, left)
		}
		return nil
	})
}

// nbDefaultMAC is the MAC the driver gives an endpoint whose user chose
// none: 02:42 followed by its IPv4 address.
func nbDefaultMAC(t *testing.T, ipv4 string) string {
	t.Helper()
	parts := strings.Split(ipv4, ".")
	if len(parts) != 4 {
		t.Fatalf("%q is not an IPv4 address", ipv4)
	}
	mac := "02:42"
	for _, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 || v > 255 {
			t.Fatalf("%q is not an IPv4 address", ipv4)
		}
		mac += fmt.Sprintf(":%02x", v)
	}
	return mac
}

// nbLogHas reports whether one line of a log holds every one of parts.
func nbLogHas(log string, parts ...string) bool {
	for _, line := range strings.Split(log, "\n") {
		all := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}
