// Package ipam is the plugin's address manager (docker.ipamdriver/1.0),
// chosen per network with --ipam-driver. It differs from the engine's
// built-in one above all in the order it hands addresses out: an address
// that was given back is handed out again only after every other free
// address of the range has been, the one given back longest ago first
// (least recently released). See "The address manager" in docs/design.md
// for why a swarm needs that, and for the two things it does that the
// built-in one need not: tying pools to networks (Claim) and taking back
// releases a plugin crash lost (lostRelease).
//
// It keeps its pools and addresses in the plugin's state file (the engine
// does not ask again after a plugin restart), one store transaction per
// change, under one lock.
package ipam

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/model"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol"
	"github.com/macvlan-swarm/macvlan-swarm/internal/store"
)

// The address spaces the manager reports. An engine names one of them in
// every RequestPool; they only label pools (two pools of one subnet never
// share addresses, whatever their space).
const (
	LocalSpace  = protocol.IPAMLocalSpace
	GlobalSpace = protocol.IPAMGlobalSpace
)

// MaxReleases bounds the release times kept per subnet. An address whose
// release time was dropped counts as never given back, which only makes it
// the first choice sooner, and the dropped ones are always the oldest.
const MaxReleases = 4096

// maxScan bounds one search for a free address: a /16 is scanned whole, an
// IPv6 /64 only this far past the last address handed out.
const maxScan = 1 << 17

// Config is what New needs.
type Config struct {
	Store *store.Store
	Log   *slog.Logger     // nil: slog.Default()
	Now   func() time.Time // nil: time.Now
	// Holder, if set, says who on this node holds an address of a subnet
	// (the driver's records). It lets a request by name take an address
	// whose release was lost; see lostRelease.
	Holder func(subnet netip.Prefix, addr netip.Addr) Holding
}

// Holding is what the node's network driver knows of an address of a
// subnet: how many of its networks have that subnet, and whether one of
// them holds the address (an endpoint, the gateway or an aux address).
type Holding struct {
	Networks int
	Held     bool
}

// The roles a pool is claimed for (Claim).
const (
	// RoleAllocator: the swarm managers' allocator on this node, while it
	// leads (the driver's AllocateNetwork names the network).
	RoleAllocator = "allocator"
	// RoleNode: this engine's own copy of the network (CreateNetwork).
	RoleNode = "node"
)

// ClaimWindow bounds how long after its RequestPool a pool can be claimed:
// the engine sends the driver's AllocateNetwork or CreateNetwork right
// after it has the network's pools.
const ClaimWindow = time.Minute

// LostAfter is how long an address must have been given out before a
// request by name may take it as lost (see lostRelease): longer than any
// engine takes from RequestAddress to the driver's CreateEndpoint.
const LostAfter = time.Minute

// Manager is the address manager. Its methods are safe for concurrent use.
type Manager struct {
	st     *store.Store
	log    *slog.Logger
	now    func() time.Time
	holder func(netip.Prefix, netip.Addr) Holding

	mu       sync.Mutex
	pools    map[string]*model.IPAMPool
	released map[netip.Prefix]map[netip.Addr]time.Time // per subnet: when each address was last given back

	maxReleases int // MaxReleases; smaller in tests
}

var _ protocol.IPAM = (*Manager)(nil)

// New loads the saved pools and release times. Damaged records are logged
// and dropped, as the driver does with its own.
func New(cfg Config) (*Manager, error) {
	if cfg.Store == nil {
		return nil, errors.New("ipam: Store is required")
	}
	m := &Manager{st: cfg.Store, log: cfg.Log, now: cfg.Now, holder: cfg.Holder, pools: map[string]*model.IPAMPool{}, released: map[netip.Prefix]map[netip.Addr]time.Time{}, maxReleases: MaxReleases}
	if m.log == nil {
		m.log = slog.Default()
	}
	if m.now == nil {
		m.now = time.Now
	}
	pools, rels, bad, err := cfg.Store.LoadIPAM()
	if err != nil {
		return nil, fmt.Errorf("load address manager state: %w", err)
	}
	if len(bad) > 0 {
		for _, b := range bad {
			m.log.Warn("dropping a damaged address manager record", "kind", b.Kind, "key", b.Key, "err", b.Err)
		}
		if err := cfg.Store.DropBadIPAM(bad); err != nil {
			return nil, fmt.Errorf("drop damaged address manager records: %w", err)
		}
	}
	for _, p := range pools {
		m.pools[p.ID] = p
	}
	for _, r := range rels {
		m.releasedOf(r.Pool)[r.Addr] = r.At
	}
	if len(pools) > 0 {
		m.log.Info("address manager restored", "pools", len(pools), "release_times", len(rels))
	}
	return m, nil
}

func (m *Manager) releasedOf(pool netip.Prefix) map[netip.Addr]time.Time {
	r := m.released[pool]
	if r == nil {
		r = map[netip.Addr]time.Time{}
		m.released[pool] = r
	}
	return r
}

// GetIPAMCapabilities: the manager saves its own state, so the engine need
// not replay requests after a daemon restart, and it needs no MAC.
func (m *Manager) GetIPAMCapabilities() (*protocol.IPAMCapabilitiesResponse, error) {
	return &protocol.IPAMCapabilitiesResponse{}, nil
}

// GetDefaultAddressSpaces names the two spaces.
func (m *Manager) GetDefaultAddressSpaces() (*protocol.AddressSpacesResponse, error) {
	return &protocol.AddressSpacesResponse{LocalDefaultAddressSpace: LocalSpace, GlobalDefaultAddressSpace: GlobalSpace}, nil
}

// RequestPool makes a new pool of the network's subnet. Every request gets
// its own pool, even for a subnet another pool already has: on a swarm
// manager the cluster's allocator and the node's own copy of the network
// both ask, and each must see only its own addresses.
func (m *Manager) RequestPool(req *protocol.RequestPoolRequest) (*protocol.RequestPoolResponse, error) {
	p, err := parsePool(req)
	if err != nil {
		return nil, err
	}
	p.ID = p.Pool.String() + "@" + nonce()
	p.Created = m.now().UTC()
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.st.ApplyIPAM(store.IPAMChange{PutPool: p}); err != nil {
		return nil, fmt.Errorf("save pool %s: %w", p.Pool, err)
	}
	m.pools[p.ID] = p
	m.log.Info("pool requested", "pool", p.ID, "space", p.Space, "range", p.Range)
	return &protocol.RequestPoolResponse{PoolID: p.ID, Pool: p.Pool.String()}, nil
}

// parsePool checks a RequestPool and returns the pool it asks for (without
// an id).
func parsePool(req *protocol.RequestPoolRequest) (*model.IPAMPool, error) {
	if req.Pool == "" {
		return nil, errors.New("the macvlan-swarm address manager needs the network's subnet: give it with --subnet " +
			"(the LAN's, e.g. --subnet 192.168.1.0/24), and --ip-range for the part of it containers may take")
	}
	pool, err := netip.ParsePrefix(req.Pool)
	if err != nil {
		return nil, fmt.Errorf("subnet %q is not an address prefix such as 192.168.1.0/24", req.Pool)
	}
	pool = pool.Masked()
	if pool.Addr().Is6() != req.V6 {
		want := "IPv4"
		if req.V6 {
			want = "IPv6"
		}
		return nil, fmt.Errorf("subnet %s is not an %s subnet, and the engine asked for an %s pool", pool, want, want)
	}
	rng := pool
	if req.SubPool != "" {
		sub, err := netip.ParsePrefix(req.SubPool)
		if err != nil {
			return nil, fmt.Errorf("ip-range %q is not an address prefix such as 192.168.1.128/25", req.SubPool)
		}
		sub = sub.Masked()
		if sub.Bits() < pool.Bits() || !pool.Contains(sub.Addr()) {
			return nil, fmt.Errorf("ip-range %s lies outside the subnet %s: give an --ip-range inside it", sub, pool)
		}
		rng = sub
	}
	p := &model.IPAMPool{Space: req.AddressSpace, Pool: pool, Range: rng, Used: map[netip.Addr]time.Time{}}
	if _, ok := first(p); !ok {
		return nil, fmt.Errorf("ip-range %s of subnet %s has no address a container could take", rng, pool)
	}
	return p, nil
}

// ReleasePool drops a pool. Addresses it still held count as given back now.
// A pool the manager does not know is already gone: not an error.
func (m *Manager) ReleasePool(req *protocol.ReleasePoolRequest) error {
	if req.PoolID == "" {
		return errors.New("the engine sent ReleasePool without a pool id, probably a retry after the plugin restarted; nothing was released")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.pools[req.PoolID]
	if p == nil {
		m.log.Info("release of a pool not held", "pool", req.PoolID)
		return nil
	}
	now := m.now().UTC()
	c := store.IPAMChange{DeletePools: []string{p.ID}}
	for a := range p.Used {
		c.Released = append(c.Released, model.IPAMRelease{Pool: p.Pool, Addr: a, At: now})
	}
	c.Forget = m.overflow(p.Pool, len(c.Released))
	if err := m.st.ApplyIPAM(c); err != nil {
		return fmt.Errorf("save the release of pool %s: %w", p.ID, err)
	}
	delete(m.pools, p.ID)
	m.noteReleases(c)
	m.log.Info("pool released", "pool", p.ID, "addresses_held", len(p.Used))
	return nil
}

// RequestAddress gives out the address asked for, if it is free, or picks
// one.
func (m *Manager) RequestAddress(req *protocol.RequestAddressRequest) (*protocol.RequestAddressResponse, error) {
	if req.PoolID == "" {
		return nil, errors.New("the engine sent RequestAddress without a pool id, probably a retry after the plugin restarted; try again")
	}
	gateway := req.Options[protocol.IPAMOptionRequestType] == protocol.IPAMRequestGateway
	m.mu.Lock()
	defer m.mu.Unlock()
	p, err := m.pool(req.PoolID)
	if err != nil {
		return nil, err
	}
	c := store.IPAMChange{}
	var addr netip.Addr
	switch {
	case req.Address != "":
		if addr, err = m.asked(p, req.Address); err != nil {
			return nil, err
		}
		// The search for unnamed addresses goes on after the highest one
		// given out, named ones included. A new swarm leader's allocator
		// first asks by name for every address the cluster holds, so it
		// then starts above them, not at the bottom of the range, where
		// addresses freed before the change sit.
		if p.Range.Contains(addr) && (!p.Last.IsValid() || p.Last.Less(addr)) {
			next := *p
			next.Last = addr
			c.PutPool = &next
		}
	case gateway:
		var ok bool
		if addr, ok = m.lowestFree(p); !ok {
			return nil, m.full(p)
		}
	default:
		var ok bool
		if addr, ok = m.pick(p); !ok {
			return nil, m.full(p)
		}
		next := *p
		next.Last = addr
		c.PutPool = &next
	}
	now := m.now().UTC()
	c.Take = []store.PoolAddr{{PoolID: p.ID, Addr: addr, At: now}}
	if err := m.st.ApplyIPAM(c); err != nil {
		return nil, fmt.Errorf("save address %s of pool %s: %w", addr, p.ID, err)
	}
	p.Used[addr] = now
	if c.PutPool != nil {
		p.Last = addr
	}
	m.log.Debug("address given out", "pool", p.ID, "addr", addr, "asked", req.Address != "", "gateway", gateway)
	return &protocol.RequestAddressResponse{Address: netip.PrefixFrom(addr, p.Pool.Bits()).String()}, nil
}

// ReleaseAddress takes an address back and notes when. An address the pool
// does not hold is already free: not an error.
func (m *Manager) ReleaseAddress(req *protocol.ReleaseAddressRequest) error {
	if req.PoolID == "" || req.Address == "" {
		return fmt.Errorf("the engine sent ReleaseAddress without a pool id or an address (pool %q, address %q), probably a retry after the plugin restarted; nothing was released", req.PoolID, req.Address)
	}
	addr, err := parseAddr(req.Address)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p, err := m.pool(req.PoolID)
	if err != nil {
		return err
	}
	if _, ok := p.Used[addr]; !ok {
		m.log.Debug("release of an address not held", "pool", p.ID, "addr", addr)
		return nil
	}
	c := store.IPAMChange{
		Give:     []store.PoolAddr{{PoolID: p.ID, Addr: addr}},
		Released: []model.IPAMRelease{{Pool: p.Pool, Addr: addr, At: m.now().UTC()}},
	}
	c.Forget = m.overflow(p.Pool, 1)
	if err := m.st.ApplyIPAM(c); err != nil {
		return fmt.Errorf("save the release of %s in pool %s: %w", addr, p.ID, err)
	}
	delete(p.Used, addr)
	m.noteReleases(c)
	m.log.Debug("address given back", "pool", p.ID, "addr", addr)
	return nil
}

// Claim ties the pools the engine has just requested for a network to that
// network, once the driver's AllocateNetwork (role RoleAllocator) or
// CreateNetwork (RoleNode) names it: for each pool of the request in one of
// the manager's address spaces, the one unclaimed pool of that space and
// subnet requested within ClaimWindow. If there are several (two networks
// of one subnet made at once), none is claimed. A claimed pool makes older
// pools of the same network, role and subnet stale: the engine that held
// them is gone (this engine restarted, or this node's allocator lost and
// regained the leadership), and they are dropped.
func (m *Manager) Claim(netID, role string, pools ...[]protocol.IPAMData) {
	for _, list := range pools {
		for _, d := range list {
			space := d.AddressSpace
			if space == "" && role == RoleAllocator {
				// The swarm allocator's AllocateNetwork leaves the space
				// out; its pools are always in the global space.
				space = GlobalSpace
			}
			if space != LocalSpace && space != GlobalSpace {
				continue
			}
			subnet, err := netip.ParsePrefix(d.Pool)
			if err != nil {
				continue
			}
			m.claim(netID, role, space, subnet.Masked())
		}
	}
}

func (m *Manager) claim(netID, role, space string, subnet netip.Prefix) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	var cands []*model.IPAMPool
	for _, p := range m.pools {
		if p.Network == "" && p.Space == space && p.Pool == subnet && now.Sub(p.Created) < ClaimWindow {
			cands = append(cands, p)
		}
	}
	if len(cands) != 1 {
		if len(cands) > 1 {
			m.log.Info("several new pools of one subnet: none is tied to the network", "net", netID, "role", role, "subnet", subnet, "pools", len(cands))
		}
		return
	}
	p := cands[0]
	next := *p
	next.Network, next.Role = netID, role
	var stale []string
	for _, q := range m.pools {
		if q != p && q.Network == netID && q.Role == role && q.Space == space && q.Pool == subnet && q.Created.Before(p.Created) {
			stale = append(stale, q.ID)
		}
	}
	sort.Strings(stale)
	if err := m.st.ApplyIPAM(store.IPAMChange{PutPool: &next, DeletePools: stale}); err != nil {
		m.log.Warn("cannot save which network a pool is", "pool", p.ID, "net", netID, "err", err)
		return
	}
	p.Network, p.Role = netID, role
	for _, id := range stale {
		delete(m.pools, id)
	}
	m.log.Info("pool tied to its network", "pool", p.ID, "net", netID, "role", role, "stale_pools_dropped", stale)
}

func (m *Manager) pool(id string) (*model.IPAMPool, error) {
	p := m.pools[id]
	if p == nil {
		return nil, fmt.Errorf("pool %q is not known to the macvlan-swarm address manager on this node "+
			"(its saved state was lost, or the pool was released): remove the network and create it again", id)
	}
	return p, nil
}

// asked checks an address the engine asked for by name: inside the subnet,
// not its network or broadcast address, not given out already. The range
// does not bind it (--ip may lie outside --ip-range, as with the built-in
// manager).
func (m *Manager) asked(p *model.IPAMPool, s string) (netip.Addr, error) {
	addr, err := parseAddr(s)
	if err != nil {
		return netip.Addr{}, err
	}
	if !p.Pool.Contains(addr) {
		return netip.Addr{}, fmt.Errorf("address %s lies outside the network's subnet %s: choose one inside it", addr, p.Pool)
	}
	if reserved(p.Pool, addr) {
		return netip.Addr{}, fmt.Errorf("address %s is the subnet %s's own network or broadcast address: choose another", addr, p.Pool)
	}
	if given, ok := p.Used[addr]; ok && !m.lostRelease(p, addr, given) {
		return netip.Addr{}, fmt.Errorf("address %s is already in use on this network: choose another --ip, or leave --ip out "+
			"(for a swarm task the managers chose it: `macvlan-swarm status` on this node lists pool %s and what it holds)", addr, p.ID)
	}
	return addr, nil
}

// lostRelease tells an address whose release never arrived from one in
// use. The engine sends ReleaseAddress once; if the plugin dies while
// handling it, the engine's retry comes without a body and is refused, and
// the address stays marked in its pool. In a swarm every node's engine asks
// for its tasks' addresses by name, so such an address would fail every
// later task the managers give it on this node. It counts as lost only in a
// pool of this engine's own copy of a network (RoleNode: every address in it
// is a container of this node, or the gateway or an aux address), when it
// was given out more than LostAfter ago, this node's driver has a network of
// the pool's subnet, and none of them holds the address. In the managers'
// allocator's pool (RoleAllocator) an address may be any node's task, and
// in an unclaimed pool nothing can be told: the address stays in use.
func (m *Manager) lostRelease(p *model.IPAMPool, addr netip.Addr, given time.Time) bool {
	if m.holder == nil || p.Role != RoleNode || m.now().Sub(given) < LostAfter {
		return false
	}
	h := m.holder(p.Pool, addr)
	if h.Networks == 0 || h.Held {
		return false
	}
	m.log.Warn("taking an address whose release was lost: no network of its subnet on this node holds it",
		"pool", p.ID, "addr", addr, "given", given)
	return true
}

func parseAddr(s string) (netip.Addr, error) {
	if strings.Contains(s, "/") { // accept a CIDR too; the engine sends bare addresses
		p, err := netip.ParsePrefix(s)
		if err == nil {
			return p.Addr().Unmap(), nil
		}
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	return a.Unmap(), nil
}

// pick chooses the address for a request that names none: going on from
// the last one picked (or the highest one asked for by name above it),
// through the range and round, the first free
// address this node never saw given back; if every free address was given
// back at some point, the one given back longest ago.
func (m *Manager) pick(p *model.IPAMPool) (netip.Addr, bool) {
	rel := m.released[p.Pool]
	start, ok := first(p)
	if !ok {
		return netip.Addr{}, false
	}
	if p.Last.IsValid() && p.Range.Contains(p.Last) {
		start = next(p, p.Last)
	}
	var oldest netip.Addr
	var oldestAt time.Time
	a, ok := freeFrom(p, start, func(a netip.Addr) bool {
		at, given := rel[a]
		if given && (!oldest.IsValid() || at.Before(oldestAt)) {
			oldest, oldestAt = a, at
		}
		return !given
	})
	if ok {
		return a, true
	}
	if oldest.IsValid() {
		m.log.Warn("every free address was given back before: handing out again the one given back longest ago",
			"pool", p.ID, "addr", oldest, "given_back", oldestAt, "range", p.Range)
	}
	return oldest, oldest.IsValid()
}

// lowestFree is the gateway's choice when the user gave none: the first
// free address of the range, as with the built-in manager.
func (m *Manager) lowestFree(p *model.IPAMPool) (netip.Addr, bool) {
	start, ok := first(p)
	if !ok {
		return netip.Addr{}, false
	}
	return freeFrom(p, start, func(netip.Addr) bool { return true })
}

// freeFrom walks the range from start, round, for at most maxScan
// addresses, and returns the first free one that take accepts.
func freeFrom(p *model.IPAMPool, start netip.Addr, take func(netip.Addr) bool) (netip.Addr, bool) {
	a := start
	for i := 0; i < maxScan; i++ {
		if _, used := p.Used[a]; !used && take(a) {
			return a, true
		}
		if a = next(p, a); a == start {
			break
		}
	}
	return netip.Addr{}, false
}

func (m *Manager) full(p *model.IPAMPool) error {
	return fmt.Errorf("no free address left in %s (subnet %s, %d addresses in use): widen the network's --ip-range", p.Range, p.Pool, len(p.Used))
}

// overflow names the oldest release times of a subnet that must go for
// adding more to stay within MaxReleases.
func (m *Manager) overflow(pool netip.Prefix, adding int) []model.IPAMRelease {
	rel := m.released[pool]
	over := len(rel) + adding - m.maxReleases
	if over <= 0 {
		return nil
	}
	all := make([]model.IPAMRelease, 0, len(rel))
	for a, at := range rel {
		all = append(all, model.IPAMRelease{Pool: pool, Addr: a, At: at})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].At.Before(all[j].At) })
	if over > len(all) {
		over = len(all)
	}
	return all[:over]
}

// noteReleases applies a saved change's release times to the map.
func (m *Manager) noteReleases(c store.IPAMChange) {
	for _, r := range c.Forget {
		delete(m.released[r.Pool], r.Addr)
	}
	for _, r := range c.Released {
		m.releasedOf(r.Pool)[r.Addr] = r.At
	}
}

// first is the range's first address a container may take: not the
// subnet's network address (IPv4; the subnet-router anycast address in
// IPv6) or IPv4 broadcast address.
func first(p *model.IPAMPool) (netip.Addr, bool) {
	a := p.Range.Masked().Addr()
	for i := 0; i < 2; i++ {
		if !p.Range.Contains(a) {
			return netip.Addr{}, false
		}
		if !reserved(p.Pool, a) {
			return a, true
		}
		a = a.Next()
	}
	return netip.Addr{}, false
}

// next is the address after a in the range, past reserved ones, wrapping
// round to the first.
func next(p *model.IPAMPool, a netip.Addr) netip.Addr {
	for {
		a = a.Next()
		if !a.IsValid() || !p.Range.Contains(a) {
			f, _ := first(p)
			return f
		}
		if !reserved(p.Pool, a) {
			return a
		}
	}
}

// reserved: the subnet's own network address (IPv4 and IPv6) and IPv4
// broadcast address, in subnets large enough to have them.
func reserved(pool netip.Prefix, a netip.Addr) bool {
	if a.Is4() {
		if pool.Bits() >= 31 {
			return false
		}
		return a == pool.Addr() || a == lastOf(pool)
	}
	return pool.Bits() < 127 && a == pool.Addr()
}

func lastOf(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := range b {
		bit := i * 8
		switch {
		case bit >= p.Bits():
			b[i] = 0xff
		case bit+8 > p.Bits():
			b[i] |= 0xff >> (p.Bits() - bit)
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func nonce() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Status is the manager's part of GET /status.
type Status struct {
	Pools []PoolStatus `json:"pools"`
}

// PoolStatus is one pool as GET /status shows it.
type PoolStatus struct {
	ID       string    `json:"id"`
	Space    string    `json:"space"`
	Subnet   string    `json:"subnet"`
	Range    string    `json:"range"`
	InUse    int       `json:"in_use"`
	Released int       `json:"released_remembered"` // release times kept for the subnet
	Created  time.Time `json:"created"`
	Network  string    `json:"network,omitempty"` // set once claimed
	Role     string    `json:"role,omitempty"`    // RoleAllocator or RoleNode
}

// Status reports the pools held.
func (m *Manager) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := Status{Pools: []PoolStatus{}}
	for _, p := range m.pools {
		st.Pools = append(st.Pools, PoolStatus{ID: p.ID, Space: p.Space, Subnet: p.Pool.String(), Range: p.Range.String(), InUse: len(p.Used), Released: len(m.released[p.Pool]), Created: p.Created,
			Network: p.Network, Role: p.Role})
	}
	sort.Slice(st.Pools, func(i, j int) bool {
		if !st.Pools[i].Created.Equal(st.Pools[j].Created) {
			return st.Pools[i].Created.Before(st.Pools[j].Created)
		}
		return st.Pools[i].ID < st.Pools[j].ID
	})
	return st
}
