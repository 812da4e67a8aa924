package doctor

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
)

func TestRefs(t *testing.T) {
	for _, tt := range []struct {
		ref, norm string
		ours      bool
	}{
		{"macvlan-swarm", "macvlan-swarm:latest", true},
		{"macvlan-swarm:0.1", "macvlan-swarm:0.1", true},
		{"127.0.0.1:5000/macvlan-swarm", "127.0.0.1:5000/macvlan-swarm:latest", true},
		{"127.0.0.1:5000/team/macvlan-swarm:e2e", "127.0.0.1:5000/team/macvlan-swarm:e2e", true},
		{"docker.io/library/macvlan-swarm:1", "macvlan-swarm:1", true},
		{"acme-macvlan-swarm:1", "acme-macvlan-swarm:1", true},
		{"macvlan-swarm/other:1", "macvlan-swarm/other:1", false},
		{"macvlan", "macvlan:latest", false},
	} {
		if got := NormalizeRef(tt.ref); got != tt.norm {
			t.Errorf("NormalizeRef(%q) = %q, want %q", tt.ref, got, tt.norm)
		}
		if got := IsOurName(tt.ref); got != tt.ours {
			t.Errorf("IsOurName(%q) = %v", tt.ref, got)
		}
	}
	if !SameRef("macvlan-swarm", "macvlan-swarm:latest") || SameRef("macvlan-swarm:1", "macvlan-swarm:2") {
		t.Error("SameRef")
	}
}

func TestSelectPlugin(t *testing.T) {
	for _, tt := range []struct {
		name               string
		flag               string
		installed, drivers []string
		want, err          string
	}{
		{name: "flag wins", flag: "reg:5000/mvs", installed: []string{"macvlan-swarm:latest"}, want: "reg:5000/mvs:latest"},
		{name: "one installed", installed: []string{"vieux/sshfs:latest", "reg:5000/macvlan-swarm:0.1"}, want: "reg:5000/macvlan-swarm:0.1"},
		{name: "several, one in use", installed: []string{"macvlan-swarm:a", "macvlan-swarm:b"}, drivers: []string{"bridge", "macvlan-swarm:b"}, want: "macvlan-swarm:b"},
		{name: "several, none in use", installed: []string{"macvlan-swarm:a", "macvlan-swarm:b"}, err: "several installed plugins could be macvlan-swarm (macvlan-swarm:a, macvlan-swarm:b): name one with --plugin"},
		{name: "none installed, one in use", drivers: []string{"overlay", "macvlan-swarm"}, want: "macvlan-swarm:latest"},
		{name: "none installed, several in use", drivers: []string{"macvlan-swarm:a", "x/macvlan-swarm:b"}, err: "networks use several"},
		{name: "nothing at all", installed: []string{"vieux/sshfs:latest"}, drivers: []string{"bridge", "macvlan"}, want: "macvlan-swarm:latest"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SelectPlugin(tt.flag, tt.installed, tt.drivers)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("= %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestNetworksOf(t *testing.T) {
	list := []network.Summary{
		{ID: "b", Name: "bridge", Driver: "bridge", IPAM: network.IPAM{Config: []network.IPAMConfig{{Subnet: "172.17.0.0/16"}}}},
		{ID: "p", Name: "lan", Driver: "macvlan-swarm", Options: map[string]string{"parent": "eth0"},
			IPAM: network.IPAM{Config: []network.IPAMConfig{{Subnet: "10.1.0.0/16", IPRange: "10.1.2.0/24"}, {Subnet: "fd00::/64"}}}},
		{ID: "q", Name: "other", Driver: "macvlan-swarm:0.9"},
		{ID: "c", Name: "cfg", Driver: "null", ConfigOnly: true, Options: map[string]string{"parent": "ens19"},
			IPAM: network.IPAM{Config: []network.IPAMConfig{{Subnet: "10.2.0.0/24"}}}},
		{ID: "s", Name: "swarmmv", Driver: "macvlan", ConfigFrom: network.ConfigReference{Network: "cfg"}},
		{ID: "m", Name: "mv", Driver: "macvlan", Options: map[string]string{"parent": "eth1"},
			IPAM: network.IPAM{Config: []network.IPAMConfig{{Subnet: "10.3.0.7/24"}}}},
	}
	got := NetworksOf(list, "macvlan-swarm:latest")
	var names []string
	for _, n := range got {
		names = append(names, n.Name+"="+string(n.Kind))
	}
	if !slices.Equal(names, []string{"lan=plugin", "mv=macvlan", "swarmmv=macvlan"}) {
		t.Fatalf("networks %q", names)
	}
	if strays := StraysOf(list, "macvlan-swarm:latest"); len(strays) != 1 || strays[0].Name != "other" || strays[0].Driver != "macvlan-swarm:0.9" {
		t.Errorf("strays %+v, want network other of macvlan-swarm:0.9", strays)
	}
	if r := got[0].Ranges; len(r) != 2 || r[0].String() != "10.1.2.0/24" || r[1].String() != "fd00::/64" {
		t.Errorf("lan ranges %v", r)
	}
	if r := got[1].Ranges; len(r) != 1 || r[0].String() != "10.3.0.0/24" {
		t.Errorf("mv ranges %v (want masked)", r)
	}
	if s := got[2]; s.Options["parent"] != "ens19" || len(s.Ranges) != 1 || s.Ranges[0].String() != "10.2.0.0/24" {
		t.Errorf("config-from network took %v %v, want its config's", s.Options, s.Ranges)
	}
}

func TestServicesAndNodesOf(t *testing.T) {
	var svcs []swarm.Service
	add := func(name string, es *swarm.EndpointSpec, nets ...string) {
		var s swarm.Service
		s.Spec.Name, s.Spec.EndpointSpec = name, es
		for _, n := range nets {
			s.Spec.TaskTemplate.Networks = append(s.Spec.TaskTemplate.Networks, swarm.NetworkAttachmentConfig{Target: n})
		}
		svcs = append(svcs, s)
	}
	add("b", &swarm.EndpointSpec{Mode: swarm.ResolutionModeVIP, Ports: []swarm.PortConfig{{TargetPort: 80}}}, "n1", "n2")
	add("a", nil, "n1")
	add("c", &swarm.EndpointSpec{Mode: swarm.ResolutionModeDNSRR, Ports: []swarm.PortConfig{{TargetPort: 80, PublishMode: swarm.PortConfigPublishModeHost}}})
	got := ServicesOf(svcs)
	if len(got) != 3 || got[0].Name != "a" || got[0].EndpointMode != "" ||
		got[1].EndpointMode != "vip" || !got[1].IngressPorts || !slices.Equal(got[1].Networks, []string{"n1", "n2"}) ||
		got[2].EndpointMode != "dnsrr" || got[2].IngressPorts {
		t.Fatalf("services %+v", got)
	}

	var n swarm.Node
	n.ID, n.Description.Hostname, n.Status.State = "id2", "node2", swarm.NodeStateDown
	n.Description.Engine.Plugins = []swarm.PluginDescription{{Type: "Volume", Name: "local"}, {Type: "Network", Name: "macvlan-swarm:latest"}}
	nodes := NodesOf([]swarm.Node{n})
	if len(nodes) != 1 || nodes[0].Name != "node2" || nodes[0].State != "down" || !slices.Equal(nodes[0].NetworkPlugins, []string{"macvlan-swarm:latest"}) {
		t.Fatalf("nodes %+v", nodes)
	}
}

func TestWrite(t *testing.T) {
	f := cleanFacts()
	f.Services[0].EndpointMode = "vip"
	r := Run(f)
	var text bytes.Buffer
	if err := WriteText(&text, r); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(text.String()), "\n")
	if lines[0] != "macvlan-swarm doctor on node1 (swarm manager), plugin "+plug ||
		!strings.HasPrefix(lines[len(lines)-2], "error   vip-mode service web: uses endpoint mode vip") ||
		!strings.Contains(lines[len(lines)-2], ". Fix: docker service update --endpoint-mode dnsrr web") ||
		lines[len(lines)-1] != "1 error(s), 0 warning(s)" {
		t.Errorf("text:\n%s", text.String())
	}
	var js bytes.Buffer
	if err := WriteJSON(&js, r); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Node != "node1" || back.Role != RoleManager || len(back.Findings) != 1 || back.Findings[0] != r.Findings[0] {
		t.Errorf("json round trip: %+v\n%s", back, js.String())
	}

	text.Reset()
	if err := WriteText(&text, Run(cleanFacts())); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(text.String(), "\nno problems found\n") {
		t.Errorf("clean text:\n%s", text.String())
	}
	js.Reset()
	if err := WriteJSON(&js, Run(cleanFacts())); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(js.String(), `"findings": []`) {
		t.Errorf("clean JSON has no empty findings list:\n%s", js.String())
	}
}
