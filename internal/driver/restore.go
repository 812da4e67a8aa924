package driver

import "fmt"

// restore loads the saved state and makes the host match it. It runs once,
// in New, after the socket is listening (the engine waits for it):
//   - records that do not decode, and endpoints whose network is gone, are
//     dropped;
//   - 802.1q parents this driver created that vanished (a reboot) are
//     created again;
//   - host links of this driver's shape that belong to no endpoint (a crash
//     between DeleteEndpoint and the reaper, or a lost record) and retired
//     links are deleted.
//
// An endpoint whose link is not in the host namespace is kept: a running
// container holds it in its own namespace. The engine deletes stale
// endpoints itself after a daemon restart.
func (d *Driver) restore() error {
	nets, eps, bad, err := d.store.Load()
	if err != nil {
		return fmt.Errorf("read saved state %s: %w", d.store.Path(), err)
	}
	if len(bad) > 0 {
		d.log.Warn("dropping saved records that do not decode", "records", bad)
		if err := d.store.DeleteBad(bad); err != nil {
			return fmt.Errorf("drop damaged records: %w", err)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range nets {
		d.networks[nets[i].ID] = &nets[i]
	}
	var orphans []string
	for i := range eps {
		e := &eps[i]
		if _, ok := d.networks[e.NetworkID]; !ok {
			orphans = append(orphans, e.ID)
			continue
		}
		d.endpoints[e.ID] = e
	}
	for _, id := range orphans {
		if err := d.store.DeleteEndpoint(id); err != nil {
			return fmt.Errorf("drop endpoint of a removed network: %w", err)
		}
	}
	if len(orphans) > 0 {
		d.log.Info("dropped endpoints of networks that are gone", "count", len(orphans))
	}

	d.restoreParents()

	infos, err := d.links.List()
	if err != nil {
		return fmt.Errorf("list host links: %w", err)
	}
	owned := make(map[string]bool, len(d.endpoints))
	for _, e := range d.endpoints {
		owned[e.Link] = true
	}
	stale := 0
	for _, i := range infos {
		if !isOurLink(i) || (owned[i.Name] && i.Group != RetireGroup) {
			continue
		}
		d.reaper.retire(i.Name)
		stale++
	}
	d.log.Info("state restored", "networks", len(d.networks), "endpoints", len(d.endpoints), "stale_links", stale, "file", d.store.Path())
	return nil
}

// restoreParents re-creates driver-made 802.1q parents that are missing. A
// failure is logged, not fatal: the network's next Join says what is wrong.
func (d *Driver) restoreParents() {
	done := map[string]bool{}
	for _, n := range d.networks {
		if !n.ParentCreated || done[n.Parent] {
			continue
		}
		done[n.Parent] = true
		if _, err := d.links.Get(n.Parent); err == nil {
			continue
		}
		if err := d.createParent(n.Parent); err != nil {
			d.log.Error("could not re-create VLAN parent after restart", "net", n.ID, "parent", n.Parent, "err", err)
		}
	}
}
