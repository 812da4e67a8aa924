// Package driver is macvlan-swarm's network logic: it turns the engine's
// requests into macvlan links and saved records. It knows nothing of HTTP
// (internal/protocol decodes requests for it), keeps its typed records in
// one state owner (state.go) and reaches the kernel only through the
// LinkLayer interface (internal/link implements it with netlink).
//
// Each request does its state work under the state's mutex, so it sees and
// leaves a consistent state, and the saved state is written before the lock
// is released. Kernel work that can wait on the kernel (creating a Join's
// link, retiring a deleted endpoint's link) runs outside it, and the slowest,
// link deletion, in the link package's reaper.
package driver

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/announce"
	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol"
	"github.com/macvlan-swarm/macvlan-swarm/internal/store"
)

// LinkLayer is the kernel as the driver sees it, in the host network
// namespace. internal/link implements it with netlink; unit tests of logic
// this kernel cannot run (802.1q parents) use a fake.
type LinkLayer interface {
	link.ReapOps
	Get(name string) (link.Info, error)
	AddMacvlan(spec link.MacvlanSpec) error
	// Rearm gives a retired link of ours another endpoint's identity
	// (internal/link/reuse.go).
	Rearm(name, mark string, spec link.MacvlanSpec) error
	AddVLAN(name, parent string, vid int) error
	Mark(name, mark string) error
	UnicastAddresses(name string) ([]net.HardwareAddr, error)
	// Host access and private lower links (hostaccess.go).
	AddShim(name, parent, mark string) error
	SetUp(name string) error
	Addresses(name string) ([]netip.Prefix, error)
	AddAddress(name string, p netip.Prefix) error
	DeleteAddress(name string, p netip.Prefix) error
	AddHostRoute(dev string, r link.HostRoute) error
	DeleteHostRoute(dev string, dst netip.Addr) error
	HostRoutes(dev string) ([]netip.Addr, error)
	AddPrivateParent(name, peer string, mtu int, mark string) (kind string, err error)
}

// Config wires a Driver.
type Config struct {
	// Scope is protocol.ScopeGlobal (default) or protocol.ScopeLocal.
	Scope string
	// Parents maps node-level aliases to this node's interfaces, so that
	// "-o parent=lan" means a different link on each node (PARENTS setting).
	Parents map[string]string
	// HostAddresses are the node's HOST_ADDRESS setting (ParseHostAddresses):
	// shim addresses by parent or PARENTS alias, for host_access networks
	// whose parent has no address of its own in their subnet.
	HostAddresses map[string][]netip.Addr
	Links         LinkLayer
	Store         *store.Store
	Log           *slog.Logger
	// Node names this node in refusals (its hostname), so that a swarm user
	// reading one task error knows which machine to fix.
	Node string
	// ReapDelay is how long the reaper gathers retired links before one
	// group delete; zero means DefaultReapDelay.
	ReapDelay time.Duration
	// Reclaim tunes the reclaiming of endpoints whose container is gone
	// (reclaim.go); zero fields take the defaults.
	Reclaim ReclaimConfig
	// Announce, if not nil, sends the announcements after Join and runs the
	// address check (internal/announce); the driver stops it in Close.
	Announce *announce.Announcer
	// OnReap, if not nil, is told of each reaper batch: how many host links
	// it deleted and how long the kernel took (for metrics).
	OnReap func(deleted int, took time.Duration)
}

// DefaultReapDelay batches link deletions that arrive close together.
const DefaultReapDelay = 50 * time.Millisecond

// Driver implements protocol.Driver.
type Driver struct {
	scope   string
	node    string
	parents map[string]string
	// hostAddrs is Config.HostAddresses.
	hostAddrs map[string][]netip.Addr
	links     LinkLayer
	log       *slog.Logger
	st        *state
	reaper    *link.Reaper
	reclaim   *reclaimer
	// announce puts joined containers' addresses on the LAN; nil: nothing.
	announce *announce.Announcer

	// Running totals for metrics (Counters).
	linksCreated atomic.Uint64
	linksDeleted atomic.Uint64
	restoreTook  time.Duration // set once, in New
	driftGrace   time.Duration // driftGrace; tests shorten it
}

var _ protocol.Driver = (*Driver)(nil)

// New builds a Driver, restores its saved state (restore.go) and starts
// reclaiming the endpoints of dead containers (reclaim.go).
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
		scope:      scope,
		node:       cfg.Node,
		parents:    cfg.Parents,
		hostAddrs:  cfg.HostAddresses,
		links:      cfg.Links,
		log:        log,
		st:         newState(cfg.Store),
		driftGrace: driftGrace,
		announce:   cfg.Announce,
	}
	d.reaper = link.NewReaper(cfg.Links, log, delay, func(deleted int, took time.Duration) {
		d.linksDeleted.Add(uint64(deleted))
		if cfg.OnReap != nil {
			cfg.OnReap(deleted, took)
		}
	})
	d.reclaim = newReclaimer(cfg.Reclaim)
	start := time.Now()
	infos, err := d.restore()
	if err != nil {
		d.reaper.Stop()
		return nil, err
	}
	d.restoreTook = time.Since(start)
	d.reclaim.start(d, infos)
	return d, nil
}

// Close stops reclaiming and announcing and finishes pending link
// deletions. It does not close the store.
func (d *Driver) Close() {
	if d.announce != nil {
		d.announce.Close()
	}
	d.reclaim.stop()
	d.reaper.Stop()
}

// GetCapabilities reports the configured scope. ConnectivityScope global is
// what gives swarm service discovery on the network. GwAllocChecker asks
// engines 28 and newer to call GwAllocCheck before they reserve a network's
// gateway addresses.
func (d *Driver) GetCapabilities() (*protocol.CapabilitiesResponse, error) {
	return &protocol.CapabilitiesResponse{Scope: d.scope, ConnectivityScope: d.scope, GwAllocChecker: true}, nil
}

// GwAllocCheck tells a standalone engine (28 and newer) that an --internal
// network needs no gateway address: its containers get no default route, so
// the address would only be lost to IPAM. Engine 28.5's built-in macvlan
// answers the same. Other networks keep the gateway the user gave, or the
// one IPAM picks (the pool's first address) when none was given, as on
// engines 20.10 and 26.1, which never ask: on a LAN that address is the
// router's, and a cluster of mixed engines then gives every container the
// same default route. (Moby after 28.5 stops guessing a gateway for its
// built-in macvlan; docs/engines.md says why this plugin does not, yet.)
// A network without a parent is internal (its private lower link leads
// nowhere) whether or not --internal was given. A body without options, as
// a retry after a plugin crash sends, is a network that is not internal:
// the engine then reserves the gateway, which loses nothing.
func (d *Driver) GwAllocCheck(req *protocol.GwAllocCheckRequest) (*protocol.GwAllocCheckResponse, error) {
	internal, _ := req.Options[protocol.OptionInternal].(bool)
	// A network without a parent is internal whatever the flag says.
	if _, ok := req.Options[protocol.OptionGeneric].(map[string]any); ok && strings.TrimSpace(genericOptions(req.Options)[optParent]) == "" {
		internal = true
	}
	return &protocol.GwAllocCheckResponse{SkipIPv4: internal, SkipIPv6: internal}, nil
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

// missingID refuses a request that lacks an id it needs. When the plugin
// dies mid-request the engine retries with a body it has already consumed,
// so such requests arrive empty: answering them as a successful no-op would
// make the engine forget an endpoint the driver still holds.
func missingID(method, what string) error {
	hint := "nothing to do: an endpoint left behind is reclaimed once its container is gone"
	switch method {
	case "CreateEndpoint", "Join":
		hint = "start the container again"
	case "CreateNetwork", "AllocateNetwork":
		hint = "create the network again if it is missing"
	}
	return fmt.Errorf("the engine sent %s without %s, probably a retry after the plugin restarted; nothing was changed (%s)", method, what, hint)
}

// onNode is "this node" with the node's name when known.
func (d *Driver) onNode() string {
	if d.node == "" {
		return "this node"
	}
	return fmt.Sprintf("this node (%s)", d.node)
}

// short shortens an id for messages and logs.
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
