package driver

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
	"github.com/macvlan-swarm/macvlan-swarm/internal/model"
)

// Status is the driver's part of what GET /status on the plugin's socket
// answers: the networks and endpoints it holds on this node, the reaper's
// queue, and where the kernel disagrees with the saved state (drift). The
// daemon adds its version, uptime, settings and last errors
// (cmd/macvlan-swarm).
type Status struct {
	Scope     string           `json:"scope"`
	Node      string           `json:"node"`
	Networks  []NetworkStatus  `json:"networks"`
	Endpoints []EndpointStatus `json:"endpoints"`
	// ReaperPending counts host links queued for the reaper's next batch;
	// ReaperLinks names them, and any the reaper is deleting now.
	ReaperPending int      `json:"reaper_pending"`
	ReaperLinks   []string `json:"reaper_links"`
	// Drift lists disagreements between the saved state and the kernel
	// that held on two looks 200 ms apart; empty when they agree.
	Drift []Drift `json:"drift"`
	// DriftErrors says what could not be checked, and why.
	DriftErrors []string `json:"drift_errors,omitempty"`
}

// NetworkStatus is one network in Status.
type NetworkStatus struct {
	ID            string `json:"id"`
	ParentSpec    string `json:"parent_spec"`
	Parent        string `json:"parent"`
	ParentCreated bool   `json:"parent_created"`
	Mode          string `json:"mode"`
	MTU           int    `json:"mtu,omitempty"`
	Internal      bool   `json:"internal"`
	HostAccess    bool   `json:"host_access"`
	Endpoints     int    `json:"endpoints"`
}

// EndpointStatus is one endpoint in Status.
type EndpointStatus struct {
	ID      string    `json:"id"`
	Network string    `json:"network"`
	IPv4    string    `json:"ipv4,omitempty"`
	IPv6    string    `json:"ipv6,omitempty"`
	MAC     string    `json:"mac"`
	Link    string    `json:"link"`
	Created time.Time `json:"created"`
	Joined  bool      `json:"joined"`
	Sandbox string    `json:"sandbox,omitempty"`
}

// The kinds of Drift.
const (
	// DriftLinkMissing: an endpoint joined to a container, but its MAC is
	// not on its parent's address list, so its link is gone or down: it was
	// deleted or set down inside the container, or it came back to the
	// host namespace and was never deleted.
	DriftLinkMissing = "link_missing"
	// DriftOrphanLink: a host link carrying macvlan-swarm's mark that no
	// record accounts for and the reaper does not hold.
	DriftOrphanLink = "orphan_link"
	// DriftParentMissing: a network's parent link is gone (for a parent
	// the plugin created: deleted behind its back).
	DriftParentMissing = "parent_missing"
)

// Drift is one disagreement between the saved state and the kernel.
type Drift struct {
	Kind     string `json:"kind"`
	Network  string `json:"network,omitempty"`
	Endpoint string `json:"endpoint,omitempty"`
	Link     string `json:"link"`
	Detail   string `json:"detail"`
}

// driftGrace is how long after Join an endpoint's link may still be down
// without being drift: the engine moves it into the container and sets it up
// after Join returns.
const driftGrace = 5 * time.Second

// driftRecheck is the pause between the two looks that drift must survive:
// a request in flight (an endpoint deleted, its link not yet queued) looks
// like drift for a moment and is gone on the second look.
const driftRecheck = 200 * time.Millisecond

// Counters are the driver's figures for metrics.
type Counters struct {
	Networks, Endpoints, LinksPending int
	LinksCreated, LinksDeleted        uint64
	RestoreTook                       time.Duration
}

// Counters reads the driver's figures now.
func (d *Driver) Counters() Counters {
	d.st.mu.Lock()
	nets, eps := len(d.st.networks), len(d.st.endpoints)
	d.st.mu.Unlock()
	return Counters{Networks: nets, Endpoints: eps, LinksPending: d.reaper.Pending(),
		LinksCreated: d.linksCreated.Load(), LinksDeleted: d.linksDeleted.Load(), RestoreTook: d.restoreTook}
}

// AddressHolding says what this node's networks know of addr in subnet:
// how many of them have that subnet, and whether one of them holds the
// address (an endpoint's, the gateway or an aux address). The address
// manager asks it before it takes an address whose release was lost
// (internal/ipam, lostRelease).
func (d *Driver) AddressHolding(subnet netip.Prefix, addr netip.Addr) (networks int, held bool) {
	d.st.mu.Lock()
	defer d.st.mu.Unlock()
	for _, n := range d.st.networks {
		for _, p := range append(slices.Clip(n.IPv4), n.IPv6...) {
			if p.Subnet.Masked() != subnet {
				continue
			}
			networks++
			if p.Gateway.Addr() == addr {
				held = true
			}
			for _, a := range p.Aux {
				if a.Addr() == addr {
					held = true
				}
			}
			if len(d.st.byAddr[addrKey(n.ID, netip.PrefixFrom(addr, subnet.Bits()))]) > 0 {
				held = true
			}
		}
	}
	return networks, held
}

// Status describes the driver's state, sorted by id, and its drift. The
// kernel is asked outside the state lock, so requests do not wait on it.
func (d *Driver) Status() Status {
	s := d.view()
	s.Drift, s.DriftErrors = d.Drift()
	return s
}

// view is Status without the drift: the saved state alone.
func (d *Driver) view() Status {
	d.st.mu.Lock()
	s := Status{Scope: d.scope, Node: d.node, Networks: []NetworkStatus{}, Endpoints: []EndpointStatus{}, ReaperPending: d.reaper.Pending()}
	count := map[string]int{}
	for _, e := range d.st.endpoints {
		count[e.NetworkID]++
		es := EndpointStatus{ID: e.ID, Network: e.NetworkID, MAC: e.MAC.String(), Link: e.Link, Created: e.Created,
			Joined: e.Sandbox.Key != "", Sandbox: e.Sandbox.Key}
		if e.IPv4.IsValid() {
			es.IPv4 = e.IPv4.String()
		}
		if e.IPv6.IsValid() {
			es.IPv6 = e.IPv6.String()
		}
		s.Endpoints = append(s.Endpoints, es)
	}
	for _, n := range d.st.networks {
		s.Networks = append(s.Networks, NetworkStatus{ID: n.ID, ParentSpec: n.ParentSpec, Parent: n.Parent, ParentCreated: n.ParentCreated,
			Mode: string(n.Mode), MTU: n.MTU, Internal: n.Internal, HostAccess: n.HostAccess, Endpoints: count[n.ID]})
	}
	d.st.mu.Unlock()
	sort.Slice(s.Networks, func(i, j int) bool { return s.Networks[i].ID < s.Networks[j].ID })
	sort.Slice(s.Endpoints, func(i, j int) bool { return s.Endpoints[i].ID < s.Endpoints[j].ID })
	s.ReaperLinks = []string{}
	for name := range d.reaper.Queued() {
		s.ReaperLinks = append(s.ReaperLinks, name)
	}
	sort.Strings(s.ReaperLinks)
	s.Drift = []Drift{}
	return s
}

// Drift compares the saved state with the kernel and returns what disagreed
// on two looks driftRecheck apart, and what could not be checked.
func (d *Driver) Drift() ([]Drift, []string) {
	first, errs := d.driftOnce()
	if len(first) == 0 {
		return []Drift{}, errs
	}
	time.Sleep(driftRecheck)
	second, errs := d.driftOnce()
	seen := map[Drift]bool{}
	for _, x := range first {
		seen[x] = true
	}
	out := []Drift{}
	for _, x := range second {
		if seen[x] {
			out = append(out, x)
		}
	}
	return out, errs
}

// driftOnce is one look. The links are listed before the records are read,
// so that a link made by a request in flight already has its record.
func (d *Driver) driftOnce() ([]Drift, []string) {
	var out []Drift
	var errs []string
	infos, err := d.links.List()
	if err != nil {
		return nil, []string{fmt.Sprintf("list host links: %v", err)}
	}
	d.st.mu.Lock()
	nets := make(map[string]*model.Network, len(d.st.networks))
	for id, n := range d.st.networks {
		nets[id] = n // records are replaced, never edited: safe to keep
	}
	eps := make(map[string]*model.Endpoint, len(d.st.endpoints))
	for id, e := range d.st.endpoints {
		eps[id] = e
	}
	d.st.mu.Unlock()
	queued := d.reaper.Queued()

	byName := make(map[string]link.Info, len(infos))
	for _, i := range infos {
		byName[i.Name] = i
	}
	parents, shimWanted := map[string]bool{}, map[string]bool{}
	for _, n := range nets {
		parents[n.Parent] = true
		if n.HostAccess {
			shimWanted[n.Parent] = true
		}
		if _, ok := byName[n.Parent]; ok {
			continue
		}
		what := "the parent interface is gone from this node: bring it back, or remove the network and create it again with another parent"
		if n.ParentCreated {
			what = "the VLAN parent macvlan-swarm created is gone (deleted behind its back): the next Join on this network creates it again"
		}
		if n.PrivateParent {
			what = "the private lower link macvlan-swarm made for this network without parent is gone (deleted behind its back): the next Join or a restart of the plugin creates it again"
		}
		out = append(out, Drift{Kind: DriftParentMissing, Network: n.ID, Link: n.Parent, Detail: what})
	}

	for _, i := range infos {
		if i.Group == link.RetireGroup || queued[i.Name] {
			continue
		}
		if id := i.EndpointOf(); id != "" {
			if e := eps[id]; e == nil || e.Link != i.Name {
				out = append(out, Drift{Kind: DriftOrphanLink, Endpoint: id, Link: i.Name,
					Detail: "a host link marked for an endpoint macvlan-swarm has no record of: a restart of the plugin hands it to the reaper; or delete it with `ip link del " + i.Name + "`"})
			}
			continue
		}
		if i.Alias == link.ParentMark && !parents[i.Name] {
			out = append(out, Drift{Kind: DriftOrphanLink, Link: i.Name,
				Detail: "a VLAN parent macvlan-swarm created that no network uses: delete it with `ip link del " + i.Name + "` if nothing else uses it"})
		}
		if p := i.ShimOf(); p != "" && !shimWanted[p] {
			out = append(out, Drift{Kind: DriftOrphanLink, Link: i.Name,
				Detail: "a host_access shim on parent " + p + " that no network asks for: a restart of the plugin deletes it, or `ip link del " + i.Name + "`"})
		}
		if id := i.PrivateParentOf(); id != "" && nets[id] == nil {
			out = append(out, Drift{Kind: DriftOrphanLink, Network: id, Link: i.Name,
				Detail: "the private lower link of a network without a parent that macvlan-swarm no longer holds: a restart of the plugin deletes it, or `ip link del " + i.Name + "`"})
		}
	}

	// Joined endpoints: is each MAC on its parent's address list?
	lists := map[string][]net.HardwareAddr{}
	for _, e := range eps {
		n := nets[e.NetworkID]
		if n == nil || e.Sandbox.Key == "" || time.Since(e.Sandbox.Joined) < d.driftGrace || n.Mode == link.ModePassthru {
			continue
		}
		if _, ok := byName[n.Parent]; !ok {
			continue // reported as parent_missing
		}
		addrs, ok := lists[n.Parent]
		if !ok {
			addrs, err = d.links.UnicastAddresses(n.Parent)
			if err != nil && !errors.Is(err, link.ErrNotFound) {
				errs = append(errs, fmt.Sprintf("read the address list of parent %q: %v", n.Parent, err))
			}
			lists[n.Parent] = addrs
			if err != nil {
				continue
			}
		}
		if containsMAC(addrs, e.MAC) {
			continue
		}
		detail := "the container's interface (MAC " + e.MAC.String() + ") is gone or down: it was deleted or set down inside the container; restart the container"
		if i, ok := byName[e.Link]; ok && i.EndpointOf() == e.ID {
			detail = "the endpoint's link is back in the host namespace but the endpoint was never deleted: the reclaimer removes it within a minute"
		}
		out = append(out, Drift{Kind: DriftLinkMissing, Network: e.NetworkID, Endpoint: e.ID, Link: e.Link, Detail: detail})
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].Kind != out[b].Kind {
			return out[a].Kind < out[b].Kind
		}
		return out[a].Link < out[b].Link
	})
	return out, errs
}

func containsMAC(list []net.HardwareAddr, mac net.HardwareAddr) bool {
	for _, m := range list {
		if bytes.Equal(m, mac) {
			return true
		}
	}
	return false
}
