package driver

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol/wiretest"
	"github.com/macvlan-swarm/macvlan-swarm/internal/store"
)

var noPrefix netip.Prefix

func mustPrefix(t *testing.T, s string) netip.Prefix {
	t.Helper()
	p, err := netip.ParsePrefix(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fakeDriver is a Driver on the fake link layer with a real store in dir.
func fakeDriver(t *testing.T, f *fakeLinks, dir string, parents map[string]string) *Driver {
	t.Helper()
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(Config{Links: f, Store: st, Parents: parents})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(); st.Close() })
	return d
}

// stop closes a fakeDriver early, as a plugin restart would.
func stop(d *Driver) {
	d.Close()
	d.st.store.Close()
}

func createNet(id, parent string) *protocol.CreateNetworkRequest {
	return wiretest.CreateNetwork(id, map[string]string{"parent": parent}, wiretest.Pool("10.20.0.0/24", "10.20.0.1/24"))
}

const (
	netA = "aaaaaaaaaaaaaaaaaaaaaaaaa" // swarm-style ids
	netB = "bbbbbbbbbbbbbbbbbbbbbbbbb"
	ep1  = "1111111111111111111111111111111111111111111111111111111111111111"
)

// addEndpoint creates endpoint id with IPv4 address addr on network netA.
func addEndpoint(t *testing.T, d *Driver, id, addr string) {
	t.Helper()
	_, err := d.CreateEndpoint(wiretest.CreateEndpoint(netA, id, addr, "", ""))
	mustOK(t, err)
}

// join joins endpoint id of network netA.
func join(t *testing.T, d *Driver, id string) {
	t.Helper()
	_, err := d.Join(wiretest.Join(netA, id))
	mustOK(t, err)
}

// joinedOnNetA is a fake driver with network netA on eth0 and endpoint ep1
// (addr) joined on it.
func joinedOnNetA(t *testing.T, addr string) (*fakeLinks, *Driver) {
	t.Helper()
	f := newFakeLinks("eth0")
	d := fakeDriver(t, f, t.TempDir(), nil)
	mustOK(t, d.CreateNetwork(createNet(netA, "eth0")))
	addEndpoint(t, d, ep1, addr)
	join(t, d, ep1)
	return f, d
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestVLANParentCreatedSharedAndReleasedByLastNetwork(t *testing.T) {
	f := newFakeLinks("eth0")
	d := fakeDriver(t, f, t.TempDir(), nil)

	mustOK(t, d.CreateNetwork(createNet(netA, "eth0.20")))
	if i, err := f.Get("eth0.20"); err != nil || i.Kind != "vlan" || i.VlanID != 20 {
		t.Fatalf("eth0.20 after first network: %+v, %v", i, err)
	}
	mustOK(t, d.CreateNetwork(createNet(netB, "eth0.20")))
	for _, n := range d.Snapshot().Networks {
		if n.Parent != "eth0.20" || !n.ParentCreated {
			t.Fatalf("network %s: parent %q created %v", n.ID, n.Parent, n.ParentCreated)
		}
	}

	mustOK(t, d.DeleteNetwork(wiretest.DeleteNetwork(netA)))
	if !f.has("eth0.20") {
		t.Fatal("VLAN parent deleted while network B still uses it")
	}
	mustOK(t, d.DeleteNetwork(wiretest.DeleteNetwork(netB)))
	if f.has("eth0.20") {
		t.Fatal("VLAN parent left behind after the last network went")
	}
	if !f.has("eth0") {
		t.Fatal("base link deleted")
	}
}

func TestUserVLANParentIsNeverDeleted(t *testing.T) {
	f := newFakeLinks("eth0")
	mustOK(t, f.AddVLAN("eth0.30", "eth0", 30)) // made by the user
	d := fakeDriver(t, f, t.TempDir(), nil)
	mustOK(t, d.CreateNetwork(createNet(netA, "eth0.30")))
	if d.Snapshot().Networks[0].ParentCreated {
		t.Fatal("a user's link recorded as created by the driver")
	}
	mustOK(t, d.DeleteNetwork(wiretest.DeleteNetwork(netA)))
	if !f.has("eth0.30") {
		t.Fatal("the user's VLAN link was deleted")
	}
}

func TestVLANParentReplacedByUserIsLeftAlone(t *testing.T) {
	f := newFakeLinks("eth0")
	d := fakeDriver(t, f, t.TempDir(), nil)
	mustOK(t, d.CreateNetwork(createNet(netA, "eth0.20")))
	// Someone replaces the link with one of their own under the same name.
	mustOK(t, f.Delete("eth0.20"))
	f.mu.Lock()
	f.add(link.Info{Name: "eth0.20", Kind: "bridge", MTU: 1500})
	f.mu.Unlock()
	mustOK(t, d.DeleteNetwork(wiretest.DeleteNetwork(netA)))
	if !f.has("eth0.20") {
		t.Fatal("deleted a link that is not the VLAN link the driver made")
	}
}

func TestVLANUnsupportedKernelRefusesAndChangesNothing(t *testing.T) {
	f := newFakeLinks("eth0")
	f.noVLAN = true
	d := fakeDriver(t, f, t.TempDir(), nil)
	err := d.CreateNetwork(createNet(netA, "eth0.20"))
	if err == nil || !strings.Contains(err.Error(), "cannot create 802.1q VLAN links") || !strings.Contains(err.Error(), `create "eth0.20" on the node yourself`) {
		t.Fatalf("err = %v", err)
	}
	if s := d.Snapshot(); len(s.Networks) != 0 {
		t.Fatalf("refused network was saved: %+v", s.Networks)
	}
}

func TestVLANCandidatesAndAliases(t *testing.T) {
	f := newFakeLinks("eth0", "ens18")
	d := fakeDriver(t, f, t.TempDir(), map[string]string{"lan": "ens18.7"})

	// No candidate exists; the first VLAN-shaped one whose base exists is made.
	mustOK(t, d.CreateNetwork(createNet(netA, "eth9.20|eth0.20")))
	if !f.has("eth0.20") || f.has("eth9.20") {
		t.Fatal("wrong VLAN candidate created")
	}
	// An existing candidate wins over one that would have to be created.
	mustOK(t, d.CreateNetwork(createNet(netB, "eth0.21|ens18")))
	if f.has("eth0.21") {
		t.Fatal("created a VLAN although a later candidate exists")
	}
	// A node-level alias maps to this node's VLAN.
	mustOK(t, d.CreateNetwork(createNet("ccccccccccccccccccccccccc", "lan")))
	if !f.has("ens18.7") {
		t.Fatal("alias lan=ens18.7 did not create ens18.7")
	}
}

func TestRebootRecreatesVLANParent(t *testing.T) {
	dir := t.TempDir()
	f := newFakeLinks("eth0")
	d := fakeDriver(t, f, dir, nil)
	mustOK(t, d.CreateNetwork(createNet(netA, "eth0.20")))
	addEndpoint(t, d, ep1, "10.20.0.5/24")
	stop(d)

	// After a reboot the kernel has only the physical link; the state file
	// is what is left.
	f2 := newFakeLinks("eth0")
	d2 := fakeDriver(t, f2, dir, nil)
	if i, err := f2.Get("eth0.20"); err != nil || i.Kind != "vlan" {
		t.Fatalf("VLAN parent not re-created on restore: %+v %v", i, err)
	}
	resp, err := d2.Join(wiretest.Join(netA, ep1))
	mustOK(t, err)
	if resp.InterfaceName.SrcName != linkName(ep1) || !f2.has(linkName(ep1)) {
		t.Fatalf("join after reboot: %+v", resp)
	}
}

func TestJoinRecreatesVanishedVLANParent(t *testing.T) {
	f := newFakeLinks("eth0")
	d := fakeDriver(t, f, t.TempDir(), nil)
	mustOK(t, d.CreateNetwork(createNet(netA, "eth0.20")))
	addEndpoint(t, d, ep1, "10.20.0.5/24")
	mustOK(t, f.Delete("eth0.20"))
	join(t, d, ep1)
	if !f.has("eth0.20") || !f.has(linkName(ep1)) {
		t.Fatal("join did not re-create the VLAN parent and the link")
	}
}

func TestSwarmCreateDeleteCyclesKeepVLANCorrect(t *testing.T) {
	f := newFakeLinks("eth0")
	d := fakeDriver(t, f, t.TempDir(), nil)
	// A worker gets CreateNetwork with its first task and DeleteNetwork with
	// its last, over and over, while another network shares the parent.
	mustOK(t, d.CreateNetwork(createNet(netB, "eth0.20")))
	for i := 0; i < 5; i++ {
		mustOK(t, d.CreateNetwork(createNet(netA, "eth0.20")))
		mustOK(t, d.CreateNetwork(createNet(netA, "eth0.20"))) // a repeat is harmless
		mustOK(t, d.DeleteNetwork(wiretest.DeleteNetwork(netA)))
		if !f.has("eth0.20") {
			t.Fatalf("cycle %d: shared VLAN parent deleted", i)
		}
	}
	mustOK(t, d.DeleteNetwork(wiretest.DeleteNetwork(netB)))
	for i := 0; i < 3; i++ {
		mustOK(t, d.CreateNetwork(createNet(netA, "eth0.20")))
		if !f.has("eth0.20") {
			t.Fatalf("cycle %d: VLAN parent not created", i)
		}
		mustOK(t, d.DeleteNetwork(wiretest.DeleteNetwork(netA)))
		if f.has("eth0.20") {
			t.Fatalf("cycle %d: VLAN parent left behind", i)
		}
	}
}

func TestReaperLeavesForeignLinkInItsGroup(t *testing.T) {
	f, d := joinedOnNetA(t, "10.20.0.5/24")
	// Someone else's link happens to sit in the driver's group.
	f.mu.Lock()
	f.add(link.Info{Name: "theirs0", Kind: "veth", Group: RetireGroup})
	f.mu.Unlock()
	mustOK(t, d.DeleteEndpoint(wiretest.DeleteEndpoint(netA, ep1)))
	d.Flush()
	if f.has(linkName(ep1)) {
		t.Fatal("retired link not deleted")
	}
	if !f.has("theirs0") {
		t.Fatal("a foreign link in the group was deleted")
	}
	for _, c := range f.calls {
		if strings.HasPrefix(c, "delete group") {
			t.Fatalf("group delete used although a foreign link was in the group: %v", f.calls)
		}
	}
}

func TestReaperBatchesDeletes(t *testing.T) {
	f := newFakeLinks("eth0")
	d := fakeDriver(t, f, t.TempDir(), nil)
	mustOK(t, d.CreateNetwork(createNet(netA, "eth0")))
	var ids []string
	for i := 0; i < 10; i++ {
		id := strings.Repeat(string("0123456789"[i]), 64)
		ids = append(ids, id)
		addEndpoint(t, d, id, fmt.Sprintf("10.20.0.%d/24", 10+i))
		join(t, d, id)
	}
	for _, id := range ids {
		mustOK(t, d.DeleteEndpoint(wiretest.DeleteEndpoint(netA, id)))
	}
	d.Flush()
	groups, singles := 0, 0
	for _, c := range f.calls {
		switch {
		case strings.HasPrefix(c, "delete group"):
			groups++
		case strings.HasPrefix(c, "delete "):
			singles++
		}
	}
	for _, id := range ids {
		if f.has(linkName(id)) {
			t.Fatalf("link of %s left", id[:4])
		}
	}
	if singles != 0 || groups == 0 || groups > 2 {
		t.Fatalf("10 deletes took %d group deletes and %d single deletes; want 1 (or 2) group deletes", groups, singles)
	}
}

func TestRecreateWithOtherSettingsKeepsOrReleasesVLANParent(t *testing.T) {
	f := newFakeLinks("eth0", "eth1")
	d := fakeDriver(t, f, t.TempDir(), nil)
	mustOK(t, d.CreateNetwork(createNet(netA, "eth0.20")))

	// Same parent, other mode: the VLAN link the new settings use stays.
	req := createNet(netA, "eth0.20")
	req.Options[protocol.OptionGeneric] = map[string]any{"parent": "eth0.20", "macvlan_mode": "private"}
	mustOK(t, d.CreateNetwork(req))
	if !f.has("eth0.20") {
		t.Fatal("re-create on the same VLAN parent deleted it")
	}
	if n := d.Snapshot().Networks; len(n) != 1 || n[0].Mode != "private" || !n[0].ParentCreated {
		t.Fatalf("networks after re-create: %+v", n)
	}

	// Another parent: the old VLAN link has no user any more and goes.
	mustOK(t, d.CreateNetwork(createNet(netA, "eth1.30")))
	if f.has("eth0.20") || !f.has("eth1.30") {
		t.Fatal("re-create on another parent did not move the VLAN parent")
	}
}

func TestParentNotFoundNamesNodeAndInterfaces(t *testing.T) {
	f := newFakeLinks("eth0", "ens18")
	st, err := store.Open(t.TempDir())
	mustOK(t, err)
	defer st.Close()
	d, err := New(Config{Links: f, Store: st, Node: "node7", Parents: map[string]string{"lan": "eth9"}})
	mustOK(t, err)
	defer d.Close()
	err = d.CreateNetwork(createNet(netA, "lan|nope0"))
	want := `parent "lan|nope0" (eth9|nope0 after this node's PARENTS aliases) not found on this node (node7); interfaces here: ens18, eth0.`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v\nwant it to contain %s", err, want)
	}
}

// A swarm worker whose daemon died forgets its swarm networks and, with its
// next task, sends CreateNetwork again without deleting the dead containers'
// endpoints. Their records must not block the network (passthru takes one
// endpoint only) and their links must go.
func TestRecreateAfterWorkerCrashDropsDeadEndpoints(t *testing.T) {
	f := newFakeLinks("eth0")
	f.links["eth0"] = link.Info{Name: "eth0", Index: f.links["eth0"].Index, Kind: "veth", MTU: 1500, MAC: []byte{2, 0, 0, 0, 0, 1}}
	d := fakeDriver(t, f, t.TempDir(), nil)
	req := createNet(netA, "eth0")
	req.Options[protocol.OptionGeneric] = map[string]any{"parent": "eth0", "macvlan_mode": "passthru"}
	mustOK(t, d.CreateNetwork(req))
	addEndpoint(t, d, ep1, "10.20.0.5/24")
	join(t, d, ep1)

	// The daemon crashed; the container's link came back to the host (or
	// not); the engine sends CreateNetwork with the same settings again.
	mustOK(t, d.CreateNetwork(req))
	d.Flush()
	if len(d.Snapshot().Endpoints) != 0 {
		t.Fatalf("dead endpoints kept: %+v", d.Snapshot().Endpoints)
	}
	if f.has(linkName(ep1)) {
		t.Fatal("a dead endpoint's host link was left")
	}
	ep2 := strings.Repeat("2", 64)
	if _, err := d.CreateEndpoint(wiretest.CreateEndpoint(netA, ep2, "10.20.0.6/24", "", "")); err != nil {
		t.Fatalf("new task on the passthru network after the crash: %v", err)
	}
}

func TestEndpointIDsSharingAPrefixGetDistinctLinks(t *testing.T) {
	f := newFakeLinks("eth0")
	d := fakeDriver(t, f, t.TempDir(), nil)
	mustOK(t, d.CreateNetwork(createNet(netA, "eth0")))
	a := "abcdefabcdef" + strings.Repeat("1", 52)
	b := "abcdefabcdef" + strings.Repeat("2", 52)
	for i, id := range []string{a, b} {
		addEndpoint(t, d, id, fmt.Sprintf("10.20.0.%d/24", 5+i))
		join(t, d, id)
	}
	eps := d.Snapshot().Endpoints
	if eps[0].Link == eps[1].Link || !f.has(eps[0].Link) || !f.has(eps[1].Link) {
		t.Fatalf("endpoints %+v: want two distinct live links", eps)
	}
	for _, c := range f.calls {
		if strings.HasPrefix(c, "delete ") {
			t.Fatalf("a join deleted a link: %v", f.calls)
		}
	}
}

// When a known network is created again with settings whose kernel step
// fails (here a VLAN parent this kernel cannot make), the old network must
// still be there: the kernel step runs before the old network is replaced.
func TestRecreateWhoseParentCannotBeMadeKeepsOldNetwork(t *testing.T) {
	f := newFakeLinks("eth0")
	f.noVLAN = true
	d := fakeDriver(t, f, t.TempDir(), nil)
	mustOK(t, d.CreateNetwork(createNet(netA, "eth0")))
	addEndpoint(t, d, ep1, "10.20.0.5/24")
	before := d.Snapshot()

	if err := d.CreateNetwork(createNet(netA, "eth0.20")); err == nil || !strings.Contains(err.Error(), "cannot create 802.1q") {
		t.Fatalf("err = %v", err)
	}
	after := d.Snapshot()
	if len(after.Networks) != 1 || after.Networks[0].Parent != "eth0" || len(after.Endpoints) != len(before.Endpoints) {
		t.Fatalf("the old network was not kept: before %+v, after %+v", before, after)
	}
}

// GwAllocCheck (engines 28 and newer ask it before reserving gateways):
// only an --internal network goes without; a body without options, as a
// retry after a crash sends, keeps the gateway.
func TestGwAllocCheckSkipsOnlyInternalNetworks(t *testing.T) {
	d := fakeDriver(t, newFakeLinks("eth0"), t.TempDir(), nil)
	caps, err := d.GetCapabilities()
	mustOK(t, err)
	if !caps.GwAllocChecker {
		t.Fatal("GetCapabilities does not offer GwAllocCheck")
	}
	for _, c := range []struct {
		opts map[string]any
		skip bool
	}{
		{map[string]any{protocol.OptionInternal: true, protocol.OptionGeneric: map[string]any{"parent": "eth0"}}, true},
		{map[string]any{protocol.OptionInternal: false}, false},
		// No parent: internal whatever the flag says.
		{map[string]any{protocol.OptionInternal: false, protocol.OptionGeneric: map[string]any{}}, true},
		{map[string]any{protocol.OptionGeneric: map[string]any{"parent": " "}}, true},
		{map[string]any{protocol.OptionGeneric: map[string]any{"parent": "eth0"}}, false},
		{nil, false},
	} {
		r, err := d.GwAllocCheck(&protocol.GwAllocCheckRequest{Options: c.opts})
		mustOK(t, err)
		if r.SkipIPv4 != c.skip || r.SkipIPv6 != c.skip {
			t.Errorf("GwAllocCheck(%v) = %+v, want skip %v for both", c.opts, r, c.skip)
		}
	}
}

// The interface name asked for in the container is checked at
// CreateEndpoint, kept across a restart, and answered at Join as the whole
// name and the prefix that makes engines up to 28.5 produce it.
func TestInterfaceNameAskedFor(t *testing.T) {
	dir := t.TempDir()
	f := newFakeLinks("eth0")
	d := fakeDriver(t, f, dir, nil)
	mustOK(t, d.CreateNetwork(createNet(netA, "eth0")))
	for _, bad := range []any{"", "a-very-long-interface-name", "lan/0", 7} {
		req := wiretest.CreateEndpoint(netA, ep1, "10.20.0.5/24", "", "")
		req.Options = map[string]any{optIfName: bad}
		_, err := d.CreateEndpoint(req)
		if err == nil || !strings.Contains(err.Error(), optIfName) {
			t.Errorf("ifname %#v: err = %v, want a refusal naming %s", bad, err, optIfName)
		}
	}
	if n := len(d.Snapshot().Endpoints); n != 0 {
		t.Fatalf("refused endpoints were recorded: %d", n)
	}
	for i, c := range []struct{ ifname, prefix string }{{"lan0", "lan"}, {"wan", "wan"}, {"uplink12", "uplink"}, {"0", "eth"}} {
		ep := fmt.Sprintf("%064d", i+1)
		req := wiretest.CreateEndpoint(netA, ep, fmt.Sprintf("10.20.0.%d/24", 10+i), "", "")
		req.Options = map[string]any{optIfName: c.ifname}
		_, err := d.CreateEndpoint(req)
		mustOK(t, err)
		if i == 0 { // the name survives a restart between CreateEndpoint and Join
			stop(d)
			d = fakeDriver(t, f, dir, nil)
		}
		resp, err := d.Join(wiretest.Join(netA, ep))
		mustOK(t, err)
		if got := resp.InterfaceName; got.DstName != c.ifname || got.DstPrefix != c.prefix {
			t.Errorf("ifname %q: InterfaceName %+v, want DstName %q and DstPrefix %q", c.ifname, got, c.ifname, c.prefix)
		}
	}
}
