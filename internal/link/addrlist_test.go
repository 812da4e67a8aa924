package link_test

import (
	"net"
	"os/exec"
	"slices"
	"testing"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
	"github.com/macvlan-swarm/macvlan-swarm/internal/link/linktest"
)

// TestUnicastAddressesFollowAMovedMacvlan checks the signal the status drift
// check rests on: a macvlan's MAC is on its parent's unicast list while the
// macvlan is up, also after it moved to another namespace, and leaves the
// list when the macvlan goes down or is deleted there.
func TestUnicastAddressesFollowAMovedMacvlan(t *testing.T) {
	lab := linktest.New(t)
	h := lab.Handle()
	lab.Veth(t, "up0", 0)
	mac, _ := net.ParseMAC("02:42:0a:07:00:05")
	if err := h.AddMacvlan(link.MacvlanSpec{Name: "mvstest0", Parent: "up0", Mode: link.ModeBridge, MAC: mac, Mark: link.EndpointMark("ep")}); err != nil {
		t.Fatal(err)
	}
	has := func() bool {
		t.Helper()
		addrs, err := h.UnicastAddresses("up0")
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(addrs, func(a net.HardwareAddr) bool { return a.String() == mac.String() })
	}
	if has() {
		t.Fatal("the MAC of a macvlan that is down is on its parent's list")
	}
	ctr := lab.NewPeerNamespace(t)
	lab.MoveTo(t, "mvstest0", ctr)
	ctr.SetUp(t, "mvstest0")
	if !has() {
		t.Fatal("the MAC of a macvlan that is up in another namespace is not on its parent's list")
	}
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", append([]string{"-n", ctr.Name()}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	ip("link", "set", "mvstest0", "down")
	if has() {
		t.Fatal("the MAC stayed on the list after the macvlan went down")
	}
	ip("link", "set", "mvstest0", "up")
	if !has() {
		t.Fatal("the MAC is not back on the list after the macvlan came up again")
	}
	ip("link", "del", "mvstest0")
	if has() {
		t.Fatal("the MAC stayed on the list after the macvlan was deleted")
	}
	if _, err := h.UnicastAddresses("nosuchlink"); err == nil {
		t.Fatal("a missing link gave no error")
	}
}
