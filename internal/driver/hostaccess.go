package driver

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
	"github.com/macvlan-swarm/macvlan-swarm/internal/model"
)

// Host access (-o host_access=true) and private lower links (networks
// without a parent). The kernel objects are internal/link's (hostshim.go,
// private.go); this file says when they exist:
//
//   - one shim per parent that at least one host_access network uses,
//     created by the first such CreateNetwork, removed with the last such
//     network, re-created by restore; it carries the HostAddrs of every
//     host_access network on that parent, as /32 and /128;
//   - one host route (link.RouteProtocol) through the shim per address of
//     each joined endpoint of those networks: added in Join, removed with
//     the endpoint (Leave, DeleteEndpoint, reclaim, the network's delete);
//     restore adds the missing ones and deletes the rest;
//   - one private lower link per network without a parent, made by its
//     CreateNetwork, deleted by its DeleteNetwork, re-created by restore.

// ParseHostAddresses reads the node's HOST_ADDRESS setting: comma-separated
// key=address pairs, the key a parent interface or a PARENTS alias, the
// address a bare IPv4 or IPv6 address (at most one of each family per key),
// e.g. "lan=10.1.2.3,lan=fd00:1::3,eth1=192.168.5.9". A host_access network
// whose parent has no address of its own in the network's subnet puts that
// address on its shim.
func ParseHostAddresses(v string) (map[string][]netip.Addr, error) {
	pairs, err := settingPairs("HOST_ADDRESS", v, "interface=address", "HOST_ADDRESS=lan=10.1.2.3,lan=fd00::3")
	if err != nil {
		return nil, err
	}
	out := map[string][]netip.Addr{}
	for _, kv := range pairs {
		key, val, pair := kv[0], kv[1], kv[0]+"="+kv[1]
		if err := link.CheckName(key); err != nil {
			return nil, fmt.Errorf("HOST_ADDRESS entry %q: %w; the key is a parent interface or a PARENTS alias", pair, err)
		}
		a, err := netip.ParseAddr(val)
		if err != nil || a.Zone() != "" || a.Is4In6() {
			return nil, fmt.Errorf("HOST_ADDRESS entry %q: %q is not an IPv4 or IPv6 address (give a bare address such as 10.1.2.3, without a prefix length)", pair, val)
		}
		if !a.IsGlobalUnicast() && !a.IsPrivate() {
			return nil, fmt.Errorf("HOST_ADDRESS entry %q: %s is not a unicast address a LAN host can have (not loopback, link-local, multicast or unspecified)", pair, a)
		}
		for _, have := range out[key] {
			if have.Is4() == a.Is4() {
				return nil, fmt.Errorf("HOST_ADDRESS gives %q two %s addresses (%s and %s): give one per family", key, family(a), have, a)
			}
		}
		out[key] = append(out[key], a)
	}
	return out, nil
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// pickHostAddrs chooses the shim's address of each family of n's pools: the
// parent's own address inside one of n's subnets, or else the node's
// HOST_ADDRESS entry for the parent (by name or PARENTS alias), which must
// lie inside one of them. parentAddrs are the parent's addresses (none for a
// parent about to be created). The caller holds the state lock.
func (d *Driver) pickHostAddrs(n *model.Network, parent string, parentAddrs []netip.Prefix) ([]netip.Addr, error) {
	keys := []string{parent}
	for alias, name := range d.parents {
		if name == parent {
			keys = append(keys, alias)
		}
	}
	slices.Sort(keys[1:])
	var out []netip.Addr
	for _, pools := range [][]model.Pool{n.IPv4, n.IPv6} {
		if len(pools) == 0 {
			continue
		}
		inPools := func(a netip.Addr) bool {
			for _, p := range pools {
				if p.Subnet.Contains(a) {
					return true
				}
			}
			return false
		}
		fam := family(pools[0].Subnet.Addr())
		var pick netip.Addr
		for _, p := range parentAddrs {
			if a := p.Addr(); !a.IsLinkLocalUnicast() && inPools(a) {
				pick = a
				break
			}
		}
		var outside []string
		for _, k := range keys {
			if pick.IsValid() {
				break
			}
			for _, a := range d.hostAddrs[k] {
				if a.Is4() != pools[0].Subnet.Addr().Is4() {
					continue
				}
				if inPools(a) {
					pick = a
					break
				}
				outside = append(outside, fmt.Sprintf("%s=%s", k, a))
			}
		}
		if pick.IsValid() {
			out = append(out, pick)
			continue
		}
		if len(outside) > 0 {
			return nil, fmt.Errorf("host_access: HOST_ADDRESS on %s gives %s, outside the network's subnets %s; give an address inside one of them (reserved with --aux-address)", d.onNode(), strings.Join(outside, ", "), subnets(n))
		}
		return nil, fmt.Errorf("host_access: parent %q on %s has no %s address in the network's subnets %s, so the node has no address to reach its containers from; give the parent one, or give this node one with docker plugin disable -f PLUGIN, docker plugin set PLUGIN HOST_ADDRESS=%s=<address in the subnet>, docker plugin enable PLUGIN", parent, d.onNode(), fam, subnets(n), keys[len(keys)-1])
	}
	return out, nil
}

func hostPrefix(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

// ensureShim makes sure the shim on parent exists, is up and carries addrs.
// adopt lets it mark an unmarked bridge-mode macvlan of the shim's name on
// parent, which is what a crash between creating and marking the shim
// leaves: only restore passes it, for a parent a saved network names.
func (d *Driver) ensureShim(parent string, addrs []netip.Addr, adopt bool) error {
	name := link.ShimLinkName(parent)
	info, err := d.links.Get(name)
	switch {
	case errors.Is(err, link.ErrNotFound):
		if err := d.links.AddShim(name, parent, link.ShimMark(parent)); err != nil {
			// Another request may have made it a moment ago.
			if info, gerr := d.links.Get(name); gerr != nil || info.ShimOf() != parent {
				return fmt.Errorf("create the host shim %q on parent %q: %w", name, parent, err)
			}
		} else {
			d.log.Info("created host shim", "link", name, "parent", parent)
		}
	case err != nil:
		return fmt.Errorf("look up the host shim %q: %w", name, err)
	case info.ShimOf() == parent:
		if !info.Up {
			if err := d.links.SetUp(name); err != nil {
				return err
			}
		}
	case adopt && info.Alias == "" && d.isShimShape(info, parent):
		if err := d.links.Mark(name, link.ShimMark(parent)); err != nil {
			return err
		}
		if err := d.links.SetUp(name); err != nil {
			return err
		}
		d.log.Info("marked the host shim of a saved network", "link", name, "parent", parent)
	default:
		return fmt.Errorf("host_access: a link named %q that is not macvlan-swarm's shim for parent %q exists on %s (alias %q); rename or remove it", name, parent, d.onNode(), info.Alias)
	}
	for _, a := range addrs {
		if err := d.links.AddAddress(name, hostPrefix(a)); err != nil {
			return fmt.Errorf("host shim %q: %w", name, err)
		}
	}
	return nil
}

// isShimShape reports whether info is a bridge-mode macvlan on parent.
func (d *Driver) isShimShape(info link.Info, parent string) bool {
	p, err := d.links.Get(parent)
	return err == nil && info.Kind == "macvlan" && info.MacvlanMode == link.ModeBridge && info.ParentIndex == p.Index
}

// shimAddrs is what the shim on parent must carry: the HostAddrs of every
// host_access network on it. The caller holds the state lock.
func (d *Driver) shimAddrs(parent string) []netip.Addr {
	var out []netip.Addr
	for _, n := range d.st.networks {
		if n.HostAccess && n.Parent == parent {
			for _, a := range n.HostAddrs {
				if !slices.Contains(out, a) {
					out = append(out, a)
				}
			}
		}
	}
	return out
}

// syncShim brings the shim on parent in line with the saved networks after
// one of them went: deleted when no host_access network uses parent any
// more, otherwise stripped of the host addresses (/32, /128) no network
// wants. The caller holds the state lock.
func (d *Driver) syncShim(parent string) {
	name := link.ShimLinkName(parent)
	info, err := d.links.Get(name)
	if errors.Is(err, link.ErrNotFound) {
		return
	}
	if err != nil {
		d.log.Warn("could not look up the host shim", "link", name, "err", err)
		return
	}
	if info.ShimOf() != parent {
		return // not ours: left alone
	}
	want := d.shimAddrs(parent)
	if len(want) == 0 {
		if err := d.links.Delete(name); err != nil {
			d.log.Warn("could not delete the host shim", "link", name, "err", err)
			return
		}
		d.log.Info("deleted host shim, no host_access network uses its parent any more", "link", name, "parent", parent)
		return
	}
	have, err := d.links.Addresses(name)
	if err != nil {
		d.log.Warn("could not list the host shim's addresses", "link", name, "err", err)
		return
	}
	for _, p := range have {
		if p.IsSingleIP() && !p.Addr().IsLinkLocalUnicast() && !slices.Contains(want, p.Addr()) {
			if err := d.links.DeleteAddress(name, p); err != nil {
				d.log.Warn("could not remove an address from the host shim", "link", name, "addr", p, "err", err)
			}
		}
	}
}

// endpointRoutes are the host routes of a joined endpoint of a host_access
// network: one per address, with the shim's address of that family as the
// source.
func endpointRoutes(n *model.Network, e *model.Endpoint) []link.HostRoute {
	var out []link.HostRoute
	for _, a := range []netip.Prefix{e.IPv4, e.IPv6} {
		if !a.IsValid() {
			continue
		}
		r := link.HostRoute{Dst: a.Addr()}
		for _, h := range n.HostAddrs {
			if h.Is4() == a.Addr().Is4() {
				r.Src = h
				break
			}
		}
		out = append(out, r)
	}
	return out
}

// addHostRoutes routes e's addresses through the shim of its network's
// parent, re-creating the shim if it went (deleted behind the driver's back).
// On failure no route of e is left.
func (d *Driver) addHostRoutes(n *model.Network, e *model.Endpoint) error {
	if !n.HostAccess {
		return nil
	}
	shim := link.ShimLinkName(n.Parent)
	if err := d.ensureShim(n.Parent, n.HostAddrs, false); err != nil {
		return err
	}
	for _, r := range endpointRoutes(n, e) {
		if err := d.links.AddHostRoute(shim, r); err != nil {
			d.dropHostRoutes(n, e)
			return fmt.Errorf("host_access: %w", err)
		}
	}
	return nil
}

// dropHostRoutes deletes e's host routes; a route that is gone is fine.
func (d *Driver) dropHostRoutes(n *model.Network, e *model.Endpoint) {
	if n == nil || !n.HostAccess {
		return
	}
	shim := link.ShimLinkName(n.Parent)
	for _, r := range endpointRoutes(n, e) {
		if err := d.links.DeleteHostRoute(shim, r.Dst); err != nil {
			d.log.Warn("could not delete a host route", "link", shim, "dst", r.Dst, "ep", e.ID, "err", err)
		}
	}
}

// restoreHostAccess runs at start-up, after the parents are back: shims no
// host_access network uses are deleted; each one a network needs is made
// (after a reboot) and given its addresses; its routes become exactly those
// of the joined endpoints of its networks. infos is the host's link list.
// The caller holds the state lock.
func (d *Driver) restoreHostAccess(infos []link.Info) {
	wanted := map[string]bool{}
	for _, n := range d.st.networks {
		if n.HostAccess {
			wanted[n.Parent] = true
		}
	}
	for _, i := range infos {
		if p := i.ShimOf(); p != "" && (!wanted[p] || i.Name != link.ShimLinkName(p)) {
			if err := d.links.Delete(i.Name); err != nil {
				d.log.Warn("could not delete a host shim no network uses", "link", i.Name, "err", err)
				continue
			}
			d.log.Info("deleted a host shim no network uses", "link", i.Name, "parent", p)
		}
	}
	for parent := range wanted {
		if err := d.ensureShim(parent, d.shimAddrs(parent), true); err != nil {
			d.log.Error("could not restore the host shim; this node cannot reach its containers on that parent", "parent", parent, "err", err)
			continue
		}
		d.syncShim(parent)
		shim := link.ShimLinkName(parent)
		want := map[netip.Addr]link.HostRoute{}
		for _, e := range d.st.endpoints {
			n := d.st.networks[e.NetworkID]
			if n == nil || !n.HostAccess || n.Parent != parent || e.Sandbox.Key == "" {
				continue
			}
			for _, r := range endpointRoutes(n, e) {
				want[r.Dst] = r
			}
		}
		have, err := d.links.HostRoutes(shim)
		if err != nil {
			d.log.Warn("could not list the host shim's routes", "link", shim, "err", err)
			continue
		}
		added, removed := 0, 0
		for _, dst := range have {
			if _, ok := want[dst]; ok {
				delete(want, dst)
				continue
			}
			if err := d.links.DeleteHostRoute(shim, dst); err != nil {
				d.log.Warn("could not delete a stale host route", "link", shim, "dst", dst, "err", err)
				continue
			}
			removed++
		}
		for _, r := range want {
			if err := d.links.AddHostRoute(shim, r); err != nil {
				d.log.Warn("could not restore a host route", "link", shim, "dst", r.Dst, "err", err)
				continue
			}
			added++
		}
		d.log.Info("host shim restored", "link", shim, "parent", parent, "routes_added", added, "routes_removed", removed)
	}
}

// privateParent is the lower link of network n, which has no parent option:
// to be created, or already there and marked for n (a network created
// again). A link of that name that is not n's is refused. The caller holds
// the state lock.
func (d *Driver) privateParent(n *model.Network) (resolvedParent, error) {
	name, _ := link.PrivateParentNames(n.ID)
	info, err := d.links.Get(name)
	switch {
	case errors.Is(err, link.ErrNotFound):
		return resolvedParent{Name: name, Create: true, DriverOwned: true}, nil
	case err != nil:
		return resolvedParent{}, fmt.Errorf("look up the private lower link %q: %w", name, err)
	case info.PrivateParentOf() == n.ID:
		return resolvedParent{Name: name, MTU: info.MTU, DriverOwned: true}, nil
	}
	return resolvedParent{}, fmt.Errorf("a network without parent needs the link name %q on %s, but a link of that name that macvlan-swarm did not make for network %s is there (alias %q); rename or remove it", name, d.onNode(), short(n.ID), info.Alias)
}

// createPrivateParent makes n's private lower link.
func (d *Driver) createPrivateParent(n *model.Network) error {
	name, peer := link.PrivateParentNames(n.ID)
	kind, err := d.links.AddPrivateParent(name, peer, n.MTU, link.PrivateParentMark(n.ID))
	if err != nil {
		return err
	}
	d.log.Info("created private lower link", "net", n.ID, "link", name, "kind", kind)
	return nil
}

// releasePrivateParent deletes n's private lower link, after checking it
// still carries n's mark (its veth peer goes with it).
func (d *Driver) releasePrivateParent(n *model.Network) {
	info, err := d.links.Get(n.Parent)
	if errors.Is(err, link.ErrNotFound) {
		return
	}
	if err != nil {
		d.log.Warn("could not check the private lower link before deleting it; left in place", "link", n.Parent, "err", err)
		return
	}
	if info.PrivateParentOf() != n.ID {
		d.log.Warn("the private lower link of a network does not carry its mark; left in place", "link", n.Parent, "alias", info.Alias)
		return
	}
	if err := d.links.Delete(n.Parent); err != nil {
		d.log.Warn("could not delete the private lower link", "link", n.Parent, "err", err)
		return
	}
	d.log.Info("deleted private lower link", "net", n.ID, "link", n.Parent)
}

// restorePrivateParents re-creates the private lower links of saved
// networks that vanished (a reboot) and deletes marked ones no saved network
// owns. infos is the host's link list. The caller holds the state lock.
func (d *Driver) restorePrivateParents(infos []link.Info) {
	present := map[string]link.Info{}
	for _, i := range infos {
		present[i.Name] = i
	}
	for _, i := range infos {
		id := i.PrivateParentOf()
		if id == "" {
			continue
		}
		if n := d.st.networks[id]; n != nil && n.PrivateParent {
			if name, peer := link.PrivateParentNames(id); i.Name == name || i.Name == peer {
				continue
			}
		}
		if err := d.links.Delete(i.Name); err != nil {
			d.log.Warn("could not delete a private lower link no network owns", "link", i.Name, "err", err)
			continue
		}
		d.log.Info("deleted a private lower link no network owns", "link", i.Name, "net", id)
	}
	for _, n := range d.st.networks {
		if !n.PrivateParent {
			continue
		}
		if _, ok := present[n.Parent]; ok {
			continue
		}
		if err := d.createPrivateParent(n); err != nil {
			d.log.Error("could not re-create the private lower link after restart", "net", n.ID, "link", n.Parent, "err", err)
		}
	}
}
