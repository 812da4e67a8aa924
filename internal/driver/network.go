package driver

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol"
	"github.com/macvlan-swarm/macvlan-swarm/internal/store"
)

// AllocateNetwork runs on the swarm leader only. What it returns replaces the
// options every node's CreateNetwork sees, so it echoes the user's options.
// It never refuses: the engine does not fail `docker network create` on an
// error here but silently leaves a broken network. Bad options are logged
// here and refused by CreateNetwork on each node, where users see the error
// in `docker service ps --no-trunc`. It keeps no state, so a new leader may
// call it again for every network.
func (d *Driver) AllocateNetwork(req *protocol.AllocateNetworkRequest) (*protocol.AllocateNetworkResponse, error) {
	opts := maps.Clone(req.Options)
	if opts == nil {
		opts = map[string]string{}
	}
	if _, err := parseOptions(opts); err != nil {
		d.log.Warn("network options will be refused on every node", "net", req.NetworkID, "err", err)
	} else if _, _, err := parsePools(req.IPv4Data, req.IPv6Data); err != nil {
		d.log.Warn("network pools will be refused on every node", "net", req.NetworkID, "err", err)
	}
	return &protocol.AllocateNetworkResponse{Options: opts}, nil
}

// FreeNetwork undoes AllocateNetwork, which kept nothing.
func (d *Driver) FreeNetwork(*protocol.FreeNetworkRequest) error { return nil }

// CreateNetwork checks the options and pools, resolves this node's parent
// (creating an 802.1q parent if asked), and saves the network. Everything is
// checked before anything changes.
func (d *Driver) CreateNetwork(req *protocol.CreateNetworkRequest) error {
	n, err := d.networkFromRequest(req)
	if err != nil {
		return err
	}

	d.mu.Lock()
	defer d.mu.Unlock()

	old, recreate := d.networks[n.ID]
	if recreate && sameNetwork(old, n) {
		return d.forgetEndpointsLocked(old)
	}

	p, err := d.resolveParent(n.ParentSpec)
	if err != nil {
		return err
	}
	if n.MTU > 0 && p.MTU > 0 && n.MTU > p.MTU {
		return fmt.Errorf("mtu %d is larger than parent %q's MTU %d: use at most %d, or raise the parent's MTU", n.MTU, p.Name, p.MTU, p.MTU)
	}
	if n.MTU > 0 && n.MTU < 1280 && len(n.IPv6) > 0 {
		return fmt.Errorf("mtu %d is too small for IPv6, which needs at least 1280", n.MTU)
	}
	for _, other := range d.parentUsers(p.Name, n.ID) {
		if other.Mode == ModePassthru {
			return fmt.Errorf("parent %q is taken by network %s in passthru mode, which uses the parent alone; choose another parent", p.Name, short(other.ID))
		}
		if n.Mode == ModePassthru {
			return fmt.Errorf("macvlan_mode passthru needs parent %q alone, but network %s uses it; choose another parent or mode", p.Name, short(other.ID))
		}
	}
	// The kernel step goes first, so that if it fails a network being
	// created again keeps its old settings; later failures undo it.
	if p.Create {
		if err := d.createParent(p.Name); err != nil {
			return err
		}
	}
	n.Parent, n.ParentCreated = p.Name, p.DriverOwned
	undo := func() {
		if p.Create {
			d.releaseParent(n)
		}
	}
	if recreate {
		// A swarm worker forgets its networks when its daemon dies and may
		// later get a fresh CreateNetwork for the same id with other
		// settings: the new ones were checked above, now replace the old.
		d.log.Info("network created again with other settings; replacing it", "net", n.ID)
		if err := d.deleteNetworkLocked(old, p.Name); err != nil {
			undo()
			return err
		}
	}
	if err := d.store.PutNetwork(*n); err != nil {
		undo()
		return fmt.Errorf("save network: %w", err)
	}
	d.networks[n.ID] = n
	d.log.Info("network created", "net", n.ID, "parent", n.Parent, "mode", n.Mode, "mtu", n.MTU, "internal", n.Internal)
	return nil
}

// networkFromRequest reads a CreateNetwork request without touching state.
func (d *Driver) networkFromRequest(req *protocol.CreateNetworkRequest) (*store.Network, error) {
	if req.NetworkID == "" {
		return nil, fmt.Errorf("request has no network id")
	}
	opts := genericOptions(req.Options)
	o, err := parseOptions(opts)
	if err != nil {
		return nil, err
	}
	v4, v6, err := parsePools(req.IPv4Data, req.IPv6Data)
	if err != nil {
		return nil, err
	}
	if !boolOption(req.Options, protocol.OptionEnableIPv6, false) {
		v6 = nil
	}
	if !boolOption(req.Options, protocol.OptionEnableIPv4, true) {
		v4 = nil
	}
	if len(v4)+len(v6) == 0 {
		return nil, fmt.Errorf("network has no address pool: give it a --subnet (macvlan-swarm needs the engine's IPAM to hand out addresses)")
	}
	return &store.Network{
		ID:         req.NetworkID,
		ParentSpec: o.ParentSpec,
		Mode:       o.Mode,
		MTU:        o.MTU,
		Internal:   boolOption(req.Options, protocol.OptionInternal, false),
		IPv4:       v4,
		IPv6:       v6,
		Options:    opts,
		Created:    time.Now().UTC(),
	}, nil
}

func sameNetwork(a, b *store.Network) bool {
	return a.ParentSpec == b.ParentSpec && a.Mode == b.Mode && a.MTU == b.MTU &&
		a.Internal == b.Internal && maps.Equal(a.Options, b.Options) &&
		slices.EqualFunc(a.IPv4, b.IPv4, samePool) && slices.EqualFunc(a.IPv6, b.IPv6, samePool)
}

func samePool(a, b store.Pool) bool {
	return a.Pool == b.Pool && a.Gateway == b.Gateway && maps.Equal(a.Aux, b.Aux)
}

// forgetEndpointsLocked handles a CreateNetwork for a network the driver
// still holds with the same settings. The engine keeps local networks across
// restarts and never sends CreateNetwork for them again; a swarm worker
// forgets its swarm networks when its daemon dies (swarm mode rules out
// live-restore, so its containers die too) and sends a fresh CreateNetwork
// with its next task, without a DeleteEndpoint for the dead ones. So any
// endpoint still recorded on the network belongs to a container that is
// gone: its record is dropped and its link, if still in the host namespace,
// retired. Left in place, such records would block a passthru network.
func (d *Driver) forgetEndpointsLocked(n *store.Network) error {
	stale := 0
	for id, e := range d.endpoints {
		if e.NetworkID != n.ID {
			continue
		}
		if err := d.store.DeleteEndpoint(id); err != nil {
			return fmt.Errorf("drop stale endpoint: %w", err)
		}
		delete(d.endpoints, id)
		d.retireLink(e.Link, n)
		stale++
	}
	d.log.Info("network created again with the same settings; dropped endpoints of containers that are gone", "net", n.ID, "endpoints", stale)
	return nil
}

// DeleteNetwork forgets a network, removes links of endpoints still recorded
// on it, and deletes its parent when this driver created it and no other
// network uses it. An unknown network is success: deletes are idempotent.
func (d *Driver) DeleteNetwork(req *protocol.DeleteNetworkRequest) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, ok := d.networks[req.NetworkID]
	if !ok {
		d.log.Debug("delete of unknown network", "net", req.NetworkID)
		return nil
	}
	return d.deleteNetworkLocked(n, "")
}

// deleteNetworkLocked removes a network, its endpoints' links and, unless it
// is keepParent (the replacement network's parent), its driver-made parent.
func (d *Driver) deleteNetworkLocked(n *store.Network, keepParent string) error {
	if err := d.store.DeleteNetwork(n.ID); err != nil {
		return fmt.Errorf("save network removal: %w", err)
	}
	for id, e := range d.endpoints {
		if e.NetworkID == n.ID {
			d.retireLink(e.Link, n)
			delete(d.endpoints, id)
		}
	}
	delete(d.networks, n.ID)
	if n.Parent != keepParent {
		d.releaseParent(n)
	}
	d.log.Info("network deleted", "net", n.ID, "parent", n.Parent)
	return nil
}
