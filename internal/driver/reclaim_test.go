package driver

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol/wiretest"
)

// sandboxDir is a stand-in for the engine's <exec-root>/netns: a file per
// sandbox, removed when the sandbox is destroyed.
func sandboxDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "netns")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func newSandbox(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func joinIn(t *testing.T, d *Driver, id, sandbox string) {
	t.Helper()
	req := wiretest.Join(netA, id)
	req.SandboxKey = sandbox
	_, err := d.Join(req)
	mustOK(t, err)
}

func endpointIDs(d *Driver) []string {
	var ids []string
	for _, e := range d.Snapshot().Endpoints {
		ids = append(ids, e.ID[:4])
	}
	return ids
}

// Each signal of a dead container reclaims its endpoint, and only its own:
// live containers' endpoints survive every sweep.
func TestReclaimDeadContainersOnly(t *testing.T) {
	f := newFakeLinks("eth0")
	d := fakeDriver(t, f, t.TempDir(), nil)
	dir := sandboxDir(t)
	mustOK(t, d.CreateNetwork(createNet(netA, "eth0")))

	id := func(c byte) string { return strings.Repeat(string(c), 64) }
	live, gone, replaced, left, back, moving, unjoined, fresh := id('1'), id('2'), id('3'), id('4'), id('5'), id('6'), id('7'), id('8')
	for i, e := range []string{live, gone, replaced, left, back, moving, unjoined, fresh} {
		addEndpoint(t, d, e, "10.20.0."+string(rune('2'+i))+"/24")
	}
	for _, e := range []string{live, gone, replaced, left, back, moving} {
		joinIn(t, d, e, newSandbox(t, dir, e[:12]))
		// The engine moves the link into the container: gone from the host.
		mustOK(t, f.Delete(linkName(e)))
	}
	// gone: the engine destroyed its sandbox. replaced: destroyed, and a
	// new sandbox file took the same name. The new file is made before the
	// old one goes: made after, it can get the freed inode number back and
	// look like the old file (seen once in CI).
	mustOK(t, os.Remove(filepath.Join(dir, gone[:12])))
	newSandbox(t, dir, replaced[:12]+".tmp")
	mustOK(t, os.Remove(filepath.Join(dir, replaced[:12])))
	mustOK(t, os.Rename(filepath.Join(dir, replaced[:12]+".tmp"), filepath.Join(dir, replaced[:12])))
	// left: Leave came (the link is back), DeleteEndpoint never did.
	mustOK(t, d.Leave(wiretest.Leave(netA, left)))
	// back: its link is back in the host namespace without a Leave seen.
	// moving: the same, but the engine moves it away before the next sweep.
	for _, e := range []string{left, back, moving} {
		mustOK(t, f.AddMacvlan(linkSpecOf(d, e)))
	}

	now := time.Now()
	if n := d.sweep(now); n != 2 {
		t.Fatalf("first sweep reclaimed %d, want 2 (sandbox gone, sandbox replaced); holds %v", n, endpointIDs(d))
	}
	mustOK(t, f.Delete(linkName(moving)))
	if n := d.sweep(now.Add(DefaultReclaimGrace / 2)); n != 0 {
		t.Fatalf("a sweep within the grace reclaimed %d", n)
	}
	if n := d.sweep(now.Add(DefaultReclaimGrace + time.Second)); n != 2 {
		t.Fatalf("sweep after the grace reclaimed %d, want 2 (left, back); holds %v", n, endpointIDs(d))
	}
	if n := d.sweep(now.Add(DefaultUnjoinedTTL + time.Minute)); n != 2 {
		t.Fatalf("sweep after the unjoined TTL reclaimed %d, want 2 (never joined); holds %v", n, endpointIDs(d))
	}
	got := strings.Join(endpointIDs(d), ",")
	if got != "1111,6666" {
		t.Fatalf("endpoints left = %s, want the live container's and the one that moved away", got)
	}
	d.Flush()
	for _, e := range []string{left, back} {
		if f.has(linkName(e)) {
			t.Errorf("host link of reclaimed endpoint %s left behind", e[:4])
		}
	}
}

// An endpoint whose sandbox file the plugin never saw (its mount does not
// cover the engine's exec root) is never judged by its sandbox, and a
// sandbox directory that vanished (the mount went away) condemns nothing.
func TestReclaimNeverGuessesWithoutTheSandboxDirectory(t *testing.T) {
	f := newFakeLinks("eth0")
	d := fakeDriver(t, f, t.TempDir(), nil)
	dir := sandboxDir(t)
	mustOK(t, d.CreateNetwork(createNet(netA, "eth0")))
	addEndpoint(t, d, ep1, "10.20.0.2/24")
	joinIn(t, d, ep1, newSandbox(t, dir, "c1"))
	mustOK(t, f.Delete(linkName(ep1)))
	unseen := strings.Repeat("9", 64)
	addEndpoint(t, d, unseen, "10.20.0.3/24")
	joinIn(t, d, unseen, "/not/visible/netns/c2")
	mustOK(t, f.Delete(linkName(unseen)))

	mustOK(t, os.RemoveAll(dir))
	if n := d.sweep(time.Now().Add(time.Hour)); n != 0 {
		t.Fatalf("sweep without the sandbox directory reclaimed %d endpoints", n)
	}
}

// Reclaimed records stay gone after a restart; the sweep also runs at
// start-up.
func TestReclaimAtStartup(t *testing.T) {
	f := newFakeLinks("eth0")
	state := t.TempDir()
	d := fakeDriver(t, f, state, nil)
	dir := sandboxDir(t)
	mustOK(t, d.CreateNetwork(createNet(netA, "eth0")))
	addEndpoint(t, d, ep1, "10.20.0.2/24")
	sb := newSandbox(t, dir, "c1")
	joinIn(t, d, ep1, sb)
	stop(d)
	mustOK(t, os.Remove(sb)) // the container died while the plugin was down

	d = fakeDriver(t, f, state, nil)
	if eps := d.Snapshot().Endpoints; len(eps) != 0 {
		t.Fatalf("endpoint of a container that died while the plugin was down survived the start: %+v", eps)
	}
	stop(d)
	d = fakeDriver(t, f, state, nil)
	if eps := d.Snapshot().Endpoints; len(eps) != 0 {
		t.Fatalf("reclaimed endpoint came back after a restart: %+v", eps)
	}
}

// Requests that lack the ids they need (the engine's empty retries) are
// refused with a message that says so, and change nothing.
func TestRequestsWithoutIDsAreRefused(t *testing.T) {
	f, d := joinedOnNetA(t, "10.20.0.2/24")
	before := d.Snapshot()
	links := len(f.links)

	_, errAlloc := d.AllocateNetwork(&protocol.AllocateNetworkRequest{})
	_, errCreateEp := d.CreateEndpoint(&protocol.CreateEndpointRequest{})
	_, errJoin := d.Join(&protocol.JoinRequest{})
	for name, err := range map[string]error{
		"AllocateNetwork": errAlloc,
		"CreateNetwork":   d.CreateNetwork(&protocol.CreateNetworkRequest{}),
		"DeleteNetwork":   d.DeleteNetwork(&protocol.DeleteNetworkRequest{}),
		"CreateEndpoint":  errCreateEp,
		"DeleteEndpoint":  d.DeleteEndpoint(&protocol.DeleteEndpointRequest{}),
		"Join":            errJoin,
		"Leave":           d.Leave(&protocol.LeaveRequest{}),
	} {
		if err == nil || !strings.Contains(err.Error(), "the engine sent "+name+" without") || !strings.Contains(err.Error(), "retry after the plugin restarted") {
			t.Errorf("%s with an empty body: err = %v", name, err)
		}
	}
	if after := d.Snapshot(); len(after.Endpoints) != len(before.Endpoints) || len(after.Networks) != len(before.Networks) || len(f.links) != links {
		t.Fatalf("an empty request changed state: before %+v after %+v", before, after)
	}
}

// A MAC another endpoint or the parent already uses on the same parent is
// refused at CreateEndpoint, naming the MAC and its holder; the same MAC on
// another parent is fine. An address outside the network's subnets is
// refused.
func TestCreateEndpointRefusesTakenMACAndForeignAddress(t *testing.T) {
	f := newFakeLinks("eth0", "eth1")
	d := fakeDriver(t, f, t.TempDir(), nil)
	mustOK(t, d.CreateNetwork(createNet(netA, "eth0")))
	mustOK(t, d.CreateNetwork(createNet(netB, "eth1")))
	mac := "02:aa:bb:cc:dd:01"
	req := func(netID, epID, addr, mac string) *protocol.CreateEndpointRequest {
		return wiretest.CreateEndpoint(netID, epID, addr, "", mac)
	}
	_, err := d.CreateEndpoint(req(netA, ep1, "10.20.0.2/24", mac))
	mustOK(t, err)

	two, three, four := strings.Repeat("2", 64), strings.Repeat("3", 64), strings.Repeat("4", 64)
	_, err = d.CreateEndpoint(req(netA, two, "10.20.0.3/24", mac))
	if err == nil || !strings.Contains(err.Error(), "MAC address "+mac+" is already used on parent \"eth0\" by endpoint 111111111111") {
		t.Fatalf("duplicate MAC on the same parent: err = %v", err)
	}
	// 02:42:0a:14:00:02 is what 10.20.0.2 would derive; the user asks for
	// it on another address.
	f.mu.Lock()
	eth0 := f.links["eth0"]
	eth0.MAC = []byte{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}
	f.links["eth0"] = eth0
	f.mu.Unlock()
	_, err = d.CreateEndpoint(req(netA, three, "10.20.0.4/24", "02:11:22:33:44:55"))
	if err == nil || !strings.Contains(err.Error(), `is parent "eth0"'s own address`) {
		t.Fatalf("parent's MAC: err = %v", err)
	}
	_, err = d.CreateEndpoint(req(netB, four, "10.20.0.5/24", mac))
	mustOK(t, err) // another parent, another LAN segment

	_, err = d.CreateEndpoint(req(netA, three, "10.99.9.9/24", ""))
	if err == nil || !strings.Contains(err.Error(), "address 10.99.9.9/24 is outside every subnet of network") || !strings.Contains(err.Error(), "10.20.0.0/24") {
		t.Fatalf("address outside the pools: err = %v", err)
	}
	if n := len(d.Snapshot().Endpoints); n != 2 {
		t.Fatalf("refused endpoints were saved: %d endpoints", n)
	}
}

// A record whose DeleteEndpoint was lost must not refuse the next container:
// when the network hands its address to a new endpoint, or when its
// container is already known to be gone (sandbox removed, Leave seen), the
// new endpoint is admitted and the stale record dropped with it; a live
// holder of the same MAC still refuses it.
func TestStaleRecordsGiveWayToNewEndpoints(t *testing.T) {
	f := newFakeLinks("eth0")
	d := fakeDriver(t, f, t.TempDir(), nil)
	dir := sandboxDir(t)
	mustOK(t, d.CreateNetwork(createNet(netA, "eth0")))
	id := func(c byte) string { return strings.Repeat(string(c), 64) }
	ids := func() string { return strings.Join(endpointIDs(d), ",") }

	// The engine reuses .2 for a new container: the old record goes.
	addEndpoint(t, d, id('a'), "10.20.0.2/24")
	joinIn(t, d, id('a'), newSandbox(t, dir, "a"))
	addEndpoint(t, d, id('b'), "10.20.0.2/24")
	if got := ids(); got != "bbbb" {
		t.Fatalf("after the address went to a new endpoint the driver holds %s, want only bbbb", got)
	}

	mac := "02:aa:00:00:00:01"
	withMAC := func(ep, addr string) error {
		_, err := d.CreateEndpoint(wiretest.CreateEndpoint(netA, ep, addr, "", mac))
		return err
	}
	// A live holder of the MAC refuses it.
	mustOK(t, withMAC(id('c'), "10.20.0.3/24"))
	joinIn(t, d, id('c'), newSandbox(t, dir, "c"))
	if err := withMAC(id('d'), "10.20.0.4/24"); err == nil || !strings.Contains(err.Error(), "already used on parent") {
		t.Fatalf("a live holder's MAC: err = %v", err)
	}
	// Its Leave came, its DeleteEndpoint did not: the MAC is free.
	mustOK(t, d.Leave(wiretest.Leave(netA, id('c'))))
	mustOK(t, withMAC(id('d'), "10.20.0.4/24"))
	// Its sandbox is gone: the MAC is free.
	joinIn(t, d, id('d'), newSandbox(t, dir, "d"))
	mustOK(t, os.Remove(filepath.Join(dir, "d")))
	mustOK(t, withMAC(id('e'), "10.20.0.5/24"))
	if got := ids(); got != "bbbb,eeee" {
		t.Fatalf("driver holds %s, want bbbb and eeee", got)
	}
}

// AddressHolding tells the address manager which addresses of a subnet this
// node's networks hold: endpoints, gateways and aux addresses.
func TestAddressHolding(t *testing.T) {
	f := newFakeLinks("eth0", "eth1")
	d := fakeDriver(t, f, t.TempDir(), nil)
	pool := wiretest.Pool("10.20.0.0/24", "10.20.0.1/24")
	pool.AuxAddresses = map[string]string{"printer": "10.20.0.9/24"}
	mustOK(t, d.CreateNetwork(wiretest.CreateNetwork(netA, map[string]string{"parent": "eth0"}, pool)))
	mustOK(t, d.CreateNetwork(createNet(netB, "eth1")))
	addEndpoint(t, d, ep1, "10.20.0.2/24")
	subnet := netip.MustParsePrefix("10.20.0.0/24")
	for _, c := range []struct {
		addr     string
		networks int
		held     bool
	}{
		{"10.20.0.2", 2, true},  // ep1's
		{"10.20.0.1", 2, true},  // the gateway
		{"10.20.0.9", 2, true},  // an aux address
		{"10.20.0.3", 2, false}, // nobody's
	} {
		n, held := d.AddressHolding(subnet, netip.MustParseAddr(c.addr))
		if n != c.networks || held != c.held {
			t.Errorf("%s: %d networks, held %v; want %d, %v", c.addr, n, held, c.networks, c.held)
		}
	}
	if n, held := d.AddressHolding(netip.MustParsePrefix("10.30.0.0/24"), netip.MustParseAddr("10.30.0.2")); n != 0 || held {
		t.Errorf("a subnet no network has: %d networks, held %v", n, held)
	}
}
