package driver_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/driver"
	"github.com/macvlan-swarm/macvlan-swarm/internal/link/linktest"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol/wiretest"
)

// TestReclaimOnRealNetlink plays three containers on real netlink, the
// engine's part played by the test: one keeps running, one dies without the
// engine telling the driver (its namespace is destroyed and its sandbox file
// removed), one is disconnected but its DeleteEndpoint is lost (Leave, link
// back in the host namespace). The sweep reclaims the last two, records and
// links, and leaves the running one alone.
func TestReclaimOnRealNetlink(t *testing.T) {
	t.Parallel()
	// The grace must cover the test's own step between Join and moving the
	// link, as the production 30 s cover the engine's.
	b := newBench(t, benchOpts{reclaim: driver.ReclaimConfig{Interval: 50 * time.Millisecond, Grace: 2 * time.Second}})
	netID := hexID("reclaim")
	b.ok(t, "CreateNetwork", wiretest.CreateNetwork(netID, onEth0(), wiretest.Pool("10.86.0.0/24", "10.86.0.1/24")))
	sandboxes := filepath.Join(t.TempDir(), "netns")
	if err := os.Mkdir(sandboxes, 0o755); err != nil {
		t.Fatal(err)
	}

	type ctr struct {
		ep, src, sandbox string
	}
	runningNS, deadNS, leftNS := b.lab.NewPeerNamespace(t), b.lab.NewPeerNamespace(t), b.lab.NewPeerNamespace(t)
	// start joins a container and moves its link in, as the engine does.
	start := func(name string, octet int, ns *linktest.Lab) ctr {
		c := ctr{ep: hexID("reclaim-" + name), sandbox: filepath.Join(sandboxes, name)}
		if err := os.WriteFile(c.sandbox, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		b.ok(t, "CreateEndpoint", wiretest.CreateEndpoint(netID, c.ep, fmt.Sprintf("10.86.0.%d/24", octet), "", ""))
		req := wiretest.Join(netID, c.ep)
		req.SandboxKey = c.sandbox
		c.src = joinedLink(t, c.ep, b.ok(t, "Join", req))
		b.lab.MoveTo(t, c.src, ns)
		return c
	}
	running, dead, left := start("running", 2, runningNS), start("dead", 3, deadNS), start("left", 4, leftNS)

	// dead: the container's namespace goes (its macvlan with it) and the
	// engine removes the sandbox file; no Leave, no DeleteEndpoint.
	deadNS.Destroy(t)
	if err := os.Remove(dead.sandbox); err != nil {
		t.Fatal(err)
	}
	// left: Leave, the link back in the host, and DeleteEndpoint lost.
	b.lab.MoveBack(t, leftNS, left.src)
	b.ok(t, "Leave", wiretest.Leave(netID, left.ep))

	deadline := time.Now().Add(10 * time.Second)
	for {
		var eps []string
		for _, e := range b.d.Snapshot().Endpoints {
			eps = append(eps, e.ID)
		}
		if slices.Equal(eps, []string{running.ep}) && !b.hasLink(t, left.src) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s the driver holds %d endpoints %v (want only the running one, %s) and the left link exists: %v",
				len(eps), eps, running.ep[:12], b.hasLink(t, left.src))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := runningNS.Handle().Get(running.src); err != nil {
		t.Errorf("the running container's link is gone: %v", err)
	}
	// The running container's endpoint still works end to end.
	b.ok(t, "Leave", wiretest.Leave(netID, running.ep))
	b.lab.MoveBack(t, runningNS, running.src)
	wantEmpty(t, "DeleteEndpoint", b.ok(t, "DeleteEndpoint", wiretest.DeleteEndpoint(netID, running.ep)))
	b.wantNoMvsLinks(t)
}
