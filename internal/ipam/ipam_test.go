package ipam

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol"
	"github.com/macvlan-swarm/macvlan-swarm/internal/store"
)

// clock is a test clock: every call moves one second on, so release times
// are distinct and ordered by the order of the calls.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { c.t = c.t.Add(time.Second); return c.t }

type fixture struct {
	t   *testing.T
	dir string
	st  *store.Store
	m   *Manager
	clk *clock
}

// newFixture opens a real state file in a temporary directory.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir(), clk: &clock{t: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}}
	f.open()
	return f
}

func (f *fixture) open() {
	f.t.Helper()
	st, err := store.Open(f.dir)
	if err != nil {
		f.t.Fatal(err)
	}
	f.st = st
	f.t.Cleanup(func() { st.Close() })
	m, err := New(Config{Store: st, Now: f.clk.now})
	if err != nil {
		f.t.Fatal(err)
	}
	f.m = m
}

// reopen closes the state file and builds a new manager from it, as a
// plugin restart does.
func (f *fixture) reopen() {
	f.t.Helper()
	if err := f.st.Close(); err != nil {
		f.t.Fatal(err)
	}
	f.open()
}

func (f *fixture) pool(subnet, ipRange string) string {
	f.t.Helper()
	r, err := f.m.RequestPool(&protocol.RequestPoolRequest{AddressSpace: GlobalSpace, Pool: subnet, SubPool: ipRange, V6: strings.Contains(subnet, ":")})
	if err != nil {
		f.t.Fatalf("RequestPool %s %s: %v", subnet, ipRange, err)
	}
	return r.PoolID
}

func (f *fixture) take(pool, addr string) string {
	f.t.Helper()
	got, err := f.m.RequestAddress(&protocol.RequestAddressRequest{PoolID: pool, Address: addr})
	if err != nil {
		f.t.Fatalf("RequestAddress %q: %v", addr, err)
	}
	return got.Address
}

func (f *fixture) gateway(pool string) string {
	f.t.Helper()
	got, err := f.m.RequestAddress(&protocol.RequestAddressRequest{PoolID: pool,
		Options: map[string]string{protocol.IPAMOptionRequestType: protocol.IPAMRequestGateway}})
	if err != nil {
		f.t.Fatalf("gateway: %v", err)
	}
	return got.Address
}

func (f *fixture) give(pool, addr string) {
	f.t.Helper()
	if err := f.m.ReleaseAddress(&protocol.ReleaseAddressRequest{PoolID: pool, Address: addr}); err != nil {
		f.t.Fatalf("ReleaseAddress %s: %v", addr, err)
	}
}

func bare(cidr string) string { return netip.MustParsePrefix(cidr).Addr().String() }

func TestAddressesGoForwardAndGivenBackOnesWaitTheirTurn(t *testing.T) {
	f := newFixture(t)
	// A range of 7 usable addresses: .0 is the subnet's network address.
	p := f.pool("10.1.0.0/24", "10.1.0.0/29")
	if got := f.gateway(p); got != "10.1.0.1/24" {
		t.Fatalf("gateway without an address: got %s, want the range's first, 10.1.0.1/24", got)
	}
	var got []string
	for i := 0; i < 3; i++ {
		got = append(got, f.take(p, ""))
	}
	if want := []string{"10.1.0.2/24", "10.1.0.3/24", "10.1.0.4/24"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("first addresses: got %v, want %v", got, want)
	}
	f.give(p, "10.1.0.3")
	f.give(p, "10.1.0.2")
	// Never-given-back addresses come first: .5, .6, .7; then, the range
	// used up, the one given back longest ago (.3), then .2.
	got = nil
	for i := 0; i < 5; i++ {
		got = append(got, f.take(p, ""))
	}
	if want := []string{"10.1.0.5/24", "10.1.0.6/24", "10.1.0.7/24", "10.1.0.3/24", "10.1.0.2/24"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("after two releases: got %v, want %v", got, want)
	}
	_, err := f.m.RequestAddress(&protocol.RequestAddressRequest{PoolID: p})
	if err == nil || !strings.Contains(err.Error(), "no free address left in 10.1.0.0/29") || !strings.Contains(err.Error(), "--ip-range") {
		t.Fatalf("full range: got %v, want a refusal naming the range and --ip-range", err)
	}
}

func TestAskedAddresses(t *testing.T) {
	f := newFixture(t)
	p := f.pool("10.1.0.0/24", "10.1.0.128/25")
	if got := f.take(p, "10.1.0.10"); got != "10.1.0.10/24" {
		t.Fatalf("an address outside the ip-range but inside the subnet (as --ip may be): got %s", got)
	}
	f.take(p, "10.1.0.200")
	f.give(p, "10.1.0.200")
	if got := f.take(p, "10.1.0.200"); got != "10.1.0.200/24" {
		t.Fatalf("an address given back, asked for by name: got %s, want it (only unnamed requests wait)", got)
	}
	for _, c := range []struct{ addr, want string }{
		{"10.1.0.10", "10.1.0.10 is already in use on this network"},
		{"10.2.0.1", "10.2.0.1 lies outside the network's subnet 10.1.0.0/24"},
		{"10.1.0.0", "10.1.0.0 is the subnet 10.1.0.0/24's own network or broadcast address"},
		{"10.1.0.255", "10.1.0.255 is the subnet 10.1.0.0/24's own network or broadcast address"},
		{"10.1.0.x", `"10.1.0.x" is not an IP address`},
	} {
		before := f.m.Status()
		_, err := f.m.RequestAddress(&protocol.RequestAddressRequest{PoolID: p, Address: c.addr})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("RequestAddress %s: got %v, want %q", c.addr, err, c.want)
		}
		if after := f.m.Status(); after.Pools[0].InUse != before.Pools[0].InUse {
			t.Errorf("RequestAddress %s was refused but changed the pool: %d → %d in use", c.addr, before.Pools[0].InUse, after.Pools[0].InUse)
		}
	}
	// The first unnamed address comes after the highest named one inside
	// the range (.200), not from the bottom of the range; .10 lies outside
	// it and does not count.
	if got := f.take(p, ""); got != "10.1.0.201/24" {
		t.Fatalf("first unnamed address: got %s, want 10.1.0.201/24", got)
	}
	q := f.pool("10.1.0.0/24", "10.1.0.128/25")
	if got := f.take(q, ""); got != "10.1.0.128/24" {
		t.Fatalf("first address of a new pool: got %s, want the range's first, 10.1.0.128/24", got)
	}
}

// A new swarm leader's allocator first asks by name for every address the
// cluster holds, then for new ones: those come after the highest held, not
// from the bottom of the range where addresses freed before it took over
// may still be in use on a cut-off node.
func TestNewLeaderStartsAboveWhatTheClusterHolds(t *testing.T) {
	f := newFixture(t)
	p := f.pool("10.1.0.0/24", "10.1.0.128/25")
	f.take(p, "10.1.0.1") // the gateway, outside the range
	for _, a := range []string{"10.1.0.131", "10.1.0.140", "10.1.0.135"} {
		f.take(p, a)
	}
	if got := f.take(p, ""); got != "10.1.0.141/24" {
		t.Fatalf("first new address: got %s, want 10.1.0.141/24", got)
	}
	f.reopen()
	if got := f.take(p, ""); got != "10.1.0.142/24" {
		t.Fatalf("after a restart: got %s, want 10.1.0.142/24", got)
	}
}

func TestPoolRefusals(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		name string
		req  protocol.RequestPoolRequest
		want string
	}{
		{"no subnet", protocol.RequestPoolRequest{AddressSpace: LocalSpace}, "give it with --subnet"},
		{"not a prefix", protocol.RequestPoolRequest{Pool: "10.1.0.0"}, `subnet "10.1.0.0" is not an address prefix`},
		{"IPv6 subnet in an IPv4 pool", protocol.RequestPoolRequest{Pool: "fd00::/64"}, "fd00::/64 is not an IPv4 subnet"},
		{"IPv4 subnet in an IPv6 pool", protocol.RequestPoolRequest{Pool: "10.1.0.0/24", V6: true}, "10.1.0.0/24 is not an IPv6 subnet"},
		{"range outside", protocol.RequestPoolRequest{Pool: "10.1.0.0/24", SubPool: "10.2.0.0/25"}, "ip-range 10.2.0.0/25 lies outside the subnet 10.1.0.0/24"},
		{"range wider", protocol.RequestPoolRequest{Pool: "10.1.0.0/24", SubPool: "10.1.0.0/23"}, "ip-range 10.1.0.0/23 lies outside"},
		{"range of the broadcast address only", protocol.RequestPoolRequest{Pool: "10.1.0.0/24", SubPool: "10.1.0.255/32"}, "has no address a container could take"},
		{"range not a prefix", protocol.RequestPoolRequest{Pool: "10.1.0.0/24", SubPool: "10.1.0.128-10.1.0.200"}, `ip-range "10.1.0.128-10.1.0.200" is not an address prefix`},
	} {
		_, err := f.m.RequestPool(&c.req)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
	if n := len(f.m.Status().Pools); n != 0 {
		t.Fatalf("refused requests left %d pools", n)
	}
}

// The engine's retry after a plugin crash comes with an empty body: it
// must never succeed quietly.
func TestRequestsWithoutIDsAreRefused(t *testing.T) {
	f := newFixture(t)
	p := f.pool("10.1.0.0/24", "")
	f.take(p, "10.1.0.5")
	if _, err := f.m.RequestAddress(&protocol.RequestAddressRequest{}); err == nil || !strings.Contains(err.Error(), "without a pool id, probably a retry") {
		t.Errorf("RequestAddress without a pool: %v", err)
	}
	if err := f.m.ReleaseAddress(&protocol.ReleaseAddressRequest{}); err == nil || !strings.Contains(err.Error(), "without a pool id or an address") {
		t.Errorf("ReleaseAddress without ids: %v", err)
	}
	if err := f.m.ReleaseAddress(&protocol.ReleaseAddressRequest{PoolID: p}); err == nil {
		t.Errorf("ReleaseAddress without an address was accepted")
	}
	if err := f.m.ReleasePool(&protocol.ReleasePoolRequest{}); err == nil || !strings.Contains(err.Error(), "ReleasePool without a pool id") {
		t.Errorf("ReleasePool without a pool: %v", err)
	}
	if st := f.m.Status(); len(st.Pools) != 1 || st.Pools[0].InUse != 1 {
		t.Fatalf("refused requests changed the pools: %+v", st.Pools)
	}
	if _, err := f.m.RequestAddress(&protocol.RequestAddressRequest{PoolID: "10.9.0.0/24@000000000000"}); err == nil || !strings.Contains(err.Error(), `pool "10.9.0.0/24@000000000000" is not known`) {
		t.Errorf("unknown pool: %v", err)
	}
	if err := f.m.ReleasePool(&protocol.ReleasePoolRequest{PoolID: "10.9.0.0/24@000000000000"}); err != nil {
		t.Errorf("releasing a pool not held is not an error: %v", err)
	}
	if err := f.m.ReleaseAddress(&protocol.ReleaseAddressRequest{PoolID: p, Address: "10.1.0.6"}); err != nil {
		t.Errorf("releasing an address not held is not an error: %v", err)
	}
}

// A swarm manager holds two pools of one subnet: the cluster allocator's and
// its own copy of the network's. Each sees only its own addresses, and an
// address either gives back waits its turn in both.
func TestPoolsOfOneSubnet(t *testing.T) {
	f := newFixture(t)
	cluster := f.pool("10.1.0.0/24", "10.1.0.0/29")
	node := f.pool("10.1.0.0/24", "10.1.0.0/29")
	if cluster == node {
		t.Fatalf("two requests got one pool id %q", cluster)
	}
	a := f.take(cluster, "")
	if got := f.take(node, bare(a)); got != a {
		t.Fatalf("the node's pool refused the address the cluster's gave out: %s", got)
	}
	f.give(node, bare(a))
	f.give(cluster, bare(a))
	if got := f.take(cluster, ""); got == a {
		t.Fatalf("the cluster's pool gave %s out again at once", a)
	}
	if got := f.take(node, ""); got == a {
		t.Fatalf("the node's pool gave %s, given back in the other pool, out at once", a)
	}
}

// Everything survives a restart: pools, addresses in use, where the search
// goes on from, and the release times.
func TestStateSurvivesARestart(t *testing.T) {
	f := newFixture(t)
	p := f.pool("10.1.0.0/24", "10.1.0.0/29")
	f.gateway(p)                      // .1
	f.take(p, "")                     // .2
	f.take(p, "")                     // .3
	f.take(p, "")                     // .4
	f.give(p, "10.1.0.2")             // waits its turn
	gone := f.pool("10.1.0.0/24", "") // released before the restart
	f.take(gone, "10.1.0.6")
	if err := f.m.ReleasePool(&protocol.ReleasePoolRequest{PoolID: gone}); err != nil {
		t.Fatal(err)
	}
	f.reopen()

	st := f.m.Status()
	if len(st.Pools) != 1 || st.Pools[0].ID != p || st.Pools[0].InUse != 3 {
		t.Fatalf("after a restart: %+v, want pool %s with 3 addresses in use", st.Pools, p)
	}
	if _, err := f.m.RequestAddress(&protocol.RequestAddressRequest{PoolID: p, Address: "10.1.0.3"}); err == nil {
		t.Fatalf("an address in use before the restart was given out again by name")
	}
	// .5 and .7 were never given back; .6 was, with its pool; .2 before it.
	var got []string
	for i := 0; i < 4; i++ {
		got = append(got, f.take(p, ""))
	}
	if want := []string{"10.1.0.5/24", "10.1.0.7/24", "10.1.0.2/24", "10.1.0.6/24"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("after a restart: got %v, want %v", got, want)
	}
	if _, err := f.m.RequestAddress(&protocol.RequestAddressRequest{PoolID: gone}); err == nil {
		t.Fatalf("a released pool came back after a restart")
	}
}

func TestIPv6(t *testing.T) {
	f := newFixture(t)
	p := f.pool("fd00:1::/64", "")
	if got := f.take(p, ""); got != "fd00:1::1/64" {
		t.Fatalf("first IPv6 address: got %s, want fd00:1::1/64 (::0 is the subnet-router address)", got)
	}
	if got := f.take(p, "fd00:1::ffff:ffff:ffff:ffff"); got != "fd00:1::ffff:ffff:ffff:ffff/64" {
		t.Fatalf("the last IPv6 address (no broadcast in IPv6): got %s", got)
	}
	f.give(p, "fd00:1::1")
	if got := f.take(p, ""); got != "fd00:1::2/64" {
		t.Fatalf("after giving ::1 back: got %s, want fd00:1::2/64", got)
	}
}

// The release times kept per subnet are bounded; the oldest go first.
func TestReleaseTimesAreBounded(t *testing.T) {
	f := newFixture(t)
	f.m.maxReleases = 3
	p := f.pool("10.1.0.0/24", "10.1.0.0/29")
	for i := 0; i < 7; i++ {
		f.take(p, "")
	}
	for _, a := range []string{"10.1.0.1", "10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.5"} {
		f.give(p, a)
	}
	if n := f.m.Status().Pools[0].Released; n != 3 {
		t.Fatalf("%d release times kept, want 3", n)
	}
	f.reopen()
	f.m.maxReleases = 3
	if n := f.m.Status().Pools[0].Released; n != 3 {
		t.Fatalf("%d release times after a restart, want 3", n)
	}
	// .1 and .2 were forgotten (given back first): they count as never
	// given back and come before .3, .4, .5.
	var got []string
	for i := 0; i < 5; i++ {
		got = append(got, f.take(p, ""))
	}
	if want := []string{"10.1.0.1/24", "10.1.0.2/24", "10.1.0.3/24", "10.1.0.4/24", "10.1.0.5/24"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// An address whose release never arrived (the plugin died handling it) is
// taken by a request by name once it was given out more than LostAfter ago
// and the node's driver has a network of its subnet that does not hold it.
// The holder is a stand-in for the driver here; the driver's side is
// TestAddressHolding in internal/driver.
func TestLostReleaseIsTakenByName(t *testing.T) {
	f := newFixture(t)
	var h Holding
	f.m.holder = func(netip.Prefix, netip.Addr) Holding { return h }
	p := f.pool("10.1.0.0/24", "")
	f.m.Claim("net1", RoleNode, []protocol.IPAMData{{AddressSpace: GlobalSpace, Pool: "10.1.0.0/24"}})
	cluster := f.pool("10.1.0.0/24", "")
	f.m.Claim("net1", RoleAllocator, []protocol.IPAMData{{AddressSpace: GlobalSpace, Pool: "10.1.0.0/24"}})
	f.take(p, "10.1.0.7") // its ReleaseAddress is lost
	f.take(cluster, "10.1.0.7")
	refused := func(why string) {
		t.Helper()
		_, err := f.m.RequestAddress(&protocol.RequestAddressRequest{PoolID: p, Address: "10.1.0.7"})
		if err == nil || !strings.Contains(err.Error(), "already in use") {
			t.Fatalf("%s: got %v, want the address refused as in use", why, err)
		}
	}
	h = Holding{Networks: 1}
	refused("given out just now") // CreateEndpoint may still be on its way
	f.clk.t = f.clk.t.Add(LostAfter)
	h = Holding{Networks: 1, Held: true}
	refused("a network holds it")
	h = Holding{}
	refused("no network of the subnet on this node (the managers' pool, or another driver's)")
	h = Holding{Networks: 1}
	// The allocator's pool holds every node's tasks: never taken.
	if _, err := f.m.RequestAddress(&protocol.RequestAddressRequest{PoolID: cluster, Address: "10.1.0.7"}); err == nil {
		t.Fatalf("the allocator's pool gave out an address it holds")
	}
	if got := f.take(p, "10.1.0.7"); got != "10.1.0.7/24" {
		t.Fatalf("lost release: got %s", got)
	}
	// Taken again now: the next request by name waits LostAfter again.
	refused("taken again just now")
}

// Claim ties a new pool to the network the driver's next request names,
// and drops older pools of the same network and role: the engine (or the
// allocator) that held them is gone.
func TestClaim(t *testing.T) {
	f := newFixture(t)
	data := func(space, subnet string) []protocol.IPAMData {
		return []protocol.IPAMData{{AddressSpace: space, Pool: subnet, Gateway: "10.1.0.1/24"}}
	}
	role := func(id string) string {
		t.Helper()
		for _, p := range f.m.Status().Pools {
			if p.ID == id {
				return p.Network + "/" + p.Role
			}
		}
		return "gone"
	}
	node1 := f.pool("10.1.0.0/24", "")
	f.take(node1, "10.1.0.1")
	f.m.Claim("net1", RoleNode, data(GlobalSpace, "10.1.0.0/24"))
	alloc1 := f.pool("10.1.0.0/24", "")
	f.m.Claim("net1", RoleAllocator, data("", "10.1.0.0/24")) // swarm's AllocateNetwork leaves the space out
	if role(node1) != "net1/node" || role(alloc1) != "net1/allocator" {
		t.Fatalf("claimed: %s %s", role(node1), role(alloc1))
	}

	// Another engine's space, or a pool too old: nothing is claimed.
	other := f.pool("10.2.0.0/24", "")
	f.m.Claim("net2", RoleNode, data("LocalDefault", "10.2.0.0/24"))
	f.clk.t = f.clk.t.Add(ClaimWindow)
	f.m.Claim("net2", RoleNode, data(GlobalSpace, "10.2.0.0/24"))
	if role(other) != "/" {
		t.Fatalf("claimed from another space or after the window: %s", role(other))
	}
	// Two new pools of one subnet: which is whose cannot be told.
	a, b := f.pool("10.3.0.0/24", ""), f.pool("10.3.0.0/24", "")
	f.m.Claim("net3", RoleNode, data(GlobalSpace, "10.3.0.0/24"))
	if role(a) != "/" || role(b) != "/" {
		t.Fatalf("one of two candidates claimed: %s %s", role(a), role(b))
	}

	// The engine restarts: a new pool for its copy of net1. The old one is
	// dropped; the allocator's stays.
	node2 := f.pool("10.1.0.0/24", "")
	f.m.Claim("net1", RoleNode, data(GlobalSpace, "10.1.0.0/24"))
	if role(node2) != "net1/node" || role(node1) != "gone" || role(alloc1) != "net1/allocator" {
		t.Fatalf("after a restart: new %s, old %s, allocator's %s", role(node2), role(node1), role(alloc1))
	}
	f.reopen()
	if role(node2) != "net1/node" || role(node1) != "gone" || role(alloc1) != "net1/allocator" {
		t.Fatalf("after a plugin restart: new %s, old %s, allocator's %s", role(node2), role(node1), role(alloc1))
	}
	// The dropped pool's addresses went with it, not into the release
	// times: they were not given back.
	if got := f.take(node2, ""); got != "10.1.0.1/24" {
		t.Fatalf("first address of the new pool: %s", got)
	}
}
