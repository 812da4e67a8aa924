package store

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
	"github.com/macvlan-swarm/macvlan-swarm/internal/model"
)

// The records below are the file's layout: JSON with explicit names, strings
// where the model has parsed types. They convert to and from the model here
// and nowhere else; a record that does not convert is damaged and reported
// by Load.

type poolRecord struct {
	Pool    string            `json:"pool"`
	Gateway string            `json:"gateway,omitempty"`
	Aux     map[string]string `json:"aux,omitempty"`
}

type networkRecord struct {
	ID            string            `json:"id"`
	ParentSpec    string            `json:"parent_spec"`
	Parent        string            `json:"parent"`
	ParentCreated bool              `json:"parent_created,omitempty"`
	Mode          string            `json:"mode"`
	MTU           int               `json:"mtu,omitempty"`
	Internal      bool              `json:"internal,omitempty"`
	IPv4          []poolRecord      `json:"ipv4,omitempty"`
	IPv6          []poolRecord      `json:"ipv6,omitempty"`
	Options       map[string]string `json:"options,omitempty"`
	Created       time.Time         `json:"created"`
	// Added without a schema bump: absent in older files, which read as a
	// network with a parent and without host access.
	PrivateParent bool     `json:"private_parent,omitempty"`
	HostAccess    bool     `json:"host_access,omitempty"`
	HostAddrs     []string `json:"host_addrs,omitempty"`
}

type endpointRecord struct {
	ID        string `json:"id"`
	NetworkID string `json:"network_id"`
	IPv4      string `json:"ipv4,omitempty"` // CIDR
	IPv6      string `json:"ipv6,omitempty"` // CIDR
	MAC       string `json:"mac"`
	Link      string `json:"link"`
	// Since schema 1 was first written: absent in older files, which Load
	// reads as "created at load time" and "not joined". Times are Unix
	// nanoseconds: a thousand records decode measurably faster than with
	// RFC 3339 strings.
	Created    int64  `json:"created,omitempty"`
	SandboxKey string `json:"sandbox_key,omitempty"`
	SandboxDev uint64 `json:"sandbox_dev,omitempty"`
	SandboxIno uint64 `json:"sandbox_ino,omitempty"`
	Joined     int64  `json:"joined,omitempty"`
	IfName     string `json:"ifname,omitempty"`
}

func fromPools(ps []model.Pool) []poolRecord {
	var out []poolRecord
	for _, p := range ps {
		r := poolRecord{Pool: p.Subnet.String()}
		if p.Gateway.IsValid() {
			r.Gateway = p.Gateway.String()
		}
		if len(p.Aux) > 0 {
			r.Aux = make(map[string]string, len(p.Aux))
			for k, v := range p.Aux {
				r.Aux[k] = v.String()
			}
		}
		out = append(out, r)
	}
	return out
}

func toPools(rs []poolRecord) ([]model.Pool, error) {
	var out []model.Pool
	for _, r := range rs {
		var p model.Pool
		var err error
		if p.Subnet, err = netip.ParsePrefix(r.Pool); err != nil {
			return nil, fmt.Errorf("pool: %w", err)
		}
		if r.Gateway != "" {
			if p.Gateway, err = netip.ParsePrefix(r.Gateway); err != nil {
				return nil, fmt.Errorf("gateway: %w", err)
			}
		}
		if len(r.Aux) > 0 {
			p.Aux = make(map[string]netip.Prefix, len(r.Aux))
			for k, v := range r.Aux {
				if p.Aux[k], err = netip.ParsePrefix(v); err != nil {
					return nil, fmt.Errorf("aux address %q: %w", k, err)
				}
			}
		}
		out = append(out, p)
	}
	return out, nil
}

func fromNetwork(n *model.Network) networkRecord {
	return networkRecord{
		ID: n.ID, ParentSpec: n.ParentSpec, Parent: n.Parent, ParentCreated: n.ParentCreated,
		Mode: string(n.Mode), MTU: n.MTU, Internal: n.Internal,
		IPv4: fromPools(n.IPv4), IPv6: fromPools(n.IPv6),
		Options: n.Options, Created: n.Created,
		PrivateParent: n.PrivateParent, HostAccess: n.HostAccess, HostAddrs: fromAddrs(n.HostAddrs),
	}
}

func fromAddrs(as []netip.Addr) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}

func (r networkRecord) model() (*model.Network, error) {
	mode, err := link.ParseMode(r.Mode)
	if err != nil {
		return nil, err
	}
	n := &model.Network{
		ID: r.ID, ParentSpec: r.ParentSpec, Parent: r.Parent, ParentCreated: r.ParentCreated,
		Mode: mode, MTU: r.MTU, Internal: r.Internal, Options: r.Options, Created: r.Created,
		PrivateParent: r.PrivateParent, HostAccess: r.HostAccess,
	}
	for _, s := range r.HostAddrs {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("host address: %w", err)
		}
		n.HostAddrs = append(n.HostAddrs, a)
	}
	if n.IPv4, err = toPools(r.IPv4); err != nil {
		return nil, err
	}
	if n.IPv6, err = toPools(r.IPv6); err != nil {
		return nil, err
	}
	if n.Parent == "" {
		return nil, fmt.Errorf("no parent")
	}
	return n, nil
}

func fromEndpoint(e *model.Endpoint) endpointRecord {
	r := endpointRecord{
		ID: e.ID, NetworkID: e.NetworkID, MAC: e.MAC.String(), Link: e.Link, Created: unixNano(e.Created),
		SandboxKey: e.Sandbox.Key, SandboxDev: e.Sandbox.File.Dev, SandboxIno: e.Sandbox.File.Ino,
		Joined: unixNano(e.Sandbox.Joined), IfName: e.IfName,
	}
	if e.IPv4.IsValid() {
		r.IPv4 = e.IPv4.String()
	}
	if e.IPv6.IsValid() {
		r.IPv6 = e.IPv6.String()
	}
	return r
}

func (r endpointRecord) model(loaded time.Time) (*model.Endpoint, error) {
	e := &model.Endpoint{
		ID: r.ID, NetworkID: r.NetworkID, Link: r.Link, IfName: r.IfName, Created: fromUnixNano(r.Created),
		Sandbox: model.Sandbox{Key: r.SandboxKey, File: model.FileID{Dev: r.SandboxDev, Ino: r.SandboxIno}, Joined: fromUnixNano(r.Joined)},
	}
	if e.Created.IsZero() {
		e.Created = loaded
	}
	var err error
	if e.IPv4, err = model.ParseAddress(r.IPv4, false); err != nil {
		return nil, fmt.Errorf("ipv4: %w", err)
	}
	if e.IPv6, err = model.ParseAddress(r.IPv6, true); err != nil {
		return nil, fmt.Errorf("ipv6: %w", err)
	}
	if e.MAC, err = link.ParseMAC(r.MAC); err != nil {
		return nil, err
	}
	if err := link.CheckName(r.Link); err != nil {
		return nil, fmt.Errorf("link: %w", err)
	}
	if r.IfName != "" {
		if err := link.CheckName(r.IfName); err != nil {
			return nil, fmt.Errorf("ifname: %w", err)
		}
	}
	return e, nil
}

// unixNano and fromUnixNano map the zero time to 0 and back.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
