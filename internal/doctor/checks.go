package doctor

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/macvlan-swarm/macvlan-swarm/internal/driver"
	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
)

// Check names, as printed and in JSON.
const (
	CheckPluginInstalled = "plugin-installed"
	CheckPluginEnabled   = "plugin-enabled"
	CheckPluginSettings  = "plugin-settings"
	CheckPluginMissing   = "plugin-missing"
	CheckPluginVersion   = "plugin-version"
	CheckNetworkDriver   = "network-driver"
	CheckOptions         = "options"
	CheckParent          = "parent"
	CheckParentDown      = "parent-down"
	CheckParentMTU       = "parent-mtu"
	CheckVIPMode         = "vip-mode"
	CheckRangeOverlap    = "range-overlap"
	CheckBuiltinParent   = "builtin-same-parent"
	CheckIPAMDriver      = "ipam-driver"
)

// Report is the outcome of Run: what was checked, notes that are not
// problems, and the findings.
type Report struct {
	Node     string    `json:"node"`
	Role     Role      `json:"role"`
	Plugin   string    `json:"plugin"`
	Info     []string  `json:"info"`
	Findings []Finding `json:"findings"`
}

// Run applies every check to the facts.
func Run(f Facts) Report {
	r := Report{Node: f.Node, Role: f.Role, Plugin: f.Plugin.Name, Info: []string{}, Findings: []Finding{}}
	var plugin, builtin int
	for _, n := range f.Networks {
		if n.Kind == KindPlugin {
			plugin++
		} else {
			builtin++
		}
	}
	r.Info = append(r.Info, fmt.Sprintf("%d network(s) of %s and %d built-in macvlan network(s) visible on this node, %d interface(s) here",
		plugin, f.Plugin.Name, builtin, len(f.Links)))
	switch f.Role {
	case RoleManager:
		r.Info = append(r.Info, fmt.Sprintf("swarm manager: cluster checks ran over %d node(s) and %d service(s)", len(f.Nodes), len(f.Services)))
	case RoleWorker:
		r.Info = append(r.Info, "not a swarm manager: cluster checks (the plugin on every node, service endpoint modes) skipped, and only swarm networks with a task on this node are visible; run doctor on a manager for those")
	default:
		r.Info = append(r.Info, "not in a swarm: cluster checks skipped")
	}
	res := resolveParents(f)
	r.Findings = append(r.Findings, checkPlugin(f)...)
	r.Findings = append(r.Findings, checkParents(f, res)...)
	r.Findings = append(r.Findings, checkVIP(f)...)
	r.Findings = append(r.Findings, checkIPAM(f)...)
	r.Findings = append(r.Findings, checkOverlaps(f, res)...)
	r.Findings = append(r.Findings, checkBuiltinParents(f, res)...)
	return r
}

// Failed reports whether the report has any finding.
func (r Report) Failed() bool { return len(r.Findings) > 0 }

// checkPlugin: the plugin is installed and enabled here, its settings are
// readable, and (on a manager) every other node lists the same name:tag.
func checkPlugin(f Facts) []Finding {
	p := f.Plugin
	subject := "plugin " + p.Name
	var out []Finding
	switch {
	case !p.Installed:
		out = append(out, Finding{SevError, CheckPluginInstalled, subject,
			fmt.Sprintf("not installed on this node (%s): no network of it can work here", f.Node),
			fmt.Sprintf("docker plugin install --grant-all-permissions %s (the same name:tag on every node, managers included)", p.Name)})
	case !p.Enabled:
		out = append(out, Finding{SevError, CheckPluginEnabled, subject,
			fmt.Sprintf("installed but disabled on this node (%s): its networks do not work here and swarm places no task of them here", f.Node),
			"docker plugin enable " + p.Name})
	}
	if p.ParentsErr != "" {
		out = append(out, Finding{SevError, CheckPluginSettings, subject,
			fmt.Sprintf("setting PARENTS=%q is not valid, the plugin will not start with it: %s", p.ParentsSetting, p.ParentsErr),
			fmt.Sprintf("docker plugin disable -f %[1]s; docker plugin set %[1]s PARENTS=lan=eth0,dmz=ens19.20; docker plugin enable %[1]s", p.Name)})
	}
	for _, n := range f.Strays {
		out = append(out, Finding{SevWarning, CheckNetworkDriver, "network " + n.Name,
			fmt.Sprintf("uses driver %s, not %s: its containers need %[1]s enabled on every node, and this run did not check it", n.Driver, p.Name),
			fmt.Sprintf("check it with macvlan-swarm doctor --plugin %s, or recreate the network with -d %s", n.Driver, p.Name)})
	}
	if f.Role != RoleManager {
		return out
	}
	for _, n := range f.Nodes {
		if n.ID == f.NodeID {
			continue // this node: its own engine said it above, fresher than its description
		}
		listed := false
		var others []string
		for _, name := range n.NetworkPlugins {
			switch {
			case SameRef(name, p.Name):
				listed = true
			case sameRepo(name, p.Name):
				others = append(others, name)
			}
		}
		if listed {
			continue
		}
		subject := "node " + n.Name
		if n.State != "" && n.State != "ready" {
			subject += " (" + n.State + ")"
		}
		if len(others) > 0 {
			sort.Strings(others)
			out = append(out, Finding{SevError, CheckPluginVersion, subject,
				fmt.Sprintf("runs %s, not %s: swarm places no task of this plugin's networks there, and two builds may disagree", strings.Join(others, ", "), p.Name),
				fmt.Sprintf("on %s: docker plugin disable -f %s; docker plugin upgrade %[2]s %s; docker plugin enable %[2]s, or install %[3]s under the same name:tag as the other nodes", n.Name, others[0], p.Name)})
			continue
		}
		out = append(out, Finding{SevError, CheckPluginMissing, subject,
			fmt.Sprintf("does not list %s among its enabled network plugins (not installed, or disabled): swarm places no task of its networks there (\"missing plugin on 1 node\"); the list refreshes with the node's next description update, ~20 s after a change", p.Name),
			fmt.Sprintf("on %s: docker plugin install --grant-all-permissions %s, or docker plugin enable %[2]s", n.Name, p.Name)})
	}
	return out
}

// resolution is what a network's parent means on this node.
type resolution struct {
	parent string    // the resolved parent, "" when none
	link   link.Info // the parent, or its base when it is to be created
	create bool      // an 802.1q parent the plugin would create
	mtu    int       // the network's MTU option, 0 when not set
	errs   []Finding // why there is no parent (or options are refused)
}

// resolveParents resolves every network's parent on this node: plugin
// networks as the plugin would (candidates, PARENTS aliases, 802.1q),
// built-in macvlan networks by their parent option.
func resolveParents(f Facts) map[string]resolution {
	links := map[string]link.Info{}
	for _, l := range f.Links {
		links[l.Name] = l
	}
	get := func(name string) (link.Info, error) {
		if l, ok := links[name]; ok {
			return l, nil
		}
		return link.Info{}, fmt.Errorf("link %q: %w", name, link.ErrNotFound)
	}
	out := map[string]resolution{}
	for _, n := range f.Networks {
		if n.Kind == KindMacvlan {
			var r resolution
			if p := n.Options["parent"]; p != "" {
				r.parent = p
				r.link = links[p]
			}
			out[n.ID] = r
			continue
		}
		out[n.ID] = resolvePlugin(f, n, get)
	}
	return out
}

func resolvePlugin(f Facts, n Network, get func(string) (link.Info, error)) resolution {
	subject := "network " + n.Name
	var r resolution
	spec, mtu, err := driver.NetworkOptions(n.Options)
	if err != nil {
		r.errs = append(r.errs, Finding{SevError, CheckOptions, subject,
			"every node refuses this network's options: " + err.Error(),
			fmt.Sprintf("docker network rm %s, then create it again with valid -o options", n.Name)})
		return r
	}
	r.mtu = mtu
	if spec == "" {
		return r // no parent: a private lower link the plugin makes on each node
	}
	candidates := driver.ParentCandidates(spec, f.Plugin.Parents)
	pick, found, err := driver.PickParent(candidates, get)
	switch {
	case err != nil:
		r.errs = append(r.errs, Finding{SevError, CheckParent, subject,
			fmt.Sprintf("parent %q: %v", spec, err),
			fmt.Sprintf("docker network rm %s, then create it again with a valid -o parent", n.Name)})
		return r
	case !found:
		r.errs = append(r.errs, Finding{SevError, CheckParent, subject,
			fmt.Sprintf("parent %q does not resolve on this node (%s): %s; none exists, none is base.vid over an existing link; interfaces here: %s",
				spec, f.Node, describeCandidates(spec, candidates, f.Plugin), orNone(driver.ParentChoices(f.Links))),
			fmt.Sprintf("give this node an alias for the parent: docker plugin disable -f %[1]s; docker plugin set %[1]s PARENTS=%[2]s%[3]s=<interface>; docker plugin enable %[1]s; or recreate the network with this node's interface in the list (-o parent='%[4]s|<interface>')",
				f.Plugin.Name, keepAliases(f.Plugin.ParentsSetting), firstCandidate(spec), spec)})
		return r
	case !pick.Create && pick.Info.EndpointOf() != "":
		r.errs = append(r.errs, Finding{SevError, CheckParent, subject,
			fmt.Sprintf("parent %q resolves on this node to %s, a container link made by macvlan-swarm, not a LAN interface", spec, pick.Name),
			"name the LAN interface in -o parent or in the plugin's PARENTS setting"})
		return r
	}
	r.parent, r.link, r.create = pick.Name, pick.Info, pick.Create
	return r
}

// describeCandidates says what each candidate became through PARENTS.
func describeCandidates(spec string, candidates []string, p Plugin) string {
	raw := strings.Split(spec, "|")
	parts := make([]string, len(candidates))
	for i, c := range candidates {
		r := strings.TrimSpace(raw[i])
		if r != c {
			parts[i] = fmt.Sprintf("%s (PARENTS alias for %s)", c, r)
		} else {
			parts[i] = c
		}
	}
	parents := "PARENTS is not set"
	if p.ParentsSetting != "" {
		parents = "PARENTS=" + p.ParentsSetting
	}
	return fmt.Sprintf("candidates %s (%s)", strings.Join(parts, ", "), parents)
}

// keepAliases is the PARENTS setting to prefix a new alias with, so that
// the fix keeps the node's other aliases.
func keepAliases(setting string) string {
	if setting = strings.TrimSpace(setting); setting == "" {
		return ""
	}
	return strings.TrimSuffix(setting, ",") + ","
}

func firstCandidate(spec string) string {
	c, _, _ := strings.Cut(spec, "|")
	return strings.TrimSpace(c)
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// checkParents: every plugin network's parent resolves here, is up, and
// carries the network's MTU.
func checkParents(f Facts, res map[string]resolution) []Finding {
	var out []Finding
	for _, n := range f.Networks {
		if n.Kind != KindPlugin {
			continue
		}
		r := res[n.ID]
		out = append(out, r.errs...)
		if r.parent == "" {
			continue
		}
		subject := "network " + n.Name
		what := "parent " + r.parent
		if r.create {
			what = fmt.Sprintf("%s, the base of 802.1q parent %s the plugin creates,", r.link.Name, r.parent)
		}
		if !r.link.Up {
			out = append(out, Finding{SevError, CheckParentDown, subject,
				fmt.Sprintf("%s is down on this node: containers on it reach nothing", what),
				fmt.Sprintf("ip link set %s up (and make it persistent in the node's network configuration)", r.link.Name)})
		}
		if r.mtu > 0 && r.link.MTU > 0 && r.mtu > r.link.MTU {
			out = append(out, Finding{SevError, CheckParentMTU, subject,
				fmt.Sprintf("asks for MTU %d but %s has MTU %d on this node: the plugin refuses the network here", r.mtu, what, r.link.MTU),
				fmt.Sprintf("raise the parent's MTU (ip link set %s mtu %d), or recreate the network with -o mtu=%d or less", r.link.Name, r.mtu, r.link.MTU)})
		}
	}
	return out
}

// checkVIP: a service in VIP mode on a plugin network gets a virtual IP
// that nothing answers: the engine builds its load balancer for overlay
// networks only.
func checkVIP(f Facts) []Finding {
	if f.Role != RoleManager {
		return nil // only managers list services
	}
	byRef := map[string]string{}
	for _, n := range f.Networks {
		if n.Kind == KindPlugin {
			byRef[n.ID], byRef[n.Name] = n.Name, n.Name
		}
	}
	var out []Finding
	for _, s := range f.Services {
		if s.EndpointMode != "" && s.EndpointMode != "vip" {
			continue
		}
		var on []string
		for _, target := range s.Networks {
			if name, ok := byRef[target]; ok {
				on = append(on, name)
			}
		}
		if len(on) == 0 {
			continue
		}
		fix := "docker service update --endpoint-mode dnsrr " + s.Name
		if s.IngressPorts {
			fix += " (dnsrr cannot publish through the routing mesh: first republish its ports with mode=host, e.g. --publish-rm 80 --publish-add mode=host,target=80,published=80)"
		}
		out = append(out, Finding{SevError, CheckVIPMode, "service " + s.Name,
			fmt.Sprintf("uses endpoint mode vip on plugin network %s: its virtual IP answers nothing there (the engine load-balances on overlay networks only); the service name resolves to that dead address", strings.Join(on, ", ")),
			fix})
	}
	return out
}

// checkIPAM: a swarm network of the plugin whose addresses the engine's
// built-in IPAM hands out. After a leader change the new leader's built-in
// allocator hands out again the addresses of tasks a cut-off node still
// runs; the plugin's own address manager holds given-back addresses back.
func checkIPAM(f Facts) []Finding {
	var out []Finding
	for _, n := range f.Networks {
		if n.Kind != KindPlugin || !n.Swarm || SameRef(n.IPAMDriver, f.Plugin.Name) {
			continue
		}
		ipam := n.IPAMDriver
		if ipam == "" {
			ipam = "default"
		}
		out = append(out, Finding{SevWarning, CheckIPAMDriver, "network " + n.Name,
			fmt.Sprintf("its addresses come from the engine's built-in IPAM (--ipam-driver %s): after a swarm leader change, the new leader can hand out again the addresses of tasks a cut-off node still runs (docs/swarm.md)", ipam),
			fmt.Sprintf("create the network again with --ipam-driver %s (docker network rm %s, then docker network create -d %s --ipam-driver %s with the same options)", f.Plugin.Name, n.Name, f.Plugin.Name, f.Plugin.Name)})
	}
	return out
}

// checkOverlaps: two plugin networks, or a plugin network and a built-in
// macvlan network, whose address ranges overlap can give two containers the
// same address. That is a clash only on the same LAN, which the doctor
// cannot see; it treats the same parent on this node as proof (error) and
// anything else as a risk (warning). Two built-in networks are not this
// plugin's business; a built-in network without a parent sits on a dummy
// link, on no LAN.
func checkOverlaps(f Facts, res map[string]resolution) []Finding {
	var out []Finding
	for i, a := range f.Networks {
		for _, b := range f.Networks[i+1:] {
			if a.Kind != KindPlugin && b.Kind != KindPlugin {
				continue
			}
			if (a.Kind == KindMacvlan && res[a.ID].parent == "") || (b.Kind == KindMacvlan && res[b.ID].parent == "") {
				continue
			}
			ra, rb, ok := overlap(a.Ranges, b.Ranges)
			if !ok {
				continue
			}
			if a.Kind != KindPlugin {
				a, b, ra, rb = b, a, rb, ra // the plugin's network first
			}
			pa, pb := res[a.ID].parent, res[b.ID].parent
			sev, where := SevWarning, "they are on different parents here ("+orUnknown(pa)+", "+orUnknown(pb)+"): a clash if both reach the same LAN"
			if pa != "" && pa == pb {
				sev, where = SevError, "both on parent "+pa+" here, the same LAN"
			}
			who := "the plugin allocates each network's addresses on its own"
			if b.Kind == KindMacvlan {
				who = "the built-in driver allocates its addresses per node and knows nothing of the plugin's"
			}
			out = append(out, Finding{sev, CheckRangeOverlap, "network " + a.Name,
				fmt.Sprintf("its addresses (%s) overlap those of %s network %s (%s); %s: two containers can get the same address; %s", ra, kindName(b), b.Name, rb, who, where),
				fmt.Sprintf("give each network its own part of the LAN: recreate one of them with a --subnet or --ip-range that does not overlap %s", rb)})
		}
	}
	return out
}

// overlap returns the first pair of overlapping ranges.
func overlap(as, bs []netip.Prefix) (netip.Prefix, netip.Prefix, bool) {
	for _, a := range as {
		for _, b := range bs {
			if a.Overlaps(b) {
				return a, b, true
			}
		}
	}
	return netip.Prefix{}, netip.Prefix{}, false
}

func kindName(n Network) string {
	if n.Kind == KindMacvlan {
		return "built-in macvlan"
	}
	return "plugin"
}

func orUnknown(parent string) string {
	if parent == "" {
		return "unresolved"
	}
	return parent
}

// checkBuiltinParents: a built-in macvlan network on the parent a plugin
// network resolves to here. Both drivers then hang containers off one
// interface with separate address books, and the built-in driver deletes an
// 802.1q parent it made when its last network goes, under the plugin's
// containers too.
func checkBuiltinParents(f Facts, res map[string]resolution) []Finding {
	var out []Finding
	for _, b := range f.Networks {
		if b.Kind != KindMacvlan || res[b.ID].parent == "" {
			continue
		}
		var plugins []string
		for _, n := range f.Networks {
			if n.Kind == KindPlugin && res[n.ID].parent == res[b.ID].parent {
				plugins = append(plugins, n.Name)
			}
		}
		if len(plugins) == 0 {
			continue
		}
		out = append(out, Finding{SevWarning, CheckBuiltinParent, "network " + b.Name,
			fmt.Sprintf("built-in macvlan network on parent %s, which plugin network %s uses on this node too: two drivers with separate address allocation on one LAN, and the built-in driver deletes an 802.1q parent it created with its last network", res[b.ID].parent, strings.Join(plugins, ", ")),
			fmt.Sprintf("move its containers to a network of %s and docker network rm %s, or give it another parent", f.Plugin.Name, b.Name)})
	}
	return out
}
