package driver

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
	"github.com/macvlan-swarm/macvlan-swarm/internal/model"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol"
)

// containerPrefix is the name prefix the engine gives the link inside the
// container (eth0, eth1, ...).
const containerPrefix = "eth"

// Join creates the endpoint's macvlan link in the host namespace, on this
// node's parent, with the network's mode and MTU and the endpoint's MAC, and
// records which sandbox it joined (the signal reclaim.go watches). The engine
// moves the link into the container and configures addresses and routes; the
// driver never enters the container's namespace.
func (d *Driver) Join(req *protocol.JoinRequest) (*protocol.JoinResponse, error) {
	if req.EndpointID == "" {
		return nil, missingID("Join", "an endpoint id")
	}
	d.st.mu.Lock()
	e, ok := d.st.endpoints[req.EndpointID]
	var n *model.Network
	if ok {
		n = d.st.networks[e.NetworkID]
	}
	d.st.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("endpoint %s is not known to macvlan-swarm on %s: remove the container and start it again", short(req.EndpointID), d.onNode())
	}
	if n == nil {
		return nil, d.unknownNetwork(e.NetworkID)
	}
	if err := d.checkAddresses(n, e); err != nil {
		return nil, err
	}
	// The kernel work runs outside the state lock (it can wait on the
	// kernel's RTNL lock while the engine tears namespaces down); the
	// engine never sends two requests for one endpoint at once, and the
	// record is checked again before it is updated.
	if err := d.addLink(n, e); err != nil {
		return nil, err
	}
	if err := d.addHostRoutes(n, e); err != nil {
		d.retireLink(e, n)
		return nil, err
	}
	joined := *e
	joined.Sandbox = model.Sandbox{Key: req.SandboxKey, File: d.reclaim.sandboxFile(req.SandboxKey), Joined: time.Now().UTC()}

	d.st.mu.Lock()
	if d.st.endpoints[e.ID] != e {
		d.st.mu.Unlock()
		d.retireLink(e, n)
		return nil, fmt.Errorf("endpoint %s was deleted or changed while it joined; start the container again", short(e.ID))
	}
	err := d.st.putEndpoint(&joined)
	d.st.mu.Unlock()
	if err != nil {
		d.retireLink(e, n)
		return nil, err
	}
	d.reclaim.forget(e.ID)
	resp := &protocol.JoinResponse{
		InterfaceName:         &protocol.InterfaceName{SrcName: e.Link, DstPrefix: containerPrefix},
		DisableGatewayService: true,
	}
	if e.IfName != "" {
		resp.InterfaceName.DstPrefix, resp.InterfaceName.DstName = ifNamePrefix(e.IfName), e.IfName
	}
	if !n.Internal {
		resp.Gateway = gatewayFor(n.IPv4, joined.IPv4)
		resp.GatewayIPv6 = gatewayFor(n.IPv6, joined.IPv6)
	}
	d.log.Info("endpoint joined", "net", n.ID, "ep", e.ID, "link", e.Link, "parent", n.Parent, "sandbox", req.SandboxKey, "sandbox_visible", !joined.Sandbox.File.IsZero())
	d.announceJoin(n, &joined)
	return resp, nil
}

// addLink creates the host link, recovering from two leftovers: a link of
// this endpoint from an earlier Join (deleted, then the create retried), and
// a missing driver-created parent (re-created).
func (d *Driver) addLink(n *model.Network, e *model.Endpoint) error {
	spec := link.MacvlanSpec{Name: e.Link, Parent: n.Parent, Mode: n.Mode, MTU: n.MTU, MAC: e.MAC, Mark: link.EndpointMark(e.ID)}
	// A link of this name and mark may still wait in the reaper's queue
	// (this endpoint id deleted and created again): take it off, so the
	// reaper does not delete the link made now.
	d.reaper.Forget(e.Link)
	if d.reuseLink(n, spec) {
		return nil
	}
	err := d.links.AddMacvlan(spec)
	if err == nil {
		d.linksCreated.Add(1)
		return nil
	}
	if errors.Is(err, link.ErrNotFound) {
		var cerr error
		switch {
		case n.PrivateParent:
			cerr = d.createPrivateParent(n)
		case n.ParentCreated:
			cerr = d.createParent(n.Parent)
		default:
			return fmt.Errorf("parent %q of this network is gone from %s: bring it back, or remove and re-create the network with another parent", n.Parent, d.onNode())
		}
		if cerr != nil {
			// Another Join may have made it a moment ago.
			if _, gerr := d.links.Get(n.Parent); gerr != nil {
				return cerr
			}
		}
	} else if info, gerr := d.links.Get(e.Link); gerr == nil {
		if info.EndpointOf() != e.ID {
			return fmt.Errorf("cannot create the container link: a link named %q that macvlan-swarm did not make for this endpoint exists on %s (alias %q); rename or remove it", e.Link, d.onNode(), info.Alias)
		}
		d.log.Info("deleting stale host link before re-creating it", "ep", e.ID, "link", e.Link)
		if derr := d.links.Delete(e.Link); derr != nil {
			return fmt.Errorf("delete stale host link %q: %w", e.Link, derr)
		}
		d.linksDeleted.Add(1)
	} else {
		return fmt.Errorf("create container link on parent %q: %w", n.Parent, err)
	}
	if err := d.links.AddMacvlan(spec); err != nil {
		return fmt.Errorf("create container link on parent %q: %w", n.Parent, err)
	}
	d.linksCreated.Add(1)
	return nil
}

// reuseLink gives the new endpoint a link retired moments ago on the same
// parent and mode, if the reaper still holds one, instead of creating a link
// while the reaper deletes the old one: under churn no link is then
// unregistered at all, and no Join waits for the kernel's RTNL lock while a
// group delete holds it (docs/design.md, "Reusing retired links"). Rearm
// checks the link's mark first. It reports whether it did; when it did
// not, the link goes back to the reaper and the caller creates one.
func (d *Driver) reuseLink(n *model.Network, spec link.MacvlanSpec) bool {
	if n.Mode == link.ModePassthru {
		return false
	}
	name, mark, ok := d.reaper.Take(reuseKey(n))
	if !ok {
		return false
	}
	if err := d.links.Rearm(name, mark, spec); err != nil {
		d.log.Debug("could not reuse a retired host link; creating one", "link", name, "err", err)
		d.reaper.Retire(name, mark)
		return false
	}
	// One link fewer deleted and one fewer created, in effect; counted as
	// both, so that created − deleted is still the number of live links.
	d.linksCreated.Add(1)
	d.linksDeleted.Add(1)
	d.log.Debug("reused a retired host link", "old", name, "link", spec.Name)
	return true
}

// reuseKey is what a retired link fits: any network's endpoint on the same
// parent and mode (its name, MAC, MTU and mark are set again).
func reuseKey(n *model.Network) string { return n.Parent + "\x00" + string(n.Mode) }

// gatewayFor returns, as a bare address, the gateway of the pool holding
// addr, or of the first pool with a gateway; nothing when the endpoint has
// no address of that family.
func gatewayFor(pools []model.Pool, addr netip.Prefix) string {
	if !addr.IsValid() {
		return ""
	}
	first := ""
	for _, p := range pools {
		if !p.Gateway.IsValid() {
			continue
		}
		if first == "" {
			first = p.Gateway.Addr().String()
		}
		if p.Subnet.Contains(addr.Addr()) {
			return p.Gateway.Addr().String()
		}
	}
	return first
}

// Leave removes the endpoint's host routes (host_access); the link is the
// engine's to move back to the host namespace, and DeleteEndpoint removes
// it. The driver notes the time, so that an endpoint whose DeleteEndpoint
// is lost is reclaimed.
func (d *Driver) Leave(req *protocol.LeaveRequest) error {
	if req.EndpointID == "" {
		return missingID("Leave", "an endpoint id")
	}
	d.st.mu.Lock()
	e := d.st.endpoints[req.EndpointID]
	var n *model.Network
	if e != nil {
		n = d.st.networks[e.NetworkID]
	}
	d.st.mu.Unlock()
	if e != nil {
		// The container is leaving: the node's way to it goes now.
		d.dropHostRoutes(n, e)
	}
	d.reclaim.left(req.EndpointID)
	d.log.Debug("endpoint left", "net", req.NetworkID, "ep", req.EndpointID)
	return nil
}
