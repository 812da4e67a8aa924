package store

import (
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRoundTripAndReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "does", "not", "exist", "yet")
	s := open(t, dir)
	n := Network{ID: "n1", ParentSpec: "lan|eth0", Parent: "eth0", Mode: "bridge", MTU: 1400,
		IPv4: []Pool{{Pool: "10.1.0.0/24", Gateway: "10.1.0.1/24", Aux: map[string]string{"r": "10.1.0.5/24"}}},
		IPv6: []Pool{{Pool: "fd00::/64"}}, Options: map[string]string{"parent": "lan|eth0"}}
	if err := s.PutNetwork(n); err != nil {
		t.Fatal(err)
	}
	if err := s.PutEndpoint(Endpoint{ID: "e1", NetworkID: "n1", IPv4: "10.1.0.2/24", MAC: "02:42:0a:01:00:02", Link: "mvse1"}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = open(t, dir)
	defer s.Close()
	nets, eps, bad, err := s.Load()
	if err != nil || len(bad) != 0 {
		t.Fatalf("load: %v, bad %v", err, bad)
	}
	if len(nets) != 1 || nets[0].Parent != "eth0" || nets[0].MTU != 1400 || nets[0].IPv4[0].Aux["r"] != "10.1.0.5/24" || len(nets[0].IPv6) != 1 {
		t.Fatalf("networks = %+v", nets)
	}
	if len(eps) != 1 || eps[0].Link != "mvse1" || eps[0].MAC != "02:42:0a:01:00:02" {
		t.Fatalf("endpoints = %+v", eps)
	}
}

func TestDeleteNetworkTakesItsEndpoints(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	for _, n := range []string{"n1", "n2"} {
		if err := s.PutNetwork(Network{ID: n}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutAll([]Endpoint{{ID: "a", NetworkID: "n1"}, {ID: "b", NetworkID: "n1"}, {ID: "c", NetworkID: "n2"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteNetwork("n1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteNetwork("never-existed"); err != nil {
		t.Fatalf("deleting an unknown network: %v", err)
	}
	if err := s.DeleteEndpoint("never-existed"); err != nil {
		t.Fatalf("deleting an unknown endpoint: %v", err)
	}
	nets, eps, _, _ := s.Load()
	if len(nets) != 1 || nets[0].ID != "n2" || len(eps) != 1 || eps[0].ID != "c" {
		t.Fatalf("after delete: nets %+v eps %+v", nets, eps)
	}
}

func TestDamagedRecordsAreReportedAndDropped(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if err := s.PutNetwork(Network{ID: "good"}); err != nil {
		t.Fatal(err)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketNetworks).Put([]byte("broken"), []byte("{not json")); err != nil {
			return err
		}
		// A record under the wrong key is as untrustworthy as bad JSON.
		return tx.Bucket(bucketEndpoints).Put([]byte("e9"), []byte(`{"id":"other"}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	nets, eps, bad, err := s.Load()
	if err != nil || len(nets) != 1 || len(eps) != 0 || len(bad) != 2 {
		t.Fatalf("load: nets %v eps %v bad %v err %v", nets, eps, bad, err)
	}
	if err := s.DeleteBad(bad); err != nil {
		t.Fatal(err)
	}
	_, _, bad, _ = s.Load()
	if len(bad) != 0 {
		t.Fatalf("bad records remain: %v", bad)
	}
	s.Close()
}

func TestNewerSchemaIsRefused(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchema, []byte("99"))
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(dir)
	if err == nil || !strings.Contains(err.Error(), "newer macvlan-swarm (schema 99") {
		t.Fatalf("err = %v", err)
	}
}

func TestSecondOpenTimesOutWithAHint(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for bbolt's 5 s lock timeout")
	}
	dir := t.TempDir()
	s := open(t, dir)
	defer s.Close()
	_, err := Open(dir)
	if err == nil || !strings.Contains(err.Error(), "another copy of the plugin") {
		t.Fatalf("err = %v", err)
	}
}
