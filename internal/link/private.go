package link

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
)

// AddPrivateParent creates the private lower link name of a network without
// a parent: containers on this node sit on it as macvlans and reach each
// other, and no frame reaches a real interface. It is a dummy link where the
// kernel has them, otherwise a veth pair name/peer with nothing attached to
// peer (a macvlan needs a lower link that is up and has a carrier, which a
// lone veth end lacks). Every link made carries mark and is up. mtu 0 keeps
// the kernel's default. It returns the kind made; on failure nothing is left.
func (h *Handle) AddPrivateParent(name, peer string, mtu int, mark string) (kind string, err error) {
	wrap := func(err error) error {
		return fmt.Errorf("create private lower link %q: %w", name, err)
	}
	for _, n := range []string{name, peer} {
		if err := CheckName(n); err != nil {
			return "", wrap(err)
		}
	}
	if mark == "" {
		return "", wrap(errors.New("no ownership mark: every link macvlan-swarm makes carries one"))
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	attrs.MTU = mtu
	var l netlink.Link = &netlink.Dummy{LinkAttrs: attrs}
	kind = "dummy"
	err = h.nl.LinkAdd(l)
	if isUnsupported(err) {
		l, kind = &netlink.Veth{LinkAttrs: attrs, PeerName: peer}, "veth"
		err = h.nl.LinkAdd(l)
	}
	if err != nil {
		return "", wrap(err)
	}
	// Deleting either end of a veth deletes both.
	undo := func(cause error) error {
		if delErr := h.nl.LinkDel(l); delErr != nil && !isNotFound(delErr) {
			return wrap(errors.Join(cause, fmt.Errorf("roll back: delete: %w", delErr)))
		}
		return wrap(cause)
	}
	if err := h.markNew(l, mark, wrap); err != nil {
		return "", err
	}
	links := []string{name}
	if kind == "veth" {
		links = append(links, peer)
		if err := h.Mark(peer, mark); err != nil {
			return "", undo(err)
		}
	}
	for _, n := range links {
		if err := h.SetUp(n); err != nil {
			return "", undo(err)
		}
	}
	return kind, nil
}
