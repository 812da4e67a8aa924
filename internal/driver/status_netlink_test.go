package driver_test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/driver"
	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol/wiretest"
)

// TestStatusDriftOnRealNetlink changes the kernel behind the driver's back
// and checks that Status reports each change as drift, and stops reporting
// it once the kernel agrees with the saved state again: a container's link
// deleted inside the container and made again, a marked host link no record
// accounts for, and a parent that went away and came back. A user's link
// shaped like ours but without the mark is never drift.
func TestStatusDriftOnRealNetlink(t *testing.T) {
	t.Parallel()
	// The reaper waits: a deleted endpoint's link stays queued until the end.
	b := newBench(t, benchOpts{parents: []string{"eth0", "eth1"}, reapDelay: time.Hour})
	b.d.SetDriftGrace(0)
	netID, ep := hexID("drift-net"), hexID("drift-ep")
	b.netWithEndpoint(t, netID, ep, 87)
	b.ok(t, "CreateNetwork", wiretest.CreateNetwork(hexID("drift-net1"), map[string]string{"parent": "eth1"}, wiretest.Pool("10.88.0.0/24", "10.88.0.1/24")))
	sandbox := filepath.Join(t.TempDir(), "sandbox")
	if err := os.WriteFile(sandbox, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	req := wiretest.Join(netID, ep)
	req.SandboxKey = sandbox
	src := joinedLink(t, ep, b.ok(t, "Join", req))
	ctr := b.lab.NewPeerNamespace(t)
	b.lab.MoveTo(t, src, ctr)
	ctr.SetUp(t, src)

	want := func(step string, kinds ...string) {
		t.Helper()
		s := b.d.Status()
		if len(s.DriftErrors) > 0 {
			t.Fatalf("%s: drift errors %v", step, s.DriftErrors)
		}
		var got []string
		for _, d := range s.Drift {
			got = append(got, d.Kind+" "+d.Link)
			if d.Detail == "" {
				t.Errorf("%s: drift %+v says nothing", step, d)
			}
		}
		if len(got) != len(kinds) {
			t.Fatalf("%s: drift %v, want %v", step, got, kinds)
		}
		for i := range kinds {
			if got[i] != kinds[i] {
				t.Fatalf("%s: drift %v, want %v", step, got, kinds)
			}
		}
	}
	want("all in place")

	// The container's link is deleted inside the container.
	if err := ctr.Handle().Delete(src); err != nil {
		t.Fatal(err)
	}
	want("link deleted in the container", driver.DriftLinkMissing+" "+src)
	// ... and put back: the same MAC on the same parent, up in the container.
	var mac net.HardwareAddr
	for _, e := range b.d.Snapshot().Endpoints {
		if e.ID == ep {
			mac, _ = net.ParseMAC(e.MAC)
		}
	}
	if err := b.lab.Handle().AddMacvlan(link.MacvlanSpec{Name: src, Parent: "eth0", Mode: link.ModeBridge, MAC: mac, Mark: link.EndpointMark(ep)}); err != nil {
		t.Fatal(err)
	}
	b.lab.MoveTo(t, src, ctr)
	ctr.SetUp(t, src)
	want("link put back")

	// A marked host link that no record accounts for, and a user's link of
	// our shape without the mark.
	ghost := hostLink(hexID("drift-ghost"))
	if err := b.lab.Handle().AddMacvlan(link.MacvlanSpec{Name: ghost, Parent: "eth0", Mode: link.ModeBridge, Mark: link.EndpointMark(hexID("drift-ghost"))}); err != nil {
		t.Fatal(err)
	}
	users := hostLink(hexID("drift-user"))
	if out, err := exec.Command("ip", "-n", b.lab.Name(), "link", "add", users, "link", "eth0", "type", "macvlan", "mode", "bridge").CombinedOutput(); err != nil {
		t.Fatalf("ip link add %s: %v\n%s", users, err, out)
	}
	want("orphan link", driver.DriftOrphanLink+" "+ghost)
	if err := b.lab.Handle().Delete(ghost); err != nil {
		t.Fatal(err)
	}
	want("orphan link deleted")

	// A host_access shim and a private lower link no network accounts for.
	for _, l := range []struct{ name, alias string }{
		{"mvh0123456789ab", link.ShimMark("eth0")},
		{"mvi0123456789ab", link.PrivateParentMark(hexID("drift-gone-net"))},
	} {
		for _, args := range [][]string{
			{"link", "add", l.name, "link", "eth0", "type", "macvlan", "mode", "bridge"},
			{"link", "set", l.name, "alias", l.alias},
		} {
			if out, err := exec.Command("ip", append([]string{"-n", b.lab.Name()}, args...)...).CombinedOutput(); err != nil {
				t.Fatalf("ip %v: %v\n%s", args, err, out)
			}
		}
	}
	want("orphan shim and private link", driver.DriftOrphanLink+" mvh0123456789ab", driver.DriftOrphanLink+" mvi0123456789ab")
	for _, name := range []string{"mvh0123456789ab", "mvi0123456789ab"} {
		if err := b.lab.Handle().Delete(name); err != nil {
			t.Fatal(err)
		}
	}
	want("orphans deleted")

	// The second network's parent goes away and comes back.
	if err := b.lab.Handle().Delete("eth1"); err != nil {
		t.Fatal(err)
	}
	want("parent gone", driver.DriftParentMissing+" eth1")
	b.lab.Veth(t, "eth1", 0)
	want("parent back")

	// A deleted endpoint's link waiting for the reaper is not drift, and
	// the status names it.
	b.ok(t, "Leave", wiretest.Leave(netID, ep))
	b.lab.MoveBack(t, ctr, src)
	b.ok(t, "DeleteEndpoint", wiretest.DeleteEndpoint(netID, ep))
	if s := b.d.Snapshot(); s.ReaperPending != 1 || len(s.ReaperLinks) != 1 || s.ReaperLinks[0] != src {
		t.Errorf("reaper holds %d links, named %v; want %s", s.ReaperPending, s.ReaperLinks, src)
	}
	want("endpoint deleted")
}
