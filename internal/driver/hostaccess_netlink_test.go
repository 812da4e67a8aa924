package driver_test

// host_access and networks without a parent, on the real kernel: the shim,
// its routes and the private lower link, traffic between the node's
// namespace and "containers" (namespaces the tests move the endpoints'
// links into, as the engine does), restarts, and what a kill leaves.

import (
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
	"github.com/macvlan-swarm/macvlan-swarm/internal/link/linktest"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol/wiretest"
)

// ipIn runs iproute2 in a lab namespace (addresses and routes the engine or
// the user would set), failing the test on error.
func ipIn(t testing.TB, ns *linktest.Lab, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", ns.Name()}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip -n %s %s: %v\n%s", ns.Name(), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// needPing skips a test that checks traffic when busybox (ping, ping6) is
// missing.
func needPing(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("busybox"); err != nil {
		t.Skip("busybox (for ping and ping6) is not installed: apt-get install busybox-static")
	}
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skip("nsenter is not installed (util-linux)")
	}
}

// ping sends one echo request from namespace from to addr and reports
// whether an answer came.
func ping(from *linktest.Lab, addr string) (bool, string) {
	prog := "ping"
	if strings.Contains(addr, ":") {
		prog = "ping6"
	}
	out, err := exec.Command("nsenter", "--net="+from.Path(), "busybox", prog, "-c", "1", "-W", "2", addr).CombinedOutput()
	return err == nil, string(out)
}

func wantPing(t testing.TB, from *linktest.Lab, what, addr string) {
	t.Helper()
	if ok, out := ping(from, addr); !ok {
		t.Errorf("%s: ping %s got no answer:\n%s", what, addr, out)
	}
}

// container joins endpoint ep and does what the engine does with its link:
// moves it into a namespace of its own, gives it the addresses and brings
// it up.
func (b *bench) container(t testing.TB, netID, ep string, addrs ...string) *linktest.Lab {
	t.Helper()
	name := joinedLink(t, ep, b.ok(t, "Join", wiretest.Join(netID, ep)))
	c := b.lab.NewPeerNamespace(t)
	b.lab.MoveTo(t, name, c)
	for _, a := range addrs {
		args := []string{"addr", "add", a, "dev", name}
		if strings.Contains(a, ":") {
			args = append(args, "nodad")
		}
		ipIn(t, c, args...)
	}
	c.SetUp(t, name)
	return c
}

// hostRoutes lists the routes of the driver's protocol through the shim of
// eth0, sorted.
func (b *bench) hostRoutes(t testing.TB) []string {
	t.Helper()
	got, err := b.lab.Handle().HostRoutes(link.ShimLinkName("eth0"))
	if err != nil {
		t.Fatalf("routes of the shim: %v", err)
	}
	out := make([]string, len(got))
	for i, a := range got {
		out[i] = a.String()
	}
	slices.Sort(out)
	return out
}

func (b *bench) shimAddrs(t testing.TB) []string {
	t.Helper()
	got, err := b.lab.Handle().Addresses(link.ShimLinkName("eth0"))
	if err != nil {
		t.Fatalf("addresses of the shim: %v", err)
	}
	var out []string
	for _, p := range got {
		if !p.Addr().IsLinkLocalUnicast() {
			out = append(out, p.String())
		}
	}
	slices.Sort(out)
	return out
}

func dualStack(netID string, generic map[string]string, n int) *protocol.CreateNetworkRequest {
	v4 := "10.7" + string(rune('0'+n)) + ".0."
	v6 := "fd7" + string(rune('0'+n)) + "::"
	return wiretest.CreateNetwork(netID, generic, wiretest.Pool(v4+"0/24", v4+"1/24"), wiretest.Pool(v6+"/64", v6+"1/64"))
}

// The node reaches its own container through the shim and the container
// reaches the node, over IPv4 and IPv6; without the route it cannot (the
// kernel's rule this feature is for); a restart puts a route deleted behind
// the driver's back again; Leave, DeleteEndpoint and DeleteNetwork take
// everything away.
func TestHostAccessTraffic(t *testing.T) {
	t.Parallel()
	needPing(t)
	b := newBench(t, benchOpts{})
	ipIn(t, b.lab, "addr", "add", "10.70.0.1/24", "dev", "eth0")
	ipIn(t, b.lab, "addr", "add", "fd70::1/64", "dev", "eth0", "nodad")
	netID, ep := hexID("ha-net"), hexID("ha-ep")
	shim := link.ShimLinkName("eth0")

	b.ok(t, "CreateNetwork", dualStack(netID, onEth0("host_access", "true"), 0))
	s := b.getLink(t, shim)
	if s.ShimOf() != "eth0" || !s.Up || s.MacvlanMode != link.ModeBridge || s.ParentIndex != b.getLink(t, "eth0").Index {
		t.Fatalf("shim %s is %+v, want an up bridge macvlan on eth0 marked as its shim", shim, s)
	}
	if got, want := b.shimAddrs(t), []string{"10.70.0.1/32", "fd70::1/128"}; !slices.Equal(got, want) {
		t.Errorf("shim addresses %v, want the parent's own as %v", got, want)
	}
	b.ok(t, "CreateEndpoint", wiretest.CreateEndpoint(netID, ep, "10.70.0.2/24", "fd70::2/64", ""))
	if got := b.hostRoutes(t); len(got) != 0 {
		t.Errorf("routes before Join: %v", got)
	}
	c := b.container(t, netID, ep, "10.70.0.2/24", "fd70::2/64")
	if got, want := b.hostRoutes(t), []string{"10.70.0.2", "fd70::2"}; !slices.Equal(got, want) {
		t.Errorf("routes after Join %v, want %v", got, want)
	}
	wantPing(t, b.lab, "node to its container", "10.70.0.2")
	wantPing(t, b.lab, "node to its container", "fd70::2")
	wantPing(t, c, "container to its node", "10.70.0.1")
	wantPing(t, c, "container to its node", "fd70::1")

	// Without the route the node talks to its parent, which never hands
	// the packet to its macvlan children.
	ipIn(t, b.lab, "route", "del", "10.70.0.2/32", "dev", shim)
	if ok, out := ping(b.lab, "10.70.0.2"); ok {
		t.Errorf("ping without the shim's route answered: the test cannot tell the shim works:\n%s", out)
	}
	b.restart(t)
	if got, want := b.hostRoutes(t), []string{"10.70.0.2", "fd70::2"}; !slices.Equal(got, want) {
		t.Errorf("routes after restart %v, want %v", got, want)
	}
	wantPing(t, b.lab, "node to its container after restart", "10.70.0.2")

	b.ok(t, "Leave", wiretest.Leave(netID, ep))
	if got := b.hostRoutes(t); len(got) != 0 {
		t.Errorf("routes after Leave: %v", got)
	}
	b.lab.MoveBack(t, c, hostLink(ep))
	b.ok(t, "DeleteEndpoint", wiretest.DeleteEndpoint(netID, ep))
	b.ok(t, "DeleteNetwork", wiretest.DeleteNetwork(netID))
	if b.hasLink(t, shim) {
		t.Errorf("shim %s left after the last host_access network went", shim)
	}
	b.wantNoMvsLinks(t)
	if out := ipIn(t, b.lab, "route", "show", "proto", "109"); strings.TrimSpace(out) != "" {
		t.Errorf("routes of the driver's protocol left: %s", out)
	}
}

// Two networks share the shim of their parent; one takes its address from
// HOST_ADDRESS (the parent has none in its subnet). The shim goes with the
// last of them. DeleteEndpoint removes an endpoint's route, and so does a
// CreateNetwork that drops the endpoints of dead containers.
func TestHostAccessSharedShim(t *testing.T) {
	t.Parallel()
	b := newBench(t, benchOpts{hostAddrs: map[string][]netip.Addr{"eth0": {netip.MustParseAddr("10.72.0.250")}}})
	ipIn(t, b.lab, "addr", "add", "10.71.0.1/24", "dev", "eth0")
	n1, n2 := hexID("shared-1"), hexID("shared-2")
	shim := link.ShimLinkName("eth0")
	b.ok(t, "CreateNetwork", wiretest.CreateNetwork(n1, onEth0("host_access", "true"), wiretest.Pool("10.71.0.0/24", "")))
	b.ok(t, "CreateNetwork", wiretest.CreateNetwork(n2, onEth0("host_access", "true"), wiretest.Pool("10.72.0.0/24", "")))
	if got, want := b.shimAddrs(t), []string{"10.71.0.1/32", "10.72.0.250/32"}; !slices.Equal(got, want) {
		t.Errorf("shim addresses %v, want %v", got, want)
	}
	var shims int
	for _, l := range b.mvsLinks(t) {
		if l.ShimOf() != "" {
			shims++
		}
	}
	if shims != 1 {
		t.Errorf("%d shims on one parent, want 1", shims)
	}
	e1, e2 := hexID("shared-e1"), hexID("shared-e2")
	b.ok(t, "CreateEndpoint", wiretest.CreateEndpoint(n1, e1, "10.71.0.5/24", "", ""))
	b.ok(t, "CreateEndpoint", wiretest.CreateEndpoint(n2, e2, "10.72.0.5/24", "", ""))
	b.ok(t, "Join", wiretest.Join(n1, e1))
	b.ok(t, "Join", wiretest.Join(n2, e2))
	if got, want := b.hostRoutes(t), []string{"10.71.0.5", "10.72.0.5"}; !slices.Equal(got, want) {
		t.Errorf("routes %v, want %v", got, want)
	}
	if out := ipIn(t, b.lab, "route", "show", "10.72.0.5"); !strings.Contains(out, "src 10.72.0.250") {
		t.Errorf("route to 10.72.0.5 is %q, want the HOST_ADDRESS as its source", out)
	}
	b.ok(t, "DeleteEndpoint", wiretest.DeleteEndpoint(n1, e1))
	if got, want := b.hostRoutes(t), []string{"10.72.0.5"}; !slices.Equal(got, want) {
		t.Errorf("routes after DeleteEndpoint %v, want %v", got, want)
	}
	b.ok(t, "DeleteNetwork", wiretest.DeleteNetwork(n1))
	if got, want := b.shimAddrs(t), []string{"10.72.0.250/32"}; !slices.Equal(got, want) {
		t.Errorf("shim addresses after the first network went %v, want %v", got, want)
	}
	// The engine creates the network again (a swarm worker whose daemon
	// died): e2's container is gone, and so is its route.
	b.ok(t, "CreateNetwork", wiretest.CreateNetwork(n2, onEth0("host_access", "true"), wiretest.Pool("10.72.0.0/24", "")))
	if got := b.hostRoutes(t); len(got) != 0 {
		t.Errorf("routes after the network was created again: %v", got)
	}
	b.ok(t, "DeleteNetwork", wiretest.DeleteNetwork(n2))
	if b.hasLink(t, shim) {
		t.Errorf("shim left after the last host_access network went")
	}
	b.wantNoMvsLinks(t)
}

// What a kill can leave, and what restore makes of it: a missing shim (a
// reboot) is made again with its address and the routes of joined
// endpoints; a stale route of ours goes; a route of someone else on the
// shim stays; a shim no network uses goes; an unmarked link of the shim's
// name (a kill between create and mark) is adopted.
func TestHostAccessRestore(t *testing.T) {
	t.Parallel()
	b := newBench(t, benchOpts{parents: []string{"eth0", "eth1"}})
	ipIn(t, b.lab, "addr", "add", "10.73.0.1/24", "dev", "eth0")
	netID, e1, e2 := hexID("restore-net"), hexID("restore-e1"), hexID("restore-e2")
	shim := link.ShimLinkName("eth0")
	b.ok(t, "CreateNetwork", wiretest.CreateNetwork(netID, onEth0("host_access", "true"), wiretest.Pool("10.73.0.0/24", "")))
	b.ok(t, "CreateEndpoint", wiretest.CreateEndpoint(netID, e1, "10.73.0.5/24", "", ""))
	b.ok(t, "CreateEndpoint", wiretest.CreateEndpoint(netID, e2, "10.73.0.6/24", "", "")) // never joins
	b.ok(t, "Join", wiretest.Join(netID, e1))
	b.stop(t)

	// A stale route (its DeleteEndpoint ran, the kill came before the
	// route went), and a user's route on the shim.
	ipIn(t, b.lab, "route", "add", "10.73.0.99/32", "dev", shim, "proto", "109")
	ipIn(t, b.lab, "route", "add", "10.73.0.98/32", "dev", shim, "proto", "static")
	b.start(t)
	if got, want := b.hostRoutes(t), []string{"10.73.0.5"}; !slices.Equal(got, want) {
		t.Errorf("routes after restart %v, want only the joined endpoint's %v", got, want)
	}
	if out := ipIn(t, b.lab, "route", "show", "10.73.0.98"); !strings.Contains(out, "proto static") {
		t.Errorf("the user's route on the shim is gone: %q", out)
	}
	b.stop(t)

	// A reboot: no shim. And a marked shim on eth1, which no network uses.
	if err := b.lab.Handle().Delete(shim); err != nil {
		t.Fatal(err)
	}
	orphan := link.ShimLinkName("eth1")
	if err := b.lab.Handle().AddShim(orphan, "eth1", link.ShimMark("eth1")); err != nil {
		t.Fatal(err)
	}
	b.start(t)
	if s := b.getLink(t, shim); s.ShimOf() != "eth0" || !s.Up {
		t.Errorf("shim after a reboot: %+v", s)
	}
	if got, want := b.shimAddrs(t), []string{"10.73.0.1/32"}; !slices.Equal(got, want) {
		t.Errorf("shim addresses after a reboot %v, want %v", got, want)
	}
	if got, want := b.hostRoutes(t), []string{"10.73.0.5"}; !slices.Equal(got, want) {
		t.Errorf("routes after a reboot %v, want %v", got, want)
	}
	if b.hasLink(t, orphan) {
		t.Errorf("a shim no network uses survived the restart")
	}
	b.stop(t)

	// A kill between creating the shim and marking it.
	if err := b.lab.Handle().Delete(shim); err != nil {
		t.Fatal(err)
	}
	if err := b.lab.Handle().AddShim(shim, "eth0", "x"); err != nil {
		t.Fatal(err)
	}
	if err := b.lab.Handle().Mark(shim, ""); err != nil {
		t.Fatal(err)
	}
	b.start(t)
	if s := b.getLink(t, shim); s.ShimOf() != "eth0" {
		t.Errorf("unmarked shim of a saved network not adopted: alias %q", s.Alias)
	}
	if got, want := b.hostRoutes(t), []string{"10.73.0.5"}; !slices.Equal(got, want) {
		t.Errorf("routes after adopting the shim %v, want %v", got, want)
	}
}

// Refusals change nothing: no shim, no link, no record.
func TestHostAccessRefusals(t *testing.T) {
	t.Parallel()
	b := newBench(t, benchOpts{hostAddrs: map[string][]netip.Addr{"eth0": {netip.MustParseAddr("10.99.0.9")}}})
	ipIn(t, b.lab, "addr", "add", "10.74.0.1/24", "dev", "eth0")
	links := b.linkNames(t)
	v4 := wiretest.Pool("10.74.0.0/24", "")
	internal := wiretest.CreateNetwork(hexID("r1"), onEth0("host_access", "true"), v4)
	internal.Options[protocol.OptionInternal] = true
	for _, c := range []struct {
		name string
		req  *protocol.CreateNetworkRequest
		want []string
	}{
		{"internal", internal, []string{"host_access is refused on an --internal network"}},
		{"bad value", wiretest.CreateNetwork(hexID("r2"), onEth0("host_access", "yes-please"), v4), []string{`host_access "yes-please" is not valid: use true or false`}},
		{"private mode", wiretest.CreateNetwork(hexID("r3"), onEth0("host_access", "true", "macvlan_mode", "private"), v4), []string{"host_access needs macvlan_mode bridge: in private mode"}},
		{"no parent", wiretest.CreateNetwork(hexID("r4"), map[string]string{"host_access": "true"}, v4), []string{"host_access needs a parent"}},
		{"no address of the family", dualStack(hexID("r5"), onEth0("host_access", "true"), 4), []string{`parent "eth0" on this node has no IPv6 address in the network's subnets`, "HOST_ADDRESS=eth0=<address in the subnet>"}},
		{"HOST_ADDRESS outside", wiretest.CreateNetwork(hexID("r6"), onEth0("host_access", "true"), wiretest.Pool("10.75.0.0/24", "")), []string{"HOST_ADDRESS on this node gives eth0=10.99.0.9, outside the network's subnets 10.75.0.0/24"}},
	} {
		mustContain(t, b.refused(t, "CreateNetwork", c.req), c.want...)
		b.wantNoState(t)
		if got := b.linkNames(t); !slices.Equal(got, links) {
			t.Errorf("%s: links changed from %v to %v", c.name, links, got)
		}
	}
	// A user's link of the shim's name is never taken.
	ipIn(t, b.lab, "link", "add", link.ShimLinkName("eth0"), "link", "eth0", "type", "macvlan", "mode", "bridge")
	mustContain(t, b.refused(t, "CreateNetwork", wiretest.CreateNetwork(hexID("r7"), onEth0("host_access", "true"), v4)),
		"a link named", "that is not macvlan-swarm's shim", "rename or remove it")
	b.wantNoState(t)
}

// A network without a parent: internal, on a private lower link of its own
// (a veth pair on this kernel), dual-stack with two IPv4 subnets; its
// containers reach each other and get no gateway; the link survives a
// restart, is made again after a reboot, and goes with the network.
func TestParentlessNetwork(t *testing.T) {
	t.Parallel()
	needPing(t)
	b := newBench(t, benchOpts{})
	netID := swarmID("parentless")
	lower, peer := link.PrivateParentNames(netID)
	req := wiretest.CreateNetwork(netID, nil, wiretest.Pool("10.76.0.0/24", "10.76.0.1/24"), wiretest.Pool("10.77.0.0/24", "10.77.0.1/24"), wiretest.Pool("fd76::/64", "fd76::1/64"))
	b.ok(t, "CreateNetwork", req)
	l := b.getLink(t, lower)
	if l.PrivateParentOf() != netID || !l.Up || l.Kind != "veth" && l.Kind != "dummy" {
		t.Fatalf("private lower link %s is %+v, want an up veth or dummy marked for the network", lower, l)
	}
	if l.Kind == "veth" {
		if p := b.getLink(t, peer); p.PrivateParentOf() != netID || !p.Up {
			t.Errorf("veth peer %s is %+v, want it up and marked", peer, p)
		}
	}
	b.ok(t, "CreateNetwork", req) // the engine again, same settings

	e1, e2 := hexID("pl-e1"), hexID("pl-e2")
	b.ok(t, "CreateEndpoint", wiretest.CreateEndpoint(netID, e1, "10.76.0.2/24", "fd76::2/64", ""))
	b.ok(t, "CreateEndpoint", wiretest.CreateEndpoint(netID, e2, "10.77.0.2/24", "fd76::3/64", ""))
	for _, ep := range []string{e1, e2} {
		m := b.ok(t, "Join", wiretest.Join(netID, ep))
		if m["Gateway"] != nil || m["GatewayIPv6"] != nil {
			t.Errorf("Join on a network without parent answered gateways %v / %v, want none", m["Gateway"], m["GatewayIPv6"])
		}
		if i := b.getLink(t, hostLink(ep)); i.ParentIndex != l.Index {
			t.Errorf("container link of %s sits on link %d, want the private lower link %d", ep[:12], i.ParentIndex, l.Index)
		}
		b.ok(t, "Leave", wiretest.Leave(netID, ep)) // the link stays; only for the next step
	}
	// Containers in two namespaces; each subnet is on-link for the other
	// container by a route the engine would not add, so test within IPv6
	// and within each container's own subnet family.
	c1 := b.lab.NewPeerNamespace(t)
	c2 := b.lab.NewPeerNamespace(t)
	for _, c := range []struct {
		ns    *linktest.Lab
		ep    string
		addrs []string
	}{{c1, e1, []string{"10.76.0.2/24", "fd76::2/64"}}, {c2, e2, []string{"10.77.0.2/24", "fd76::3/64"}}} {
		name := hostLink(c.ep)
		b.lab.MoveTo(t, name, c.ns)
		for _, a := range c.addrs {
			args := []string{"addr", "add", a, "dev", name}
			if strings.Contains(a, ":") {
				args = append(args, "nodad")
			}
			ipIn(t, c.ns, args...)
		}
		c.ns.SetUp(t, name)
	}
	ipIn(t, c1, "route", "add", "10.77.0.0/24", "dev", hostLink(e1))
	ipIn(t, c2, "route", "add", "10.76.0.0/24", "dev", hostLink(e2))
	wantPing(t, c1, "container to container", "10.77.0.2")
	wantPing(t, c2, "container to container", "10.76.0.2")
	wantPing(t, c1, "container to container", "fd76::3")

	b.restart(t)
	if got := b.getLink(t, lower); got.Index != l.Index {
		t.Errorf("restart replaced the private lower link (index %d, was %d)", got.Index, l.Index)
	}
	wantPing(t, c1, "container to container after restart", "10.77.0.2")

	// A reboot: containers and the private link are gone; a marked private
	// link of a network the driver does not know is there too.
	b.stop(t)
	c1.Destroy(t)
	c2.Destroy(t)
	if err := b.lab.Handle().Delete(lower); err != nil {
		t.Fatal(err)
	}
	strayLower, strayPeer := link.PrivateParentNames(swarmID("gone"))
	if _, err := b.lab.Handle().AddPrivateParent(strayLower, strayPeer, 0, link.PrivateParentMark(swarmID("gone"))); err != nil {
		t.Fatal(err)
	}
	b.start(t)
	if got := b.getLink(t, lower); got.PrivateParentOf() != netID || !got.Up {
		t.Errorf("private lower link after a reboot: %+v", got)
	}
	if b.hasLink(t, strayLower) || b.hasLink(t, strayPeer) {
		t.Errorf("a private lower link no network owns survived the restart")
	}
	for _, ep := range []string{e1, e2} {
		b.ok(t, "DeleteEndpoint", wiretest.DeleteEndpoint(netID, ep))
	}
	b.ok(t, "DeleteNetwork", wiretest.DeleteNetwork(netID))
	for _, n := range []string{lower, peer} {
		if b.hasLink(t, n) {
			t.Errorf("%s left after DeleteNetwork", n)
		}
	}
	b.wantNoMvsLinks(t)
	b.wantNoState(t)
}
