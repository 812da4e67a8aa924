package driver

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
	"github.com/macvlan-swarm/macvlan-swarm/internal/model"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol"
)

// AllocateNetwork runs on the swarm leader only. What it returns replaces the
// options every node's CreateNetwork sees, so it echoes the user's options.
// It never refuses a bad option: the engine does not fail `docker network
// create` on an error here but silently leaves a broken network. Bad options
// are logged here and refused by CreateNetwork on each node, where users see
// the error in `docker service ps --no-trunc`. It keeps no state, so a new
// leader may call it again for every network. A request without a network id
// (an empty retry) is refused: there is nothing to echo.
func (d *Driver) AllocateNetwork(req *protocol.AllocateNetworkRequest) (*protocol.AllocateNetworkResponse, error) {
	if req.NetworkID == "" {
		return nil, missingID("AllocateNetwork", "a network id")
	}
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
	n, err := networkFromRequest(req)
	if err != nil {
		return err
	}

	d.st.mu.Lock()
	defer d.st.mu.Unlock()

	old, recreate := d.st.networks[n.ID]
	if recreate && sameNetwork(old, n) {
		return d.forgetEndpoints(old)
	}

	var p resolvedParent
	if n.PrivateParent {
		p, err = d.privateParent(n)
	} else {
		p, err = d.resolveParent(n.ParentSpec)
	}
	if err != nil {
		return err
	}
	if n.HostAccess {
		var have []netip.Prefix
		if !p.Create {
			if have, err = d.links.Addresses(p.Name); err != nil {
				return fmt.Errorf("host_access: read the addresses of parent %q: %w", p.Name, err)
			}
		}
		if n.HostAddrs, err = d.pickHostAddrs(n, p.Name, have); err != nil {
			return err
		}
	}
	if n.MTU > 0 && p.MTU > 0 && n.MTU > p.MTU && !n.PrivateParent {
		return fmt.Errorf("mtu %d is larger than parent %q's MTU %d: use at most %d, or raise the parent's MTU", n.MTU, p.Name, p.MTU, p.MTU)
	}
	if n.MTU > 0 && n.MTU < 1280 && len(n.IPv6) > 0 {
		return fmt.Errorf("mtu %d is too small for IPv6, which needs at least 1280", n.MTU)
	}
	for _, other := range d.st.parentUsers(p.Name, n.ID) {
		if other.Mode == link.ModePassthru {
			return fmt.Errorf("parent %q is taken by network %s in passthru mode, which uses the parent alone; choose another parent", p.Name, short(other.ID))
		}
		if n.Mode == link.ModePassthru {
			return fmt.Errorf("macvlan_mode passthru needs parent %q alone, but network %s uses it; choose another parent or mode", p.Name, short(other.ID))
		}
	}
	// The kernel step goes first, so that if it fails a network being
	// created again keeps its old settings; later failures undo it.
	n.Parent, n.ParentCreated = p.Name, p.DriverOwned && !n.PrivateParent
	if p.Create {
		create := func() error { return d.createParent(p.Name) }
		if n.PrivateParent {
			create = func() error { return d.createPrivateParent(n) }
		}
		if err := create(); err != nil {
			return err
		}
	}
	if n.HostAccess {
		if err := d.ensureShim(n.Parent, n.HostAddrs, false); err != nil {
			if p.Create {
				d.releaseParent(n)
			}
			return err
		}
	}
	var stale []*model.Endpoint
	if recreate {
		// A swarm worker forgets its networks when its daemon dies and may
		// later get a fresh CreateNetwork for the same id with other
		// settings: the new ones were checked above, now replace the old.
		d.log.Info("network created again with other settings; replacing it", "net", n.ID)
		stale = d.st.endpointsOf(old.ID)
	} else {
		old = nil
	}
	if err := d.st.addNetwork(n, old); err != nil {
		if n.HostAccess {
			d.syncShim(n.Parent)
		}
		if p.Create {
			d.releaseParent(n)
		}
		return err
	}
	for _, e := range stale {
		d.retireLink(e, old)
	}
	if old != nil && old.Parent != n.Parent {
		d.releaseParent(old)
	}
	if old != nil && old.HostAccess {
		d.syncShim(old.Parent)
	}
	d.log.Info("network created", "net", n.ID, "parent", n.Parent, "mode", n.Mode, "mtu", n.MTU, "internal", n.Internal, "host_access", n.HostAccess, "host_addrs", n.HostAddrs)
	return nil
}

// networkFromRequest reads a CreateNetwork request without touching state.
func networkFromRequest(req *protocol.CreateNetworkRequest) (*model.Network, error) {
	if req.NetworkID == "" {
		return nil, missingID("CreateNetwork", "a network id")
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
	internal := boolOption(req.Options, protocol.OptionInternal, false)
	if o.HostAccess && internal {
		return nil, fmt.Errorf("host_access is refused on an --internal network: its containers must not reach beyond their network, the node included; drop host_access or --internal")
	}
	return &model.Network{
		ID:            req.NetworkID,
		ParentSpec:    o.ParentSpec,
		PrivateParent: o.ParentSpec == "",
		Mode:          o.Mode,
		MTU:           o.MTU,
		// A network without a parent is internal: its private lower
		// link leads nowhere, so there is no gateway to give.
		Internal:   internal || o.ParentSpec == "",
		HostAccess: o.HostAccess,
		Announce:   o.Announce,
		IPv4:       v4,
		IPv6:       v6,
		Options:    opts,
		Created:    time.Now().UTC(),
	}, nil
}

func sameNetwork(a, b *model.Network) bool {
	return a.ParentSpec == b.ParentSpec && a.Mode == b.Mode && a.MTU == b.MTU &&
		a.Internal == b.Internal && maps.Equal(a.Options, b.Options) &&
		slices.EqualFunc(a.IPv4, b.IPv4, samePool) && slices.EqualFunc(a.IPv6, b.IPv6, samePool)
}

func samePool(a, b model.Pool) bool {
	return a.Subnet == b.Subnet && a.Gateway == b.Gateway && maps.Equal(a.Aux, b.Aux)
}

// forgetEndpoints handles a CreateNetwork for a network the driver still
// holds with the same settings. The engine keeps local networks across
// restarts and never sends CreateNetwork for them again; a swarm worker
// forgets its swarm networks when its daemon dies (swarm mode rules out
// live-restore, so its containers die too) and sends a fresh CreateNetwork
// with its next task, without a DeleteEndpoint for the dead ones. So any
// endpoint still recorded on the network belongs to a container that is
// gone: its record is dropped and its link, if still in the host namespace,
// retired. Left in place, such records would block a passthru network.
func (d *Driver) forgetEndpoints(n *model.Network) error {
	stale := d.st.endpointsOf(n.ID)
	if err := d.st.dropEndpoints(stale); err != nil {
		return err
	}
	for _, e := range stale {
		d.retireLink(e, n)
	}
	d.log.Info("network created again with the same settings; dropped endpoints of containers that are gone", "net", n.ID, "endpoints", len(stale))
	return nil
}

// DeleteNetwork forgets a network, removes links of endpoints still recorded
// on it, and deletes its parent when this driver created it and no other
// network uses it. An unknown network is success: deletes are idempotent.
// A request without a network id (an empty retry) is refused.
func (d *Driver) DeleteNetwork(req *protocol.DeleteNetworkRequest) error {
	if req.NetworkID == "" {
		return missingID("DeleteNetwork", "a network id")
	}
	d.st.mu.Lock()
	defer d.st.mu.Unlock()
	n, ok := d.st.networks[req.NetworkID]
	if !ok {
		d.log.Debug("delete of unknown network", "net", req.NetworkID)
		return nil
	}
	eps := d.st.endpointsOf(n.ID)
	if err := d.st.removeNetwork(n); err != nil {
		return err
	}
	for _, e := range eps {
		d.retireLink(e, n)
	}
	if n.HostAccess {
		d.syncShim(n.Parent)
	}
	d.releaseParent(n)
	d.log.Info("network deleted", "net", n.ID, "parent", n.Parent)
	return nil
}
