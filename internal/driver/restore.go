package driver

import (
	"fmt"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
	"github.com/macvlan-swarm/macvlan-swarm/internal/model"
	"github.com/macvlan-swarm/macvlan-swarm/internal/store"
)

// restore loads the saved state and makes the host match it. It runs once,
// in New, after the socket is listening (the engine waits for it):
//   - records that do not decode, and endpoints whose network is gone, are
//     dropped, all in one transaction;
//   - 802.1q parents this driver created that vanished (a reboot) are
//     created again;
//   - a host link named after a saved endpoint, on its network's parent, with
//     its MAC but without a mark (a crash between creating and marking it) is
//     marked; so is a recorded VLAN parent of an older build, if it is still
//     the VLAN link recorded;
//   - marked links that belong to no endpoint (a crash between DeleteEndpoint
//     and the reaper) and retired links are handed to the reaper;
//   - private lower links of networks without a parent are made again (a
//     reboot) or, when no saved network owns them, deleted; host shims and
//     their routes are made to match the saved host_access networks and
//     their joined endpoints (hostaccess.go).
//
// An endpoint whose link is not in the host namespace is kept: a running
// container holds it in its own namespace. Endpoints of dead containers are
// the reclaimer's business (reclaim.go), which sweeps right after this with
// the link list read here.
func (d *Driver) restore() ([]link.Info, error) {
	nets, eps, bad, err := d.st.store.Load()
	if err != nil {
		return nil, fmt.Errorf("read saved state %s: %w", d.st.store.Path(), err)
	}
	d.st.mu.Lock()
	defer d.st.mu.Unlock()
	var repair store.Change
	for _, b := range bad {
		d.log.Warn("dropping a saved record that does not decode", "kind", b.Kind, "key", b.Key, "err", b.Err)
		if b.Kind == "network" {
			repair.DeleteNetworks = append(repair.DeleteNetworks, b.Key)
		} else {
			repair.DeleteEndpoints = append(repair.DeleteEndpoints, b.Key)
		}
	}
	for _, n := range nets {
		n.Announce = d.savedAnnounce(n)
		d.st.networks[n.ID] = n
	}
	for _, e := range eps {
		if _, ok := d.st.networks[e.NetworkID]; !ok {
			repair.DeleteEndpoints = append(repair.DeleteEndpoints, e.ID)
			continue
		}
		d.st.setEndpoint(e)
	}
	if err := d.st.commit(repair); err != nil {
		return nil, fmt.Errorf("drop damaged records and endpoints of removed networks: %w", err)
	}

	d.restoreParents()

	infos, err := d.links.List()
	if err != nil {
		return nil, fmt.Errorf("list host links: %w", err)
	}
	byLink := make(map[string]*model.Endpoint, len(d.st.endpoints))
	for _, e := range d.st.endpoints {
		byLink[e.Link] = e
	}
	stale, marked := 0, 0
	for _, i := range infos {
		e := byLink[i.Name]
		if i.Alias == "" && e != nil && d.unmarkedLinkOf(i, e) {
			if err := d.links.Mark(i.Name, link.EndpointMark(e.ID)); err != nil {
				d.log.Warn("could not mark the host link of a saved endpoint", "link", i.Name, "err", err)
				continue
			}
			i.Alias = link.EndpointMark(e.ID)
			marked++
		}
		id := i.EndpointOf()
		if id == "" {
			continue
		}
		if owner := d.st.endpoints[id]; owner != nil && owner.Link == i.Name && i.Group != link.RetireGroup {
			continue
		}
		d.reaper.Retire(i.Name, i.Alias)
		stale++
	}
	d.restorePrivateParents(infos)
	d.restoreHostAccess(infos)
	d.log.Info("state restored", "networks", len(d.st.networks), "endpoints", len(d.st.endpoints), "stale_links", stale, "marked_links", marked, "dropped_records", len(repair.DeleteNetworks)+len(repair.DeleteEndpoints), "file", d.st.store.Path())
	return infos, nil
}

// unmarkedLinkOf reports whether an unmarked link is the one the driver made
// for e and crashed before marking: a macvlan of e's name, on e's network's
// parent, carrying e's MAC.
func (d *Driver) unmarkedLinkOf(i link.Info, e *model.Endpoint) bool {
	n := d.st.networks[e.NetworkID]
	if n == nil || i.Kind != "macvlan" || i.MAC.String() != e.MAC.String() {
		return false
	}
	p, err := d.links.Get(n.Parent)
	return err == nil && p.Index == i.ParentIndex
}

// restoreParents re-creates driver-made 802.1q parents that are missing, and
// marks one an older build made without a mark. A failure is logged, not
// fatal: the network's next Join says what is wrong.
func (d *Driver) restoreParents() {
	done := map[string]bool{}
	for _, n := range d.st.networks {
		if !n.ParentCreated || done[n.Parent] {
			continue
		}
		done[n.Parent] = true
		info, err := d.links.Get(n.Parent)
		if err == nil {
			if _, vid, _, _ := link.SplitVLAN(n.Parent); info.Alias == "" && info.Kind == "vlan" && info.VlanID == vid {
				if err := d.links.Mark(n.Parent, link.ParentMark); err != nil {
					d.log.Warn("could not mark a VLAN parent made by an older build", "link", n.Parent, "err", err)
				}
			}
			continue
		}
		if err := d.createParent(n.Parent); err != nil {
			d.log.Error("could not re-create VLAN parent after restart", "net", n.ID, "parent", n.Parent, "err", err)
		}
	}
}
