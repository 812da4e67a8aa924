package store

import (
	"net"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
	"github.com/macvlan-swarm/macvlan-swarm/internal/model"
)

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func pfx(t *testing.T, s string) netip.Prefix {
	t.Helper()
	p, err := netip.ParsePrefix(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func ep(id, netID string) *model.Endpoint {
	return &model.Endpoint{ID: id, NetworkID: netID, MAC: net.HardwareAddr{2, 0x42, 0, 0, 0, 1}, Link: "mvs" + id}
}

func TestRoundTripAndReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "does", "not", "exist", "yet")
	s := open(t, dir)
	n := &model.Network{ID: "n1", ParentSpec: "lan|eth0", Parent: "eth0", Mode: link.ModeVEPA, MTU: 1400,
		IPv4:    []model.Pool{{Subnet: pfx(t, "10.1.0.0/24"), Gateway: pfx(t, "10.1.0.1/24"), Aux: map[string]netip.Prefix{"r": pfx(t, "10.1.0.5/24")}}},
		IPv6:    []model.Pool{{Subnet: pfx(t, "fd00::/64")}},
		Options: map[string]string{"parent": "lan|eth0"}}
	joined := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e := &model.Endpoint{ID: "e1", NetworkID: "n1", IPv4: pfx(t, "10.1.0.2/24"), MAC: net.HardwareAddr{2, 0x42, 10, 1, 0, 2}, Link: "mvse1",
		Created: joined.Add(-time.Second), Sandbox: model.Sandbox{Key: "/var/run/docker/netns/abc", File: model.FileID{Dev: 7, Ino: 99}, Joined: joined}}
	if err := s.Apply(Change{PutNetworks: []*model.Network{n}, PutEndpoints: []*model.Endpoint{e}}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = open(t, dir)
	defer s.Close()
	nets, eps, bad, err := s.Load()
	if err != nil || len(bad) != 0 {
		t.Fatalf("load: %v, bad %v", err, bad)
	}
	if len(nets) != 1 || !reflect.DeepEqual(nets[0], n) {
		t.Fatalf("networks = %+v, want %+v", nets[0], n)
	}
	if len(eps) != 1 || !reflect.DeepEqual(eps[0], e) {
		t.Fatalf("endpoints = %+v, want %+v", eps[0], e)
	}
}

func TestHostAccessAndPrivateParentRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	defer s.Close()
	nets := []*model.Network{
		{ID: "n1", ParentSpec: "eth0", Parent: "eth0", Mode: link.ModeBridge, HostAccess: true,
			HostAddrs: []netip.Addr{netip.MustParseAddr("10.1.0.7"), netip.MustParseAddr("fd00::7")},
			IPv4:      []model.Pool{{Subnet: pfx(t, "10.1.0.0/24")}}},
		{ID: "n2", Parent: "mvin2", PrivateParent: true, Mode: link.ModeBridge, Internal: true,
			IPv4: []model.Pool{{Subnet: pfx(t, "10.2.0.0/24")}}},
	}
	if err := s.Apply(Change{PutNetworks: nets}); err != nil {
		t.Fatal(err)
	}
	got, _, bad, err := s.Load()
	if err != nil || len(bad) != 0 || len(got) != 2 {
		t.Fatalf("load: %v, bad %v, %d networks", err, bad, len(got))
	}
	for _, want := range nets {
		i := 0
		if got[i].ID != want.ID {
			i = 1
		}
		if !reflect.DeepEqual(got[i], want) {
			t.Errorf("network = %+v, want %+v", got[i], want)
		}
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketNetworks).Put([]byte("n3"), []byte(`{"id":"n3","parent":"eth0","mode":"bridge","host_access":true,"host_addrs":["10.1.0.999"]}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, bad, _ := s.Load(); len(bad) != 1 || bad[0].Key != "n3" || !strings.Contains(bad[0].Err, "host address") {
		t.Errorf("a bad host address loads as %+v, want one damaged record n3", bad)
	}
}

func TestApplyIsOneTransaction(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	nets := []*model.Network{{ID: "n1", Parent: "eth0", Mode: link.ModeBridge}, {ID: "n2", Parent: "eth0", Mode: link.ModeBridge}}
	if err := s.Apply(Change{PutNetworks: nets, PutEndpoints: []*model.Endpoint{ep("a", "n1"), ep("b", "n1"), ep("c", "n2")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(Change{DeleteNetworks: []string{"n1", "never-existed"}, DeleteEndpoints: []string{"a", "b", "never-existed"}}); err != nil {
		t.Fatal(err)
	}
	got, eps, _, _ := s.Load()
	if len(got) != 1 || got[0].ID != "n2" || len(eps) != 1 || eps[0].ID != "c" {
		t.Fatalf("after delete: nets %+v eps %+v", got, eps)
	}
	// A change with a record that cannot be written writes nothing.
	err := s.Apply(Change{DeleteEndpoints: []string{"c"}, PutEndpoints: []*model.Endpoint{{ID: ""}}})
	if err == nil {
		t.Fatal("a record without an id was accepted")
	}
	if _, eps, _, _ := s.Load(); len(eps) != 1 {
		t.Fatalf("a refused change deleted something: %+v", eps)
	}
}

func TestOldRecordsWithoutNewFieldsLoad(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	// An endpoint written before created/sandbox fields existed.
	old := `{"id":"e1","network_id":"n1","ipv4":"10.1.0.2/24","mac":"02:42:0a:01:00:02","link":"mvse1"}`
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketEndpoints).Put([]byte("e1"), []byte(old)) }); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	_, eps, bad, err := s.Load()
	if err != nil || len(bad) != 0 || len(eps) != 1 {
		t.Fatalf("load: eps %v bad %v err %v", eps, bad, err)
	}
	if e := eps[0]; e.Created.Before(before.Add(-time.Second)) || e.Sandbox.Key != "" || !e.Sandbox.File.IsZero() {
		t.Fatalf("old endpoint loaded as %+v: want created now, not joined", e)
	}
}

func TestDamagedRecordsAreReported(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	defer s.Close()
	if err := s.Apply(Change{PutNetworks: []*model.Network{{ID: "good", Parent: "eth0", Mode: link.ModeBridge}}}); err != nil {
		t.Fatal(err)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		for k, v := range map[string]string{
			"broken":  "{not json",
			"badmode": `{"id":"badmode","parent":"eth0","mode":"l2"}`,
		} {
			if err := tx.Bucket(bucketNetworks).Put([]byte(k), []byte(v)); err != nil {
				return err
			}
		}
		for k, v := range map[string]string{
			// A record under the wrong key is as untrustworthy as bad JSON.
			"e9":     `{"id":"other"}`,
			"badmac": `{"id":"badmac","network_id":"good","mac":"zz","link":"mvs1"}`,
			"badip":  `{"id":"badip","network_id":"good","ipv4":"fd00::1/64","mac":"02:00:00:00:00:01","link":"mvs1"}`,
		} {
			if err := tx.Bucket(bucketEndpoints).Put([]byte(k), []byte(v)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	nets, eps, bad, err := s.Load()
	if err != nil || len(nets) != 1 || len(eps) != 0 || len(bad) != 5 {
		t.Fatalf("load: nets %v eps %v bad %v err %v", nets, eps, bad, err)
	}
	var c Change
	for _, b := range bad {
		if b.Err == "" {
			t.Errorf("bad record %s without a reason", b.Key)
		}
		if b.Kind == "network" {
			c.DeleteNetworks = append(c.DeleteNetworks, b.Key)
		} else {
			c.DeleteEndpoints = append(c.DeleteEndpoints, b.Key)
		}
	}
	if err := s.Apply(c); err != nil {
		t.Fatal(err)
	}
	if _, _, bad, _ = s.Load(); len(bad) != 0 {
		t.Fatalf("bad records remain: %v", bad)
	}
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
