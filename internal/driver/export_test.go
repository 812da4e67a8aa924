package driver

import (
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
)

// Test hooks. They live here, not in the package: tests read state through
// the same Status that GET /status serves, and flush the reaper on demand.

// Snapshot is Status without the drift check (which asks the kernel and,
// when it finds something, looks again 200 ms later).
func (d *Driver) Snapshot() Status { return d.view() }

// SetDriftGrace shortens how long after Join a down link is not drift.
func (d *Driver) SetDriftGrace(g time.Duration) { d.driftGrace = g }

// Flush deletes retired host links now instead of at the reaper's next
// batch, so a test can check that nothing is left behind.
func (d *Driver) Flush() { d.reaper.Reap() }

var linkName = link.EndpointLinkName

// RetireGroup is the reaper's link group.
const RetireGroup = link.RetireGroup

// linkSpecOf is the host link Join makes for endpoint id.
func linkSpecOf(d *Driver, id string) link.MacvlanSpec {
	d.st.mu.Lock()
	defer d.st.mu.Unlock()
	e := d.st.endpoints[id]
	n := d.st.networks[e.NetworkID]
	return link.MacvlanSpec{Name: e.Link, Parent: n.Parent, Mode: n.Mode, MTU: n.MTU, MAC: e.MAC, Mark: link.EndpointMark(e.ID)}
}

// ObserveCommits has the driver tell observe how long each state commit
// (one bbolt transaction, its fdatasyncs included) took; commits run under
// the state lock, so observe is never called twice at once.
func (d *Driver) ObserveCommits(observe func(took time.Duration)) {
	d.st.mu.Lock()
	defer d.st.mu.Unlock()
	d.st.observe = observe
}
