package doctor

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
)

const plug = "macvlan-swarm:1.0"

// cleanFacts is a manager of a two-node swarm on which every check passes:
// one plugin network through a PARENTS alias, a dnsrr service on it, a
// built-in macvlan network on another parent and another range.
func cleanFacts() Facts {
	return Facts{
		Node: "node1", NodeID: "id1", Role: RoleManager,
		Plugin: Plugin{Name: plug, Installed: true, Enabled: true,
			Parents: map[string]string{"lan": "eth0"}, ParentsSetting: "lan=eth0"},
		Links: []link.Info{
			{Name: "lo", MTU: 65536, Up: true},
			{Name: "eth0", MTU: 1500, Up: true},
			{Name: "ens19", MTU: 9000, Up: true},
			{Name: "docker0", MTU: 1500, Up: true},
		},
		Networks: []Network{
			{ID: "n1", Name: "lan", Kind: KindPlugin, Driver: plug, Options: map[string]string{"parent": "lan"}, Ranges: pfx("10.1.0.0/24"), Swarm: true, IPAMDriver: plug},
			{ID: "m1", Name: "old", Kind: KindMacvlan, Driver: "macvlan", Options: map[string]string{"parent": "ens19"}, Ranges: pfx("10.1.1.0/24")},
		},
		Nodes: []Node{
			{ID: "id1", Name: "node1", State: "ready", NetworkPlugins: []string{"bridge", "macvlan", plug}},
			{ID: "id2", Name: "node2", State: "ready", NetworkPlugins: []string{"overlay", plug}},
		},
		Services: []Service{{Name: "web", EndpointMode: "dnsrr", Networks: []string{"n1"}}},
	}
}

func pfx(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// want is one expected finding: its check, subject and severity, and words
// its problem and fix must contain.
type want struct {
	check, subject string
	sev            Severity
	problem, fix   []string
}

func TestChecks(t *testing.T) {
	tests := []struct {
		name   string
		change func(f *Facts)
		want   []want
	}{
		{name: "clean", change: func(*Facts) {}},

		// plugin
		{name: "plugin not installed", change: func(f *Facts) { f.Plugin.Installed, f.Plugin.Enabled = false, false },
			want: []want{{CheckPluginInstalled, "plugin " + plug, SevError, []string{"not installed on this node (node1)"}, []string{"docker plugin install --grant-all-permissions " + plug}}}},
		{name: "plugin disabled", change: func(f *Facts) { f.Plugin.Enabled = false },
			want: []want{{CheckPluginEnabled, "plugin " + plug, SevError, []string{"disabled"}, []string{"docker plugin enable " + plug}}}},
		{name: "bad PARENTS", change: func(f *Facts) { f.Plugin.ParentsErr = "PARENTS entry \"lan\" is not alias=interface" },
			want: []want{{CheckPluginSettings, "plugin " + plug, SevError, []string{`PARENTS="lan=eth0"`, "not alias=interface"}, []string{"docker plugin set " + plug + " PARENTS="}}}},
		{name: "plugin missing on a worker", change: func(f *Facts) { f.Nodes[1].NetworkPlugins = []string{"overlay"} },
			want: []want{{CheckPluginMissing, "node node2", SevError, []string{"does not list " + plug}, []string{"on node2: docker plugin install --grant-all-permissions " + plug, "docker plugin enable"}}}},
		{name: "plugin missing on a down node", change: func(f *Facts) { f.Nodes[1].NetworkPlugins, f.Nodes[1].State = nil, "down" },
			want: []want{{CheckPluginMissing, "node node2 (down)", SevError, nil, nil}}},
		{name: "other tag on a worker", change: func(f *Facts) { f.Nodes[1].NetworkPlugins = []string{"macvlan-swarm:0.9"} },
			want: []want{{CheckPluginVersion, "node node2", SevError, []string{"runs macvlan-swarm:0.9, not " + plug}, []string{"docker plugin upgrade macvlan-swarm:0.9 " + plug}}}},
		{name: "network of another tag", change: func(f *Facts) {
			f.Strays = []Network{{ID: "s1", Name: "legacy", Driver: "macvlan-swarm:0.9"}}
		},
			want: []want{{CheckNetworkDriver, "network legacy", SevWarning, []string{"uses driver macvlan-swarm:0.9, not " + plug}, []string{"doctor --plugin macvlan-swarm:0.9", "-d " + plug}}}},
		{name: "this node's stale description is not used", change: func(f *Facts) { f.Nodes[0].NetworkPlugins = nil }},
		{name: "worker: no cluster checks", change: func(f *Facts) {
			f.Role = RoleWorker
			f.Nodes[1].NetworkPlugins = nil
			f.Services[0].EndpointMode = "vip"
		}},

		// options and parents
		{name: "options refused", change: func(f *Facts) { f.Networks[0].Options["pparent"] = "x" },
			want: []want{{CheckOptions, "network lan", SevError, []string{`unknown option "pparent"`}, []string{"docker network rm lan"}}}},
		{name: "parent not found", change: func(f *Facts) { f.Networks[0].Options["parent"] = "wan|eth9" },
			want: []want{{CheckParent, "network lan", SevError,
				[]string{`parent "wan|eth9" does not resolve on this node (node1)`, "candidates wan, eth9 (PARENTS=lan=eth0)"},
				[]string{"PARENTS=lan=eth0,wan=<interface>", "-o parent='wan|eth9|<interface>'"}}}},
		{name: "alias to a missing link", change: func(f *Facts) {
			f.Plugin.Parents["lan"], f.Plugin.ParentsSetting = "eth7", "lan=eth7"
		},
			want: []want{{CheckParent, "network lan", SevError, []string{"eth7 (PARENTS alias for lan)", "interfaces here: ens19, eth0"}, nil}}},
		{name: "no PARENTS, no such link", change: func(f *Facts) { f.Plugin.Parents, f.Plugin.ParentsSetting = nil, "" },
			want: []want{{CheckParent, "network lan", SevError, []string{"candidates lan (PARENTS is not set)"}, []string{" PARENTS=lan=<interface>"}}}},
		{name: "vlan over an existing base resolves", change: func(f *Facts) { f.Networks[0].Options["parent"] = "eth9|eth0.20" }},
		{name: "vlan over a missing base", change: func(f *Facts) { f.Networks[0].Options["parent"] = "eth9.20" },
			want: []want{{CheckParent, "network lan", SevError, []string{"none is base.vid over an existing link"}, nil}}},
		{name: "parent is a container link", change: func(f *Facts) {
			f.Links = append(f.Links, link.Info{Name: "mvs0123456789ab", Kind: "macvlan", Up: true, MTU: 1500, Alias: link.EndpointMark("0123456789abcdef")})
			f.Networks[0].Options["parent"] = "mvs0123456789ab"
		},
			want: []want{{CheckParent, "network lan", SevError, []string{"a container link made by macvlan-swarm"}, nil}}},
		{name: "parent down", change: func(f *Facts) { f.Links[1].Up = false },
			want: []want{{CheckParentDown, "network lan", SevError, []string{"parent eth0 is down"}, []string{"ip link set eth0 up"}}}},
		{name: "vlan base down", change: func(f *Facts) { f.Links[1].Up = false; f.Networks[0].Options["parent"] = "eth0.20" },
			want: []want{{CheckParentDown, "network lan", SevError, []string{"eth0, the base of 802.1q parent eth0.20"}, []string{"ip link set eth0 up"}}}},
		{name: "mtu above the parent's", change: func(f *Facts) { f.Networks[0].Options["mtu"] = "9000" },
			want: []want{{CheckParentMTU, "network lan", SevError, []string{"MTU 9000", "MTU 1500"}, []string{"ip link set eth0 mtu 9000", "-o mtu=1500"}}}},
		{name: "engine mtu key", change: func(f *Facts) { f.Networks[0].Options["com.docker.network.driver.mtu"] = "1600" },
			want: []want{{CheckParentMTU, "network lan", SevError, []string{"MTU 1600"}, nil}}},
		{name: "mtu at the parent's", change: func(f *Facts) { f.Networks[0].Options["mtu"] = "1500" }},

		// the address manager
		{name: "swarm network with the built-in IPAM", change: func(f *Facts) { f.Networks[0].IPAMDriver = "default" },
			want: []want{{CheckIPAMDriver, "network lan", SevWarning, []string{"built-in IPAM (--ipam-driver default)", "cut-off node"}, []string{"--ipam-driver " + plug}}}},
		{name: "swarm network, no IPAM driver named", change: func(f *Facts) { f.Networks[0].IPAMDriver = "" },
			want: []want{{CheckIPAMDriver, "network lan", SevWarning, []string{"--ipam-driver default"}, nil}}},
		{name: "local network with the built-in IPAM", change: func(f *Facts) { f.Networks[0].IPAMDriver, f.Networks[0].Swarm = "default", false }},

		// services
		{name: "vip mode by default", change: func(f *Facts) { f.Services[0].EndpointMode = "" },
			want: []want{{CheckVIPMode, "service web", SevError, []string{"endpoint mode vip on plugin network lan"}, []string{"docker service update --endpoint-mode dnsrr web"}}}},
		{name: "vip mode by name, ingress ports", change: func(f *Facts) {
			f.Services[0].EndpointMode, f.Services[0].IngressPorts, f.Services[0].Networks = "vip", true, []string{"lan"}
		},
			want: []want{{CheckVIPMode, "service web", SevError, nil, []string{"--endpoint-mode dnsrr web", "mode=host"}}}},
		{name: "vip on another network", change: func(f *Facts) {
			f.Services = append(f.Services, Service{Name: "api", Networks: []string{"overlay1"}})
		}},

		// ranges
		{name: "two plugin networks overlap on one parent", change: func(f *Facts) {
			f.Networks = append(f.Networks, Network{ID: "n2", Name: "lan2", Kind: KindPlugin, Options: map[string]string{"parent": "eth0"}, Ranges: pfx("10.1.0.128/25")})
		},
			want: []want{{CheckRangeOverlap, "network lan", SevError, []string{"10.1.0.0/24", "plugin network lan2 (10.1.0.128/25)", "both on parent eth0"}, []string{"does not overlap 10.1.0.128/25"}}}},
		{name: "two plugin networks overlap on different parents", change: func(f *Facts) {
			f.Links = append(f.Links, link.Info{Name: "ens20", MTU: 1500, Up: true})
			f.Networks = append(f.Networks, Network{ID: "n2", Name: "lan2", Kind: KindPlugin, Options: map[string]string{"parent": "ens20"}, Ranges: pfx("10.1.0.0/25")})
		},
			want: []want{{CheckRangeOverlap, "network lan", SevWarning, []string{"different parents here (eth0, ens20)"}, nil}}},
		{name: "disjoint ip-ranges of one subnet", change: func(f *Facts) {
			f.Networks[0].Ranges = pfx("10.1.0.0/25")
			f.Networks = append(f.Networks, Network{ID: "n2", Name: "lan2", Kind: KindPlugin, Options: map[string]string{"parent": "eth0"}, Ranges: pfx("10.1.0.128/25")})
		}},
		{name: "plugin and built-in overlap", change: func(f *Facts) { f.Networks[1].Ranges = pfx("10.1.0.0/16") },
			want: []want{{CheckRangeOverlap, "network lan", SevWarning, []string{"built-in macvlan network old (10.1.0.0/16)", "knows nothing of the plugin's"}, nil}}},
		{name: "ipv6 overlap", change: func(f *Facts) {
			f.Networks[0].Ranges = pfx("10.1.0.0/24", "fd00:1::/64")
			f.Networks[1].Ranges = pfx("fd00::/16")
		},
			want: []want{{CheckRangeOverlap, "network lan", SevWarning, []string{"fd00:1::/64"}, nil}}},
		{name: "built-in without parent is on no LAN", change: func(f *Facts) {
			f.Networks[1].Ranges, f.Networks[1].Options = pfx("10.1.0.0/24"), map[string]string{}
		}},
		{name: "two built-in networks are not ours", change: func(f *Facts) {
			f.Networks = append(f.Networks, Network{ID: "m2", Name: "old2", Kind: KindMacvlan, Options: map[string]string{"parent": "ens19"}, Ranges: pfx("10.1.1.0/24")})
		}},

		// built-in on the same parent
		{name: "built-in on the resolved parent", change: func(f *Facts) { f.Networks[1].Options["parent"] = "eth0" },
			want: []want{{CheckBuiltinParent, "network old", SevWarning, []string{"parent eth0, which plugin network lan uses"}, []string{"docker network rm old"}}}},
		{name: "built-in and plugin overlap on one parent", change: func(f *Facts) {
			f.Networks[1].Options["parent"], f.Networks[1].Ranges = "eth0", pfx("10.1.0.0/24")
		},
			want: []want{
				{CheckRangeOverlap, "network lan", SevError, []string{"both on parent eth0"}, nil},
				{CheckBuiltinParent, "network old", SevWarning, nil, nil},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := cleanFacts()
			tt.change(&f)
			r := Run(f)
			if len(r.Findings) != len(tt.want) {
				t.Fatalf("%d finding(s), want %d:\n%s", len(r.Findings), len(tt.want), dump(r))
			}
			for i, w := range tt.want {
				got := r.Findings[i]
				if got.Check != w.check || got.Subject != w.subject || got.Severity != w.sev {
					t.Errorf("finding %d is %s %s %q, want %s %s %q", i, got.Severity, got.Check, got.Subject, w.sev, w.check, w.subject)
				}
				for _, s := range w.problem {
					if !strings.Contains(got.Problem, s) {
						t.Errorf("finding %d problem lacks %q:\n%s", i, s, got.Problem)
					}
				}
				for _, s := range w.fix {
					if !strings.Contains(got.Fix, s) {
						t.Errorf("finding %d fix lacks %q:\n%s", i, s, got.Fix)
					}
				}
				if got.Problem == "" || got.Fix == "" {
					t.Errorf("finding %d has an empty problem or fix: %+v", i, got)
				}
			}
			if r.Failed() != (len(tt.want) > 0) {
				t.Errorf("Failed() = %v with %d findings", r.Failed(), len(r.Findings))
			}
		})
	}
}

func dump(r Report) string {
	var b strings.Builder
	_ = WriteText(&b, r)
	return b.String()
}

func TestRunInfo(t *testing.T) {
	for _, tt := range []struct {
		role Role
		want string
	}{
		{RoleManager, "swarm manager: cluster checks ran over 2 node(s) and 1 service(s)"},
		{RoleWorker, "not a swarm manager: cluster checks"},
		{RoleNone, "not in a swarm: cluster checks skipped"},
	} {
		f := cleanFacts()
		f.Role = tt.role
		r := Run(f)
		if !slices.ContainsFunc(r.Info, func(s string) bool { return strings.Contains(s, tt.want) }) {
			t.Errorf("%s: info %q lacks %q", tt.role, r.Info, tt.want)
		}
	}
}
