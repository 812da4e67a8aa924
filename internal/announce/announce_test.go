package announce_test

// Real frames between two network namespaces: the "node" (a veth end, the
// parent the announcer sends on) and the "LAN" (the other end, where a packet
// socket captures what arrives and whose kernel stands in for a neighbour or
// for a machine Docker does not know).

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"

	"github.com/macvlan-swarm/macvlan-swarm/internal/announce"
	"github.com/macvlan-swarm/macvlan-swarm/internal/announce/announcetest"
	"github.com/macvlan-swarm/macvlan-swarm/internal/link/linktest"
)

const parent = "par0"

var (
	ctrMAC = net.HardwareAddr{0x02, 0x42, 10, 77, 0, 5}
	ctrV4  = netip.MustParseAddr("10.77.0.5")
	ctrV6  = netip.MustParseAddr("fd00:77::5")
)

// pair is a node namespace holding parent and a LAN namespace holding its
// peer, with the LAN's kernel at 10.77.0.1/24 and fd00:77::1/64.
type pair struct {
	node, lan *linktest.Lab
	peer      string
	peerMAC   net.HardwareAddr
}

func newPair(t *testing.T) *pair {
	t.Helper()
	node := linktest.New(t)
	lan := node.NewPeerNamespace(t)
	node.Veth(t, parent, 0)
	peer := linktest.PeerName(parent)
	node.MoveTo(t, peer, lan)
	lan.SetUp(t, peer)
	ip(t, lan, "addr", "add", "10.77.0.1/24", "dev", peer)
	ip(t, lan, "addr", "add", "fd00:77::1/64", "dev", peer, "nodad")
	p := &pair{node: node, lan: lan, peer: peer}
	err := linktest.RunIn(lan.Name(), func() error {
		ifi, err := net.InterfaceByName(peer)
		if err == nil {
			p.peerMAC = ifi.HardwareAddr
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func ip(t *testing.T, l *linktest.Lab, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", l.Name()}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip -n %s %s: %v: %s", l.Name(), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// capture collects the frames from ctrMAC that reach the LAN end.
type capture struct {
	frames chan []byte
}

func (p *pair) capture(t *testing.T) *capture {
	t.Helper()
	var c *packet.Conn
	err := linktest.RunIn(p.lan.Name(), func() error {
		ifi, err := net.InterfaceByName(p.peer)
		if err != nil {
			return err
		}
		c, err = packet.Listen(ifi, packet.Raw, ethPAll, nil)
		return err
	})
	if err != nil {
		t.Fatalf("capture socket: %v", err)
	}
	cp := &capture{frames: make(chan []byte, 64)}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				close(cp.frames)
				return
			}
			if bytes.Equal(buf[6:12], ctrMAC) {
				cp.frames <- bytes.Clone(buf[:n])
			}
		}
	}()
	t.Cleanup(func() { c.Close() })
	return cp
}

const ethPAll = 0x0003

// next returns the next captured frame, or nil after wait.
func (c *capture) next(wait time.Duration) []byte {
	select {
	case f := <-c.frames:
		return f
	case <-time.After(wait):
		return nil
	}
}

func TestAnnounceSendsGratuitousARPAndNA(t *testing.T) {
	p := newPair(t)
	// The LAN's kernel has stale entries for the container's addresses:
	// the announcements must move them to the container's MAC.
	ip(t, p.lan, "neigh", "replace", ctrV4.String(), "lladdr", "02:00:00:00:00:99", "dev", p.peer, "nud", "stale")
	ip(t, p.lan, "neigh", "replace", ctrV6.String(), "lladdr", "02:00:00:00:00:99", "dev", p.peer, "nud", "stale")
	cp := p.capture(t)

	a := announce.New(announcetest.ListenIn(p.node), nil)
	defer a.Close()
	const rounds = 3
	a.Start(announce.Target{Parent: parent, MAC: ctrMAC, IPv4: ctrV4, IPv6: ctrV6}, rounds, 100*time.Millisecond)

	var arps, nas int
	var times []time.Time
	for arps+nas < 2*rounds {
		f := cp.next(5 * time.Second)
		if f == nil {
			t.Fatalf("after %d ARP and %d NA frames nothing more came; want %d of each", arps, nas, rounds)
		}
		var eth ethernet.Frame
		if err := eth.UnmarshalBinary(f); err != nil {
			t.Fatalf("frame %x: %v", f, err)
		}
		switch eth.EtherType {
		case ethernet.EtherTypeARP:
			arps++
			times = append(times, time.Now())
			checkGratuitousARP(t, &eth)
		case ethernet.EtherTypeIPv6:
			nas++
			checkNA(t, &eth)
		default:
			t.Errorf("unexpected frame of type %v from the container's MAC", eth.EtherType)
		}
	}
	if f := cp.next(300 * time.Millisecond); f != nil {
		t.Errorf("a frame after the %d rounds: %x", rounds, f)
	}
	if arps != rounds || nas != rounds {
		t.Errorf("%d ARP and %d NA frames, want %d of each", arps, nas, rounds)
	}
	for i := 1; i < len(times); i++ {
		t.Logf("round %d came %v after round %d", i+1, times[i].Sub(times[i-1]).Round(time.Millisecond), i)
	}
	for _, addr := range []netip.Addr{ctrV4, ctrV6} {
		out := ip(t, p.lan, "neigh", "show", addr.String(), "dev", p.peer)
		if !strings.Contains(out, ctrMAC.String()) {
			t.Errorf("LAN neighbour entry for %s after the announcements: %q, want lladdr %s", addr, out, ctrMAC)
		}
	}
}

func checkGratuitousARP(t *testing.T, eth *ethernet.Frame) {
	t.Helper()
	if !bytes.Equal(eth.Destination, ethernet.Broadcast) {
		t.Errorf("ARP to %s, want broadcast", eth.Destination)
	}
	var a arp.Packet
	if err := a.UnmarshalBinary(eth.Payload); err != nil {
		t.Fatalf("ARP payload: %v", err)
	}
	if a.Operation != arp.OperationRequest || a.SenderIP != ctrV4 || a.TargetIP != ctrV4 || !bytes.Equal(a.SenderHardwareAddr, ctrMAC) {
		t.Errorf("gratuitous ARP: op %v sender %s/%s target %s, want a request from and for %s at %s",
			a.Operation, a.SenderIP, a.SenderHardwareAddr, a.TargetIP, ctrV4, ctrMAC)
	}
}

func checkNA(t *testing.T, eth *ethernet.Frame) {
	t.Helper()
	if want := (net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}); !bytes.Equal(eth.Destination, want) {
		t.Errorf("NA to %s, want %s (all nodes)", eth.Destination, want)
	}
	h := eth.Payload
	src, _ := netip.AddrFromSlice(h[8:24])
	dst, _ := netip.AddrFromSlice(h[24:40])
	if h[6] != 58 || h[7] != 255 || src != ctrV6 || dst != netip.MustParseAddr("ff02::1") {
		t.Errorf("IPv6 header: next %d hop limit %d %s → %s, want ICMPv6, 255, %s → ff02::1", h[6], h[7], src, dst, ctrV6)
	}
	m, err := ndp.ParseMessage(h[40:])
	if err != nil {
		t.Fatalf("NDP message: %v", err)
	}
	na, ok := m.(*ndp.NeighborAdvertisement)
	if !ok {
		t.Fatalf("NDP message %T, want a neighbour advertisement", m)
	}
	if !na.Override || na.Solicited || na.TargetAddress != ctrV6 {
		t.Errorf("NA override %v solicited %v target %s, want override, unsolicited, %s", na.Override, na.Solicited, na.TargetAddress, ctrV6)
	}
	if len(na.Options) != 1 {
		t.Fatalf("NA options %v, want the target's link-layer address", na.Options)
	}
	if lla, ok := na.Options[0].(*ndp.LinkLayerAddress); !ok || lla.Direction != ndp.Target || !bytes.Equal(lla.Addr, ctrMAC) {
		t.Errorf("NA option %v, want target link-layer address %s", na.Options[0], ctrMAC)
	}
}

func TestAnnounceWaitsForTheLinkToMove(t *testing.T) {
	p := newPair(t)
	cp := p.capture(t)
	a := announce.New(announcetest.ListenIn(p.node), nil)
	defer a.Close()
	var moved atomic.Bool
	a.Start(announce.Target{Parent: parent, MAC: ctrMAC, IPv4: ctrV4, Moved: moved.Load}, 1, 100*time.Millisecond)
	if f := cp.next(300 * time.Millisecond); f != nil {
		t.Fatalf("a frame before the link left the host: %x", f)
	}
	moved.Store(true)
	if f := cp.next(5 * time.Second); f == nil {
		t.Fatal("no announcement after the link left the host")
	}
}

func TestCloseStopsAnnouncements(t *testing.T) {
	p := newPair(t)
	cp := p.capture(t)
	a := announce.New(announcetest.ListenIn(p.node), nil)
	a.Start(announce.Target{Parent: parent, MAC: ctrMAC, IPv4: ctrV4}, 3, 500*time.Millisecond)
	if f := cp.next(5 * time.Second); f == nil {
		t.Fatal("no first announcement")
	}
	a.Close()
	if f := cp.next(700 * time.Millisecond); f != nil {
		t.Errorf("a frame after Close: %x", f)
	}
}

func TestStartAfterCloseSendsNothing(t *testing.T) {
	p := newPair(t)
	cp := p.capture(t)
	a := announce.New(announcetest.ListenIn(p.node), nil)
	a.Close()
	a.Start(announce.Target{Parent: parent, MAC: ctrMAC, IPv4: ctrV4}, 3, 100*time.Millisecond)
	a.Close()
	if f := cp.next(500 * time.Millisecond); f != nil {
		t.Errorf("a frame from an announcer already closed: %x", f)
	}
}

func TestAnnounceFailureIsNotFatal(t *testing.T) {
	p := newPair(t)
	a := announce.New(announcetest.ListenIn(p.node), nil)
	// No such parent: logged, and Close still returns.
	a.Start(announce.Target{Parent: "nosuch0", MAC: ctrMAC, IPv4: ctrV4}, 3, 100*time.Millisecond)
	a.Close()
}

func TestCheckFindsAForeignHolder(t *testing.T) {
	p := newPair(t)
	a := announce.New(announcetest.ListenIn(p.node), nil)
	defer a.Close()
	for _, tc := range []struct {
		name string
		tgt  announce.Target
		addr netip.Addr
	}{
		{"ipv4", announce.Target{Parent: parent, MAC: ctrMAC, IPv4: netip.MustParseAddr("10.77.0.1")}, netip.MustParseAddr("10.77.0.1")},
		{"ipv6", announce.Target{Parent: parent, MAC: ctrMAC, IPv6: netip.MustParseAddr("fd00:77::1")}, netip.MustParseAddr("fd00:77::1")},
		{"dual_v6_taken", announce.Target{Parent: parent, MAC: ctrMAC, IPv4: ctrV4, IPv6: netip.MustParseAddr("fd00:77::1")}, netip.MustParseAddr("fd00:77::1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			began := time.Now()
			err := a.Check(context.Background(), tc.tgt, 500*time.Millisecond)
			var c *announce.ConflictError
			if !errors.As(err, &c) {
				t.Fatalf("Check = %v, want a conflict for %s", err, tc.addr)
			}
			if c.Addr != tc.addr || !bytes.Equal(c.MAC, p.peerMAC) || c.Parent != parent {
				t.Errorf("conflict %+v, want %s held by %s on %s", c, tc.addr, p.peerMAC, parent)
			}
			t.Logf("conflict found in %v: %v", time.Since(began).Round(time.Microsecond), err)
		})
	}
	// The probes claim nothing: the LAN's kernel has no entry pointing at
	// the prober's MAC.
	if out := ip(t, p.lan, "neigh", "show", "dev", p.peer); strings.Contains(out, ctrMAC.String()) {
		t.Errorf("the probes changed the LAN's neighbour table:\n%s", out)
	}
}

func TestCheckFreeAddress(t *testing.T) {
	p := newPair(t)
	a := announce.New(announcetest.ListenIn(p.node), nil)
	defer a.Close()
	cp := p.capture(t)
	if err := a.Check(context.Background(), announce.Target{Parent: parent, MAC: ctrMAC, IPv4: ctrV4, IPv6: ctrV6}, 150*time.Millisecond); err != nil {
		t.Fatalf("Check of free addresses = %v, want nil", err)
	}
	// Two rounds of probes, each an ARP probe and a DAD solicitation.
	var probes, dads int
	for f := cp.next(200 * time.Millisecond); f != nil; f = cp.next(200 * time.Millisecond) {
		var eth ethernet.Frame
		if err := eth.UnmarshalBinary(f); err != nil {
			t.Fatal(err)
		}
		switch eth.EtherType {
		case ethernet.EtherTypeARP:
			var a arp.Packet
			if err := a.UnmarshalBinary(eth.Payload); err != nil {
				t.Fatal(err)
			}
			if a.SenderIP != netip.IPv4Unspecified() || a.TargetIP != ctrV4 || !bytes.Equal(a.SenderHardwareAddr, ctrMAC) {
				t.Errorf("ARP probe sender %s/%s target %s, want 0.0.0.0/%s asking for %s", a.SenderIP, a.SenderHardwareAddr, a.TargetIP, ctrMAC, ctrV4)
			}
			probes++
		case ethernet.EtherTypeIPv6:
			h := eth.Payload
			src, _ := netip.AddrFromSlice(h[8:24])
			dst, _ := netip.AddrFromSlice(h[24:40])
			m, err := ndp.ParseMessage(h[40:])
			if err != nil {
				t.Fatal(err)
			}
			ns, ok := m.(*ndp.NeighborSolicitation)
			if !ok || src != netip.IPv6Unspecified() || dst != netip.MustParseAddr("ff02::1:ff00:5") || ns.TargetAddress != ctrV6 || len(ns.Options) != 0 {
				t.Errorf("DAD: %T %s → %s, want a solicitation from :: to ff02::1:ff00:5 for %s without options", m, src, dst, ctrV6)
			}
			if want := (net.HardwareAddr{0x33, 0x33, 0xff, 0, 0, 5}); !bytes.Equal(eth.Destination, want) {
				t.Errorf("DAD to %s, want %s", eth.Destination, want)
			}
			dads++
		}
	}
	if probes != 2 || dads != 2 {
		t.Errorf("%d ARP probes and %d DAD solicitations, want 2 of each", probes, dads)
	}
}

// BenchmarkCheck is what address_check adds to a container start when the
// address is free: the whole timeout, plus opening the sockets.
func BenchmarkCheck(b *testing.B) {
	node := linktest.New(b)
	lan := node.NewPeerNamespace(b)
	node.Veth(b, parent, 0)
	node.MoveTo(b, linktest.PeerName(parent), lan)
	lan.SetUp(b, linktest.PeerName(parent))
	a := announce.New(announcetest.ListenIn(node), nil)
	defer a.Close()
	for _, timeout := range []time.Duration{announce.MinCheckTimeout, 100 * time.Millisecond, announce.DefaultCheckTimeout} {
		b.Run(timeout.String(), func(b *testing.B) {
			for b.Loop() {
				if err := a.Check(context.Background(), announce.Target{Parent: parent, MAC: ctrMAC, IPv4: ctrV4}, timeout); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
