package store

import (
	"net/netip"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/macvlan-swarm/macvlan-swarm/internal/model"
)

func TestIPAMRoundTripAndDelete(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	p := &model.IPAMPool{ID: "10.1.0.0/24@a", Space: "macvlan-swarm-global", Pool: pfx(t, "10.1.0.0/24"), Range: pfx(t, "10.1.0.128/25"),
		Last: netip.MustParseAddr("10.1.0.130"), Created: at}
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	if err := s.ApplyIPAM(IPAMChange{PutPool: p, Take: []PoolAddr{{p.ID, a("10.1.0.1"), at}, {p.ID, a("10.1.0.130"), at}}}); err != nil {
		t.Fatal(err)
	}
	other := &model.IPAMPool{ID: "10.1.0.0/24@b", Pool: p.Pool, Range: p.Pool, Created: at}
	if err := s.ApplyIPAM(IPAMChange{PutPool: other, Take: []PoolAddr{{other.ID, a("10.1.0.130"), at}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyIPAM(IPAMChange{Give: []PoolAddr{{PoolID: p.ID, Addr: a("10.1.0.1")}},
		Released: []model.IPAMRelease{{Pool: p.Pool, Addr: a("10.1.0.1"), At: at}, {Pool: p.Pool, Addr: a("10.1.0.2"), At: at}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyIPAM(IPAMChange{Forget: []model.IPAMRelease{{Pool: p.Pool, Addr: a("10.1.0.2")}}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, dir)
	pools, rels, bad, err := s.LoadIPAM()
	if err != nil || len(bad) > 0 {
		t.Fatalf("load: %v, bad %v", err, bad)
	}
	if len(pools) != 2 || len(rels) != 1 {
		t.Fatalf("loaded %d pools and %d releases, want 2 and 1", len(pools), len(rels))
	}
	got := pools[0] // keys sort: "…@a" first
	if got.ID != p.ID || got.Space != p.Space || got.Range != p.Range || got.Last != p.Last || !got.Created.Equal(at) || len(got.Used) != 1 {
		t.Fatalf("pool after reopen: %+v", got)
	}
	if given, ok := got.Used[a("10.1.0.130")]; !ok || !given.Equal(at) {
		t.Fatalf("pool lost 10.1.0.130 or when it was given: %+v", got.Used)
	}
	if r := rels[0]; r.Pool != p.Pool || r.Addr != a("10.1.0.1") || !r.At.Equal(at) {
		t.Fatalf("release after reopen: %+v", r)
	}

	// Deleting a pool deletes its addresses, not another pool's.
	if err := s.ApplyIPAM(IPAMChange{DeletePools: []string{p.ID}}); err != nil {
		t.Fatal(err)
	}
	pools, _, bad, _ = s.LoadIPAM()
	if len(pools) != 1 || pools[0].ID != other.ID || len(pools[0].Used) != 1 || len(bad) > 0 {
		t.Fatalf("after deleting %s: %+v (bad %v)", p.ID, pools, bad)
	}
}

func TestDamagedIPAMRecordsAreReportedAndDropped(t *testing.T) {
	s := open(t, t.TempDir())
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, kv := range [][3]string{
			{string(bucketIPAMPools), "p1", `{"id":"p1","pool":"10.1.0.0/33","range":"10.1.0.0/24"}`},
			{string(bucketIPAMPools), "p2", `{"id":"other","pool":"10.1.0.0/24","range":"10.1.0.0/24"}`},
			{string(bucketIPAMPools), "p3", `{"id":"p3","pool":"10.1.0.0/24","range":"10.1.0.0/24"}`},
			{string(bucketIPAMUsed), "nopool\x0010.1.0.5", ""},
			{string(bucketIPAMUsed), "no separator", ""},
			{string(bucketIPAMUsed), "p3\x0010.1.0.6", "yesterday"},
			{string(bucketIPAMReleased), "10.1.0.0/24\x00not-an-address", "1"},
			{string(bucketIPAMReleased), "10.1.0.0/24\x0010.1.0.7", "soon"},
		} {
			if err := tx.Bucket([]byte(kv[0])).Put([]byte(kv[1]), []byte(kv[2])); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pools, rels, bad, err := s.LoadIPAM()
	if err != nil {
		t.Fatal(err)
	}
	if len(pools) != 1 || len(pools[0].Used) != 0 || len(rels) != 0 || len(bad) != 7 {
		t.Fatalf("pools %v, releases %v, bad %v: want pool p3 with no address, and 7 bad records", pools, rels, bad)
	}
	if err := s.DropBadIPAM(bad); err != nil {
		t.Fatal(err)
	}
	if _, _, bad, _ := s.LoadIPAM(); len(bad) != 0 {
		t.Fatalf("after dropping: still bad %v", bad)
	}
}
