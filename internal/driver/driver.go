// Package driver is macvlan-swarm's network logic: it turns the engine's
// requests into macvlan links and saved records. It knows nothing of HTTP
// (internal/protocol decodes requests for it) and reaches the kernel only
// through the LinkLayer interface (internal/link implements it with netlink).
//
// One mutex guards all in-memory state; every request takes it for its whole
// duration, so a request sees and leaves a consistent state, and the saved
// state is written before the lock is released. The per-request work is
// sub-millisecond (a bbolt commit and at most one netlink create), so the lock
// costs little; the slow kernel work, link deletion, happens in the reaper
// outside it (see reaper.go).
package driver

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol"
	"github.com/macvlan-swarm/macvlan-swarm/internal/store"
)

// LinkLayer is the kernel as the driver sees it, in the host network
// namespace. internal/link implements it with netlink; unit tests of logic
// this kernel cannot run (802.1q parents) use a fake.
type LinkLayer interface {
	Get(name string) (link.Info, error)
	List() ([]link.Info, error)
	AddMacvlan(spec link.MacvlanSpec) error
	AddVLAN(name, parent string, vid int) error
	Delete(name string) error
	Retire(name string, group uint32) error
	DeleteGroup(group uint32) error
}

// Config wires a Driver.
type Config struct {
	// Scope is protocol.ScopeGlobal (default) or protocol.ScopeLocal.
	Scope string
	// Parents maps node-level aliases to this node's interfaces, so that
	// "-o parent=lan" means a different link on each node (PARENTS setting).
	Parents map[string]string
	Links   LinkLayer
	Store   *store.Store
	Log     *slog.Logger
	// Node names this node in refusals (its hostname), so that a swarm user
	// reading one task error knows which machine to fix.
	Node string
	// ReapDelay is how long the reaper gathers retired links before one
	// group delete; zero means DefaultReapDelay.
	ReapDelay time.Duration
}

// DefaultReapDelay batches link deletions that arrive close together.
const DefaultReapDelay = 50 * time.Millisecond

// Driver implements protocol.Driver.
type Driver struct {
	scope   string
	node    string
	parents map[string]string
	links   LinkLayer
	store   *store.Store
	log     *slog.Logger

	mu        sync.Mutex
	networks  map[string]*store.Network
	endpoints map[string]*store.Endpoint

	reaper *reaper
}

var _ protocol.Driver = (*Driver)(nil)

// New builds a Driver and restores its saved state: it loads the records,
// re-creates the 802.1q parents it had made (gone after a reboot), removes
// host links of this driver that belong to no endpoint, and drops records
// that point nowhere. See restore.go.
func New(cfg Config) (*Driver, error) {
	if cfg.Links == nil || cfg.Store == nil {
		return nil, errors.New("driver: Links and Store are required")
	}
	scope := cfg.Scope
	if scope == "" {
		scope = protocol.ScopeGlobal
	}
	if scope != protocol.ScopeGlobal && scope != protocol.ScopeLocal {
		return nil, fmt.Errorf("scope %q is not valid: use %q (swarm, the default) or %q (standalone engines older than 26)", scope, protocol.ScopeGlobal, protocol.ScopeLocal)
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	delay := cfg.ReapDelay
	if delay <= 0 {
		delay = DefaultReapDelay
	}
	d := &Driver{
		scope:     scope,
		node:      cfg.Node,
		parents:   cfg.Parents,
		links:     cfg.Links,
		store:     cfg.Store,
		log:       log,
		networks:  map[string]*store.Network{},
		endpoints: map[string]*store.Endpoint{},
	}
	d.reaper = newReaper(cfg.Links, log, delay)
	if err := d.restore(); err != nil {
		d.reaper.stop()
		return nil, err
	}
	return d, nil
}

// Close finishes pending link deletions. It does not close the store.
func (d *Driver) Close() {
	d.reaper.stop()
}

// Flush deletes retired host links now instead of at the reaper's next
// batch. Tests use it to check that nothing is left behind.
func (d *Driver) Flush() {
	d.reaper.reap()
}

// GetCapabilities reports the configured scope. ConnectivityScope global is
// what gives swarm service discovery on the network.
func (d *Driver) GetCapabilities() (*protocol.CapabilitiesResponse, error) {
	return &protocol.CapabilitiesResponse{Scope: d.scope, ConnectivityScope: d.scope}, nil
}

// GwAllocCheck keeps gateway allocation on: on a LAN the gateway is the
// router's address, which IPAM must never hand to a container.
func (d *Driver) GwAllocCheck(*protocol.GwAllocCheckRequest) (*protocol.GwAllocCheckResponse, error) {
	return &protocol.GwAllocCheckResponse{}, nil
}

// ProgramExternalConnectivity has nothing to do: a macvlan endpoint is on the
// LAN already, there are no ports to publish.
func (d *Driver) ProgramExternalConnectivity(*protocol.ExternalConnectivityRequest) error {
	return nil
}

// RevokeExternalConnectivity undoes nothing, as above.
func (d *Driver) RevokeExternalConnectivity(*protocol.ExternalConnectivityRequest) error {
	return nil
}

// DiscoverNew is a swarm node notification the driver does not need.
func (d *Driver) DiscoverNew(*protocol.DiscoveryNotification) error { return nil }

// DiscoverDelete is a swarm node notification the driver does not need.
func (d *Driver) DiscoverDelete(*protocol.DiscoveryNotification) error { return nil }

// Snapshot is a copy of the in-memory state, for tests and diagnostics.
type Snapshot struct {
	Networks  []store.Network
	Endpoints []store.Endpoint
}

// Snapshot returns the networks and endpoints sorted by id.
func (d *Driver) Snapshot() Snapshot {
	d.mu.Lock()
	defer d.mu.Unlock()
	var s Snapshot
	for _, n := range d.networks {
		s.Networks = append(s.Networks, *n)
	}
	for _, e := range d.endpoints {
		s.Endpoints = append(s.Endpoints, *e)
	}
	sort.Slice(s.Networks, func(i, j int) bool { return s.Networks[i].ID < s.Networks[j].ID })
	sort.Slice(s.Endpoints, func(i, j int) bool { return s.Endpoints[i].ID < s.Endpoints[j].ID })
	return s
}

// onNode is "this node" with the node's name when known.
func (d *Driver) onNode() string {
	if d.node == "" {
		return "this node"
	}
	return fmt.Sprintf("this node (%s)", d.node)
}

// short shortens an id for messages and link names.
func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// joinSorted lists names for an error message.
func joinSorted(names []string) string {
	sort.Strings(names)
	return strings.Join(names, ", ")
}
