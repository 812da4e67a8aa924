package driver_test

import (
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/driver"
	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
	"github.com/macvlan-swarm/macvlan-swarm/internal/model"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol/wiretest"
	"github.com/macvlan-swarm/macvlan-swarm/internal/store"
)

// The engine never replays CreateNetwork, CreateEndpoint or Join: whatever
// the driver knew before a restart must come back from its state file.

// TestRestartSameStateFile: a restarted daemon carries on where it stopped.
func TestRestartSameStateFile(t *testing.T) {
	t.Parallel()
	b := newBench(t, benchOpts{})
	netID := swarmID("restart")
	b.ok(t, "CreateNetwork", wiretest.CreateNetwork(netID, onEth0("macvlan_mode", "vepa", "mtu", "1400"), wiretest.Pool("10.80.0.0/24", "10.80.0.1/24")))
	ep1, ep2 := hexID("restart-1"), hexID("restart-2")
	b.ok(t, "CreateEndpoint", wiretest.CreateEndpoint(netID, ep1, "10.80.0.2/24", "", ""))
	b.ok(t, "CreateEndpoint", wiretest.CreateEndpoint(netID, ep2, "10.80.0.3/24", "", "02:aa:00:00:00:03"))
	src1 := joinedLink(t, ep1, b.ok(t, "Join", wiretest.Join(netID, ep1)))
	// ep1's container holds its link while the daemon restarts.
	container := b.lab.NewPeerNamespace(t)
	b.lab.MoveTo(t, src1, container)
	before := b.d.Snapshot()

	b.restart(t)
	if after := b.d.Snapshot(); !reflect.DeepEqual(before, after) {
		t.Fatalf("state after restart differs:\n before %+v\n after  %+v", before, after)
	}

	j := b.ok(t, "Join", wiretest.Join(netID, ep2))
	src2 := joinedLink(t, ep2, j)
	if j["Gateway"] != "10.80.0.1" {
		t.Errorf("Join after restart: Gateway %v, want 10.80.0.1", j["Gateway"])
	}
	l := b.getLink(t, src2)
	if l.MacvlanMode != "vepa" || l.MTU != 1400 || l.MAC.String() != "02:aa:00:00:00:03" {
		t.Errorf("link after restart is %s MTU %d MAC %s, want vepa, 1400, 02:aa:00:00:00:03", l.MacvlanMode, l.MTU, l.MAC)
	}
	b.lab.MoveBack(t, container, src1)
	for _, ep := range []string{ep1, ep2} {
		b.ok(t, "Leave", wiretest.Leave(netID, ep))
		b.ok(t, "DeleteEndpoint", wiretest.DeleteEndpoint(netID, ep))
	}
	b.ok(t, "DeleteNetwork", wiretest.DeleteNetwork(netID))
	b.wantNoMvsLinks(t)
	b.wantNoState(t)
}

// TestRestartAfterReboot: a reboot takes every host link and keeps the state
// file; the endpoint can be joined again.
func TestRestartAfterReboot(t *testing.T) {
	t.Parallel()
	b := newBench(t, benchOpts{})
	netID := hexID("reboot")
	ep := hexID("reboot-ep")
	b.netWithEndpoint(t, netID, ep, 81)
	src := joinedLink(t, ep, b.ok(t, "Join", wiretest.Join(netID, ep)))

	b.stop(t)
	for _, l := range b.mvsLinks(t) {
		if err := b.lab.Handle().Delete(l.Name); err != nil {
			t.Fatal(err)
		}
	}
	b.start(t)

	if s := b.d.Snapshot(); len(s.Networks) != 1 || len(s.Endpoints) != 1 {
		t.Fatalf("after the reboot the driver holds %+v, want the network and its endpoint", s)
	}
	if got := joinedLink(t, ep, b.ok(t, "Join", wiretest.Join(netID, ep))); got != src {
		t.Errorf("Join after reboot names %s, before %s", got, src)
	}
	if l := b.getLink(t, src); l.MAC.String() != "02:42:0a:51:00:02" {
		t.Errorf("re-created link has MAC %s, want 02:42:0a:51:00:02", l.MAC)
	}
	b.ok(t, "Leave", wiretest.Leave(netID, ep))
	b.ok(t, "DeleteEndpoint", wiretest.DeleteEndpoint(netID, ep))
	b.ok(t, "DeleteNetwork", wiretest.DeleteNetwork(netID))
	b.wantNoMvsLinks(t)
}

// TestRestartJoinOverLeftoverLink: the daemon died after Join created the
// link (the engine never got the answer and retries). The same endpoint's
// Join must succeed over the leftover.
func TestRestartJoinOverLeftoverLink(t *testing.T) {
	t.Parallel()
	b := newBench(t, benchOpts{})
	netID := hexID("leftover")
	ep := hexID("leftover-ep")
	b.netWithEndpoint(t, netID, ep, 82)
	src := joinedLink(t, ep, b.ok(t, "Join", wiretest.Join(netID, ep)))
	b.restart(t)
	if !b.hasLink(t, src) {
		t.Fatalf("restore deleted %s, which belongs to a live endpoint", src)
	}
	joinedLink(t, ep, b.ok(t, "Join", wiretest.Join(netID, ep)))
	if !b.hasLink(t, src) {
		t.Fatalf("second Join left no %s", src)
	}
}

// TestRestartRemovesStaleLinks: at start the driver removes links carrying
// its mark that belong to no endpoint, and its links left in the retire
// group, and nothing else: a user's link is left alone whatever its name or
// group.
func TestRestartRemovesStaleLinks(t *testing.T) {
	t.Parallel()
	// A long reap delay: only Flush, or Close, may delete.
	b := newBench(t, benchOpts{noStart: true, reapDelay: time.Hour})
	h := b.lab.Handle()
	add := func(name, mark string) {
		t.Helper()
		if err := h.AddMacvlan(link.MacvlanSpec{Name: name, Parent: "eth0", Mark: mark}); err != nil {
			t.Fatal(err)
		}
	}
	const (
		stale    = "mvs0123456789ab" // ours, no endpoint
		retired  = "mvsabcdef012345" // ours, retired before a crash
		user     = "usermv0"         // the user's own macvlan
		userGrp  = "usermv1"         // the user's, in our group by bad luck
		userMvs  = "mvsuplink-lan-1" // the user's, 15 bytes starting mvs
		userHex  = "mvs0123456789ac" // the user's, exactly our name shape
		userHexG = "mvs0123456789ad" // the same, and in our group
	)
	add(stale, link.EndpointMark(hexID("stale")))
	add(retired, link.EndpointMark(hexID("retired")))
	for _, n := range []string{user, userGrp, userMvs, userHex, userHexG} {
		add(n, "the user's "+n)
	}
	for _, n := range []string{retired, userGrp, userHexG} {
		if err := h.Retire(n, driver.RetireGroup); err != nil {
			t.Fatal(err)
		}
	}
	eth0 := b.snapshotLink(t, "eth0")

	b.start(t)
	b.d.Flush()
	for _, n := range []string{stale, retired} {
		if b.hasLink(t, n) {
			t.Errorf("stale link %s survived the start", n)
		}
	}
	for _, n := range []string{user, userGrp, userMvs, userHex, userHexG, "eth0", "eth0p"} {
		if !b.hasLink(t, n) {
			t.Errorf("link %s, not the driver's, was deleted", n)
		}
	}
	b.wantUntouched(t, "eth0", eth0)
}

// TestRestartDropsEndpointsOfMissingNetworks: endpoint records whose network
// is gone from the state file are dropped on load, and stay dropped.
func TestRestartDropsEndpointsOfMissingNetworks(t *testing.T) {
	t.Parallel()
	b := newBench(t, benchOpts{noStart: true})
	st, err := store.Open(b.dir)
	if err != nil {
		t.Fatal(err)
	}
	netID := hexID("kept")
	n := &model.Network{ID: netID, ParentSpec: "eth0", Parent: "eth0", Mode: link.ModeBridge,
		IPv4: []model.Pool{{Subnet: netip.MustParsePrefix("10.83.0.0/24"), Gateway: netip.MustParsePrefix("10.83.0.1/24")}}, Created: time.Now().UTC()}
	mac := net.HardwareAddr{0x02, 0x42, 0x0a, 0x53, 0, 2}
	kept := &model.Endpoint{ID: hexID("kept-ep"), NetworkID: netID, IPv4: netip.MustParsePrefix("10.83.0.2/24"), MAC: mac, Link: hostLink(hexID("kept-ep")), Created: time.Now().UTC()}
	eps := []*model.Endpoint{kept}
	for _, seed := range []string{"orphan-1", "orphan-2"} {
		id := hexID(seed)
		eps = append(eps, &model.Endpoint{ID: id, NetworkID: hexID("gone"), IPv4: netip.MustParsePrefix("10.84.0.2/24"), MAC: mac, Link: hostLink(id), Created: time.Now().UTC()})
	}
	if err := st.Apply(store.Change{PutNetworks: []*model.Network{n}, PutEndpoints: eps}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	b.start(t)
	if s := b.d.Snapshot(); len(s.Networks) != 1 || len(s.Endpoints) != 1 || s.Endpoints[0].ID != kept.ID {
		t.Errorf("after load the driver holds %+v, want one network and only %s", s, kept.ID[:12])
	}
	// The kept endpoint works.
	joinedLink(t, kept.ID, b.ok(t, "Join", wiretest.Join(netID, kept.ID)))

	b.stop(t)
	st, err = store.Open(b.dir)
	if err != nil {
		t.Fatal(err)
	}
	_, saved, _, err := st.Load()
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(saved) != 1 || saved[0].ID != kept.ID {
		t.Errorf("state file still holds endpoints %+v, want only %s", saved, kept.ID[:12])
	}
}

// TestUserLinksOfOurShapeAreParentsAndSurvive: links a user made with names
// the driver's old rules confused (its own "mvs" prefix, its exact name
// shape) are accepted as parents, carry containers, and survive every delete
// path: DeleteEndpoint and the reaper, DeleteNetwork, and the start-up sweep.
func TestUserLinksOfOurShapeAreParentsAndSurvive(t *testing.T) {
	t.Parallel()
	const (
		uplink = "mvsuplink"      // a user's uplink starting with mvs
		shaped = "mvs0123456789a" // 14 bytes; its veth peer is mvs0123456789ap
	)
	b := newBench(t, benchOpts{parents: []string{"eth0", uplink, shaped}})
	before := map[string]untouched{}
	for _, n := range []string{uplink, uplink + "p", shaped, shaped + "p"} {
		before[n] = b.snapshotLink(t, n)
	}
	for i, parent := range []string{uplink, shaped} {
		netID := hexID("user-parent-" + parent)
		ep := hexID("user-parent-ep-" + parent)
		b.ok(t, "CreateNetwork", wiretest.CreateNetwork(netID, map[string]string{"parent": parent}, wiretest.Pool(fmt.Sprintf("10.87.%d.0/24", i), fmt.Sprintf("10.87.%d.1/24", i))))
		b.ok(t, "CreateEndpoint", wiretest.CreateEndpoint(netID, ep, fmt.Sprintf("10.87.%d.2/24", i), "", ""))
		src := joinedLink(t, ep, b.ok(t, "Join", wiretest.Join(netID, ep)))
		if l := b.getLink(t, src); l.ParentIndex != before[parent].Index {
			t.Errorf("%s hangs on link %d, want the user's %s (%d)", src, l.ParentIndex, parent, before[parent].Index)
		}
		b.ok(t, "Leave", wiretest.Leave(netID, ep))
		b.ok(t, "DeleteEndpoint", wiretest.DeleteEndpoint(netID, ep))
		b.ok(t, "DeleteNetwork", wiretest.DeleteNetwork(netID))
	}
	b.wantNoMvsLinks(t)
	b.restart(t)
	b.d.Flush()
	for n, u := range before {
		b.wantUntouched(t, n, u)
	}
}
