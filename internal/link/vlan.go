package link

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
)

// AddVLAN creates the 802.1q link name on parent with VLAN id vid, marks it
// with ParentMark and brings it up, since macvlans stacked on it need a
// running lower device. If it cannot be marked or brought up it is deleted
// again, so a failed call leaves nothing behind. On a kernel without 802.1q support the error wraps ErrUnsupported.
func (h *Handle) AddVLAN(name, parent string, vid int) error {
	wrap := func(err error) error {
		return fmt.Errorf("create vlan %q (id %d) on %q: %w", name, vid, parent, err)
	}
	if err := CheckName(name); err != nil {
		return wrap(err)
	}
	if vid < MinVLAN || vid > MaxVLAN {
		return wrap(fmt.Errorf("vlan id %d out of range (accepted: %d-%d)", vid, MinVLAN, MaxVLAN))
	}
	p, err := h.parent(parent)
	if err != nil {
		return wrap(err)
	}

	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	attrs.ParentIndex = p.Attrs().Index
	v := &netlink.Vlan{LinkAttrs: attrs, VlanId: vid, VlanProtocol: netlink.VLAN_PROTOCOL_8021Q}
	if err := h.nl.LinkAdd(v); err != nil {
		if isUnsupported(err) {
			return wrap(fmt.Errorf("%w (%w)", ErrUnsupported, err))
		}
		return wrap(err)
	}
	// LinkAdd recorded the new link's index in v, so the calls below
	// address it by index rather than by a name someone could reuse.
	if err := h.markNew(v, ParentMark, wrap); err != nil {
		return err
	}
	if err := h.nl.LinkSetUp(v); err != nil {
		upErr := fmt.Errorf("bring up: %w", err)
		if delErr := h.nl.LinkDel(v); delErr != nil && !isNotFound(delErr) {
			return wrap(errors.Join(upErr, fmt.Errorf("roll back: delete: %w", delErr)))
		}
		return wrap(upErr)
	}
	return nil
}
