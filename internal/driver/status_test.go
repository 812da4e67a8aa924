package driver

import (
	"strings"
	"testing"
)

// Drift on a VLAN parent the driver created, which this machine's kernel
// cannot make (so the fake link layer stands in): the parent deleted behind
// the driver's back is parent_missing and says the driver makes it again;
// a container link set down on it is link_missing; both go once the kernel
// agrees again.
func TestDriftOnACreatedVLANParent(t *testing.T) {
	f := newFakeLinks("eth0")
	d := fakeDriver(t, f, t.TempDir(), nil)
	d.SetDriftGrace(0)
	mustOK(t, d.CreateNetwork(createNet(netA, "eth0.20")))
	addEndpoint(t, d, ep1, "10.20.0.5/24")
	join(t, d, ep1)
	l := linkName(ep1)
	f.setUp(l, true) // the engine brings it up in the container
	kinds := func() []string {
		t.Helper()
		var out []string
		for _, x := range d.Status().Drift {
			out = append(out, x.Kind+" "+x.Link)
		}
		return out
	}
	if got := kinds(); len(got) != 0 {
		t.Fatalf("drift with everything in place: %v", got)
	}
	f.setUp(l, false)
	if got := kinds(); len(got) != 1 || got[0] != DriftLinkMissing+" "+l {
		t.Fatalf("drift with the container link down: %v", got)
	}
	f.setUp(l, true)
	if got := kinds(); len(got) != 0 {
		t.Fatalf("drift once the link is up again: %v", got)
	}
	// The parent goes, and the container link with it, as in the kernel:
	// one finding, the parent (its endpoints are not reported again).
	mustOK(t, f.Delete("eth0.20"))
	s := d.Status()
	if len(s.Drift) != 1 || s.Drift[0].Kind != DriftParentMissing || s.Drift[0].Link != "eth0.20" {
		t.Fatalf("drift with the VLAN parent gone: %+v", s.Drift)
	}
	if d := s.Drift[0].Detail; !strings.Contains(d, "created") || !strings.Contains(d, "next Join") {
		t.Errorf("parent_missing of a created parent says %q, want that the next Join makes it again", d)
	}
}
