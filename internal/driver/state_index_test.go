package driver

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/macvlan-swarm/macvlan-swarm/internal/model"
	"github.com/macvlan-swarm/macvlan-swarm/internal/store"
)

// The indexes answer exactly what a walk over every endpoint would, after
// any mix of new records, replaced records (another address, MAC or link)
// and deletions, in one commit or many.
func TestStateIndexesMatchAWalk(t *testing.T) {
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := newState(st)
	rng := rand.New(rand.NewPCG(1, 2))
	nets := []string{"n1", "n2", "n3"}
	for _, id := range nets {
		if err := s.commit(store.Change{PutNetworks: []*model.Network{{ID: id, Parent: "eth0"}}}); err != nil {
			t.Fatal(err)
		}
	}
	random := func(id string) *model.Endpoint {
		e := &model.Endpoint{ID: id, NetworkID: nets[rng.IntN(len(nets))],
			IPv4: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(rng.IntN(8))}), 24),
			MAC:  net.HardwareAddr{2, 0x42, 0, 0, 0, byte(rng.IntN(6))},
			Link: fmt.Sprintf("mvs%d", rng.IntN(6))}
		if rng.IntN(3) == 0 {
			e.IPv6 = netip.PrefixFrom(netip.MustParseAddr(fmt.Sprintf("fd00::%d", rng.IntN(4))), 64)
		}
		return e
	}
	for step := 0; step < 400; step++ {
		var c store.Change
		for range 1 + rng.IntN(3) {
			id := fmt.Sprintf("ep%d", rng.IntN(20))
			if rng.IntN(3) == 0 {
				c.DeleteEndpoints = append(c.DeleteEndpoints, id)
			} else {
				c.PutEndpoints = append(c.PutEndpoints, random(id))
			}
		}
		if err := s.commit(c); err != nil {
			t.Fatal(err)
		}
		walk := func(keep func(*model.Endpoint) bool) []string {
			var out []string
			for _, e := range s.endpoints {
				if keep(e) {
					out = append(out, e.ID)
				}
			}
			slices.Sort(out)
			return out
		}
		got := func(eps []*model.Endpoint) []string {
			out := []string{}
			for _, e := range eps {
				if s.endpoints[e.ID] != e {
					t.Fatalf("step %d: the index holds an old record of %s", step, e.ID)
				}
				out = append(out, e.ID)
			}
			return out
		}
		same := func(what string, a, b []string) {
			if len(a) != len(b) || (len(a) > 0 && !slices.Equal(a, b)) {
				t.Fatalf("step %d: %s: index %v, walk %v", step, what, a, b)
			}
		}
		for _, n := range nets {
			same("network "+n, got(s.endpointsOf(n)), walk(func(e *model.Endpoint) bool { return e.NetworkID == n }))
			for i := range 8 {
				a := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 24)
				same(fmt.Sprint(n, a), got(s.endpointsAt(n, a)), walk(func(e *model.Endpoint) bool { return e.NetworkID == n && e.IPv4.Addr() == a.Addr() }))
			}
			for i := range 4 {
				a := netip.PrefixFrom(netip.MustParseAddr(fmt.Sprintf("fd00::%d", i)), 64)
				same(fmt.Sprint(n, a), got(s.endpointsAt(n, a)), walk(func(e *model.Endpoint) bool {
					return e.NetworkID == n && e.IPv6.IsValid() && e.IPv6.Addr() == a.Addr()
				}))
			}
		}
		for i := range 6 {
			mac := net.HardwareAddr{2, 0x42, 0, 0, 0, byte(i)}
			same(mac.String(), got(s.endpointsWithMAC(mac)), walk(func(e *model.Endpoint) bool { return e.MAC.String() == mac.String() }))
			name := fmt.Sprintf("mvs%d", i)
			same(name, got(s.endpointsWithLink(name)), walk(func(e *model.Endpoint) bool { return e.Link == name }))
		}
		for _, x := range []index{s.byNet, s.byAddr, s.byMAC, s.byLink} {
			for k, m := range x {
				if len(m) == 0 {
					t.Fatalf("step %d: an empty entry %q is left in an index", step, k)
				}
			}
		}
	}
}
