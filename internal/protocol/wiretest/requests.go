package wiretest

import (
	"net/netip"

	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol"
)

// Requests shaped as the engine sends them, for tests that need other values
// than the captures hold. They are the only request builders of the tests.

// Pool is an IPAM pool; its family decides which list CreateNetwork puts it
// in.
func Pool(subnet, gateway string) protocol.IPAMData {
	return protocol.IPAMData{AddressSpace: "LocalDefault", Pool: subnet, Gateway: gateway}
}

// CreateNetwork builds a CreateNetwork request with the user's -o options in
// generic and the pools sorted by family. enable_ipv6 is always sent, true
// when there is an IPv6 pool, as the engine does.
func CreateNetwork(id string, generic map[string]string, pools ...protocol.IPAMData) *protocol.CreateNetworkRequest {
	g := map[string]any{}
	for k, v := range generic {
		g[k] = v
	}
	req := &protocol.CreateNetworkRequest{
		NetworkID: id,
		Options:   map[string]any{protocol.OptionGeneric: g},
		IPv4Data:  []protocol.IPAMData{},
		IPv6Data:  []protocol.IPAMData{},
	}
	for _, p := range pools {
		// A malformed pool (tests of refusals) goes with the IPv4 ones.
		if pfx, err := netip.ParsePrefix(p.Pool); err != nil || pfx.Addr().Is4() {
			req.IPv4Data = append(req.IPv4Data, p)
		} else {
			req.IPv6Data = append(req.IPv6Data, p)
		}
	}
	req.Options[protocol.OptionEnableIPv6] = len(req.IPv6Data) > 0
	return req
}

// CreateEndpoint builds a CreateEndpoint request; empty strings are fields
// the engine left empty.
func CreateEndpoint(netID, epID, v4, v6, mac string) *protocol.CreateEndpointRequest {
	return &protocol.CreateEndpointRequest{
		NetworkID:  netID,
		EndpointID: epID,
		Interface:  &protocol.EndpointInterface{Address: v4, AddressIPv6: v6, MacAddress: mac},
		Options:    map[string]any{"com.docker.network.endpoint.exposedports": []any{}, "com.docker.network.portmap": []any{}},
	}
}

// Join builds a Join request with the engine's default sandbox key shape.
func Join(netID, epID string) *protocol.JoinRequest {
	key := epID
	if len(key) > 12 {
		key = key[:12]
	}
	return &protocol.JoinRequest{
		NetworkID:  netID,
		EndpointID: epID,
		SandboxKey: "/var/run/docker/netns/" + key,
		Options:    map[string]any{},
	}
}

// Leave builds a Leave request.
func Leave(netID, epID string) *protocol.LeaveRequest {
	return &protocol.LeaveRequest{NetworkID: netID, EndpointID: epID}
}

// DeleteEndpoint builds a DeleteEndpoint request.
func DeleteEndpoint(netID, epID string) *protocol.DeleteEndpointRequest {
	return &protocol.DeleteEndpointRequest{NetworkID: netID, EndpointID: epID}
}

// DeleteNetwork builds a DeleteNetwork request.
func DeleteNetwork(netID string) *protocol.DeleteNetworkRequest {
	return &protocol.DeleteNetworkRequest{NetworkID: netID}
}
