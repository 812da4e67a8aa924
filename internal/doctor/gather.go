package doctor

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/system"

	"github.com/macvlan-swarm/macvlan-swarm/internal/driver"
	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
)

// Engine is the part of the Docker API client Gather uses
// (*client.Client implements it).
type Engine interface {
	Info(ctx context.Context) (system.Info, error)
	PluginList(ctx context.Context, filter filters.Args) (types.PluginsListResponse, error)
	NetworkList(ctx context.Context, options network.ListOptions) ([]network.Summary, error)
	NodeList(ctx context.Context, options swarm.NodeListOptions) ([]swarm.Node, error)
	ServiceList(ctx context.Context, options swarm.ServiceListOptions) ([]swarm.Service, error)
}

// Config says what Gather looks for and how.
type Config struct {
	// Plugin is the plugin's full name (--plugin); "" picks the installed
	// network plugin whose name ends with macvlan-swarm (SelectPlugin).
	Plugin string
	// Links lists the links of the node's network namespace.
	Links func() ([]link.Info, error)
}

// Gather asks the engine and the kernel for the facts the checks need.
// Cluster facts are asked for only on a manager.
func Gather(ctx context.Context, e Engine, cfg Config) (Facts, error) {
	var f Facts
	info, err := e.Info(ctx)
	if err != nil {
		return f, fmt.Errorf("ask the engine for its info: %w", err)
	}
	f.Node, f.Role = info.Name, RoleNone
	if info.Swarm.LocalNodeState == swarm.LocalNodeStateActive {
		f.NodeID, f.Role = info.Swarm.NodeID, RoleWorker
		if info.Swarm.ControlAvailable {
			f.Role = RoleManager
		}
	}

	plugins, err := e.PluginList(ctx, filters.NewArgs())
	if err != nil {
		return f, fmt.Errorf("list the engine's plugins: %w", err)
	}
	nets, err := e.NetworkList(ctx, network.ListOptions{})
	if err != nil {
		return f, fmt.Errorf("list the engine's networks: %w", err)
	}
	var installed, drivers []string
	for _, p := range plugins {
		if isNetworkDriver(p) {
			installed = append(installed, p.Name)
		}
	}
	for _, n := range nets {
		drivers = append(drivers, n.Driver)
	}
	name, err := SelectPlugin(cfg.Plugin, installed, drivers)
	if err != nil {
		return f, err
	}
	f.Plugin = Plugin{Name: name}
	for _, p := range plugins {
		if !SameRef(p.Name, name) {
			continue
		}
		f.Plugin.Installed, f.Plugin.Enabled = true, p.Enabled
		for _, kv := range p.Settings.Env {
			if v, ok := strings.CutPrefix(kv, "PARENTS="); ok {
				f.Plugin.ParentsSetting = v
			}
		}
	}
	// PARENTS read as the daemon reads it.
	if f.Plugin.Parents, err = driver.ParseParents(f.Plugin.ParentsSetting); err != nil {
		f.Plugin.ParentsErr = err.Error()
	}
	f.Networks = NetworksOf(nets, name)
	f.Strays = StraysOf(nets, name)

	if f.Role == RoleManager {
		nodes, err := e.NodeList(ctx, swarm.NodeListOptions{})
		if err != nil {
			return f, fmt.Errorf("list the swarm's nodes: %w", err)
		}
		f.Nodes = NodesOf(nodes)
		svcs, err := e.ServiceList(ctx, swarm.ServiceListOptions{})
		if err != nil {
			return f, fmt.Errorf("list the swarm's services: %w", err)
		}
		f.Services = ServicesOf(svcs)
	}

	if cfg.Links != nil {
		if f.Links, err = cfg.Links(); err != nil {
			return f, fmt.Errorf("list this node's links: %w", err)
		}
	}
	return f, nil
}

func isNetworkDriver(p *types.Plugin) bool {
	for _, t := range p.Config.Interface.Types {
		if t.Capability == "networkdriver" {
			return true
		}
	}
	return false
}

// SelectPlugin picks the plugin the checks are about: the --plugin value
// when given; else the one installed network plugin whose name ends with
// macvlan-swarm (among several, the one networks use); else, when none is
// installed here, the one networks name as their driver; else
// "macvlan-swarm:latest", which the checks then report as not installed.
func SelectPlugin(flag string, installed, drivers []string) (string, error) {
	if flag != "" {
		return NormalizeRef(flag), nil
	}
	ours := func(names []string) []string {
		seen := map[string]bool{}
		var out []string
		for _, n := range names {
			if n = NormalizeRef(n); IsOurName(n) && !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
		sort.Strings(out)
		return out
	}
	mine, used := ours(installed), ours(drivers)
	switch {
	case len(mine) == 1:
		return mine[0], nil
	case len(mine) > 1:
		var inUse []string
		for _, m := range mine {
			for _, u := range used {
				if m == u {
					inUse = append(inUse, m)
				}
			}
		}
		if len(inUse) == 1 {
			return inUse[0], nil
		}
		return "", fmt.Errorf("several installed plugins could be macvlan-swarm (%s): name one with --plugin", strings.Join(mine, ", "))
	case len(used) == 1:
		return used[0], nil
	case len(used) > 1:
		return "", fmt.Errorf("no macvlan-swarm plugin is installed here and networks use several (%s): name one with --plugin", strings.Join(used, ", "))
	}
	return "macvlan-swarm:latest", nil
}

// NetworksOf keeps the plugin's networks and the built-in macvlan ones. A
// swarm macvlan network made --config-from takes its parent and pools from
// that config-only network on this node; config-only networks themselves
// carry no containers and are left out.
func NetworksOf(list []network.Summary, plugin string) []Network {
	configs := map[string]network.Summary{}
	for _, n := range list {
		if n.ConfigOnly {
			configs[n.Name] = n
		}
	}
	var out []Network
	for _, n := range list {
		var kind NetworkKind
		switch {
		case n.ConfigOnly:
			continue
		case SameRef(n.Driver, plugin):
			kind = KindPlugin
		case n.Driver == "macvlan":
			kind = KindMacvlan
		default:
			continue
		}
		src := n
		if c, ok := configs[n.ConfigFrom.Network]; ok && n.ConfigFrom.Network != "" {
			src = c
		}
		out = append(out, Network{ID: n.ID, Name: n.Name, Kind: kind, Driver: n.Driver,
			Options: src.Options, Ranges: rangesOf(src.IPAM.Config), Swarm: n.Scope == "swarm", IPAMDriver: n.IPAM.Driver})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// StraysOf lists the networks whose driver is named like macvlan-swarm
// but is not the plugin the checks are about.
func StraysOf(list []network.Summary, plugin string) []Network {
	var out []Network
	for _, n := range list {
		if IsOurName(n.Driver) && !SameRef(n.Driver, plugin) {
			out = append(out, Network{ID: n.ID, Name: n.Name, Driver: n.Driver})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// rangesOf lists each pool's --ip-range, else its subnet.
func rangesOf(cfgs []network.IPAMConfig) []netip.Prefix {
	var out []netip.Prefix
	for _, c := range cfgs {
		r := c.IPRange
		if r == "" {
			r = c.Subnet
		}
		if p, err := netip.ParsePrefix(r); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

// NodesOf reads the swarm's node list.
func NodesOf(list []swarm.Node) []Node {
	out := make([]Node, 0, len(list))
	for _, n := range list {
		node := Node{ID: n.ID, Name: n.Description.Hostname, State: string(n.Status.State)}
		if node.Name == "" {
			node.Name = n.ID
		}
		for _, p := range n.Description.Engine.Plugins {
			if p.Type == "Network" {
				node.NetworkPlugins = append(node.NetworkPlugins, p.Name)
			}
		}
		out = append(out, node)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ServicesOf reads the swarm's services.
func ServicesOf(list []swarm.Service) []Service {
	out := make([]Service, 0, len(list))
	for _, s := range list {
		svc := Service{Name: s.Spec.Name}
		if es := s.Spec.EndpointSpec; es != nil {
			svc.EndpointMode = string(es.Mode)
			for _, p := range es.Ports {
				if p.PublishMode == "" || p.PublishMode == swarm.PortConfigPublishModeIngress {
					svc.IngressPorts = true
				}
			}
		}
		for _, a := range s.Spec.TaskTemplate.Networks {
			svc.Networks = append(svc.Networks, a.Target)
		}
		out = append(out, svc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
