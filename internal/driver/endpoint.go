package driver

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
	"github.com/macvlan-swarm/macvlan-swarm/internal/model"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol"
)

// endpointMAC picks an endpoint's MAC when the user gave none. With an IPv4
// address it is 02:42 followed by the address, like Docker's bridge, so a
// swarm task that gets the same address again keeps its MAC and neighbours'
// ARP caches stay right. An IPv6-only endpoint gets 06 followed by five
// bytes of a hash of its id: locally administered, unicast, and never equal
// to an address-derived MAC.
func endpointMAC(endpointID string, v4 netip.Prefix) net.HardwareAddr {
	if v4.IsValid() {
		a := v4.Addr().As4()
		return net.HardwareAddr{0x02, 0x42, a[0], a[1], a[2], a[3]}
	}
	sum := sha256.Sum256([]byte(endpointID))
	return net.HardwareAddr{0x06, sum[0], sum[1], sum[2], sum[3], sum[4]}
}

// endpointFromRequest reads a CreateEndpoint request without touching state.
func endpointFromRequest(req *protocol.CreateEndpointRequest) (*model.Endpoint, error) {
	switch {
	case req.NetworkID == "" && req.EndpointID == "":
		return nil, missingID("CreateEndpoint", "a network id or an endpoint id")
	case req.EndpointID == "":
		return nil, missingID("CreateEndpoint", "an endpoint id")
	case req.NetworkID == "":
		return nil, missingID("CreateEndpoint", "a network id")
	}
	iface := req.Interface
	if iface == nil {
		iface = &protocol.EndpointInterface{}
	}
	e := &model.Endpoint{ID: req.EndpointID, NetworkID: req.NetworkID, Created: time.Now().UTC()}
	var err error
	if e.IPv4, err = model.ParseAddress(iface.Address, false); err != nil {
		return nil, fmt.Errorf("endpoint address from the engine: %w", err)
	}
	if e.IPv6, err = model.ParseAddress(iface.AddressIPv6, true); err != nil {
		return nil, fmt.Errorf("endpoint address from the engine: %w", err)
	}
	if iface.MacAddress != "" {
		if e.MAC, err = link.ParseMAC(iface.MacAddress); err != nil {
			return nil, err
		}
	}
	if v, ok := req.Options[optIfName]; ok {
		name, _ := v.(string)
		if err := link.CheckName(name); err != nil {
			return nil, fmt.Errorf("the container interface name %v (%s) is not valid: %v; give a name of 1 to %d characters without '/', ':' or spaces", v, optIfName, err, link.MaxNameLen)
		}
		e.IfName = name
	}
	return e, nil
}

// optIfName is the endpoint option by which engines 28 and newer pass the
// interface name the user asked for in the container
// (--network name=NET,driver-opt=com.docker.network.endpoint.ifname=NAME).
const optIfName = "com.docker.network.endpoint.ifname"

// ifNamePrefix is the DstPrefix that gets an engine to name the container
// interface ifname: the engine passes a remote driver's DstName on to no
// one (up to 28.5), but names the interface DstPrefix followed by the
// lowest number no interface of that prefix has. So "lan0" is asked for as
// prefix "lan" and comes out as lan0 unless the container already has a
// lan0 (then lan1); a name without a number at its end ("wan") comes out
// with one ("wan0").
func ifNamePrefix(ifname string) string {
	p := strings.TrimRight(ifname, "0123456789")
	if p == "" {
		return containerPrefix
	}
	return p
}

// CreateEndpoint records an endpoint. IPAM has filled its addresses; the
// driver adds only a MAC, and only when the request has none: returning a
// field the engine set makes it fail the endpoint. An address outside the
// network's subnets, and a MAC that the parent or a live endpoint on the same
// parent already has, are refused before anything is made. Records the new
// endpoint shows to be stale (below) are dropped in the same transaction.
func (d *Driver) CreateEndpoint(req *protocol.CreateEndpointRequest) (*protocol.CreateEndpointResponse, error) {
	e, err := endpointFromRequest(req)
	if err != nil {
		return nil, err
	}
	userMAC := e.MAC != nil

	n, parent, ok := d.lockNetworkAndReadParent(e.NetworkID)
	if !ok {
		d.st.mu.Unlock()
		return nil, d.unknownNetwork(e.NetworkID)
	}
	stale, err := d.admitEndpoint(n, e, userMAC, parent)
	staleNets := make([]*model.Network, len(stale))
	for i, old := range stale {
		staleNets[i] = d.st.networks[old.NetworkID]
	}
	if err == nil {
		e.Link = d.freeLinkName(e.ID)
		err = d.st.replaceEndpoints(e, stale)
	}
	d.st.mu.Unlock()
	if err != nil {
		return nil, err
	}
	for i, old := range stale {
		d.reclaim.forget(old.ID)
		d.retireLink(old, staleNets[i])
		d.log.Info("reclaimed endpoint of a container that is gone", "net", old.NetworkID, "ep", old.ID, "link", old.Link, "why", "a new endpoint took its address or MAC", "new_ep", e.ID)
	}
	d.log.Debug("endpoint created", "net", e.NetworkID, "ep", e.ID, "ipv4", e.IPv4, "ipv6", e.IPv6, "mac", e.MAC.String())
	var resp protocol.CreateEndpointResponse
	if !userMAC {
		resp.Interface = &protocol.EndpointInterfaceResponse{MacAddress: e.MAC.String()}
	}
	return &resp, nil
}

// admitEndpoint checks a new endpoint against the network and the endpoints
// already recorded, picks its MAC when the user gave none, and returns the
// records it shows to be stale. A record is stale when its network handed
// one of its addresses to the new endpoint (the engine's IPAM frees an
// address only once it is done with the endpoint), or when the reclaim
// signals already show its container gone; such records must not refuse a
// container: their DeleteEndpoint was lost, the sweep would drop them soon.
// The caller holds the state lock; parent is n's parent as read from the
// kernel just before (lockNetworkAndReadParent).
func (d *Driver) admitEndpoint(n *model.Network, e *model.Endpoint, userMAC bool, parent parentRead) ([]*model.Endpoint, error) {
	for _, a := range []netip.Prefix{e.IPv4, e.IPv6} {
		if a.IsValid() && !n.Contains(a.Addr()) {
			return nil, fmt.Errorf("address %s is outside every subnet of network %s (%s): the engine's IPAM and the network disagree; remove the network and create it again", a, short(n.ID), subnets(n))
		}
	}
	// A record whose address the network handed to e is stale for sure;
	// that costs a comparison. The reclaim signals (a stat() each) are read
	// only for the records that stand in e's way.
	var stale []*model.Endpoint
	for _, a := range []netip.Prefix{e.IPv4, e.IPv6} {
		for _, other := range d.st.endpointsAt(n.ID, a) {
			if other.ID != e.ID && !slices.Contains(stale, other) {
				stale = append(stale, other)
			}
		}
	}
	givesWay := func(other *model.Endpoint) bool {
		if slices.Contains(stale, other) {
			return true
		}
		if d.reclaim.goneNow(other) {
			stale = append(stale, other)
			return true
		}
		return false
	}
	if n.Mode == link.ModePassthru {
		for _, other := range d.st.endpointsOf(n.ID) {
			if other.ID != e.ID && !givesWay(other) {
				return nil, fmt.Errorf("network uses macvlan_mode passthru, which gives parent %q to one container only, and endpoint %s has it", n.Parent, short(other.ID))
			}
		}
	}
	if !userMAC {
		var err error
		if e.MAC, err = defaultMAC(n, e, parent); err != nil {
			return nil, err
		}
	}
	if n.Mode == link.ModePassthru {
		return stale, nil
	}
	for _, other := range d.st.endpointsWithMAC(e.MAC) {
		if other.ID == e.ID {
			continue
		}
		if on := d.st.networks[other.NetworkID]; on == nil || on.Parent != n.Parent || givesWay(other) {
			continue
		}
		return nil, fmt.Errorf("MAC address %s is already used on parent %q by endpoint %s of network %s: give the container another --mac-address, or none to get one derived from its address", e.MAC, n.Parent, short(other.ID), short(other.NetworkID))
	}
	if parent.err == nil && bytes.Equal(parent.mac, e.MAC) {
		return nil, fmt.Errorf("MAC address %s is parent %q's own address on %s: give the container another --mac-address, or none to get one derived from its address", e.MAC, n.Parent, d.onNode())
	}
	return stale, nil
}

// defaultMAC picks the MAC of an endpoint whose user gave none. A passthru
// link always carries its parent's MAC (the kernel ignores a requested one),
// so that is the one reported; had the engine been told another, it would
// set it inside the container and so change the parent's own address.
func defaultMAC(n *model.Network, e *model.Endpoint, parent parentRead) (net.HardwareAddr, error) {
	if n.Mode != link.ModePassthru {
		return endpointMAC(e.ID, e.IPv4), nil
	}
	if parent.err != nil {
		return nil, fmt.Errorf("read the MAC of passthru parent %q: %w", n.Parent, parent.err)
	}
	return parent.mac, nil
}

// parentRead is a network's parent link as CreateEndpoint read it: its MAC,
// or why it could not be read.
type parentRead struct {
	mac net.HardwareAddr
	err error
}

// lockNetworkAndReadParent takes the state lock and returns the network
// recorded as id with its parent's MAC read from the kernel, the lock held
// (ok or not). The kernel is asked without the state lock: a netlink lookup
// waits for the kernel's RTNL lock, which the engine holds for long
// stretches while it sets many containers up at once, and under the state
// lock that wait would queue every other request behind it (part 2 of
// docs/benchmarks.md). If the network is replaced meanwhile by one on
// another parent, it reads again (three times at most).
func (d *Driver) lockNetworkAndReadParent(id string) (*model.Network, parentRead, bool) {
	d.st.mu.Lock()
	for try := 1; ; try++ {
		n, ok := d.st.networks[id]
		if !ok {
			return nil, parentRead{}, false
		}
		name := n.Parent
		d.st.mu.Unlock()
		var r parentRead
		var p link.Info
		if p, r.err = d.links.Get(name); r.err == nil {
			r.mac = p.MAC
		}
		d.st.mu.Lock()
		if n, ok = d.st.networks[id]; !ok || n.Parent == name {
			return n, r, ok
		}
		if try == 3 {
			return n, parentRead{err: fmt.Errorf("network %s changed parent while the endpoint was being created", short(id))}, true
		}
	}
}

// freeLinkName is link.EndpointLinkName unless another endpoint already
// holds that name (two ids that share their first 12 characters): then a name
// from a hash of the whole id, so one endpoint's Join can never take the
// other's link. The caller holds the state lock.
func (d *Driver) freeLinkName(endpointID string) string {
	name := link.EndpointLinkName(endpointID)
	for _, e := range d.st.endpointsWithLink(name) {
		if e.ID != endpointID {
			return link.HashedLinkName(endpointID)
		}
	}
	return name
}

// EndpointOperInfo shows the endpoint's link in docker inspect. An unknown
// endpoint gets an empty answer rather than an error: inspect must not fail.
func (d *Driver) EndpointOperInfo(req *protocol.EndpointOperInfoRequest) (*protocol.EndpointOperInfoResponse, error) {
	d.st.mu.Lock()
	defer d.st.mu.Unlock()
	value := map[string]any{}
	if e, ok := d.st.endpoints[req.EndpointID]; ok {
		value["host_link"] = e.Link
		value["mac_address"] = e.MAC.String()
		if n, ok := d.st.networks[e.NetworkID]; ok {
			value["parent"] = n.Parent
			value["macvlan_mode"] = string(n.Mode)
		}
	}
	return &protocol.EndpointOperInfoResponse{Value: value}, nil
}

// DeleteEndpoint forgets an endpoint and removes its host link (the engine
// moved it back out of the container on Leave, or it went with the
// container's namespace). Unknown endpoints are success; a request without
// an endpoint id (an empty retry) is refused.
func (d *Driver) DeleteEndpoint(req *protocol.DeleteEndpointRequest) error {
	if req.EndpointID == "" {
		return missingID("DeleteEndpoint", "an endpoint id")
	}
	d.st.mu.Lock()
	e, ok := d.st.endpoints[req.EndpointID]
	if !ok {
		d.st.mu.Unlock()
		d.log.Debug("delete of unknown endpoint", "net", req.NetworkID, "ep", req.EndpointID)
		return nil
	}
	if err := d.st.dropEndpoints([]*model.Endpoint{e}); err != nil {
		d.st.mu.Unlock()
		return err
	}
	n := d.st.networks[e.NetworkID]
	d.st.mu.Unlock()
	// Outside the lock: a passthru link is deleted here and then, and no
	// record names the link any more.
	d.reclaim.forget(e.ID)
	d.retireLink(e, n)
	d.log.Debug("endpoint deleted", "net", e.NetworkID, "ep", e.ID)
	return nil
}

// retireLink hands an endpoint's host link to the reaper, which deletes it
// in its next batch if the link still carries that endpoint's mark: a link
// of the same name without it is someone else's and is left alone. Until
// then a Join on the same parent and mode may take it (reuseLink). The
// request does not wait on the kernel. Passthru links are deleted at once
// (after the same check): the parent takes one passthru link at a time, and
// the next container must not wait for a batch. The endpoint's host routes
// (host_access) go at once. It needs no state lock.
func (d *Driver) retireLink(e *model.Endpoint, n *model.Network) {
	d.dropHostRoutes(n, e)
	mark := link.EndpointMark(e.ID)
	if n == nil {
		d.reaper.Retire(e.Link, mark)
		return
	}
	if n.Mode != link.ModePassthru {
		d.reaper.RetireReusable(e.Link, mark, reuseKey(n))
		return
	}
	info, err := d.links.Get(e.Link)
	if errors.Is(err, link.ErrNotFound) {
		return // it went with its container's namespace
	}
	if err != nil {
		d.log.Warn("could not look up host link to delete it", "link", e.Link, "err", err)
		return
	}
	if info.Alias != mark {
		d.log.Warn("a link named like an endpoint's host link does not carry that endpoint's mark; left alone", "link", e.Link, "ep", e.ID, "alias", info.Alias)
		return
	}
	if err := d.links.Delete(e.Link); err != nil {
		d.log.Warn("could not delete host link", "link", e.Link, "err", err)
		return
	}
	d.linksDeleted.Add(1)
}

func (d *Driver) unknownNetwork(id string) error {
	return fmt.Errorf("network %s is not known to macvlan-swarm on %s (its saved state may have been removed): remove the network and create it again", short(id), d.onNode())
}

func subnets(n *model.Network) string {
	var s []string
	for _, p := range append(append([]model.Pool{}, n.IPv4...), n.IPv6...) {
		s = append(s, p.Subnet.String())
	}
	return joinSorted(s)
}
