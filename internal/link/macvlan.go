package link

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
)

// maxNameLen is the kernel's IFNAMSIZ minus the terminating NUL.
const maxNameLen = 15

// MacvlanSpec describes a macvlan link to create.
//
// A passthru macvlan always takes its parent's address: the kernel accepts
// MAC in that mode but silently ignores it. Callers that report an
// endpoint's address should read it back with Get.
type MacvlanSpec struct {
	Name   string           // at most 15 bytes
	Parent string           // name of the lower link
	Mode   string           // bridge (also when empty), private, vepa or passthru
	MTU    int              // 0 = the kernel's default, the parent's MTU
	MAC    net.HardwareAddr // nil = a random address chosen by the kernel
}

// creatableModes are the modes AddMacvlan accepts. "source" is left out on
// purpose: it needs a MAC allow-list the driver never sets up.
var creatableModes = map[string]netlink.MacvlanMode{
	"bridge":   netlink.MACVLAN_MODE_BRIDGE,
	"private":  netlink.MACVLAN_MODE_PRIVATE,
	"vepa":     netlink.MACVLAN_MODE_VEPA,
	"passthru": netlink.MACVLAN_MODE_PASSTHRU,
}

func modeName(m netlink.MacvlanMode) string {
	switch m {
	case netlink.MACVLAN_MODE_BRIDGE:
		return "bridge"
	case netlink.MACVLAN_MODE_PRIVATE:
		return "private"
	case netlink.MACVLAN_MODE_VEPA:
		return "vepa"
	case netlink.MACVLAN_MODE_PASSTHRU:
		return "passthru"
	case netlink.MACVLAN_MODE_SOURCE:
		return "source"
	}
	return fmt.Sprintf("unknown(%d)", m)
}

// AddMacvlan creates a macvlan link on spec.Parent. The link is left
// administratively down: the engine moves it into the container's namespace
// and brings it up there, and a link that is up on the host for a moment
// could already take traffic meant for the container.
func (h *Handle) AddMacvlan(spec MacvlanSpec) error {
	wrap := func(err error) error {
		return fmt.Errorf("create macvlan %q on %q: %w", spec.Name, spec.Parent, err)
	}
	if err := checkName(spec.Name); err != nil {
		return wrap(err)
	}
	modeStr := spec.Mode
	if modeStr == "" {
		modeStr = "bridge"
	}
	mode, ok := creatableModes[modeStr]
	if !ok {
		return wrap(fmt.Errorf("unknown mode %q (accepted: bridge, private, vepa, passthru)", spec.Mode))
	}
	if spec.MTU < 0 {
		return wrap(fmt.Errorf("invalid mtu %d (0 means the parent's)", spec.MTU))
	}
	if spec.MAC != nil {
		if err := checkMAC(spec.MAC); err != nil {
			return wrap(err)
		}
	}

	parent, err := h.parent(spec.Parent)
	if err != nil {
		return wrap(err)
	}

	// NewLinkAttrs, not a zero LinkAttrs: its TxQLen of -1 means "kernel
	// default", whereas 0 would ask for an empty transmit queue.
	attrs := netlink.NewLinkAttrs()
	attrs.Name = spec.Name
	attrs.ParentIndex = parent.Attrs().Index
	attrs.MTU = spec.MTU
	attrs.HardwareAddr = spec.MAC
	if err := h.nl.LinkAdd(&netlink.Macvlan{LinkAttrs: attrs, Mode: mode}); err != nil {
		if isUnsupported(err) {
			return wrap(fmt.Errorf("%w (%w)", ErrUnsupported, err))
		}
		return wrap(err)
	}
	return nil
}

func checkName(name string) error {
	if name == "" {
		return errors.New("empty link name")
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("link name %q is %d bytes long; at most %d are allowed", name, len(name), maxNameLen)
	}
	return nil
}

// checkMAC rejects what the kernel would refuse with a bare EINVAL or
// EADDRNOTAVAIL, so the user learns which value was wrong.
func checkMAC(mac net.HardwareAddr) error {
	if len(mac) != 6 {
		return fmt.Errorf("mac address %q is not a 6-byte Ethernet address", mac)
	}
	if mac[0]&1 != 0 {
		return fmt.Errorf("mac address %s is a multicast address; a unicast one is needed", mac)
	}
	if mac.String() == "00:00:00:00:00:00" {
		return fmt.Errorf("mac address %s is all zeros", mac)
	}
	return nil
}
