package link_test

import (
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
	"github.com/macvlan-swarm/macvlan-swarm/internal/link/linktest"
)

// ipCmd runs iproute2 in the lab, for what the link package must never do
// itself (routes of someone else).
func ipCmd(t *testing.T, lab *linktest.Lab, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", lab.Name()}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestShimAddressesAndRoutes(t *testing.T) {
	lab, h := newLab(t)
	const shim = "mvhtest"
	mark := link.ShimMark(parent)
	if err := h.AddShim(shim, parent, mark); err != nil {
		t.Fatalf("AddShim: %v", err)
	}
	i := mustGet(t, h, shim)
	if i.Kind != "macvlan" || i.MacvlanMode != link.ModeBridge || !i.Up || i.ShimOf() != parent || !i.Ours() {
		t.Fatalf("shim is %+v, want an up bridge-mode macvlan marked as the shim of %s", i, parent)
	}
	if i.ParentIndex != mustGet(t, h, parent).Index {
		t.Errorf("shim sits on link %d, want %s", i.ParentIndex, parent)
	}

	v4, v6 := netip.MustParsePrefix("10.77.0.1/32"), netip.MustParsePrefix("fd77::1/128")
	for range 2 { // the second round: already there is success
		for _, p := range []netip.Prefix{v4, v6} {
			if err := h.AddAddress(shim, p); err != nil {
				t.Fatalf("AddAddress(%s): %v", p, err)
			}
		}
	}
	addrs, err := h.Addresses(shim)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(addrs, v4) || !slices.Contains(addrs, v6) {
		t.Errorf("shim addresses %v, want %s and %s among them", addrs, v4, v6)
	}

	dst4, dst6 := netip.MustParseAddr("10.77.0.2"), netip.MustParseAddr("fd77::2")
	for range 2 {
		if err := h.AddHostRoute(shim, link.HostRoute{Dst: dst4, Src: v4.Addr()}); err != nil {
			t.Fatalf("AddHostRoute(%s): %v", dst4, err)
		}
		if err := h.AddHostRoute(shim, link.HostRoute{Dst: dst6}); err != nil {
			t.Fatalf("AddHostRoute(%s): %v", dst6, err)
		}
	}
	// Someone else's routes: one on the shim with another protocol, one to
	// an address on the parent.
	ipCmd(t, lab, "route", "add", "10.77.0.9/32", "dev", shim, "proto", "static")
	ipCmd(t, lab, "route", "add", "10.77.0.8/32", "dev", parent, "proto", "static")

	got, err := h.HostRoutes(shim)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, netip.Addr.Compare)
	if want := []netip.Addr{dst4, dst6}; !slices.Equal(got, want) {
		t.Errorf("HostRoutes = %v, want %v (only the routes of protocol %d)", got, want, link.RouteProtocol)
	}
	if out := ipCmd(t, lab, "route", "show", "10.77.0.2"); !strings.Contains(out, "dev "+shim) || !strings.Contains(out, "proto 109") || !strings.Contains(out, "src 10.77.0.1") {
		t.Errorf("route to %s is %q, want dev %s proto 109 src 10.77.0.1", dst4, out, shim)
	}

	if err := h.AddHostRoute(shim, link.HostRoute{Dst: netip.MustParseAddr("10.77.0.8")}); err == nil || !strings.Contains(err.Error(), "did not make") {
		t.Errorf("AddHostRoute over a user's route: %v, want a refusal that says the route is not ours", err)
	}
	// Deleting a destination whose route is someone else's leaves it.
	for _, dst := range []string{"10.77.0.9", "10.77.0.8"} {
		if err := h.DeleteHostRoute(shim, netip.MustParseAddr(dst)); err != nil {
			t.Errorf("DeleteHostRoute(%s): %v", dst, err)
		}
		if out := ipCmd(t, lab, "route", "show", dst); !strings.Contains(out, "proto static") {
			t.Errorf("the user's route to %s is gone: %q", dst, out)
		}
	}
	for range 2 {
		for _, dst := range []netip.Addr{dst4, dst6} {
			if err := h.DeleteHostRoute(shim, dst); err != nil {
				t.Errorf("DeleteHostRoute(%s): %v", dst, err)
			}
		}
	}
	if got, _ := h.HostRoutes(shim); len(got) != 0 {
		t.Errorf("routes left after delete: %v", got)
	}
	for range 2 {
		if err := h.DeleteAddress(shim, v4); err != nil {
			t.Errorf("DeleteAddress: %v", err)
		}
	}
	if addrs, _ := h.Addresses(shim); slices.Contains(addrs, v4) {
		t.Errorf("address %s still on the shim", v4)
	}
	if err := h.DeleteHostRoute("nosuch0", dst4); err != nil {
		t.Errorf("DeleteHostRoute on a missing link: %v, want success", err)
	}
	if err := h.DeleteAddress("nosuch0", v4); err != nil {
		t.Errorf("DeleteAddress on a missing link: %v, want success", err)
	}
}

func TestAddPrivateParent(t *testing.T) {
	lab, h := newLab(t)
	netID := "0123456789abcdef0123"
	name, peer := link.PrivateParentNames(netID)
	if name != "mvi0123456789ab" || peer != "mvj0123456789ab" {
		t.Fatalf("PrivateParentNames = %q, %q", name, peer)
	}
	mark := link.PrivateParentMark(netID)
	kind, err := h.AddPrivateParent(name, peer, 1400, mark)
	if err != nil {
		t.Fatalf("AddPrivateParent: %v", err)
	}
	dummy, _ := linktest.KindSupported(t, lab, "dummy")
	want := []string{name}
	if dummy {
		if kind != "dummy" {
			t.Errorf("kind %q on a kernel with dummy links, want dummy", kind)
		}
	} else {
		t.Logf("kernel lacks dummy links: the private lower link is a veth pair")
		if kind != "veth" {
			t.Errorf("kind %q on a kernel without dummy links, want veth", kind)
		}
		want = append(want, peer)
	}
	for _, n := range want {
		i := mustGet(t, h, n)
		if i.Kind != kind || !i.Up || i.MTU != 1400 || i.PrivateParentOf() != netID {
			t.Errorf("%s is %+v, want an up %s of MTU 1400 marked for network %s", n, i, kind, netID)
		}
	}
	// A container link sits on it.
	if err := h.AddMacvlan(link.MacvlanSpec{Name: "mv0", Parent: name, Mark: testMark}); err != nil {
		t.Fatalf("macvlan on the private lower link: %v", err)
	}
	if _, err := h.AddPrivateParent(name, peer, 0, mark); err == nil {
		t.Errorf("AddPrivateParent over an existing link succeeded")
	}
	if err := h.Delete(name); err != nil {
		t.Fatal(err)
	}
	if got := names(t, h); !slices.Equal(got, []string{"lo", parent, linktest.PeerName(parent)}) {
		t.Errorf("links after deleting the private lower link: %v, want its peer and macvlan gone too", got)
	}
}

func TestAddPrivateParentInvalid(t *testing.T) {
	_, h := newLab(t)
	before := names(t, h)
	for _, c := range []struct{ name, peer, mark string }{
		{"mvi-name-too-long", "mvj0", "m"},
		{"mvi0", "", "m"},
		{"mvi0", "mvj0", ""},
	} {
		if _, err := h.AddPrivateParent(c.name, c.peer, 0, c.mark); err == nil {
			t.Errorf("AddPrivateParent(%q, %q, mark %q) succeeded", c.name, c.peer, c.mark)
		}
	}
	if got := names(t, h); !slices.Equal(got, before) {
		t.Errorf("links changed: %v, want %v", got, before)
	}
}
