package driver

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/model"
	"github.com/macvlan-swarm/macvlan-swarm/internal/store"
)

// state is the one owner of what the driver remembers: the networks and
// endpoints in memory and their saved copy. Every change is one method here
// and one store transaction (one fsync), multi-record changes included; the
// maps change only after the transaction succeeded, in commit, and nowhere
// else. Records are replaced, never edited in place, so a failed commit
// leaves memory as it was.
//
// mu guards the maps and the store. Requests hold it for their state work,
// commit included (one fsync, ~0.1 ms here: docs/benchmarks.md shows it does
// not show at 50 parallel starts); the kernel work of Join and the retiring
// of deleted endpoints' links run outside it, because they can wait long on
// the kernel's RTNL lock while the engine tears namespaces down.
type state struct {
	mu        sync.Mutex
	store     *store.Store
	networks  map[string]*model.Network
	endpoints map[string]*model.Endpoint
	// Indexes of endpoints, kept with the map by setEndpoint and
	// dropEndpoint, so that a request looks up the endpoints of a network,
	// of an address, of a MAC or of a link name without walking them all
	// (part 6 of docs/benchmarks.md: the per-request cost stays flat).
	byNet, byAddr, byMAC, byLink index
	// observe, if not nil, is told how long each commit took (tests and
	// benchmarks only: export_test.go sets it).
	observe func(took time.Duration)
}

func newState(st *store.Store) *state {
	return &state{store: st, networks: map[string]*model.Network{}, endpoints: map[string]*model.Endpoint{},
		byNet: index{}, byAddr: index{}, byMAC: index{}, byLink: index{}}
}

// index maps a key to the endpoints that have it, by id.
type index map[string]map[string]*model.Endpoint

func (x index) add(key string, e *model.Endpoint) {
	if x[key] == nil {
		x[key] = map[string]*model.Endpoint{}
	}
	x[key][e.ID] = e
}

func (x index) remove(key string, e *model.Endpoint) {
	if m := x[key]; m[e.ID] == e {
		delete(m, e.ID)
		if len(m) == 0 {
			delete(x, key)
		}
	}
}

// addrKey is an endpoint address's key in byAddr: network and address.
func addrKey(netID string, a netip.Prefix) string { return netID + " " + a.Addr().String() }

// endpointKeys calls f with every index and key e is found under.
func endpointKeys(s *state, e *model.Endpoint, f func(index, string)) {
	f(s.byNet, e.NetworkID)
	for _, a := range []netip.Prefix{e.IPv4, e.IPv6} {
		if a.IsValid() {
			f(s.byAddr, addrKey(e.NetworkID, a))
		}
	}
	if e.MAC != nil {
		f(s.byMAC, string(e.MAC))
	}
	if e.Link != "" {
		f(s.byLink, e.Link)
	}
}

// setEndpoint puts e in the map and the indexes, in place of the record it
// replaces. Only commit and the loading of the state call it.
func (s *state) setEndpoint(e *model.Endpoint) {
	if old := s.endpoints[e.ID]; old != nil {
		s.dropEndpoint(old.ID)
	}
	s.endpoints[e.ID] = e
	endpointKeys(s, e, func(x index, k string) { x.add(k, e) })
}

// dropEndpoint takes the endpoint id out of the map and the indexes.
func (s *state) dropEndpoint(id string) {
	e := s.endpoints[id]
	if e == nil {
		return
	}
	delete(s.endpoints, id)
	endpointKeys(s, e, func(x index, k string) { x.remove(k, e) })
}

// commit is the only place that writes the store and then the maps.
func (s *state) commit(c store.Change) error {
	start := time.Now()
	err := s.store.Apply(c)
	if s.observe != nil {
		s.observe(time.Since(start))
	}
	if err != nil {
		return fmt.Errorf("save state in %s: %w", s.store.Path(), err)
	}
	for _, id := range c.DeleteEndpoints {
		s.dropEndpoint(id)
	}
	for _, id := range c.DeleteNetworks {
		delete(s.networks, id)
	}
	for _, n := range c.PutNetworks {
		s.networks[n.ID] = n
	}
	for _, e := range c.PutEndpoints {
		s.setEndpoint(e)
	}
	return nil
}

// addNetwork saves a new network, or replaces old (same id, other settings)
// together with every endpoint still recorded on it.
func (s *state) addNetwork(n *model.Network, old *model.Network) error {
	c := store.Change{PutNetworks: []*model.Network{n}}
	if old != nil {
		c.DeleteEndpoints = ids(s.endpointsOf(old.ID))
	}
	return s.commit(c)
}

// removeNetwork forgets a network and every endpoint recorded on it.
func (s *state) removeNetwork(n *model.Network) error {
	return s.commit(store.Change{DeleteNetworks: []string{n.ID}, DeleteEndpoints: ids(s.endpointsOf(n.ID))})
}

// putEndpoint saves a new or changed endpoint.
func (s *state) putEndpoint(e *model.Endpoint) error {
	return s.commit(store.Change{PutEndpoints: []*model.Endpoint{e}})
}

// replaceEndpoints saves a new endpoint and forgets stale ones, in one
// transaction.
func (s *state) replaceEndpoints(e *model.Endpoint, stale []*model.Endpoint) error {
	return s.commit(store.Change{PutEndpoints: []*model.Endpoint{e}, DeleteEndpoints: ids(stale)})
}

// dropEndpoints forgets endpoints, in one transaction however many.
func (s *state) dropEndpoints(eps []*model.Endpoint) error {
	return s.commit(store.Change{DeleteEndpoints: ids(eps)})
}

// endpointsOf lists the endpoints recorded on a network.
func (s *state) endpointsOf(netID string) []*model.Endpoint { return values(s.byNet[netID]) }

// endpointsAt lists the endpoints recorded on a network with address a.
func (s *state) endpointsAt(netID string, a netip.Prefix) []*model.Endpoint {
	if !a.IsValid() {
		return nil
	}
	return values(s.byAddr[addrKey(netID, a)])
}

// endpointsWithMAC lists the endpoints recorded with MAC mac, on any network.
func (s *state) endpointsWithMAC(mac []byte) []*model.Endpoint { return values(s.byMAC[string(mac)]) }

// endpointsWithLink lists the endpoints whose host link is called name.
func (s *state) endpointsWithLink(name string) []*model.Endpoint { return values(s.byLink[name]) }

// values lists an index entry's endpoints in id order (so that what a
// request finds first does not depend on map order).
func values(m map[string]*model.Endpoint) []*model.Endpoint {
	out := make([]*model.Endpoint, 0, len(m))
	for _, e := range m {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *model.Endpoint) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// parentUsers lists the networks on parent other than except.
func (s *state) parentUsers(parent, except string) []*model.Network {
	var out []*model.Network
	for _, n := range s.networks {
		if n.Parent == parent && n.ID != except {
			out = append(out, n)
		}
	}
	return out
}

func ids(eps []*model.Endpoint) []string {
	out := make([]string, len(eps))
	for i, e := range eps {
		out[i] = e.ID
	}
	return out
}
