package link

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Host access
//
// The kernel never passes frames between a macvlan's lower link and the
// macvlans stacked on it, so a node cannot reach its own containers through
// their parent. A "shim" fixes that: one more macvlan in bridge mode on the
// same parent, in the host namespace, carrying an address of the host, and a
// host route (/32 or /128) per local container through it. Bridge-mode
// siblings talk to each other inside the kernel, so the host's packets reach
// the container and its answers come back through the shim. The functions
// here make the shim, its addresses and its routes; driver/hostaccess.go
// decides when.

// AddShim creates the shim called name on parent (a macvlan in bridge mode
// with the parent's MTU and a kernel-chosen MAC), marks it with mark and
// brings it up. If it cannot be marked or brought up it is deleted again.
func (h *Handle) AddShim(name, parent, mark string) error {
	if err := h.AddMacvlan(MacvlanSpec{Name: name, Parent: parent, Mode: ModeBridge, Mark: mark}); err != nil {
		return err
	}
	if err := h.SetUp(name); err != nil {
		if delErr := h.Delete(name); delErr != nil {
			return errors.Join(err, fmt.Errorf("roll back: %w", delErr))
		}
		return err
	}
	return nil
}

// SetUp brings the link called name up.
func (h *Handle) SetUp(name string) error {
	l, err := h.byName(name)
	if err != nil {
		return fmt.Errorf("bring up: %w", err)
	}
	if err := h.nl.LinkSetUp(l); err != nil {
		return fmt.Errorf("bring up link %q: %w", name, err)
	}
	return nil
}

// Addresses returns the IPv4 and IPv6 addresses of the link called name,
// each with its prefix length.
func (h *Handle) Addresses(name string) ([]netip.Prefix, error) {
	l, err := h.byName(name)
	if err != nil {
		return nil, err
	}
	var addrs []netlink.Addr
	for range dumpRetries {
		addrs, err = h.nl.AddrList(l, netlink.FAMILY_ALL)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list the addresses of %q: %w", name, err)
	}
	out := make([]netip.Prefix, 0, len(addrs))
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// AddAddress gives the link called name the address p. An address it
// already has is not an error. IPv6 addresses skip duplicate address
// detection: a shim borrows the address its parent already holds.
func (h *Handle) AddAddress(name string, p netip.Prefix) error {
	l, err := h.byName(name)
	if err != nil {
		return fmt.Errorf("add address %s: %w", p, err)
	}
	a := &netlink.Addr{IPNet: ipNet(p)}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	if err := h.nl.AddrAdd(l, a); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add address %s to %q: %w", p, name, err)
	}
	return nil
}

// DeleteAddress takes the address p off the link called name. An address or
// link that is gone is not an error.
func (h *Handle) DeleteAddress(name string, p netip.Prefix) error {
	l, err := h.byName(name)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete address %s: %w", p, err)
	}
	if err := h.nl.AddrDel(l, &netlink.Addr{IPNet: ipNet(p)}); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !isNotFound(err) {
		return fmt.Errorf("delete address %s from %q: %w", p, name, err)
	}
	return nil
}

// HostRoute is a route to one address (/32 or /128) through a link, made by
// macvlan-swarm (RouteProtocol, main table, scope link).
type HostRoute struct {
	Dst netip.Addr
	Src netip.Addr // the preferred source; invalid: the kernel's choice
}

// AddHostRoute adds a route to r.Dst through the link called dev, marked
// with RouteProtocol. A route of ours already there is success; any other
// route to that exact destination in the main table is someone else's and
// is left alone: the error says so.
func (h *Handle) AddHostRoute(dev string, r HostRoute) error {
	l, err := h.byName(dev)
	if err != nil {
		return fmt.Errorf("add route to %s: %w", r.Dst, err)
	}
	rt := hostRoute(l.Attrs().Index, r)
	err = h.nl.RouteAdd(rt)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add route to %s through %q: %w", r.Dst, dev, err)
	}
	routes, lerr := h.routes(&netlink.Route{Dst: rt.Dst, Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_DST|netlink.RT_FILTER_TABLE, familyOf(r.Dst))
	if lerr != nil {
		return fmt.Errorf("add route to %s through %q: %w", r.Dst, dev, lerr)
	}
	for _, have := range routes {
		if have.LinkIndex == rt.LinkIndex && int(have.Protocol) == RouteProtocol {
			return nil
		}
	}
	return fmt.Errorf("add route to %s through %q: a route to %s that macvlan-swarm did not make is in the main table; it was left alone (remove it, or give the container another address)", r.Dst, dev, r.Dst)
}

// DeleteHostRoute deletes the route to dst through dev if it is one of ours
// (the kernel matches the protocol on delete). A route or link that is gone
// is not an error.
func (h *Handle) DeleteHostRoute(dev string, dst netip.Addr) error {
	l, err := h.byName(dev)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete route to %s: %w", dst, err)
	}
	err = h.nl.RouteDel(hostRoute(l.Attrs().Index, HostRoute{Dst: dst}))
	if err != nil && !errors.Is(err, unix.ESRCH) && !isNotFound(err) {
		return fmt.Errorf("delete route to %s through %q: %w", dst, dev, err)
	}
	return nil
}

// HostRoutes lists the destinations of this project's routes (RouteProtocol)
// through the link called dev, IPv4 and IPv6.
func (h *Handle) HostRoutes(dev string) ([]netip.Addr, error) {
	l, err := h.byName(dev)
	if err != nil {
		return nil, err
	}
	filter := &netlink.Route{LinkIndex: l.Attrs().Index, Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN}
	var out []netip.Addr
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := h.routes(filter, netlink.RT_FILTER_OIF|netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE, family)
		if err != nil {
			return nil, fmt.Errorf("list the routes through %q: %w", dev, err)
		}
		for _, r := range routes {
			if p, ok := prefixOf(r.Dst); ok && p.IsSingleIP() {
				out = append(out, p.Addr())
			}
		}
	}
	return out, nil
}

func (h *Handle) routes(filter *netlink.Route, mask uint64, family int) ([]netlink.Route, error) {
	var routes []netlink.Route
	var err error
	for range dumpRetries {
		routes, err = h.nl.RouteListFiltered(family, filter, mask)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	return routes, err
}

func hostRoute(linkIndex int, r HostRoute) *netlink.Route {
	rt := &netlink.Route{
		LinkIndex: linkIndex,
		Dst:       ipNet(netip.PrefixFrom(r.Dst, r.Dst.BitLen())),
		Scope:     netlink.SCOPE_LINK,
		Protocol:  RouteProtocol,
		Table:     unix.RT_TABLE_MAIN,
	}
	if r.Src.IsValid() {
		rt.Src = net.IP(r.Src.AsSlice())
	}
	return rt
}

func familyOf(a netip.Addr) int {
	if a.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	if v4 := n.IP.To4(); v4 != nil {
		a = netip.AddrFrom4([4]byte(v4))
	}
	bits, _ := n.Mask.Size()
	return netip.PrefixFrom(a, bits), true
}
