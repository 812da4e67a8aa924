package link

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// UnicastAddresses returns the unicast addresses the link called name
// accepts besides its own MAC: its secondary unicast address list, which the
// kernel shows as the "self permanent" entries of `bridge fdb show dev
// name`. A macvlan link that is up puts its MAC on its lower link's list,
// in whatever namespace the macvlan lives, and takes it off when it goes
// down or away. So the parent's list tells, from the host namespace, whether
// a container's link is up, without entering the container.
func (h *Handle) UnicastAddresses(name string) ([]net.HardwareAddr, error) {
	l, err := h.byName(name)
	if err != nil {
		return nil, err
	}
	idx := l.Attrs().Index
	var neighs []netlink.Neigh
	for range dumpRetries {
		neighs, err = h.nl.NeighList(idx, unix.AF_BRIDGE)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list the address filter of %q: %w", name, err)
	}
	var out []net.HardwareAddr
	for _, n := range neighs {
		// The dump may hold other links' entries; keep this link's
		// unicast ones (multicast addresses have the group bit set).
		if n.LinkIndex != idx || len(n.HardwareAddr) != 6 || n.HardwareAddr[0]&1 != 0 {
			continue
		}
		out = append(out, n.HardwareAddr)
	}
	return out, nil
}
