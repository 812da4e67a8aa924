package driver_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
	"github.com/macvlan-swarm/macvlan-swarm/internal/link/linktest"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol/wiretest"
)

// TestLifecycleModes walks one network of each macvlan mode through what the
// engine does for `docker network create`, `docker run`, `docker rm` and
// `docker network rm`, including moving the link into a container and back.
func TestLifecycleModes(t *testing.T) {
	t.Parallel()
	for i, mode := range []string{"bridge", "private", "vepa", "passthru"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			b := newBench(t, benchOpts{})
			eth0 := b.snapshotLink(t, "eth0")

			caps := b.ok(t, "GetCapabilities", nil)
			if want := map[string]any{"Scope": "global", "ConnectivityScope": "global", "GwAllocChecker": true}; !reflect.DeepEqual(caps, want) {
				t.Errorf("GetCapabilities = %v, want %v", caps, want)
			}

			// Half the modes get a swarm-style network id.
			netID := hexID("net/" + mode)
			if i%2 == 1 {
				netID = swarmID(mode)
			}
			wantEmpty(t, "CreateNetwork", b.ok(t, "CreateNetwork", wiretest.CreateNetwork(netID,
				onEth0("macvlan_mode", mode, protocol.OptionMTU, "1400"),
				wiretest.Pool("10.10.0.0/24", "10.10.0.1/24"))))

			// An endpoint without a MAC gets one derived from its address,
			// and nothing else in the answer. A passthru link carries its
			// parent's MAC whatever is asked, so that is the one reported:
			// the engine sets the reported MAC inside the container, which
			// for passthru would rewrite the parent's own address.
			ep1 := hexID("ep1/" + mode)
			wantMAC := "02:42:0a:0a:00:05"
			if mode == "passthru" {
				wantMAC = eth0.MAC
			}
			got := b.ok(t, "CreateEndpoint", wiretest.CreateEndpoint(netID, ep1, "10.10.0.5/24", "", ""))
			want := map[string]any{"Interface": map[string]any{"MacAddress": wantMAC}}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("CreateEndpoint without MAC = %v, want %v", got, want)
			}
			endpoints := []string{ep1}
			macs := map[string]string{ep1: wantMAC}
			if mode != "passthru" { // passthru takes one endpoint only
				ep2 := hexID("ep2/" + mode)
				wantEmpty(t, "CreateEndpoint with a MAC", b.ok(t, "CreateEndpoint", wiretest.CreateEndpoint(netID, ep2, "10.10.0.6/24", "", "02:aa:bb:cc:dd:01")))
				endpoints = append(endpoints, ep2)
				macs[ep2] = "02:aa:bb:cc:dd:01"
			}

			for _, ep := range endpoints {
				j := b.ok(t, "Join", wiretest.Join(netID, ep))
				src := joinedLink(t, ep, j)
				if j["Gateway"] != "10.10.0.1" {
					t.Errorf("Join Gateway = %v, want the bare address 10.10.0.1", j["Gateway"])
				}
				if _, ok := j["GatewayIPv6"]; ok {
					t.Errorf("Join has GatewayIPv6 %v on an IPv4-only network", j["GatewayIPv6"])
				}

				l := b.getLink(t, src)
				if l.Kind != "macvlan" || string(l.MacvlanMode) != mode {
					t.Errorf("%s is %s/%s, want macvlan/%s", src, l.Kind, l.MacvlanMode, mode)
				}
				if l.ParentIndex != eth0.Index {
					t.Errorf("%s has parent index %d, want eth0's %d", src, l.ParentIndex, eth0.Index)
				}
				if l.MTU != 1400 {
					t.Errorf("%s has MTU %d, want 1400", src, l.MTU)
				}
				if l.MAC.String() != macs[ep] {
					t.Errorf("%s has MAC %s, want %s", src, l.MAC, macs[ep])
				}
				if l.Up {
					t.Errorf("%s is up in the host namespace, want it down until the engine moves it", src)
				}

				info := b.ok(t, "EndpointOperInfo", &protocol.EndpointOperInfoRequest{NetworkID: netID, EndpointID: ep})
				if v, _ := info["Value"].(map[string]any); v["host_link"] != src {
					t.Errorf("EndpointOperInfo = %v, want host_link %s", info, src)
				}

				// The engine moves the link into the container and, on
				// leave, back under its host name.
				container := b.lab.NewPeerNamespace(t)
				b.lab.MoveTo(t, src, container)
				if b.hasLink(t, src) {
					t.Fatalf("%s still in the host namespace after the move", src)
				}
				container.SetUp(t, src)
				b.lab.MoveBack(t, container, src)

				wantEmpty(t, "Leave", b.ok(t, "Leave", wiretest.Leave(netID, ep)))
				wantEmpty(t, "DeleteEndpoint", b.ok(t, "DeleteEndpoint", wiretest.DeleteEndpoint(netID, ep)))
				b.d.Flush()
				if b.hasLink(t, src) {
					t.Errorf("%s still exists after DeleteEndpoint and Flush", src)
				}
			}

			wantEmpty(t, "DeleteNetwork", b.ok(t, "DeleteNetwork", wiretest.DeleteNetwork(netID)))
			b.wantNoMvsLinks(t)
			b.wantNoState(t)
			b.wantUntouched(t, "eth0", eth0)
		})
	}
}

// TestLifecycleMTU: an MTU above the parent's is refused with both numbers;
// one at or below it is applied to the container link.
func TestLifecycleMTU(t *testing.T) {
	t.Parallel()
	b := newBench(t, benchOpts{})
	parentMTU := b.getLink(t, "eth0").MTU

	msg := b.refused(t, "CreateNetwork", wiretest.CreateNetwork(hexID("big"), onEth0(protocol.OptionMTU, "9000"), wiretest.Pool("10.11.0.0/24", "10.11.0.1/24")))
	mustContain(t, msg, "9000", strconv.Itoa(parentMTU), "eth0")
	b.wantNoState(t)

	for i, mtu := range []string{"1450", strconv.Itoa(parentMTU)} {
		// Both spellings of the option are accepted.
		key := protocol.OptionMTU
		if i == 1 {
			key = "mtu"
		}
		netID := hexID("mtu" + mtu)
		b.ok(t, "CreateNetwork", wiretest.CreateNetwork(netID, onEth0(key, mtu), wiretest.Pool("10.1"+strconv.Itoa(i)+".0.0/24", "")))
		ep := hexID("ep" + mtu)
		b.ok(t, "CreateEndpoint", wiretest.CreateEndpoint(netID, ep, "10.1"+strconv.Itoa(i)+".0.2/24", "", ""))
		src := joinedLink(t, ep, b.ok(t, "Join", wiretest.Join(netID, ep)))
		if got := b.getLink(t, src).MTU; strconv.Itoa(got) != mtu {
			t.Errorf("network with %s=%s: link MTU %d", key, mtu, got)
		}
	}
}

// TestLifecycleDualStack covers IPv4+IPv6 networks and IPv6-only ones, as
// engines 28 and later create them (enable_ipv4 false, no IPv4 pool).
func TestLifecycleDualStack(t *testing.T) {
	t.Parallel()
	b := newBench(t, benchOpts{})

	dual := swarmID("dual")
	b.ok(t, "CreateNetwork", wiretest.CreateNetwork(dual, onEth0(), wiretest.Pool("10.20.0.0/24", "10.20.0.1/24"), wiretest.Pool("fd00:20::/64", "fd00:20::1/64")))
	ep := hexID("dual-ep")
	got := b.ok(t, "CreateEndpoint", wiretest.CreateEndpoint(dual, ep, "10.20.0.7/24", "fd00:20::7/64", ""))
	want := map[string]any{"Interface": map[string]any{"MacAddress": "02:42:0a:14:00:07"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("dual-stack CreateEndpoint = %v, want %v", got, want)
	}
	j := b.ok(t, "Join", wiretest.Join(dual, ep))
	joinedLink(t, ep, j)
	if j["Gateway"] != "10.20.0.1" || j["GatewayIPv6"] != "fd00:20::1" {
		t.Errorf("dual-stack Join gateways = %v / %v, want 10.20.0.1 / fd00:20::1", j["Gateway"], j["GatewayIPv6"])
	}

	v6only := hexID("v6only")
	req := wiretest.CreateNetwork(v6only, onEth0(), wiretest.Pool("fd00:21::/64", "fd00:21::1/64"))
	req.Options[protocol.OptionEnableIPv4] = false
	b.ok(t, "CreateNetwork", req)

	// The engine's IPAM never gives one address to two live endpoints of a
	// network (a second one means the first is gone), hence one per id.
	addrs := map[string]string{}
	mac := func(epID string) string {
		t.Helper()
		if addrs[epID] == "" {
			addrs[epID] = fmt.Sprintf("fd00:21::%x/64", 9+len(addrs))
		}
		m := b.ok(t, "CreateEndpoint", wiretest.CreateEndpoint(v6only, epID, "", addrs[epID], ""))
		in, _ := m["Interface"].(map[string]any)
		s, _ := in["MacAddress"].(string)
		if len(in) != 1 || !strings.HasPrefix(s, "06:") {
			t.Fatalf("IPv6-only CreateEndpoint = %v, want only a MacAddress starting 06:", m)
		}
		return s
	}
	ep6 := hexID("v6-ep")
	first := mac(ep6)
	b.ok(t, "DeleteEndpoint", wiretest.DeleteEndpoint(v6only, ep6))
	if again := mac(ep6); again != first {
		t.Errorf("IPv6-only endpoint got MAC %s, then %s for the same id", first, again)
	}
	if other := mac(hexID("v6-other")); other == first {
		t.Errorf("two IPv6-only endpoints got the same MAC %s", other)
	}
	j = b.ok(t, "Join", wiretest.Join(v6only, ep6))
	src := joinedLink(t, ep6, j)
	if _, ok := j["Gateway"]; ok || j["GatewayIPv6"] != "fd00:21::1" {
		t.Errorf("IPv6-only Join gateways = %v / %v, want none / fd00:21::1", j["Gateway"], j["GatewayIPv6"])
	}
	if l := b.getLink(t, src); l.MAC.String() != first {
		t.Errorf("IPv6-only link has MAC %s, want %s", l.MAC, first)
	}
	// The same id gets the same MAC after a restart too: it is derived,
	// not remembered.
	b.ok(t, "DeleteEndpoint", wiretest.DeleteEndpoint(v6only, ep6))
	b.restart(t)
	if again := mac(ep6); again != first {
		t.Errorf("IPv6-only endpoint got MAC %s after a restart, %s before", again, first)
	}
}

// TestLifecycleInternal: an internal network's Join names no gateway; the
// option's value counts, not its presence.
func TestLifecycleInternal(t *testing.T) {
	t.Parallel()
	b := newBench(t, benchOpts{})
	for i, internal := range []any{true, false, "true"} {
		netID := hexID("internal" + strconv.Itoa(i))
		req := wiretest.CreateNetwork(netID, onEth0(), wiretest.Pool("10.3"+strconv.Itoa(i)+".0.0/24", "10.3"+strconv.Itoa(i)+".0.1/24"), wiretest.Pool("fd00:3"+strconv.Itoa(i)+"::/64", "fd00:3"+strconv.Itoa(i)+"::1/64"))
		req.Options[protocol.OptionInternal] = internal
		b.ok(t, "CreateNetwork", req)
		ep := hexID("internal-ep" + strconv.Itoa(i))
		b.ok(t, "CreateEndpoint", wiretest.CreateEndpoint(netID, ep, "10.3"+strconv.Itoa(i)+".0.2/24", "fd00:3"+strconv.Itoa(i)+"::2/64", ""))
		j := b.ok(t, "Join", wiretest.Join(netID, ep))
		joinedLink(t, ep, j)
		_, gw4 := j["Gateway"]
		_, gw6 := j["GatewayIPv6"]
		isInternal := internal == true || internal == "true"
		if isInternal && (gw4 || gw6) {
			t.Errorf("internal=%v: Join has gateways %v / %v, want none", internal, j["Gateway"], j["GatewayIPv6"])
		}
		if !isInternal && (!gw4 || !gw6) {
			t.Errorf("internal=%v: Join gateways %v / %v, want both", internal, j["Gateway"], j["GatewayIPv6"])
		}
	}
}

// TestLifecycleSharedParentAndPassthru: several networks share a parent,
// except that passthru needs its parent alone and takes one endpoint.
func TestLifecycleSharedParentAndPassthru(t *testing.T) {
	t.Parallel()
	b := newBench(t, benchOpts{parents: []string{"eth0", "eth1"}})

	a, c := hexID("shared-a"), swarmID("shared-b")
	b.ok(t, "CreateNetwork", wiretest.CreateNetwork(a, onEth0(), wiretest.Pool("10.40.0.0/24", "10.40.0.1/24")))
	b.ok(t, "CreateNetwork", wiretest.CreateNetwork(c, onEth0("macvlan_mode", "private"), wiretest.Pool("10.41.0.0/24", "10.41.0.1/24")))
	epA, epC := hexID("shared-a-ep"), hexID("shared-b-ep")
	b.ok(t, "CreateEndpoint", wiretest.CreateEndpoint(a, epA, "10.40.0.2/24", "", ""))
	b.ok(t, "CreateEndpoint", wiretest.CreateEndpoint(c, epC, "10.41.0.2/24", "", ""))
	eth0 := b.getLink(t, "eth0").Index
	for _, x := range [][2]string{{a, epA}, {c, epC}} {
		src := joinedLink(t, x[1], b.ok(t, "Join", wiretest.Join(x[0], x[1])))
		if got := b.getLink(t, src).ParentIndex; got != eth0 {
			t.Errorf("%s on parent %d, want eth0 (%d)", src, got, eth0)
		}
	}

	before := b.d.Snapshot()
	msg := b.refused(t, "CreateNetwork", wiretest.CreateNetwork(hexID("pt-on-busy"), onEth0("macvlan_mode", "passthru"), wiretest.Pool("10.42.0.0/24", "")))
	mustContain(t, msg, "passthru", "eth0")
	if after := b.d.Snapshot(); !reflect.DeepEqual(before, after) {
		t.Errorf("refused passthru network changed the state:\n before %+v\n after  %+v", before, after)
	}

	pt := hexID("pt")
	b.ok(t, "CreateNetwork", wiretest.CreateNetwork(pt, map[string]string{"parent": "eth1", "macvlan_mode": "passthru"}, wiretest.Pool("10.43.0.0/24", "10.43.0.1/24")))
	msg = b.refused(t, "CreateNetwork", wiretest.CreateNetwork(hexID("bridge-on-pt"), map[string]string{"parent": "eth1"}, wiretest.Pool("10.44.0.0/24", "")))
	mustContain(t, msg, "passthru", "eth1")
	if n := len(b.d.Snapshot().Networks); n != 3 {
		t.Errorf("driver holds %d networks, want 3", n)
	}

	ep1, ep2 := hexID("pt-ep1"), hexID("pt-ep2")
	b.ok(t, "CreateEndpoint", wiretest.CreateEndpoint(pt, ep1, "10.43.0.2/24", "", ""))
	msg = b.refused(t, "CreateEndpoint", wiretest.CreateEndpoint(pt, ep2, "10.43.0.3/24", "", ""))
	mustContain(t, msg, "passthru")
	src := joinedLink(t, ep1, b.ok(t, "Join", wiretest.Join(pt, ep1)))
	if l := b.getLink(t, src); l.MacvlanMode != "passthru" || l.ParentIndex != b.getLink(t, "eth1").Index {
		t.Errorf("%s is %s on %d, want passthru on eth1", src, l.MacvlanMode, l.ParentIndex)
	}
	// Once the first endpoint is gone, the next container gets the parent
	// without waiting for a reaper batch.
	b.ok(t, "Leave", wiretest.Leave(pt, ep1))
	b.ok(t, "DeleteEndpoint", wiretest.DeleteEndpoint(pt, ep1))
	b.ok(t, "CreateEndpoint", wiretest.CreateEndpoint(pt, ep2, "10.43.0.3/24", "", ""))
	joinedLink(t, ep2, b.ok(t, "Join", wiretest.Join(pt, ep2)))

	for _, id := range []string{a, c, pt} {
		b.ok(t, "DeleteNetwork", wiretest.DeleteNetwork(id))
	}
	b.wantNoMvsLinks(t)
	b.wantNoState(t)
}

// TestLifecycleParentOptions: candidate lists, a missing parent, unknown
// options, and AllocateNetwork's never-refuse rule.
func TestLifecycleParentOptions(t *testing.T) {
	t.Parallel()
	b := newBench(t, benchOpts{})

	netID := swarmID("candidates")
	b.ok(t, "CreateNetwork", wiretest.CreateNetwork(netID, map[string]string{"parent": "nope0|eth0"}, wiretest.Pool("10.50.0.0/24", "10.50.0.1/24")))
	if s := b.d.Snapshot(); len(s.Networks) != 1 || s.Networks[0].Parent != "eth0" {
		t.Errorf("parent nope0|eth0 resolved to %+v, want eth0", s.Networks)
	}
	ep := hexID("candidates-ep")
	b.ok(t, "CreateEndpoint", wiretest.CreateEndpoint(netID, ep, "10.50.0.2/24", "", ""))
	src := joinedLink(t, ep, b.ok(t, "Join", wiretest.Join(netID, ep)))
	if got := b.getLink(t, src).ParentIndex; got != b.getLink(t, "eth0").Index {
		t.Errorf("%s on parent index %d, want eth0", src, got)
	}
	b.ok(t, "DeleteNetwork", wiretest.DeleteNetwork(netID))

	msg := b.refused(t, "CreateNetwork", wiretest.CreateNetwork(hexID("missing"), map[string]string{"parent": "nope0"}, wiretest.Pool("10.51.0.0/24", "")))
	mustContain(t, msg, `"nope0"`, "not found on this node", "eth0")

	msg = b.refused(t, "CreateNetwork", wiretest.CreateNetwork(hexID("typo"), map[string]string{"pparent": "eth0"}, wiretest.Pool("10.52.0.0/24", "")))
	mustContain(t, msg, `"pparent"`, "parent", "macvlan_mode", "mtu")

	for _, opts := range []map[string]string{
		{"pparent": "eth0"},
		{"parent": "eth0", "macvlan_mode": "bridgee"},
		{"parent": "eth0", "com.docker.network.driver.mtu": "huge"},
		{},
	} {
		got := b.ok(t, "AllocateNetwork", &protocol.AllocateNetworkRequest{
			NetworkID: swarmID("alloc"),
			Options:   opts,
			IPv4Data:  []protocol.IPAMData{{Pool: "10.53.0.0/24", Gateway: "10.53.0.1/24"}},
		})
		wantOpts := map[string]any{}
		for k, v := range opts {
			wantOpts[k] = v
		}
		if !reflect.DeepEqual(got, map[string]any{"Options": wantOpts}) {
			t.Errorf("AllocateNetwork(%v) = %v, want the options echoed", opts, got)
		}
	}
	b.ok(t, "FreeNetwork", &protocol.FreeNetworkRequest{NetworkID: swarmID("alloc")})
	b.wantNoState(t)
	b.wantNoMvsLinks(t)
}

// TestLifecycleRefusalsChangeNothing: a refused CreateNetwork leaves no
// network, no link and no saved record behind.
func TestLifecycleRefusalsChangeNothing(t *testing.T) {
	t.Parallel()
	b := newBench(t, benchOpts{})
	links := b.linkNames(t)
	v4 := wiretest.Pool("10.60.0.0/24", "10.60.0.1/24")
	noIPv4 := wiretest.CreateNetwork(hexID("no-v4"), onEth0(), v4)
	noIPv4.Options[protocol.OptionEnableIPv4] = false
	cases := map[string]*protocol.CreateNetworkRequest{
		"missing parent":        wiretest.CreateNetwork(hexID("1"), map[string]string{"parent": "nope0"}, v4),
		"host_access value":     wiretest.CreateNetwork(hexID("2"), onEth0("host_access", "yes-please"), v4),
		"host_access mode":      wiretest.CreateNetwork(hexID("2a"), onEth0("host_access", "true", "macvlan_mode", "vepa"), v4),
		"host_access no addr":   wiretest.CreateNetwork(hexID("2b"), onEth0("host_access", "true"), v4),
		"host_access no parent": wiretest.CreateNetwork(hexID("2c"), map[string]string{"host_access": "true"}, v4),
		"unknown option":        wiretest.CreateNetwork(hexID("3"), onEth0("pparent", "eth0"), v4),
		"bad mode":              wiretest.CreateNetwork(hexID("4"), onEth0("macvlan_mode", "bridgee"), v4),
		"mtu not a number":      wiretest.CreateNetwork(hexID("5"), onEth0("mtu", "big"), v4),
		"mtu above parent":      wiretest.CreateNetwork(hexID("6"), onEth0("mtu", "9000"), v4),
		"mtu options differ":    wiretest.CreateNetwork(hexID("7"), onEth0("mtu", "1400", protocol.OptionMTU, "1300"), v4),
		"loopback parent":       wiretest.CreateNetwork(hexID("8"), map[string]string{"parent": "lo"}, v4),
		"parent too long":       wiretest.CreateNetwork(hexID("9"), map[string]string{"parent": "averyveryverylongname"}, v4),
		"no pool":               wiretest.CreateNetwork(hexID("10"), onEth0()),
		"gateway outside":       wiretest.CreateNetwork(hexID("11"), onEth0(), wiretest.Pool("10.61.0.0/24", "10.99.0.1/24")),
		"bad pool":              wiretest.CreateNetwork(hexID("12"), onEth0(), protocol.IPAMData{Pool: "10.62.0.0"}),
		"ipv4 disabled only":    noIPv4,
		"empty id":              wiretest.CreateNetwork("", onEth0(), v4),
	}
	names := make([]string, 0, len(cases))
	for name := range cases {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		msg := b.refused(t, "CreateNetwork", cases[name])
		t.Logf("%s: %s", name, msg)
		b.wantNoState(t)
		if got := b.linkNames(t); !reflect.DeepEqual(got, links) {
			t.Errorf("%s: links changed from %v to %v", name, links, got)
		}
	}
	// Nothing was saved either.
	b.restart(t)
	b.wantNoState(t)
}

// TestLifecycleRefusedRecreateKeepsNetwork: when a network id the driver
// knows is created again with other settings (a swarm worker that forgot
// it), and those settings are refused, the network it had must survive:
// a refusal changes nothing.
func TestLifecycleRefusedRecreateKeepsNetwork(t *testing.T) {
	t.Parallel()
	b := newBench(t, benchOpts{})
	netID := swarmID("recreate")
	ep := hexID("recreate-ep")
	b.netWithEndpoint(t, netID, ep, 65)
	before := b.d.Snapshot()

	b.refused(t, "CreateNetwork", wiretest.CreateNetwork(netID, map[string]string{"parent": "nope0"}, wiretest.Pool("10.65.0.0/24", "10.65.0.1/24")))
	if after := b.d.Snapshot(); !reflect.DeepEqual(before, after) {
		t.Errorf("a refused re-create changed the state:\n before %+v\n after  %+v", before, after)
	}
	b.restart(t)
	if after := b.d.Snapshot(); !reflect.DeepEqual(before, after) {
		t.Errorf("a refused re-create changed the saved state:\n before %+v\n after  %+v", before, after)
	}
}

// TestLifecycleIdempotentDeletes: the engine repeats deletes after restarts
// and crashes; unknown ids and vanished links are success.
func TestLifecycleIdempotentDeletes(t *testing.T) {
	t.Parallel()
	b := newBench(t, benchOpts{})
	unknownNet, unknownEp := hexID("unknown-net"), hexID("unknown-ep")
	wantEmpty(t, "DeleteEndpoint of an unknown endpoint", b.ok(t, "DeleteEndpoint", wiretest.DeleteEndpoint(unknownNet, unknownEp)))
	wantEmpty(t, "Leave of an unknown endpoint", b.ok(t, "Leave", wiretest.Leave(unknownNet, unknownEp)))
	wantEmpty(t, "DeleteNetwork of an unknown network", b.ok(t, "DeleteNetwork", wiretest.DeleteNetwork(unknownNet)))
	wantEmpty(t, "DeleteNetwork of an unknown swarm network", b.ok(t, "DeleteNetwork", wiretest.DeleteNetwork(swarmID("unknown"))))

	netID := hexID("vanish")
	ep := hexID("vanish-ep")
	b.netWithEndpoint(t, netID, ep, 70)
	src := joinedLink(t, ep, b.ok(t, "Join", wiretest.Join(netID, ep)))
	// The link disappears behind the driver's back (its container's
	// namespace went, or an admin deleted it).
	if err := b.lab.Handle().Delete(src); err != nil {
		t.Fatal(err)
	}
	wantEmpty(t, "Leave", b.ok(t, "Leave", wiretest.Leave(netID, ep)))
	wantEmpty(t, "DeleteEndpoint of a vanished link", b.ok(t, "DeleteEndpoint", wiretest.DeleteEndpoint(netID, ep)))
	wantEmpty(t, "DeleteEndpoint again", b.ok(t, "DeleteEndpoint", wiretest.DeleteEndpoint(netID, ep)))
	wantEmpty(t, "DeleteNetwork", b.ok(t, "DeleteNetwork", wiretest.DeleteNetwork(netID)))
	wantEmpty(t, "DeleteNetwork again", b.ok(t, "DeleteNetwork", wiretest.DeleteNetwork(netID)))
	b.wantNoMvsLinks(t)
	b.wantNoState(t)

	// The network goes first, with an endpoint still joined (the engine
	// cleaning up after a crash); the endpoint's own deletes then find
	// nothing, and the link is not left behind.
	ep = hexID("net-first-ep")
	b.ok(t, "CreateNetwork", wiretest.CreateNetwork(netID, onEth0(), wiretest.Pool("10.70.0.0/24", "10.70.0.1/24")))
	b.ok(t, "CreateEndpoint", wiretest.CreateEndpoint(netID, ep, "10.70.0.3/24", "", ""))
	joinedLink(t, ep, b.ok(t, "Join", wiretest.Join(netID, ep)))
	wantEmpty(t, "DeleteNetwork with a joined endpoint", b.ok(t, "DeleteNetwork", wiretest.DeleteNetwork(netID)))
	wantEmpty(t, "Leave after DeleteNetwork", b.ok(t, "Leave", wiretest.Leave(netID, ep)))
	wantEmpty(t, "DeleteEndpoint after DeleteNetwork", b.ok(t, "DeleteEndpoint", wiretest.DeleteEndpoint(netID, ep)))
	b.wantNoMvsLinks(t)
	b.wantNoState(t)
	b.restart(t)
	b.wantNoState(t)
}

// TestLifecycleGoldenReplay feeds the request sequences captured from real
// engines, in order, through the real socket, with the captured parent
// rewritten to eth0. Between Join and Leave the link is moved into a
// namespace per sandbox, as the engine does; Leave moves it back. The
// "restarting" runs restart the plugin after every request: since the engine
// never replays anything, each answer must survive on the state file alone.
func TestLifecycleGoldenReplay(t *testing.T) {
	t.Parallel()
	for _, run := range []string{"engine-20.10-local", "engine-20.10-swarm", "engine-26.1-standalone", "engine-26.1-swarm",
		"engine-28.5-standalone", "engine-28.5-swarm",
		"engine-20.10-swarm/restarting", "engine-26.1-standalone/restarting", "engine-28.5-standalone/restarting"} {
		engine, variant, _ := strings.Cut(run, "/")
		restarting := variant == "restarting"
		t.Run(run, func(t *testing.T) {
			t.Parallel()
			files := wiretest.Captures(engine) // in the order the engine sent them
			if len(files) < 35 {
				t.Fatalf("captured requests of %s: %d files", engine, len(files))
			}
			b := newBench(t, benchOpts{})
			eth0 := b.snapshotLink(t, "eth0")
			rewrite := strings.NewReplacer(`"parent":"barp0"`, `"parent":"eth0"`, `"parent":"p0"`, `"parent":"eth0"`)

			sandboxes := map[string]*linktest.Lab{} // SandboxKey -> its "container"
			inside := map[string]*linktest.Lab{}    // endpoint id -> where its link is
			joined := map[string]string{}           // endpoint id -> host link
			ifnames := map[string]string{}          // endpoint id -> the interface name asked for
			counts := map[string]int{}
			for _, f := range files {
				body := []byte(rewrite.Replace(string(f.Body)))
				name, method := strings.TrimSuffix(f.Name, ".json"), f.Method
				counts[method]++

				var ids struct{ NetworkID, EndpointID, SandboxKey string }
				_ = json.Unmarshal(body, &ids)
				if method == "Leave" {
					// The engine moves the link back before it says Leave.
					if ns, ok := inside[ids.EndpointID]; ok {
						b.lab.MoveBack(t, ns, joined[ids.EndpointID])
						delete(inside, ids.EndpointID)
					}
				}

				status, m := b.call(t, method, body)
				if status != http.StatusOK {
					t.Fatalf("%s: status %d %v", name, status, m)
				}
				if method == "CreateEndpoint" {
					// Only fields the request left empty may come back: here
					// a MAC, and only when the user gave none.
					var req protocol.CreateEndpointRequest
					if err := json.Unmarshal(body, &req); err != nil {
						t.Fatal(err)
					}
					if name, ok := req.Options["com.docker.network.endpoint.ifname"].(string); ok {
						ifnames[req.EndpointID] = name
					}
					in, _ := m["Interface"].(map[string]any)
					if mac, _ := in["MacAddress"].(string); mac != "" && req.Interface.Address == "" && !strings.HasPrefix(mac, "06:") {
						t.Errorf("%s: an endpoint without IPv4 got MAC %s, want one from its id (06:…)", name, mac)
					}
					switch {
					case req.Interface.MacAddress != "" && len(m) != 0:
						t.Errorf("%s: request had a MAC, answer %v, want {}", name, m)
					case req.Interface.MacAddress == "" && (len(m) != 1 || len(in) != 1 || in["MacAddress"] == nil):
						t.Errorf("%s: answer %v, want only Interface.MacAddress", name, m)
					}
				}
				if method == "Join" {
					// The interface name the user asked for: the whole name,
					// and the prefix that makes engines up to 28.5 (which
					// pass on only the prefix) name it so.
					iface, _ := m["InterfaceName"].(map[string]any)
					want := map[string]any{"SrcName": iface["SrcName"], "DstPrefix": "eth"}
					if asked := ifnames[ids.EndpointID]; asked != "" {
						want = map[string]any{"SrcName": iface["SrcName"], "DstPrefix": strings.TrimRight(asked, "0123456789"), "DstName": asked}
					}
					if !reflect.DeepEqual(iface, want) {
						t.Errorf("%s: InterfaceName %v, want %v", name, iface, want)
					}
					src := joinedLink(t, ids.EndpointID, m)
					joined[ids.EndpointID] = src
					ns := sandboxes[ids.SandboxKey]
					if ns == nil {
						ns = b.lab.NewPeerNamespace(t)
						sandboxes[ids.SandboxKey] = ns
					}
					b.lab.MoveTo(t, src, ns)
					inside[ids.EndpointID] = ns
				}
				if restarting {
					b.restart(t)
				}
			}
			for ep := range inside {
				t.Errorf("endpoint %s was joined and never left", ep[:12])
			}
			if engine == "engine-28.5-standalone" && (len(ifnames) != 1 || counts["GwAllocCheck"] != 4) {
				t.Errorf("replay of %s covered %d interface names and %d GwAllocChecks, want 1 and 4", engine, len(ifnames), counts["GwAllocCheck"])
			}
			if counts["Join"] == 0 || counts["Leave"] == 0 || counts["DeleteNetwork"] == 0 {
				t.Errorf("replay covered %v, want joins, leaves and network deletes", counts)
			}
			t.Logf("replayed %d requests: %v", len(files), counts)
			b.wantNoMvsLinks(t)
			b.wantNoState(t)
			b.wantUntouched(t, "eth0", eth0)
		})
	}
}

// TestLifecycleActivate: a legacy plugin is sent Plugin.Activate.
func TestLifecycleActivate(t *testing.T) {
	t.Parallel()
	b := newBench(t, benchOpts{})
	got := b.ok(t, "Plugin.Activate", nil)
	if want := map[string]any{"Implements": []any{"NetworkDriver"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("Plugin.Activate = %v, want %v", got, want)
	}
	// Joining an endpoint the driver never heard of says so.
	msg := b.refused(t, "Join", wiretest.Join(hexID("n"), hexID("e")))
	mustContain(t, msg, hexID("e")[:12])
	if !errors.Is(func() error { _, err := b.lab.Handle().Get(hostLink(hexID("e"))); return err }(), link.ErrNotFound) {
		t.Error("a refused Join left a host link")
	}
}
