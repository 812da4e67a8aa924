package driver_test

// Join's packets on a real LAN: the bench's eth0 is the parent, its veth
// peer lives in a "LAN" namespace where a packet socket captures what
// arrives and whose kernel plays a machine Docker does not know.

import (
	"bytes"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/packet"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
	"github.com/macvlan-swarm/macvlan-swarm/internal/link/linktest"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol/wiretest"
)

// lanSide moves eth0's peer into a namespace of its own, up, with the
// given addresses, and returns that namespace and the peer's MAC.
func (b *bench) lanSide(t *testing.T, addrs ...string) (*linktest.Lab, net.HardwareAddr) {
	t.Helper()
	lan := b.lab.NewPeerNamespace(t)
	peer := linktest.PeerName("eth0")
	b.lab.MoveTo(t, peer, lan)
	lan.SetUp(t, peer)
	for _, a := range addrs {
		if out, err := exec.Command("ip", "-n", lan.Name(), "addr", "add", a, "dev", peer).CombinedOutput(); err != nil {
			t.Fatalf("ip addr add %s: %v: %s", a, err, out)
		}
	}
	var mac net.HardwareAddr
	if err := linktest.RunIn(lan.Name(), func() error {
		ifi, err := net.InterfaceByName(peer)
		if err == nil {
			mac = ifi.HardwareAddr
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return lan, mac
}

// frames captures, on the LAN side, the frames whose source is mac.
func frames(t *testing.T, lan *linktest.Lab, mac net.HardwareAddr) <-chan []byte {
	t.Helper()
	var c *packet.Conn
	if err := linktest.RunIn(lan.Name(), func() error {
		ifi, err := net.InterfaceByName(linktest.PeerName("eth0"))
		if err != nil {
			return err
		}
		c, err = packet.Listen(ifi, packet.Raw, 0x0003, nil) // ETH_P_ALL
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ch := make(chan []byte, 64)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			if n >= 14 && bytes.Equal(buf[6:12], mac) {
				ch <- bytes.Clone(buf[:n])
			}
		}
	}()
	return ch
}

func receive(ch <-chan []byte, wait time.Duration) []byte {
	select {
	case f := <-ch:
		return f
	case <-time.After(wait):
		return nil
	}
}

// TestJoinAnnounces: after Join, once the "engine" has moved the link into
// a container, the parent sends the configured number of gratuitous ARPs
// from the container's MAC, also after a plugin restart; with
// advertise_addr_nmsgs=0, none.
func TestJoinAnnounces(t *testing.T) {
	b := newBench(t, benchOpts{announce: true})
	lan, _ := b.lanSide(t)
	ctr := b.lab.NewPeerNamespace(t)

	net1, ep1 := hexID("ann-net"), hexID("ann-ep")
	b.ok(t, "CreateNetwork", wiretest.CreateNetwork(net1, onEth0("com.docker.network.advertise_addr_nmsgs", "2", "com.docker.network.advertise_addr_ms", "100"),
		wiretest.Pool("10.61.0.0/24", "10.61.0.1/24")))
	b.ok(t, "CreateEndpoint", wiretest.CreateEndpoint(net1, ep1, "10.61.0.2/24", "", ""))
	// A restart between: the options come back from the saved network.
	b.restart(t)
	mac := net.HardwareAddr{0x02, 0x42, 10, 61, 0, 2}
	got := frames(t, lan, mac)
	began := time.Now()
	name := joinedLink(t, ep1, b.ok(t, "Join", wiretest.Join(net1, ep1)))
	t.Logf("Join answered in %v", time.Since(began).Round(time.Microsecond))
	if f := receive(got, 200*time.Millisecond); f != nil {
		t.Fatalf("a frame from %s while the link is still in the host: %x", mac, f)
	}
	b.lab.MoveTo(t, name, ctr)
	for i := range 2 {
		f := receive(got, 5*time.Second)
		if f == nil {
			t.Fatalf("announcement %d of 2 never came", i+1)
		}
		// Ethernet broadcast, ARP, sender and target 10.61.0.2 at mac.
		if !bytes.Equal(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) || f[12] != 0x08 || f[13] != 0x06 ||
			!bytes.Equal(f[14+8:14+14], mac) || !bytes.Equal(f[14+14:14+18], []byte{10, 61, 0, 2}) || !bytes.Equal(f[14+24:14+28], []byte{10, 61, 0, 2}) {
			t.Errorf("announcement %d is not a gratuitous ARP for 10.61.0.2 at %s: %x", i+1, mac, f)
		}
	}
	if f := receive(got, 400*time.Millisecond); f != nil {
		t.Errorf("a third frame, with advertise_addr_nmsgs=2: %x", f)
	}
	b.lab.MoveBack(t, ctr, name)

	net2, ep2 := hexID("quiet-net"), hexID("quiet-ep")
	b.ok(t, "CreateNetwork", wiretest.CreateNetwork(net2, onEth0("com.docker.network.advertise_addr_nmsgs", "0"),
		wiretest.Pool("10.62.0.0/24", "10.62.0.1/24")))
	b.ok(t, "CreateEndpoint", wiretest.CreateEndpoint(net2, ep2, "10.62.0.2/24", "", ""))
	quiet := frames(t, lan, net.HardwareAddr{0x02, 0x42, 10, 62, 0, 2})
	name2 := joinedLink(t, ep2, b.ok(t, "Join", wiretest.Join(net2, ep2)))
	b.lab.MoveTo(t, name2, ctr)
	if f := receive(quiet, 1500*time.Millisecond); f != nil {
		t.Errorf("a frame with advertise_addr_nmsgs=0: %x", f)
	}
	b.lab.MoveBack(t, ctr, name2)
}

// TestJoinAddressCheck: with address_check=true, a Join whose address a
// machine on the LAN holds is refused, naming the address, that machine's
// MAC and the fix, and leaves no link; a free address joins.
func TestJoinAddressCheck(t *testing.T) {
	b := newBench(t, benchOpts{announce: true})
	_, foreignMAC := b.lanSide(t, "10.63.0.2/24")

	netID, taken, free := hexID("chk-net"), hexID("chk-taken"), hexID("chk-free")
	b.ok(t, "CreateNetwork", wiretest.CreateNetwork(netID, onEth0("address_check", "true", "address_check_timeout", "150ms"),
		wiretest.Pool("10.63.0.0/24", "10.63.0.1/24")))
	b.ok(t, "CreateEndpoint", wiretest.CreateEndpoint(netID, taken, "10.63.0.2/24", "", ""))
	before := b.linkNames(t)
	msg := b.refused(t, "Join", wiretest.Join(netID, taken))
	mustContain(t, msg, "address 10.63.0.2 is already used", `parent "eth0"`, "MAC "+foreignMAC.String(), "--aux-address", "--ip-range")
	if after := b.linkNames(t); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("links before the refused Join %v, after %v", before, after)
	}
	// The engine deletes the endpoint of a failed Join.
	b.ok(t, "DeleteEndpoint", wiretest.DeleteEndpoint(netID, taken))

	b.ok(t, "CreateEndpoint", wiretest.CreateEndpoint(netID, free, "10.63.0.3/24", "", ""))
	began := time.Now()
	joinedLink(t, free, b.ok(t, "Join", wiretest.Join(netID, free)))
	t.Logf("Join of a free address with a 150ms check answered in %v", time.Since(began).Round(time.Millisecond))
	b.ok(t, "DeleteEndpoint", wiretest.DeleteEndpoint(netID, free))
	b.ok(t, "DeleteNetwork", wiretest.DeleteNetwork(netID))
	b.d.Flush()
	b.wantNoMvsLinks(t)
	b.wantNoState(t)
}

// TestParentlessNetworkSendsNothing: a network without a parent leads to
// no LAN, so address_check does not run there: the far end of its private
// lower link (when that is a veth) holds the container's address, and the
// Join goes through.
func TestParentlessNetworkSendsNothing(t *testing.T) {
	b := newBench(t, benchOpts{announce: true})
	netID := swarmID("pl-check")
	lower, peer := link.PrivateParentNames(netID)
	b.ok(t, "CreateNetwork", wiretest.CreateNetwork(netID, map[string]string{"address_check": "true"}, wiretest.Pool("10.78.0.0/24", "10.78.0.1/24")))
	if k := b.getLink(t, lower).Kind; k != "veth" {
		t.Skipf("the private lower link is a %s here: no far end to hold the address", k)
	}
	if out, err := exec.Command("ip", "-n", b.lab.Name(), "addr", "add", "10.78.0.2/24", "dev", peer).CombinedOutput(); err != nil {
		t.Fatalf("ip addr add: %v: %s", err, out)
	}
	ep := hexID("pl-check-ep")
	b.ok(t, "CreateEndpoint", wiretest.CreateEndpoint(netID, ep, "10.78.0.2/24", "", ""))
	joinedLink(t, ep, b.ok(t, "Join", wiretest.Join(netID, ep)))
}
