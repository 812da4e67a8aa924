package link_test

import (
	"net"
	"strings"
	"testing"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
)

func TestSplitVLAN(t *testing.T) {
	tests := []struct {
		in     string
		base   string
		vid    int
		isVLAN bool
		err    bool
	}{
		{"eth0.20", "eth0", 20, true, false},
		{"bond0.4094", "bond0", 4094, true, false},
		{"eth0", "", 0, false, false},
		{"eth0.", "", 0, false, false},
		{".20", "", 0, false, false},
		{"br.lan", "", 0, false, false},
		{"eth0.4095", "eth0", 0, true, true},
		{"eth0.99999999999999999999", "eth0", 0, true, true},
	}
	for _, tc := range tests {
		base, vid, isVLAN, err := link.SplitVLAN(tc.in)
		if base != tc.base || vid != tc.vid || isVLAN != tc.isVLAN || (err != nil) != tc.err {
			t.Errorf("SplitVLAN(%q) = %q, %d, %v, %v; want %q, %d, %v, err %v", tc.in, base, vid, isVLAN, err, tc.base, tc.vid, tc.isVLAN, tc.err)
		}
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]link.Mode{"": link.ModeBridge, "Private": link.ModePrivate, " vepa ": link.ModeVEPA, "passthru": link.ModePassthru} {
		if got, err := link.ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"source", "l2", "bridged"} {
		if _, err := link.ParseMode(bad); err == nil || !strings.Contains(err.Error(), "use one of bridge, private, vepa, passthru") {
			t.Errorf("ParseMode(%q) err = %v", bad, err)
		}
	}
}

func TestCheckMAC(t *testing.T) {
	for _, tc := range []struct {
		mac  net.HardwareAddr
		want string
	}{
		{net.HardwareAddr{2, 0x42, 0, 0, 0, 1}, ""},
		{net.HardwareAddr{2, 0, 0}, "six hex bytes"},
		{net.HardwareAddr{1, 0, 0x5e, 0, 0, 1}, "multicast"},
		{make(net.HardwareAddr, 6), "all zeros"},
	} {
		err := link.CheckMAC(tc.mac)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("CheckMAC(%v) = %v, want %q", tc.mac, err, tc.want)
		}
	}
}

// Ownership is read from the mark, never from the name.
func TestOwnershipMark(t *testing.T) {
	id := strings.Repeat("ab", 32)
	ours := link.Info{Name: "anything", Kind: "macvlan", Alias: link.EndpointMark(id)}
	if !ours.Ours() || ours.EndpointOf() != id {
		t.Errorf("%+v: Ours %v EndpointOf %q", ours, ours.Ours(), ours.EndpointOf())
	}
	for _, i := range []link.Info{
		{Name: link.EndpointLinkName(id), Kind: "macvlan"},           // our name shape, no mark
		{Name: "mvsuplink", Kind: "macvlan", Alias: "uplink to lan"}, // a user's alias
		{Name: "x", Kind: "veth", Alias: link.EndpointMark(id)},      // the mark on another kind
	} {
		if i.EndpointOf() != "" {
			t.Errorf("%+v taken for an endpoint link", i)
		}
	}
	if p := (link.Info{Kind: "vlan", Alias: link.ParentMark}); !p.Ours() || p.EndpointOf() != "" {
		t.Errorf("VLAN parent mark: %+v", p)
	}
}

func TestShimAndPrivateParentNames(t *testing.T) {
	for _, p := range []string{"eth0", "enp0s31f6.4094", "a"} {
		n := link.ShimLinkName(p)
		if err := link.CheckName(n); err != nil || !strings.HasPrefix(n, "mvh") || n != link.ShimLinkName(p) {
			t.Errorf("ShimLinkName(%q) = %q (%v), want a stable valid mvh name", p, n, err)
		}
	}
	if link.ShimLinkName("eth0") == link.ShimLinkName("eth1") {
		t.Errorf("two parents share a shim name")
	}
	for _, id := range []string{"v2u6dnw9l0lrt8fwo2pw5m2g4", strings.Repeat("ab", 32), "Net-1", ""} {
		name, peer := link.PrivateParentNames(id)
		for _, n := range []string{name, peer} {
			if err := link.CheckName(n); err != nil {
				t.Errorf("PrivateParentNames(%q): %q: %v", id, n, err)
			}
		}
		if name[3:] != peer[3:] || !strings.HasPrefix(name, "mvi") || !strings.HasPrefix(peer, "mvj") {
			t.Errorf("PrivateParentNames(%q) = %q, %q", id, name, peer)
		}
	}
	if n, _ := link.PrivateParentNames("v2u6dnw9l0lrt8fwo2pw5m2g4"); n != "mviv2u6dnw9l0lr" {
		t.Errorf("swarm id: %q, want mvi and its first 12 characters", n)
	}
	i := link.Info{Kind: "macvlan", Alias: link.ShimMark("eth0")}
	if i.ShimOf() != "eth0" || i.EndpointOf() != "" || i.PrivateParentOf() != "" || !i.Ours() {
		t.Errorf("shim mark read as %q/%q/%q", i.ShimOf(), i.EndpointOf(), i.PrivateParentOf())
	}
	i = link.Info{Kind: "veth", Alias: link.PrivateParentMark("n1")}
	if i.PrivateParentOf() != "n1" || i.ShimOf() != "" || !i.Ours() {
		t.Errorf("private parent mark read as %q/%q", i.PrivateParentOf(), i.ShimOf())
	}
}
