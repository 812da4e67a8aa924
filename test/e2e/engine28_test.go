//go:build e2e

package e2e

import (
	"strconv"
	"strings"
	"testing"
)

// engineMajor is the node engine's major version (20, 26, 28, …).
func (b *netBench) engineMajor(t *testing.T) int {
	t.Helper()
	v := b.n.Docker(t, "version", "-f", "{{.Server.Version}}")
	major, err := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	if err != nil {
		t.Fatalf("engine version %q: %v", v, err)
	}
	return major
}

// testEngine28: what engines 28 and newer ask of a network plugin, on a
// standalone engine.
//   - An IPv6-only network (--ipv4=false): containers get an IPv6 address
//     and a MAC from their endpoint id (06:…, there is no IPv4 address to
//     derive one from), and reach each other.
//   - An --internal network without --gateway: the plugin tells the engine
//     (GwAllocCheck) that it needs no gateway, so none is reserved and the
//     first container gets the pool's first address.
//   - A container interface name asked for with
//     driver-opt=com.docker.network.endpoint.ifname: the container's
//     interface has that name.
func (b *netBench) testEngine28(t *testing.T) {
	if major := b.engineMajor(t); major < 28 {
		t.Skipf("engine %d: IPv6-only networks, GwAllocCheck and endpoint interface names come with engine 28", major)
	}
	const v6only = "v6only"
	b.network(t, v6only, "--ipv4=false", "--ipv6", "--subnet", "fd00:97:50::/64", "-o", "parent="+b.n.LANLink)
	b.run(t, "v6-a", v6only)
	b.run(t, "v6-b", v6only)
	for _, c := range []string{"v6-a", "v6-b"} {
		if ip := b.ipv4(t, c, v6only); ip != "" {
			t.Errorf("%s: IPv4 address %q on an IPv6-only network", c, ip)
		}
		if ip6 := b.ipv6(t, c, v6only); !strings.HasPrefix(ip6, "fd00:97:50::") {
			t.Errorf("%s: IPv6 address %q, want one in fd00:97:50::/64", c, ip6)
		}
		if mac := b.containerLink(t, c, "eth0").Address; !strings.HasPrefix(mac, "06:") {
			t.Errorf("%s: MAC %s, want one from the endpoint id (06:…)", c, mac)
		}
	}
	b.ping6(t, "v6-a", b.ipv6(t, "v6-b", v6only))
	b.ping6(t, "v6-b", b.ipv6(t, "v6-a", v6only))

	const internal = "int-nogw"
	b.network(t, internal, "--internal", "--subnet", "10.97.51.0/24", "-o", "parent="+b.n.LANLink)
	if gw := b.inspectNetwork(t, internal, "{{range .IPAM.Config}}{{.Gateway}}{{end}}"); gw != "" {
		t.Errorf("%s: gateway %q reserved, want none (the plugin answered GwAllocCheck with skip)", internal, gw)
	}
	b.run(t, "int-a", internal)
	if ip := b.ipv4(t, "int-a", internal); ip != "10.97.51.1" {
		t.Errorf("int-a: address %s, want 10.97.51.1, the first of a pool with no gateway", ip)
	}

	const named = "named-if"
	b.network(t, named, "--subnet", "10.97.52.0/24", "--gateway", "10.97.52.1", "-o", "parent="+b.n.LANLink)
	b.run(t, "named-a", "name="+named+",driver-opt=com.docker.network.endpoint.ifname=lan0")
	if l := b.containerLink(t, "named-a", "lan0"); l.LinkInfo.Kind != "macvlan" {
		t.Errorf("named-a: lan0 is %q, want the plugin's macvlan link", l.LinkInfo.Kind)
	}
	b.run(t, "named-b", named)
	b.ping(t, "named-b", b.ipv4(t, "named-a", named))
}
