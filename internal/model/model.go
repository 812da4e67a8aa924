// Package model is the driver's typed view of what it remembers: networks and
// endpoints with parsed addresses, MACs and modes. Strings from the engine are
// parsed once, at the edge (the driver's request decoding, the store's load),
// and nothing inside re-parses them. The store keeps its own JSON records and
// converts to and from these types at its boundary (internal/store).
//
// A new remembered field goes here, and in the store's record (records.go)
// with its conversion.
package model

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
)

// Pool is one IPAM pool of a network. The engine sends the gateway and aux
// addresses as CIDR strings; they are kept as prefixes so the pool's length
// travels with them.
type Pool struct {
	Subnet  netip.Prefix
	Gateway netip.Prefix // invalid (zero) when the pool has none
	Aux     map[string]netip.Prefix
}

// Network is a network this node has been asked to create.
type Network struct {
	ID string
	// ParentSpec is the parent option as the user wrote it (a "|"-separated
	// candidate list, or a node-level alias).
	ParentSpec string
	// Parent is the link this node resolved ParentSpec to.
	Parent string
	// ParentCreated is true when the driver created Parent (an 802.1q link
	// "name.vid"); only then may it delete it.
	ParentCreated bool
	// PrivateParent is true for a network without a parent option: Parent
	// is then the private lower link the driver made for it on this node
	// (link.PrivateParentNames), deleted with the network.
	PrivateParent bool
	Mode          link.Mode
	MTU           int // 0: the parent's
	Internal      bool
	// HostAccess is the host_access option: this node reaches its own
	// containers through the shim on Parent, at HostAddrs (one address per
	// family of the network's pools, chosen at CreateNetwork: the parent's
	// own address in a subnet, or the node's HOST_ADDRESS setting).
	HostAccess bool
	HostAddrs  []netip.Addr
	IPv4, IPv6 []Pool
	// Announce is what Join sends on the LAN for a container, read from
	// Options when the network is created and again when it is loaded (it
	// is not stored: Options are).
	Announce Announce
	// Options are the user's -o options as received, to tell an identical
	// re-create from a changed one.
	Options map[string]string
	Created time.Time
}

// Contains reports whether addr lies in one of the network's pools of its
// family.
func (n *Network) Contains(addr netip.Addr) bool {
	pools := n.IPv4
	if addr.Is6() {
		pools = n.IPv6
	}
	for _, p := range pools {
		if p.Subnet.Contains(addr) {
			return true
		}
	}
	return false
}

// Announce says what Join sends on the LAN for a container
// (internal/announce): announcements after it answers, an address check
// before.
type Announce struct {
	Messages     int           // announcements after Join; 0: none
	Interval     time.Duration // between them
	Check        bool          // probe the addresses before Join answers
	CheckTimeout time.Duration // how long the probe waits for an answer
}

// Endpoint is one container attachment.
type Endpoint struct {
	ID        string
	NetworkID string
	IPv4      netip.Prefix // invalid when the endpoint has no IPv4 address
	IPv6      netip.Prefix // invalid when it has no IPv6 address
	MAC       net.HardwareAddr
	// Link is the host-side macvlan link name handed to the engine in Join.
	Link string
	// IfName is the interface name the user asked for inside the container
	// (com.docker.network.endpoint.ifname, engines 28 and newer); empty:
	// the engine's ethN.
	IfName  string
	Created time.Time
	// Sandbox is what Join said about the container; zero until then.
	Sandbox Sandbox
}

// Sandbox identifies the container namespace an endpoint joined: the engine's
// SandboxKey (a file the engine bind-mounts the namespace on, removed when
// the sandbox is destroyed) and the identity of that file as the plugin saw it
// at Join. File is zero when the plugin could not see the file (its mount of
// the engine's run directory does not cover that path): such an endpoint is
// never judged by its sandbox.
type Sandbox struct {
	Key    string
	File   FileID
	Joined time.Time
}

// FileID is a file's identity: device and inode. A file removed and created
// again under the same name gets another one.
type FileID struct {
	Dev, Ino uint64
}

// IsZero reports an unknown file.
func (f FileID) IsZero() bool { return f == FileID{} }

// ParseAddress reads an endpoint address in CIDR form ("10.1.0.2/24") of
// the family asked for; an empty string is no address (an invalid Prefix).
func ParseAddress(s string, v6 bool) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, nil
	}
	p, err := netip.ParsePrefix(s)
	family := "IPv4"
	if v6 {
		family = "IPv6"
	}
	if err != nil || p.Addr().Is6() != v6 || p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%q is not an %s CIDR", s, family)
	}
	return p, nil
}

// IPAMPool is one pool the plugin's address manager handed to an engine
// (RequestPool). The engine keeps ID and sends it with every address
// request; one engine may hold several pools of the same subnet (a swarm
// manager's allocator and the node's own networks each ask for one).
type IPAMPool struct {
	ID    string
	Space string       // the address space the engine asked in
	Pool  netip.Prefix // the network's subnet, masked
	// Range is where addresses are handed out from when none is asked for:
	// the network's --ip-range, or Pool when none was given.
	Range netip.Prefix
	// Last is the address the next search for a free address starts after:
	// the last one picked, or one asked for by name inside Range above it.
	// Invalid before the first.
	Last    netip.Addr
	Created time.Time
	// Network and Role say whose pool it is, once the engine's next
	// request names the network (ipam.Manager.Claim): Role "allocator" for
	// the swarm managers' allocator on this node (AllocateNetwork), "node"
	// for this engine's own copy of the network (CreateNetwork); both empty
	// until then, and for pools of another driver's networks.
	Network string
	Role    string
	// Used holds the addresses given out and not yet given back, with when
	// each was given (zero when a record does not say).
	Used map[netip.Addr]time.Time
}

// IPAMRelease is when an address of a subnet was last given back, on this
// node, by any pool of that subnet (in any address space).
type IPAMRelease struct {
	Pool netip.Prefix
	Addr netip.Addr
	At   time.Time
}
