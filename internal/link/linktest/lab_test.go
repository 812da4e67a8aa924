package linktest_test

import (
	"errors"
	"os"
	"testing"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
	"github.com/macvlan-swarm/macvlan-swarm/internal/link/linktest"
)

func TestPeerName(t *testing.T) {
	for name, want := range map[string]string{
		"eth0":            "eth0p",
		"abcdefghijklmn":  "abcdefghijklmnp",
		"abcdefghijklmno": "abcdefghijklmnp",
	} {
		if got := linktest.PeerName(name); got != want {
			t.Errorf("PeerName(%q) = %q, want %q", name, got, want)
		}
	}
}

// Links made in a lab must not show up on the host: New must leave every
// thread in the namespace it found it in.
func TestLabIsolatedAndRemoved(t *testing.T) {
	const veth = "ltiso0"
	var path string
	t.Run("lab", func(t *testing.T) {
		lab := linktest.New(t)
		path = lab.Path()
		lab.Veth(t, veth, 1400)
		for _, n := range []string{veth, linktest.PeerName(veth)} {
			info, err := lab.Handle().Get(n)
			if err != nil || !info.Up || info.MTU != 1400 || info.Kind != "veth" {
				t.Errorf("Get(%q) in lab = %+v, %v; want an up veth with MTU 1400", n, info, err)
			}
		}
		host, err := link.Open()
		if err != nil {
			t.Fatal(err)
		}
		defer host.Close()
		if _, err := host.Get(veth); !errors.Is(err, link.ErrNotFound) {
			t.Errorf("lab veth visible on the host: %v", err)
		}
	})
	if path == "" {
		t.Skip("lab was skipped")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("namespace file %s still there after the test: %v", path, err)
	}
}

func TestMoveToAndBack(t *testing.T) {
	lab := linktest.New(t)
	ctr := lab.NewPeerNamespace(t)
	lab.Veth(t, "ltmv0", 0)
	lab.MoveTo(t, "ltmv0", ctr)
	if _, err := lab.Handle().Get("ltmv0"); !errors.Is(err, link.ErrNotFound) {
		t.Errorf("moved link still in the lab: %v", err)
	}
	ctr.SetUp(t, "ltmv0")
	if info, err := ctr.Handle().Get("ltmv0"); err != nil || !info.Up {
		t.Errorf("moved link in the peer: %+v, %v; want it there and up", info, err)
	}
	lab.MoveBack(t, ctr, "ltmv0")
	if _, err := lab.Handle().Get("ltmv0"); err != nil {
		t.Errorf("link not back in the lab: %v", err)
	}
}

func TestKindSupported(t *testing.T) {
	lab := linktest.New(t)
	for _, kind := range []string{"veth", "bridge", "macvlan"} {
		if ok, why := linktest.KindSupported(t, lab, kind); !ok {
			t.Errorf("KindSupported(%q) = false (%v); every kernel this project runs on has it", kind, why)
		}
	}
	for _, kind := range []string{"dummy", "vlan", "ipvlan"} {
		ok, why := linktest.KindSupported(t, lab, kind)
		t.Logf("kernel has %s links: %v %v", kind, ok, why)
	}
	// Probes clean up after themselves.
	infos, err := lab.Handle().List()
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Name != "lo" {
		t.Errorf("lab after probes holds %+v, want only lo", infos)
	}
}
