package link

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
)

// MacvlanSpec describes a macvlan link to create.
//
// A passthru macvlan always takes its parent's address: the kernel accepts
// MAC in that mode but silently ignores it. Callers that report an
// endpoint's address should read it back with Get.
type MacvlanSpec struct {
	Name   string           // at most MaxNameLen bytes
	Parent string           // name of the lower link
	Mode   Mode             // bridge when empty
	MTU    int              // 0 = the kernel's default, the parent's MTU
	MAC    net.HardwareAddr // nil = a random address chosen by the kernel
	// Mark is the ownership alias the link is given (EndpointMark).
	Mark string
}

var kernelModes = map[Mode]netlink.MacvlanMode{
	ModeBridge:   netlink.MACVLAN_MODE_BRIDGE,
	ModePrivate:  netlink.MACVLAN_MODE_PRIVATE,
	ModeVEPA:     netlink.MACVLAN_MODE_VEPA,
	ModePassthru: netlink.MACVLAN_MODE_PASSTHRU,
}

func modeName(m netlink.MacvlanMode) Mode {
	for name, km := range kernelModes {
		if km == m {
			return name
		}
	}
	if m == netlink.MACVLAN_MODE_SOURCE {
		return "source"
	}
	return Mode(fmt.Sprintf("unknown(%d)", m))
}

// check validates what AddMacvlan and Rearm both need of a spec (name, mode,
// MTU, MAC when given, mark) and returns the kernel's macvlan mode.
func (spec MacvlanSpec) check() (netlink.MacvlanMode, error) {
	if err := CheckName(spec.Name); err != nil {
		return 0, err
	}
	mode := spec.Mode
	if mode == "" {
		mode = ModeBridge
	}
	km, ok := kernelModes[mode]
	if !ok {
		return 0, fmt.Errorf("unknown mode %q", spec.Mode)
	}
	if spec.MTU < 0 {
		return 0, fmt.Errorf("invalid mtu %d (0 means the parent's)", spec.MTU)
	}
	if spec.MAC != nil {
		if err := CheckMAC(spec.MAC); err != nil {
			return 0, err
		}
	}
	if spec.Mark == "" {
		return 0, errors.New("no ownership mark: every link macvlan-swarm makes carries one")
	}
	return km, nil
}

// AddMacvlan creates a macvlan link on spec.Parent and gives it spec.Mark.
// The link is left administratively down: the engine moves it into the
// container's namespace and brings it up there, and a link that is up on the
// host for a moment could already take traffic meant for the container.
//
// The kernel ignores IFLA_IFALIAS in a create request (checked on this
// project's kernel), so the mark is a second request; if it fails the link
// is deleted again. A crash between the two leaves an unmarked link whose
// name, parent and MAC match a saved endpoint: the driver's start-up repair
// recognises it by that record and marks it (see driver/restore.go).
func (h *Handle) AddMacvlan(spec MacvlanSpec) error {
	wrap := func(err error) error {
		return fmt.Errorf("create macvlan %q on %q: %w", spec.Name, spec.Parent, err)
	}
	km, err := spec.check()
	if err != nil {
		return wrap(err)
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
	l := &netlink.Macvlan{LinkAttrs: attrs, Mode: km}
	if err := h.nl.LinkAdd(l); err != nil {
		if isUnsupported(err) {
			return wrap(fmt.Errorf("%w (%w)", ErrUnsupported, err))
		}
		return wrap(err)
	}
	return h.markNew(l, spec.Mark, wrap)
}

// markNew gives a link just created its mark, or deletes it: a link of ours
// must never exist unmarked for longer than a crash between two requests.
func (h *Handle) markNew(l netlink.Link, mark string, wrap func(error) error) error {
	err := h.nl.LinkSetAlias(l, mark)
	if err == nil {
		return nil
	}
	markErr := fmt.Errorf("set ownership mark: %w", err)
	if delErr := h.nl.LinkDel(l); delErr != nil && !isNotFound(delErr) {
		return wrap(errors.Join(markErr, fmt.Errorf("roll back: delete: %w", delErr)))
	}
	return wrap(markErr)
}

// Mark gives an existing link an ownership mark. The driver uses it only for
// a link it recognised by a saved record (see markNew).
func (h *Handle) Mark(name, mark string) error {
	l, err := h.byName(name)
	if err != nil {
		return fmt.Errorf("mark: %w", err)
	}
	if err := h.nl.LinkSetAlias(l, mark); err != nil {
		return fmt.Errorf("mark link %q: %w", name, err)
	}
	return nil
}
