package driver

import (
	"context"
	"errors"
	"fmt"

	"github.com/macvlan-swarm/macvlan-swarm/internal/announce"
	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
	"github.com/macvlan-swarm/macvlan-swarm/internal/model"
)

// What Join sends on the LAN (internal/announce does the sending): the
// opt-in address check before the link is made, and the announcements once
// Join has answered. Without an Announcer (Config.Announce nil, as in most
// tests) neither happens, nor on a network without a parent: its private
// lower link leads to no LAN.

// savedAnnounce reads a loaded network's announcement options, once, at
// start-up. They passed parseOptions when the network was created; a network
// saved by a build that did not read them gets the defaults should one not
// parse.
func (d *Driver) savedAnnounce(n *model.Network) announceOptions {
	o, err := parseAnnounce(n.Options)
	if err != nil {
		d.log.Warn("saved network has announcement options this build refuses; using the defaults", "net", n.ID, "err", err)
		return defaultAnnounce
	}
	return o
}

func announceTarget(n *model.Network, e *model.Endpoint) announce.Target {
	t := announce.Target{Parent: n.Parent, MAC: e.MAC}
	if e.IPv4.IsValid() {
		t.IPv4 = e.IPv4.Addr()
	}
	if e.IPv6.IsValid() {
		t.IPv6 = e.IPv6.Addr()
	}
	return t
}

// checkAddresses refuses a Join whose address another machine on the LAN
// answers for (address_check=true). It runs before the link is made, so a
// refusal leaves nothing behind; the engine then deletes the endpoint. A
// check that cannot run (no CAP_NET_RAW, the parent gone) is logged and the
// container joins unchecked: the check is a guard, not a gate on the
// plugin's health.
func (d *Driver) checkAddresses(n *model.Network, e *model.Endpoint) error {
	if d.announce == nil || n.PrivateParent {
		return nil
	}
	o := n.Announce
	if !o.Check {
		return nil
	}
	err := d.announce.Check(context.Background(), announceTarget(n, e), o.CheckTimeout)
	var c *announce.ConflictError
	if errors.As(err, &c) {
		d.log.Warn("address check: the address is taken on the LAN", "net", n.ID, "ep", e.ID, "addr", c.Addr, "answered_by", c.MAC, "parent", n.Parent)
		return fmt.Errorf("address %s is already used on the LAN of parent %q on %s by a machine Docker does not know: MAC %s answered the address check (address_check=true); exclude it with --aux-address (e.g. --aux-address taken=%s), or shrink --ip-range so it no longer covers it",
			c.Addr, n.Parent, d.onNode(), c.MAC, c.Addr)
	}
	if err != nil {
		d.log.Warn("address check could not run; the container joins unchecked", "net", n.ID, "ep", e.ID, "parent", n.Parent, "err", err)
	}
	return nil
}

// announceJoin starts the announcements of a joined endpoint. They wait
// until the engine has moved the link out of the host namespace (after
// Join's answer), and never hold up the request.
func (d *Driver) announceJoin(n *model.Network, e *model.Endpoint) {
	if d.announce == nil || n.PrivateParent {
		return
	}
	o := n.Announce
	if o.Messages == 0 {
		return
	}
	t := announceTarget(n, e)
	name := e.Link
	t.Moved = func() bool {
		_, err := d.links.Get(name)
		return errors.Is(err, link.ErrNotFound)
	}
	d.announce.Start(t, o.Messages, o.Interval)
}
