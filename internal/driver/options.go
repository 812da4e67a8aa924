package driver

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol"
	"github.com/macvlan-swarm/macvlan-swarm/internal/store"
)

// The user's -o options. The names are the built-in macvlan driver's, so a
// network definition can switch drivers by changing only -d.
const (
	optParent = "parent"
	optMode   = "macvlan_mode"
	optMTU    = "mtu"
)

// Macvlan modes, as the kernel and the built-in driver name them.
const (
	ModeBridge   = "bridge"
	ModePrivate  = "private"
	ModeVEPA     = "vepa"
	ModePassthru = "passthru"
)

var modes = []string{ModeBridge, ModePrivate, ModeVEPA, ModePassthru}

// acceptedOptions is listed in the refusal of an unknown option.
const acceptedOptions = "parent, macvlan_mode, mtu (or com.docker.network.driver.mtu)"

// netOptions is what a network's -o options mean, before the parent is
// resolved on this node.
type netOptions struct {
	ParentSpec string
	Mode       string
	MTU        int
}

// parseOptions checks the user's options. It is pure: the same options get
// the same answer on the manager (AllocateNetwork, where it only warns) and on
// every node (CreateNetwork, where it refuses).
func parseOptions(opts map[string]string) (netOptions, error) {
	o := netOptions{Mode: ModeBridge}
	var unknown []string
	mtuSeen := ""
	for k, v := range opts {
		switch {
		case k == optParent:
			o.ParentSpec = strings.TrimSpace(v)
		case k == optMode:
			o.Mode = strings.ToLower(strings.TrimSpace(v))
		case k == optMTU || k == protocol.OptionMTU:
			if mtuSeen != "" && strings.TrimSpace(mtuSeen) != strings.TrimSpace(v) {
				return o, fmt.Errorf("options mtu and %s disagree (%q and %q): give only one", protocol.OptionMTU, mtuSeen, v)
			}
			mtuSeen = v
		case strings.HasPrefix(k, "com.docker."):
			// The engine's own namespace: not ours to refuse.
		default:
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return o, fmt.Errorf("unknown option %s; macvlan-swarm accepts %s", quoteList(unknown), acceptedOptions)
	}
	if o.ParentSpec == "" {
		return o, fmt.Errorf("option parent is required: name this node's LAN interface, e.g. -o parent=eth0, a list tried in order (-o parent='ens18|eth0'), or an alias set on the plugin with PARENTS")
	}
	if err := checkParentSpec(o.ParentSpec); err != nil {
		return o, err
	}
	if !slices.Contains(modes, o.Mode) {
		return o, fmt.Errorf("macvlan_mode %q is not valid; use one of %s (default bridge)", opts[optMode], strings.Join(modes, ", "))
	}
	if mtuSeen != "" {
		mtu, err := strconv.Atoi(strings.TrimSpace(mtuSeen))
		if err != nil || mtu < 68 || mtu > 65535 {
			return o, fmt.Errorf("mtu %q is not valid: give a whole number from 68 to 65535, at most the parent interface's MTU", mtuSeen)
		}
		o.MTU = mtu
	}
	return o, nil
}

// checkParentSpec checks the shape of each "|"-separated candidate.
func checkParentSpec(spec string) error {
	for _, c := range strings.Split(spec, "|") {
		c = strings.TrimSpace(c)
		switch {
		case c == "":
			return fmt.Errorf("parent %q has an empty candidate: separate interface names with a single |", spec)
		case c == "lo":
			return fmt.Errorf("parent %q: the loopback interface cannot carry macvlan links; name the LAN interface", spec)
		case len(c) > 15:
			return fmt.Errorf("parent %q: interface name %q is longer than the kernel's 15 bytes", spec, c)
		case strings.ContainsAny(c, "/ \t:"):
			return fmt.Errorf("parent %q: %q is not an interface name", spec, c)
		case strings.HasPrefix(c, linkPrefix):
			return fmt.Errorf("parent %q: %q is a container link made by macvlan-swarm, not a LAN interface", spec, c)
		}
		if _, _, isVLAN, err := splitVLAN(c); isVLAN && err != nil {
			return fmt.Errorf("parent %q: %w", spec, err)
		}
	}
	return nil
}

// splitVLAN reads "name.vid". isVLAN reports the shape (a dot followed by
// digits); err reports a vid out of 1-4094.
func splitVLAN(name string) (base string, vid int, isVLAN bool, err error) {
	i := strings.LastIndexByte(name, '.')
	if i <= 0 || i == len(name)-1 {
		return "", 0, false, nil
	}
	digits := name[i+1:]
	for _, r := range digits {
		if r < '0' || r > '9' {
			return "", 0, false, nil
		}
	}
	vid, convErr := strconv.Atoi(digits)
	if convErr != nil || vid < 1 || vid > 4094 {
		return name[:i], 0, true, fmt.Errorf("VLAN id %s in %q is out of range: use 1 to 4094", digits, name)
	}
	return name[:i], vid, true, nil
}

// genericOptions extracts com.docker.network.generic from CreateNetwork's
// options as strings. Values are strings from the CLI; anything else is
// printed as JSON would show it.
func genericOptions(opts map[string]any) map[string]string {
	out := map[string]string{}
	raw, ok := opts[protocol.OptionGeneric].(map[string]any)
	if !ok {
		return out
	}
	for k, v := range raw {
		switch x := v.(type) {
		case string:
			out[k] = x
		case nil:
			out[k] = ""
		default:
			out[k] = fmt.Sprint(x)
		}
	}
	return out
}

// boolOption reads a boolean engine option; the engine sends JSON booleans,
// older code paths strings. Absent means def.
func boolOption(opts map[string]any, key string, def bool) bool {
	switch v := opts[key].(type) {
	case bool:
		return v
	case string:
		b, err := strconv.ParseBool(v)
		if err == nil {
			return b
		}
	}
	return def
}

// parsePools sorts the engine's pools into IPv4 and IPv6 by their address,
// not by the list they came in (a swarm manager puts both in IPv4Data).
func parsePools(lists ...[]protocol.IPAMData) (v4, v6 []store.Pool, err error) {
	for _, list := range lists {
		for _, d := range list {
			pfx, perr := netip.ParsePrefix(d.Pool)
			if perr != nil {
				return nil, nil, fmt.Errorf("address pool %q from the engine is not a CIDR prefix", d.Pool)
			}
			if d.Gateway != "" {
				gw, gerr := netip.ParsePrefix(d.Gateway)
				if gerr != nil || !pfx.Contains(gw.Addr()) {
					return nil, nil, fmt.Errorf("gateway %q is not an address inside subnet %s", d.Gateway, d.Pool)
				}
			}
			p := store.Pool{Pool: pfx.String(), Gateway: d.Gateway, Aux: d.AuxAddresses}
			if pfx.Addr().Is4() {
				v4 = append(v4, p)
			} else {
				v6 = append(v6, p)
			}
		}
	}
	return v4, v6, nil
}

func quoteList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = strconv.Quote(x)
	}
	return strings.Join(q, ", ")
}
