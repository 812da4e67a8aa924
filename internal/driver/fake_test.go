package driver

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"sync"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
)

// fakeLinks is a link layer in memory. It exists because this machine's
// kernel has no 802.1q links: the VLAN parent logic is tested against it,
// while everything else is also tested against the real kernel
// (lifecycle_test.go). It mimics the kernel rules the driver relies on:
// deleting a link deletes the links stacked on it, a macvlan needs its
// parent, names are unique.
type fakeLinks struct {
	mu        sync.Mutex
	links     map[string]link.Info
	nextIndex int
	noVLAN    bool // behave like this machine's kernel
	calls     []string
	addrs     map[string][]netip.Prefix
	routes    map[string][]netip.Addr
}

func newFakeLinks(names ...string) *fakeLinks {
	f := &fakeLinks{links: map[string]link.Info{}, nextIndex: 1, addrs: map[string][]netip.Prefix{}, routes: map[string][]netip.Addr{}}
	for _, n := range names {
		f.add(link.Info{Name: n, Kind: "veth", MTU: 1500, Up: true})
	}
	return f
}

func (f *fakeLinks) add(i link.Info) {
	f.nextIndex++
	i.Index = f.nextIndex
	f.links[i.Name] = i
}

func (f *fakeLinks) has(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.links[name]
	return ok
}

func (f *fakeLinks) Get(name string) (link.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, ok := f.links[name]
	if !ok {
		return link.Info{}, fmt.Errorf("link %q: %w", name, link.ErrNotFound)
	}
	return i, nil
}

func (f *fakeLinks) List() ([]link.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []link.Info
	for _, i := range f.links {
		out = append(out, i)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Index < out[b].Index })
	return out, nil
}

func (f *fakeLinks) AddMacvlan(s link.MacvlanSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "macvlan "+s.Name)
	p, ok := f.links[s.Parent]
	if !ok {
		return fmt.Errorf("parent %q: %w", s.Parent, link.ErrNotFound)
	}
	if _, ok := f.links[s.Name]; ok {
		return fmt.Errorf("create macvlan %q: file exists", s.Name)
	}
	mtu := s.MTU
	if mtu == 0 {
		mtu = p.MTU
	}
	f.add(link.Info{Name: s.Name, Kind: "macvlan", MacvlanMode: s.Mode, MTU: mtu, ParentIndex: p.Index, MAC: s.MAC, Alias: s.Mark})
	return nil
}

// Rearm is not faked: the driver then creates a link, as it did before
// links were reused (the netlink tests cover reuse).
func (f *fakeLinks) Rearm(name, _ string, _ link.MacvlanSpec) error {
	return fmt.Errorf("fake: reuse %q: %w", name, link.ErrNotReusable)
}

func (f *fakeLinks) AddVLAN(name, parent string, vid int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "vlan "+name)
	if f.noVLAN {
		return fmt.Errorf("create vlan %q: %w", name, link.ErrUnsupported)
	}
	p, ok := f.links[parent]
	if !ok {
		return fmt.Errorf("parent %q: %w", parent, link.ErrNotFound)
	}
	if _, ok := f.links[name]; ok {
		return fmt.Errorf("create vlan %q: file exists", name)
	}
	f.add(link.Info{Name: name, Kind: "vlan", VlanID: vid, MTU: p.MTU, ParentIndex: p.Index, Up: true, Alias: link.ParentMark})
	return nil
}

func (f *fakeLinks) Mark(name, mark string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, ok := f.links[name]
	if !ok {
		return fmt.Errorf("link %q: %w", name, link.ErrNotFound)
	}
	i.Alias = mark
	f.links[name] = i
	return nil
}

// UnicastAddresses lists the MACs of the up macvlan links on the link
// called name, as the kernel's address list of a parent does. The fake has
// one namespace: a link "moved into a container" stays here, and a test sets
// it up or down with setUp.
func (f *fakeLinks) UnicastAddresses(name string) ([]net.HardwareAddr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.links[name]
	if !ok {
		return nil, fmt.Errorf("link %q: %w", name, link.ErrNotFound)
	}
	var out []net.HardwareAddr
	for _, i := range f.links {
		if i.Kind == "macvlan" && i.ParentIndex == p.Index && i.Up {
			out = append(out, i.MAC)
		}
	}
	return out, nil
}

// setUp sets the link called name up or down, as the engine (up, in the
// container) or a user would.
func (f *fakeLinks) setUp(name string, up bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := f.links[name]
	i.Up = up
	f.links[name] = i
}

func (f *fakeLinks) Delete(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "delete "+name)
	f.deleteLocked(name)
	return nil
}

func (f *fakeLinks) deleteLocked(name string) {
	i, ok := f.links[name]
	if !ok {
		return
	}
	delete(f.links, name)
	delete(f.addrs, name)
	delete(f.routes, name)
	for n, c := range f.links {
		if c.ParentIndex == i.Index {
			f.deleteLocked(n)
		}
	}
}

func (f *fakeLinks) Retire(name string, group uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, ok := f.links[name]
	if !ok {
		return fmt.Errorf("link %q: %w", name, link.ErrNotFound)
	}
	i.Up, i.Group = false, group
	f.links[name] = i
	return nil
}

func (f *fakeLinks) DeleteGroup(group uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("delete group %d", group))
	for n, i := range f.links {
		if i.Group == group {
			f.deleteLocked(n)
		}
	}
	return nil
}

// The fake's private lower link is a dummy link, as on kernels that have
// them (this machine's has not: the real-kernel tests see a veth pair).
// Addresses and host routes are kept per link name and go with the link.

func (f *fakeLinks) AddShim(name, parent, mark string) error {
	if err := f.AddMacvlan(link.MacvlanSpec{Name: name, Parent: parent, Mode: link.ModeBridge, Mark: mark}); err != nil {
		return err
	}
	return f.SetUp(name)
}

func (f *fakeLinks) SetUp(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, ok := f.links[name]
	if !ok {
		return fmt.Errorf("link %q: %w", name, link.ErrNotFound)
	}
	i.Up = true
	f.links[name] = i
	return nil
}

func (f *fakeLinks) Addresses(name string) ([]netip.Prefix, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.links[name]; !ok {
		return nil, fmt.Errorf("link %q: %w", name, link.ErrNotFound)
	}
	return slices.Clone(f.addrs[name]), nil
}

func (f *fakeLinks) AddAddress(name string, p netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.links[name]; !ok {
		return fmt.Errorf("link %q: %w", name, link.ErrNotFound)
	}
	if !slices.Contains(f.addrs[name], p) {
		f.addrs[name] = append(f.addrs[name], p)
	}
	return nil
}

func (f *fakeLinks) DeleteAddress(name string, p netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addrs[name] = slices.DeleteFunc(f.addrs[name], func(q netip.Prefix) bool { return q == p })
	return nil
}

func (f *fakeLinks) AddHostRoute(dev string, r link.HostRoute) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.links[dev]; !ok {
		return fmt.Errorf("link %q: %w", dev, link.ErrNotFound)
	}
	if !slices.Contains(f.routes[dev], r.Dst) {
		f.routes[dev] = append(f.routes[dev], r.Dst)
	}
	return nil
}

func (f *fakeLinks) DeleteHostRoute(dev string, dst netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes[dev] = slices.DeleteFunc(f.routes[dev], func(a netip.Addr) bool { return a == dst })
	return nil
}

func (f *fakeLinks) HostRoutes(dev string) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.links[dev]; !ok {
		return nil, fmt.Errorf("link %q: %w", dev, link.ErrNotFound)
	}
	return slices.Clone(f.routes[dev]), nil
}

func (f *fakeLinks) AddPrivateParent(name, _ string, mtu int, mark string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "dummy "+name)
	if _, ok := f.links[name]; ok {
		return "", fmt.Errorf("create private lower link %q: file exists", name)
	}
	if mtu == 0 {
		mtu = 1500
	}
	f.add(link.Info{Name: name, Kind: "dummy", MTU: mtu, Up: true, Alias: mark})
	return "dummy", nil
}
