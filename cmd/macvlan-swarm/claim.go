package main

import (
	"github.com/macvlan-swarm/macvlan-swarm/internal/driver"
	"github.com/macvlan-swarm/macvlan-swarm/internal/ipam"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol"
)

// claimingDriver is the driver as the engine sees it, with one addition:
// once AllocateNetwork or CreateNetwork has succeeded, the address manager
// is told which network the pools it just handed out belong to
// (ipam.Manager.Claim). The IPAM protocol never names a network, and the
// driver knows nothing of the address manager; the daemon joins the two
// here.
type claimingDriver struct {
	*driver.Driver
	addrs *ipam.Manager
}

func (c claimingDriver) AllocateNetwork(req *protocol.AllocateNetworkRequest) (*protocol.AllocateNetworkResponse, error) {
	resp, err := c.Driver.AllocateNetwork(req)
	if err == nil {
		c.addrs.Claim(req.NetworkID, ipam.RoleAllocator, req.IPv4Data, req.IPv6Data)
	}
	return resp, err
}

func (c claimingDriver) CreateNetwork(req *protocol.CreateNetworkRequest) error {
	err := c.Driver.CreateNetwork(req)
	if err == nil {
		c.addrs.Claim(req.NetworkID, ipam.RoleNode, req.IPv4Data, req.IPv6Data)
	}
	return err
}
