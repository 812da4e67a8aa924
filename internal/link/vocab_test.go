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
