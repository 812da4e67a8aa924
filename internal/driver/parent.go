package driver

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
	"github.com/macvlan-swarm/macvlan-swarm/internal/model"
)

// resolvedParent is what a parent option means on this node.
type resolvedParent struct {
	Name string
	MTU  int
	// Create is set when Name does not exist yet and is an 802.1q link
	// (base.vid) this driver will create.
	Create bool
	// DriverOwned is true when the link is (or will be) one this driver
	// created; only such links are ever deleted, by the last network using
	// them.
	DriverOwned bool
}

// ParentCandidates maps each "|"-separated candidate of a parent option
// through a node's PARENTS aliases, keeping their order. It is the first half
// of parent resolution, shared with the doctor command.
func ParentCandidates(spec string, aliases map[string]string) []string {
	var candidates []string
	for _, c := range strings.Split(spec, "|") {
		c = strings.TrimSpace(c)
		if alias, ok := aliases[c]; ok {
			c = alias
		}
		candidates = append(candidates, c)
	}
	return candidates
}

// ParentPick is the link a list of candidates resolves to on a node.
type ParentPick struct {
	Name string
	// Create is set when Name does not exist yet and is an 802.1q link
	// (base.vid) to be created on Info, its base.
	Create bool
	// Info is the link Name, or its base when Create is set.
	Info link.Info
}

// PickParent is the second half of parent resolution: the first candidate
// whose link exists wins; when none exists, the first candidate shaped
// name.vid whose base link exists is to be created as an 802.1q link. get
// looks a link up and returns an error wrapping link.ErrNotFound for a
// missing one. found is false when no candidate resolves; err reports a
// failed lookup or a VLAN candidate with an invalid id. It changes nothing,
// so the doctor command can ask it over links it listed.
func PickParent(candidates []string, get func(name string) (link.Info, error)) (pick ParentPick, found bool, err error) {
	for _, c := range candidates {
		info, err := get(c)
		if errors.Is(err, link.ErrNotFound) {
			continue
		}
		if err != nil {
			return ParentPick{}, false, fmt.Errorf("look up parent %q: %w", c, err)
		}
		return ParentPick{Name: c, Info: info}, true, nil
	}
	for _, c := range candidates {
		base, _, isVLAN, err := link.SplitVLAN(c)
		if !isVLAN {
			continue
		}
		if err != nil {
			return ParentPick{}, false, err
		}
		info, err := get(base)
		if errors.Is(err, link.ErrNotFound) {
			continue
		}
		if err != nil {
			return ParentPick{}, false, fmt.Errorf("look up %q, the base of VLAN parent %q: %w", base, c, err)
		}
		return ParentPick{Name: c, Create: true, Info: info}, true, nil
	}
	return ParentPick{}, false, nil
}

// resolveParent picks this node's parent for a spec (ParentCandidates, then
// PickParent). A container link of this driver is never a parent.
// The caller holds the state lock.
func (d *Driver) resolveParent(spec string) (resolvedParent, error) {
	candidates := ParentCandidates(spec, d.parents)
	pick, found, err := PickParent(candidates, d.links.Get)
	if err != nil {
		return resolvedParent{}, err
	}
	if !found {
		return resolvedParent{}, d.parentNotFound(spec, candidates)
	}
	if pick.Create {
		return resolvedParent{Name: pick.Name, MTU: pick.Info.MTU, Create: true, DriverOwned: true}, nil
	}
	if pick.Info.EndpointOf() != "" {
		return resolvedParent{}, fmt.Errorf("parent %q is a container link made by macvlan-swarm (its alias says %q), not a LAN interface", pick.Name, pick.Info.Alias)
	}
	if pick.Info.ShimOf() != "" || pick.Info.PrivateParentOf() != "" {
		return resolvedParent{}, fmt.Errorf("parent %q is a link macvlan-swarm made for another network (its alias says %q), not a LAN interface", pick.Name, pick.Info.Alias)
	}
	return resolvedParent{Name: pick.Name, MTU: pick.Info.MTU, DriverOwned: d.parentOwned(pick.Name)}, nil
}

func (d *Driver) parentNotFound(spec string, candidates []string) error {
	what := fmt.Sprintf("parent %q", spec)
	if mapped := strings.Join(candidates, "|"); mapped != spec {
		what += fmt.Sprintf(" (%s after this node's PARENTS aliases)", mapped)
	}
	var here []string
	if infos, err := d.links.List(); err == nil {
		here = ParentChoices(infos)
	}
	return fmt.Errorf("%s not found on %s; interfaces here: %s. Use -o parent='a|b' to list each node's name, or give this node an alias: docker plugin disable -f PLUGIN, docker plugin set PLUGIN PARENTS=lan=eth0, docker plugin enable PLUGIN", what, d.onNode(), joinSorted(here))
}

// ParentChoices names, sorted, the links of a node worth listing when a
// parent is not found: not the loopback, not the engine's own bridges and
// veths, not this driver's container links.
func ParentChoices(infos []link.Info) []string {
	var here []string
	for _, i := range infos {
		switch {
		case i.Name == "lo", i.Name == "docker0", i.Name == "docker_gwbridge":
		case strings.HasPrefix(i.Name, "veth"), i.EndpointOf() != "", i.ShimOf() != "", i.PrivateParentOf() != "":
		default:
			here = append(here, i.Name)
		}
	}
	sort.Strings(here)
	return here
}

// parentOwned reports whether a recorded network says this driver created
// the link name. The caller holds the state lock.
func (d *Driver) parentOwned(name string) bool {
	for _, n := range d.st.networks {
		if n.Parent == name && n.ParentCreated {
			return true
		}
	}
	return false
}

// createParent makes the 802.1q link name ("base.vid"): for a new network,
// and again for a saved one whose parent vanished (a reboot).
func (d *Driver) createParent(name string) error {
	base, vid, isVLAN, err := link.SplitVLAN(name)
	if err != nil {
		return err
	}
	if !isVLAN {
		return fmt.Errorf("parent %q was recorded as made by macvlan-swarm but is not a VLAN name (base.vid); not re-creating it", name)
	}
	if err := d.links.AddVLAN(name, base, vid); err != nil {
		if errors.Is(err, link.ErrUnsupported) {
			return fmt.Errorf("parent %q does not exist and the kernel of %s cannot create 802.1q VLAN links (%w): create %q on the node yourself or load the 8021q module", name, d.onNode(), err, name)
		}
		return fmt.Errorf("create VLAN parent %q on %q: %w", name, base, err)
	}
	d.log.Info("created VLAN parent", "link", name, "base", base, "vid", vid)
	return nil
}

// releaseParent deletes a driver-created parent when no other network uses
// it (a private lower link: with its network, hostaccess.go). It checks the link again before deleting: it must still carry the
// driver's mark and be the VLAN link of the recorded id. The caller holds
// the state lock.
func (d *Driver) releaseParent(n *model.Network) {
	if n.PrivateParent {
		d.releasePrivateParent(n)
		return
	}
	if !n.ParentCreated || len(d.st.parentUsers(n.Parent, n.ID)) > 0 {
		return
	}
	info, err := d.links.Get(n.Parent)
	if errors.Is(err, link.ErrNotFound) {
		return
	}
	if err != nil {
		d.log.Warn("could not check VLAN parent before deleting it; left in place", "link", n.Parent, "err", err)
		return
	}
	if _, vid, isVLAN, _ := link.SplitVLAN(n.Parent); !isVLAN || !info.Ours() || info.Kind != "vlan" || info.VlanID != vid {
		d.log.Warn("parent recorded as created by macvlan-swarm is not the VLAN link it made (no mark, or another kind or id); left in place", "link", n.Parent, "kind", info.Kind, "alias", info.Alias)
		return
	}
	if err := d.links.Delete(n.Parent); err != nil {
		d.log.Warn("could not delete VLAN parent", "link", n.Parent, "err", err)
		return
	}
	d.log.Info("deleted VLAN parent, no network uses it any more", "link", n.Parent)
}
