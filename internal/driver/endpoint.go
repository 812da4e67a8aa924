package driver

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"

	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol"
	"github.com/macvlan-swarm/macvlan-swarm/internal/store"
)

// linkPrefix starts the name of every host link this driver creates; the
// rest comes from the endpoint id, so the name says whose link it is.
const linkPrefix = "mvs"

// linkName derives an endpoint's host link name: "mvs" and 12 characters of
// the endpoint id (15 bytes, the kernel's limit). Engine endpoint ids are 64
// hex characters; anything else is hashed so the name stays valid.
func linkName(endpointID string) string {
	if len(endpointID) >= 12 && isHex(endpointID[:12]) {
		return linkPrefix + endpointID[:12]
	}
	return hashedLinkName(endpointID)
}

// hashedLinkName is "mvs" and 12 hex characters of a hash of the whole id.
func hashedLinkName(endpointID string) string {
	sum := sha256.Sum256([]byte(endpointID))
	return linkPrefix + hex.EncodeToString(sum[:6])
}

// freeLinkName is linkName unless another endpoint already holds that name
// (two ids that share their first 12 characters): then a name from a hash
// of the whole id, so one endpoint's Join can never take the other's link.
// The caller holds d.mu.
func (d *Driver) freeLinkName(endpointID string) string {
	name := linkName(endpointID)
	for _, e := range d.endpoints {
		if e.Link == name && e.ID != endpointID {
			return hashedLinkName(endpointID)
		}
	}
	return name
}

func isHex(s string) bool {
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

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

// CreateEndpoint records an endpoint. IPAM has filled its addresses; the
// driver adds only a MAC, and only when the request has none: returning a
// field the engine set makes it fail the endpoint.
func (d *Driver) CreateEndpoint(req *protocol.CreateEndpointRequest) (*protocol.CreateEndpointResponse, error) {
	iface := req.Interface
	if iface == nil {
		iface = &protocol.EndpointInterface{}
	}
	var v4, v6 netip.Prefix
	var err error
	if iface.Address != "" {
		if v4, err = netip.ParsePrefix(iface.Address); err != nil || !v4.Addr().Is4() {
			return nil, fmt.Errorf("endpoint address %q from the engine is not an IPv4 CIDR", iface.Address)
		}
	}
	if iface.AddressIPv6 != "" {
		if v6, err = netip.ParsePrefix(iface.AddressIPv6); err != nil || !v6.Addr().Is6() {
			return nil, fmt.Errorf("endpoint address %q from the engine is not an IPv6 CIDR", iface.AddressIPv6)
		}
	}
	var mac net.HardwareAddr
	if iface.MacAddress != "" {
		if mac, err = net.ParseMAC(iface.MacAddress); err != nil || len(mac) != 6 {
			return nil, fmt.Errorf("MAC address %q is not valid: give six hex bytes, e.g. 02:42:0a:00:00:05", iface.MacAddress)
		}
		if mac[0]&1 == 1 {
			return nil, fmt.Errorf("MAC address %q is a multicast address; a container needs a unicast one (first byte even, e.g. 02:...)", iface.MacAddress)
		}
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	n, ok := d.networks[req.NetworkID]
	if !ok {
		return nil, d.unknownNetwork(req.NetworkID)
	}
	if n.Mode == ModePassthru {
		for _, e := range d.endpoints {
			if e.NetworkID == n.ID && e.ID != req.EndpointID {
				return nil, fmt.Errorf("network uses macvlan_mode passthru, which gives parent %q to one container only, and endpoint %s has it", n.Parent, short(e.ID))
			}
		}
	}
	var resp protocol.CreateEndpointResponse
	if mac == nil {
		if mac, err = d.defaultMAC(n, req.EndpointID, v4); err != nil {
			return nil, err
		}
		resp.Interface = &protocol.EndpointInterfaceResponse{MacAddress: mac.String()}
	}
	e := &store.Endpoint{
		ID:        req.EndpointID,
		NetworkID: req.NetworkID,
		MAC:       mac.String(),
		Link:      d.freeLinkName(req.EndpointID),
	}
	if v4.IsValid() {
		e.IPv4 = v4.String()
	}
	if v6.IsValid() {
		e.IPv6 = v6.String()
	}
	if err := d.store.PutEndpoint(*e); err != nil {
		return nil, fmt.Errorf("save endpoint: %w", err)
	}
	d.endpoints[e.ID] = e
	d.log.Debug("endpoint created", "net", e.NetworkID, "ep", e.ID, "ipv4", e.IPv4, "ipv6", e.IPv6, "mac", e.MAC)
	return &resp, nil
}

// defaultMAC picks the MAC of an endpoint whose user gave none. A passthru
// link always carries its parent's MAC (the kernel ignores a requested one),
// so that is the one reported; had the engine been told another, it would
// set it inside the container and so change the parent's own address.
func (d *Driver) defaultMAC(n *store.Network, endpointID string, v4 netip.Prefix) (net.HardwareAddr, error) {
	if n.Mode != ModePassthru {
		return endpointMAC(endpointID, v4), nil
	}
	p, err := d.links.Get(n.Parent)
	if err != nil {
		return nil, fmt.Errorf("read the MAC of passthru parent %q: %w", n.Parent, err)
	}
	return p.MAC, nil
}

// EndpointOperInfo shows the endpoint's link in docker inspect. An unknown
// endpoint gets an empty answer rather than an error: inspect must not fail.
func (d *Driver) EndpointOperInfo(req *protocol.EndpointOperInfoRequest) (*protocol.EndpointOperInfoResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	value := map[string]any{}
	if e, ok := d.endpoints[req.EndpointID]; ok {
		value["host_link"] = e.Link
		value["mac_address"] = e.MAC
		if n, ok := d.networks[e.NetworkID]; ok {
			value["parent"] = n.Parent
			value["macvlan_mode"] = n.Mode
		}
	}
	return &protocol.EndpointOperInfoResponse{Value: value}, nil
}

// DeleteEndpoint forgets an endpoint and removes its host link (the engine
// moved it back out of the container on Leave, or it went with the
// container's namespace). Unknown endpoints are success.
func (d *Driver) DeleteEndpoint(req *protocol.DeleteEndpointRequest) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.endpoints[req.EndpointID]
	if !ok {
		d.log.Debug("delete of unknown endpoint", "net", req.NetworkID, "ep", req.EndpointID)
		return nil
	}
	if err := d.store.DeleteEndpoint(e.ID); err != nil {
		return fmt.Errorf("save endpoint removal: %w", err)
	}
	delete(d.endpoints, e.ID)
	d.retireLink(e.Link, d.networks[e.NetworkID])
	d.log.Debug("endpoint deleted", "net", e.NetworkID, "ep", e.ID)
	return nil
}

// retireLink hands a host link to the reaper. Passthru links are deleted at
// once: the parent takes one passthru link at a time, and the next container
// must not wait for a batch. The caller holds d.mu.
func (d *Driver) retireLink(name string, n *store.Network) {
	if n != nil && n.Mode == ModePassthru {
		if err := d.links.Delete(name); err != nil {
			d.log.Warn("could not delete host link", "link", name, "err", err)
		}
		return
	}
	d.reaper.retire(name)
}

func (d *Driver) unknownNetwork(id string) error {
	return fmt.Errorf("network %s is not known to macvlan-swarm on this node (its saved state may have been removed): remove the network and create it again", short(id))
}
