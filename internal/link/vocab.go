package link

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// This file is the project's kernel vocabulary: macvlan modes, link-name and
// VLAN rules, MAC validity, and how macvlan-swarm names and marks the links it
// creates. Every other package asks here; none restates a rule.

// Mode is a macvlan mode as the kernel and Docker's built-in driver name it.
type Mode string

// The modes a network may use. "source" is left out on purpose: it needs a
// MAC allow-list the driver never sets up.
const (
	ModeBridge   Mode = "bridge"
	ModePrivate  Mode = "private"
	ModeVEPA     Mode = "vepa"
	ModePassthru Mode = "passthru"
)

// Modes lists the accepted modes, the default first.
var Modes = []Mode{ModeBridge, ModePrivate, ModeVEPA, ModePassthru}

// ParseMode reads a user's mode (case and surrounding space ignored); an
// empty string is the default, bridge.
func ParseMode(s string) (Mode, error) {
	m := Mode(strings.ToLower(strings.TrimSpace(s)))
	if m == "" {
		return ModeBridge, nil
	}
	for _, ok := range Modes {
		if m == ok {
			return m, nil
		}
	}
	names := make([]string, len(Modes))
	for i, ok := range Modes {
		names[i] = string(ok)
	}
	return "", fmt.Errorf("macvlan_mode %q is not valid; use one of %s (default bridge)", s, strings.Join(names, ", "))
}

// MaxNameLen is the kernel's IFNAMSIZ minus the terminating NUL.
const MaxNameLen = 15

// CheckName refuses what the kernel would refuse as a link name.
func CheckName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty interface name")
	case len(name) > MaxNameLen:
		return fmt.Errorf("interface name %q is %d bytes long; the kernel allows at most %d", name, len(name), MaxNameLen)
	case strings.ContainsAny(name, "/ \t\n:"), name == ".", name == "..":
		return fmt.Errorf("%q is not an interface name", name)
	}
	return nil
}

// The 802.1q VLAN id range.
const (
	MinVLAN = 1
	MaxVLAN = 4094
)

// SplitVLAN reads a VLAN link name "base.vid". isVLAN reports the shape (a
// dot followed by digits); err reports a vid outside MinVLAN-MaxVLAN.
func SplitVLAN(name string) (base string, vid int, isVLAN bool, err error) {
	i := strings.LastIndexByte(name, '.')
	if i <= 0 || i == len(name)-1 {
		return "", 0, false, nil
	}
	digits := name[i+1:]
	for _, r := range digits {
		if r < '0' || r > '9' {
			return "", 0, false, nil
		}
	}
	vid, convErr := strconv.Atoi(digits)
	if convErr != nil || vid < MinVLAN || vid > MaxVLAN {
		return name[:i], 0, true, fmt.Errorf("VLAN id %s in %q is out of range: use %d to %d", digits, name, MinVLAN, MaxVLAN)
	}
	return name[:i], vid, true, nil
}

// ParseMAC reads a container's MAC address ("02:42:0a:00:00:05") and checks
// it with CheckMAC.
func ParseMAC(s string) (net.HardwareAddr, error) {
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 6 {
		return nil, fmt.Errorf("MAC address %q is not valid: give six hex bytes, e.g. 02:42:0a:00:00:05", s)
	}
	return mac, CheckMAC(mac)
}

// CheckMAC refuses what the kernel would refuse with a bare EINVAL or
// EADDRNOTAVAIL, and what a container must not carry, naming the value.
func CheckMAC(mac net.HardwareAddr) error {
	switch {
	case len(mac) != 6:
		return fmt.Errorf("MAC address %q is not valid: give six hex bytes, e.g. 02:42:0a:00:00:05", mac.String())
	case mac[0]&1 != 0:
		return fmt.Errorf("MAC address %s is a multicast address; a container needs a unicast one (first byte even, e.g. 02:...)", mac)
	case [6]byte(mac) == [6]byte{}:
		return fmt.Errorf("MAC address %s is all zeros; give a unicast address such as 02:42:0a:00:00:05", mac)
	}
	return nil
}

// Ownership. Every link macvlan-swarm creates carries a kernel alias
// (IFLA_IFALIAS, `ip link show` prints it as "alias ...") that starts with
// markPrefix and names what owns it. Deciding "is this link ours?" from the
// mark, never from the name alone, keeps a user's link of any name (even
// "mvs" and twelve hex digits) safe from every delete path.
const markPrefix = "macvlan-swarm "

// EndpointMark is the alias of the host link of endpoint id.
func EndpointMark(endpointID string) string { return markPrefix + "endpoint " + endpointID }

// ParentMark is the alias of an 802.1q parent the driver created.
const ParentMark = markPrefix + "vlan-parent"

// ShimMark is the alias of the host-side macvlan link ("shim") through which
// this node reaches its own containers on parent (host_access networks).
func ShimMark(parent string) string { return markPrefix + "host-shim " + parent }

// PrivateParentMark is the alias of the private lower link the driver makes
// for a network without a parent (and of its veth peer, when it is a veth).
func PrivateParentMark(networkID string) string { return markPrefix + "private-parent " + networkID }

// ShimOf returns the parent a shim's mark names, or "".
func (i Info) ShimOf() string {
	p, ok := strings.CutPrefix(i.Alias, markPrefix+"host-shim ")
	if !ok || i.Kind != "macvlan" {
		return ""
	}
	return p
}

// PrivateParentOf returns the network id a private lower link's mark names,
// or "".
func (i Info) PrivateParentOf() string {
	id, _ := strings.CutPrefix(i.Alias, markPrefix+"private-parent ")
	if id == i.Alias {
		return ""
	}
	return id
}

// ShimLinkName is the name of the shim on parent: "mvh" and 12 hex
// characters of a hash of the parent's name (15 bytes). The parent the shim
// serves is in its mark; the name only has to be stable and short.
func ShimLinkName(parent string) string {
	sum := sha256.Sum256([]byte("host-shim " + parent))
	return shimLinkPrefix + hex.EncodeToString(sum[:6])
}

// PrivateParentNames are the names of the private lower link of a network
// without a parent, and of its veth peer: "mvi" (the link containers sit on)
// and "mvj" (the peer, on kernels without dummy links), each followed by 12
// characters of the network id. Engine network ids (64 hex characters, or 25
// base-36 characters in swarm) start with 12 such characters; any other id
// is hashed so the names stay valid.
func PrivateParentNames(networkID string) (name, peer string) {
	tail := networkID
	if len(tail) < 12 || !isLowerAlnum(tail[:12]) {
		sum := sha256.Sum256([]byte(networkID))
		tail = hex.EncodeToString(sum[:6])
	}
	return privateParentPrefix + tail[:12], privatePeerPrefix + tail[:12]
}

const (
	shimLinkPrefix      = "mvh"
	privateParentPrefix = "mvi"
	privatePeerPrefix   = "mvj"
)

func isLowerAlnum(s string) bool {
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z') {
			return false
		}
	}
	return true
}

// RouteProtocol is the routing protocol number (rtm_protocol, `ip route`
// prints it as "proto 109") of every route macvlan-swarm adds: the host
// routes to this node's containers through a shim. The driver lists and
// deletes only routes of this protocol on its own shims; the number is not
// one iproute2's rt_protos names (0-4, 8-16, 18, 42, 99, 186-192).
const RouteProtocol = 109

// Ours reports whether the link carries macvlan-swarm's mark.
func (i Info) Ours() bool { return strings.HasPrefix(i.Alias, markPrefix) }

// EndpointOf returns the endpoint id an endpoint link's mark names, or "".
func (i Info) EndpointOf() string {
	id, ok := strings.CutPrefix(i.Alias, markPrefix+"endpoint ")
	if !ok || i.Kind != "macvlan" {
		return ""
	}
	return id
}

// EndpointLinkName derives the host link name of an endpoint: "mvs" and 12
// characters of the endpoint id (15 bytes, the kernel's limit). Engine
// endpoint ids are 64 hex characters; anything else is hashed so the name
// stays valid. The name only has to be unique and short; ownership is the
// mark's business.
func EndpointLinkName(endpointID string) string {
	if len(endpointID) >= 12 && isLowerHex(endpointID[:12]) {
		return endpointLinkPrefix + endpointID[:12]
	}
	return HashedLinkName(endpointID)
}

// HashedLinkName is "mvs" and 12 hex characters of a hash of the whole id,
// for an endpoint whose EndpointLinkName another endpoint already holds.
func HashedLinkName(endpointID string) string {
	sum := sha256.Sum256([]byte(endpointID))
	return endpointLinkPrefix + hex.EncodeToString(sum[:6])
}

const endpointLinkPrefix = "mvs"

func isLowerHex(s string) bool {
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}
