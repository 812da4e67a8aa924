package driver

import (
	"fmt"
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
	// observe, if not nil, is told how long each commit took (tests and
	// benchmarks only: export_test.go sets it).
	observe func(took time.Duration)
}

func newState(st *store.Store) *state {
	return &state{store: st, networks: map[string]*model.Network{}, endpoints: map[string]*model.Endpoint{}}
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
		delete(s.endpoints, id)
	}
	for _, id := range c.DeleteNetworks {
		delete(s.networks, id)
	}
	for _, n := range c.PutNetworks {
		s.networks[n.ID] = n
	}
	for _, e := range c.PutEndpoints {
		s.endpoints[e.ID] = e
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
func (s *state) endpointsOf(netID string) []*model.Endpoint {
	var out []*model.Endpoint
	for _, e := range s.endpoints {
		if e.NetworkID == netID {
			out = append(out, e)
		}
	}
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
