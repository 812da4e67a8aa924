package driver

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
)

// TestPickParent covers the pure half of parent resolution that the doctor
// command shares with CreateNetwork.
func TestPickParent(t *testing.T) {
	links := map[string]link.Info{
		"eth0":  {Name: "eth0", MTU: 1500},
		"ens18": {Name: "ens18", MTU: 9000},
	}
	get := func(name string) (link.Info, error) {
		if name == "broken" {
			return link.Info{}, errors.New("netlink says no")
		}
		if i, ok := links[name]; ok {
			return i, nil
		}
		return link.Info{}, fmt.Errorf("link %q: %w", name, link.ErrNotFound)
	}
	aliases := map[string]string{"lan": "ens18", "dmz": "eth0.20"}
	tests := []struct {
		spec       string
		candidates []string
		want       ParentPick // Info.Name only
		found      bool
		err        string
	}{
		{spec: "eth0", candidates: []string{"eth0"}, want: ParentPick{Name: "eth0"}, found: true},
		{spec: " eth9 | lan ", candidates: []string{"eth9", "ens18"}, want: ParentPick{Name: "ens18"}, found: true},
		{spec: "dmz|eth0", candidates: []string{"eth0.20", "eth0"}, want: ParentPick{Name: "eth0"}, found: true},
		{spec: "dmz", candidates: []string{"eth0.20"}, want: ParentPick{Name: "eth0.20", Create: true}, found: true},
		{spec: "eth9.20|dmz", candidates: []string{"eth9.20", "eth0.20"}, want: ParentPick{Name: "eth0.20", Create: true}, found: true},
		{spec: "eth9|eth8.5", candidates: []string{"eth9", "eth8.5"}},
		{spec: "eth0.5000", candidates: []string{"eth0.5000"}, err: "out of range"},
		{spec: "broken|eth0", candidates: []string{"broken", "eth0"}, err: `look up parent "broken"`},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			c := ParentCandidates(tt.spec, aliases)
			if !slices.Equal(c, tt.candidates) {
				t.Fatalf("candidates %q, want %q", c, tt.candidates)
			}
			pick, found, err := PickParent(c, get)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if found != tt.found || pick.Name != tt.want.Name || pick.Create != tt.want.Create {
				t.Fatalf("got %+v found=%v, want %+v found=%v", pick, found, tt.want, tt.found)
			}
			if found {
				base := pick.Name
				if pick.Create {
					base, _, _, _ = link.SplitVLAN(pick.Name)
				}
				if pick.Info.Name != base {
					t.Errorf("Info is %q, want %q", pick.Info.Name, base)
				}
			}
		})
	}
}

func TestParentChoices(t *testing.T) {
	infos := []link.Info{
		{Name: "lo"}, {Name: "eth1"}, {Name: "docker0"}, {Name: "docker_gwbridge"}, {Name: "vethab12"},
		{Name: "mvs0123456789ab", Kind: "macvlan", Alias: link.EndpointMark("0123456789abcdef")}, {Name: "eth0"},
	}
	if got := ParentChoices(infos); !slices.Equal(got, []string{"eth0", "eth1"}) {
		t.Fatalf("ParentChoices = %q, want [eth0 eth1]", got)
	}
}
