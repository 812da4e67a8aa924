package driver_test

import (
	"testing"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol/wiretest"
)

// A Join that comes while the reaper still holds a link retired on the same
// parent takes that link instead of creating one: same kernel link, the new
// endpoint's name, MAC and mark. A queued link the user has replaced by one
// of their own is neither reused nor deleted.
func TestJoinReusesARetiredLink(t *testing.T) {
	pl := newBench(t, benchOpts{reapDelay: time.Hour}) // batches only on Flush
	netID := swarmID("reuse")
	ep1, ep2, ep3, ep4 := hexID("reuse-1"), hexID("reuse-2"), hexID("reuse-3"), hexID("reuse-4")
	pl.netWithEndpoint(t, netID, ep1, 77)
	first := pl.getLink(t, joinedLink(t, ep1, pl.ok(t, "Join", wiretest.Join(netID, ep1))))
	pl.ok(t, "Leave", wiretest.Leave(netID, ep1))
	pl.ok(t, "DeleteEndpoint", wiretest.DeleteEndpoint(netID, ep1))

	pl.ok(t, "CreateEndpoint", wiretest.CreateEndpoint(netID, ep2, "10.77.0.3/24", "", ""))
	got := pl.getLink(t, joinedLink(t, ep2, pl.ok(t, "Join", wiretest.Join(netID, ep2))))
	if got.Index != first.Index || got.Alias != link.EndpointMark(ep2) || got.MAC.String() != "02:42:0a:4d:00:03" || got.Up || got.Group != 0 {
		t.Errorf("ep2's link = %+v; want ep1's link (index %d) re-armed: mark of ep2, MAC 02:42:0a:4d:00:03, down, group 0", got, first.Index)
	}
	if pl.hasLink(t, hostLink(ep1)) {
		t.Errorf("ep1's link name %s still exists", hostLink(ep1))
	}
	if n := pl.d.Snapshot().ReaperPending; n != 0 {
		t.Errorf("reaper pending = %d after the reuse, want 0", n)
	}

	// ep3's link is retired, then replaced by the user's own link of that
	// name before ep4 joins.
	pl.ok(t, "CreateEndpoint", wiretest.CreateEndpoint(netID, ep3, "10.77.0.4/24", "", ""))
	l3 := joinedLink(t, ep3, pl.ok(t, "Join", wiretest.Join(netID, ep3)))
	pl.ok(t, "Leave", wiretest.Leave(netID, ep3))
	pl.ok(t, "DeleteEndpoint", wiretest.DeleteEndpoint(netID, ep3))
	if err := pl.lab.Handle().Delete(l3); err != nil {
		t.Fatal(err)
	}
	if err := pl.lab.Handle().AddMacvlan(link.MacvlanSpec{Name: l3, Parent: "eth0", Mark: "the user's"}); err != nil {
		t.Fatal(err)
	}
	user := pl.getLink(t, l3)
	pl.ok(t, "CreateEndpoint", wiretest.CreateEndpoint(netID, ep4, "10.77.0.5/24", "", ""))
	l4 := pl.getLink(t, joinedLink(t, ep4, pl.ok(t, "Join", wiretest.Join(netID, ep4))))
	if l4.Index == user.Index || l4.Alias != link.EndpointMark(ep4) {
		t.Errorf("ep4's link = %+v; want a new link of its own, not the user's (index %d)", l4, user.Index)
	}
	pl.d.Flush()
	if after := pl.getLink(t, l3); after.Index != user.Index || after.Alias != "the user's" {
		t.Errorf("the user's link %s = %+v, want it untouched", l3, after)
	}
	for _, ep := range []string{ep2, ep4} {
		pl.ok(t, "Leave", wiretest.Leave(netID, ep))
		pl.ok(t, "DeleteEndpoint", wiretest.DeleteEndpoint(netID, ep))
	}
	pl.wantNoMvsLinks(t)
	if !pl.hasLink(t, l3) {
		t.Errorf("the user's link %s was deleted", l3)
	}
}
