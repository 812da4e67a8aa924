package driver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol"
	"github.com/macvlan-swarm/macvlan-swarm/internal/store"
)

// containerPrefix is the name prefix the engine gives the link inside the
// container (eth0, eth1, ...).
const containerPrefix = "eth"

// Join creates the endpoint's macvlan link in the host namespace, on this
// node's parent, with the network's mode and MTU and the endpoint's MAC. The
// engine moves it into the container and configures addresses and routes;
// the driver never enters the container's namespace.
func (d *Driver) Join(req *protocol.JoinRequest) (*protocol.JoinResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.endpoints[req.EndpointID]
	if !ok {
		return nil, fmt.Errorf("endpoint %s is not known to macvlan-swarm on this node: remove the container and start it again", short(req.EndpointID))
	}
	n, ok := d.networks[e.NetworkID]
	if !ok {
		return nil, d.unknownNetwork(e.NetworkID)
	}
	if err := d.addLink(n, e); err != nil {
		return nil, err
	}
	resp := &protocol.JoinResponse{
		InterfaceName:         &protocol.InterfaceName{SrcName: e.Link, DstPrefix: containerPrefix},
		DisableGatewayService: true,
	}
	if !n.Internal {
		resp.Gateway = gatewayFor(n.IPv4, e.IPv4)
		resp.GatewayIPv6 = gatewayFor(n.IPv6, e.IPv6)
	}
	d.log.Info("endpoint joined", "net", n.ID, "ep", e.ID, "link", e.Link, "parent", n.Parent, "sandbox", req.SandboxKey)
	return resp, nil
}

// addLink creates the host link, recovering from two leftovers: a link of
// the same name from an earlier life of the endpoint (deleted, then the
// create retried), and a missing driver-created parent (re-created).
func (d *Driver) addLink(n *store.Network, e *store.Endpoint) error {
	mac, err := net.ParseMAC(e.MAC)
	if err != nil {
		return fmt.Errorf("saved MAC %q of endpoint %s is damaged: %w", e.MAC, short(e.ID), err)
	}
	spec := link.MacvlanSpec{Name: e.Link, Parent: n.Parent, Mode: n.Mode, MTU: n.MTU, MAC: mac}
	err = d.links.AddMacvlan(spec)
	if err == nil {
		return nil
	}
	if errors.Is(err, link.ErrNotFound) {
		if !n.ParentCreated {
			return fmt.Errorf("parent %q of this network is gone from this node: bring it back, or remove and re-create the network with another parent", n.Parent)
		}
		if cerr := d.createParent(n.Parent); cerr != nil {
			return cerr
		}
	} else if _, gerr := d.links.Get(e.Link); gerr == nil {
		d.log.Info("deleting stale host link before re-creating it", "ep", e.ID, "link", e.Link)
		if derr := d.links.Delete(e.Link); derr != nil {
			return fmt.Errorf("delete stale host link %q: %w", e.Link, derr)
		}
	} else {
		return fmt.Errorf("create container link on parent %q: %w", n.Parent, err)
	}
	if err := d.links.AddMacvlan(spec); err != nil {
		return fmt.Errorf("create container link on parent %q: %w", n.Parent, err)
	}
	return nil
}

// gatewayFor returns, as a bare address, the gateway of the pool holding
// addr, or of the first pool with a gateway; nothing when the endpoint has
// no address of that family.
func gatewayFor(pools []store.Pool, addr string) string {
	a, err := netip.ParsePrefix(addr)
	if err != nil {
		return ""
	}
	first := ""
	for _, p := range pools {
		gw, err := netip.ParsePrefix(p.Gateway)
		if err != nil {
			continue
		}
		if first == "" {
			first = gw.Addr().String()
		}
		if pfx, err := netip.ParsePrefix(p.Pool); err == nil && pfx.Contains(a.Addr()) {
			return gw.Addr().String()
		}
	}
	return first
}

// Leave has nothing to undo: the engine moves the link back to the host
// namespace and DeleteEndpoint removes it.
func (d *Driver) Leave(req *protocol.LeaveRequest) error {
	d.log.Debug("endpoint left", "net", req.NetworkID, "ep", req.EndpointID)
	return nil
}
