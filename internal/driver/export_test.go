package driver

import "github.com/macvlan-swarm/macvlan-swarm/internal/link"

// Test hooks. They live here, not in the package: tests read state through
// the same Status that GET /status serves, and flush the reaper on demand.

// Snapshot is Status, typed.
func (d *Driver) Snapshot() Status { return d.Status().(Status) }

// Flush deletes retired host links now instead of at the reaper's next
// batch, so a test can check that nothing is left behind.
func (d *Driver) Flush() { d.reaper.Reap() }

// Sweep runs one reclaim sweep now and returns how many endpoints it
// reclaimed.
var _ = (*Driver).sweep

var linkName = link.EndpointLinkName

// RetireGroup is the reaper's link group.
const RetireGroup = link.RetireGroup
