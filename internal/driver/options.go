package driver

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/announce"
	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
	"github.com/macvlan-swarm/macvlan-swarm/internal/model"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol"
)

// The user's -o options. The names are the built-in macvlan driver's, so a
// network definition can switch drivers by changing only -d.
const (
	optParent = "parent"
	optMode   = "macvlan_mode"
	optMTU    = "mtu"
	// optHostAccess asks for a shim so this node reaches its own containers
	// (hostaccess.go). The built-in driver has no such option.
	optHostAccess = "host_access"
)

// Announcements and the address check (internal/announce). The first two
// are engine 28's own option names: that engine reads them from the same -o
// options for the announcements it sends from inside the container, so one
// setting governs both senders.
const (
	optAdvertiseNMsgs    = "com.docker.network.advertise_addr_nmsgs"
	optAdvertiseMs       = "com.docker.network.advertise_addr_ms"
	optAddressCheck      = "address_check"
	optAddressCheckAfter = "address_check_timeout"
)

// acceptedOptions is listed in the refusal of an unknown option.
const acceptedOptions = "parent, macvlan_mode, mtu (or com.docker.network.driver.mtu), host_access, address_check, address_check_timeout, com.docker.network.advertise_addr_nmsgs, com.docker.network.advertise_addr_ms"

// netOptions is what a network's -o options mean, before the parent is
// resolved on this node.
type netOptions struct {
	ParentSpec string
	Mode       link.Mode
	MTU        int
	HostAccess bool
	Announce   announceOptions
}

// announceOptions say what Join sends on the LAN for a container; a
// network keeps them as model.Network.Announce.
type announceOptions = model.Announce

// parseOptions checks the user's options. It is pure: the same options get
// the same answer on the manager (AllocateNetwork, where it only warns) and on
// every node (CreateNetwork, where it refuses).
func parseOptions(opts map[string]string) (netOptions, error) {
	o := netOptions{}
	var unknown []string
	mtuSeen, modeSeen, hostSeen := "", "", ""
	for k, v := range opts {
		switch {
		case k == optParent:
			o.ParentSpec = strings.TrimSpace(v)
		case k == optMode:
			modeSeen = v
		case k == optMTU || k == protocol.OptionMTU:
			if mtuSeen != "" && strings.TrimSpace(mtuSeen) != strings.TrimSpace(v) {
				return o, fmt.Errorf("options mtu and %s disagree (%q and %q): give only one", protocol.OptionMTU, mtuSeen, v)
			}
			mtuSeen = v
		case k == optHostAccess:
			hostSeen = v
		case k == optAdvertiseNMsgs, k == optAdvertiseMs, k == optAddressCheck, k == optAddressCheckAfter:
			// parseAnnounce reads them.
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
	// No parent: an internal network on a private lower link of each node
	// (hostaccess.go), as the built-in driver does.
	if o.ParentSpec != "" {
		if err := checkParentSpec(o.ParentSpec); err != nil {
			return o, err
		}
	}
	var err error
	if o.Mode, err = link.ParseMode(modeSeen); err != nil {
		return o, err
	}
	if hostSeen != "" {
		if o.HostAccess, err = strconv.ParseBool(strings.TrimSpace(hostSeen)); err != nil {
			return o, fmt.Errorf("host_access %q is not valid: use true or false", hostSeen)
		}
	}
	if o.HostAccess && o.ParentSpec == "" {
		return o, fmt.Errorf("host_access needs a parent: a network without one is internal (its containers reach only each other on the same node); give -o parent, or drop host_access")
	}
	if o.HostAccess && o.Mode != link.ModeBridge {
		return o, fmt.Errorf("host_access needs macvlan_mode bridge: in %s mode the node's shim link cannot talk to the containers; use bridge, or drop host_access", o.Mode)
	}
	if mtuSeen != "" {
		mtu, err := strconv.Atoi(strings.TrimSpace(mtuSeen))
		if err != nil || mtu < 68 || mtu > 65535 {
			return o, fmt.Errorf("mtu %q is not valid: give a whole number from 68 to 65535, at most the parent interface's MTU", mtuSeen)
		}
		o.MTU = mtu
	}
	if o.Announce, err = parseAnnounce(opts); err != nil {
		return o, err
	}
	return o, nil
}

// defaultAnnounce: engine 28's defaults, no address check.
var defaultAnnounce = announceOptions{Messages: announce.DefaultMessages, Interval: announce.DefaultInterval, CheckTimeout: announce.DefaultCheckTimeout}

// parseAnnounce reads the announcement and address check options, with
// engine 28's ranges and defaults for the engine's two.
func parseAnnounce(opts map[string]string) (announceOptions, error) {
	a := defaultAnnounce
	if v, ok := opts[optAdvertiseNMsgs]; ok {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < announce.MinMessages || n > announce.MaxMessages {
			return a, fmt.Errorf("%s %q is not valid: give a whole number from %d to %d (0 turns announcements off)", optAdvertiseNMsgs, v, announce.MinMessages, announce.MaxMessages)
		}
		a.Messages = n
	}
	if v, ok := opts[optAdvertiseMs]; ok {
		ms, err := strconv.Atoi(strings.TrimSpace(v))
		d := time.Duration(ms) * time.Millisecond
		if err != nil || d < announce.MinInterval || d > announce.MaxInterval {
			return a, fmt.Errorf("%s %q is not valid: give whole milliseconds from %d to %d", optAdvertiseMs, v, announce.MinInterval.Milliseconds(), announce.MaxInterval.Milliseconds())
		}
		a.Interval = d
	}
	if v, ok := opts[optAddressCheck]; ok {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return a, fmt.Errorf("%s %q is not valid: give true or false", optAddressCheck, v)
		}
		a.Check = b
	}
	if v, ok := opts[optAddressCheckAfter]; ok {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d < announce.MinCheckTimeout || d > announce.MaxCheckTimeout {
			return a, fmt.Errorf("%s %q is not valid: give a duration from %v to %v, e.g. 150ms", optAddressCheckAfter, v, announce.MinCheckTimeout, announce.MaxCheckTimeout)
		}
		a.CheckTimeout = d
	}
	return a, nil
}

// NetworkOptions reads a network's -o options exactly as CreateNetwork
// does, for the doctor command: the parent option and the MTU (0: the
// parent's), or the error every node would refuse the network with.
func NetworkOptions(opts map[string]string) (parentSpec string, mtu int, err error) {
	o, err := parseOptions(opts)
	return o.ParentSpec, o.MTU, err
}

// checkParentSpec checks the shape of each "|"-separated candidate.
func checkParentSpec(spec string) error {
	seen := map[string]bool{}
	for _, c := range strings.Split(spec, "|") {
		c = strings.TrimSpace(c)
		if c == "" {
			return fmt.Errorf("parent %q has an empty candidate: separate interface names with a single |", spec)
		}
		if c == "lo" {
			return fmt.Errorf("parent %q: the loopback interface cannot carry macvlan links; name the LAN interface", spec)
		}
		if err := link.CheckName(c); err != nil {
			return fmt.Errorf("parent %q: %w", spec, err)
		}
		if seen[c] {
			return fmt.Errorf("parent %q names %q twice: list each interface once", spec, c)
		}
		seen[c] = true
		if _, _, isVLAN, err := link.SplitVLAN(c); isVLAN && err != nil {
			return fmt.Errorf("parent %q: %w", spec, err)
		}
	}
	return nil
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
func parsePools(lists ...[]protocol.IPAMData) (v4, v6 []model.Pool, err error) {
	for _, list := range lists {
		for _, d := range list {
			var p model.Pool
			if p.Subnet, err = netip.ParsePrefix(d.Pool); err != nil {
				return nil, nil, fmt.Errorf("address pool %q from the engine is not a CIDR prefix", d.Pool)
			}
			if d.Gateway != "" {
				if p.Gateway, err = netip.ParsePrefix(d.Gateway); err != nil || !p.Subnet.Contains(p.Gateway.Addr()) {
					return nil, nil, fmt.Errorf("gateway %q is not an address inside subnet %s", d.Gateway, d.Pool)
				}
			}
			for name, a := range d.AuxAddresses {
				aux, aerr := netip.ParsePrefix(a)
				if aerr != nil {
					if addr, perr := netip.ParseAddr(a); perr == nil {
						aux, aerr = netip.PrefixFrom(addr, p.Subnet.Bits()), nil
					}
				}
				if aerr != nil {
					return nil, nil, fmt.Errorf("aux address %s=%q of subnet %s is not an address", name, a, d.Pool)
				}
				if p.Aux == nil {
					p.Aux = map[string]netip.Prefix{}
				}
				p.Aux[name] = aux
			}
			if p.Subnet.Addr().Is4() {
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
