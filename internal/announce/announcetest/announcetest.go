// Package announcetest runs the announcer inside a test's network namespace.
package announcetest

import (
	"github.com/mdlayher/packet"

	"github.com/macvlan-swarm/macvlan-swarm/internal/announce"
	"github.com/macvlan-swarm/macvlan-swarm/internal/link/linktest"
)

// ListenIn opens the announcer's packet sockets in the lab's namespace, so
// that an Announcer built on it sends and listens on that namespace's links.
func ListenIn(l *linktest.Lab) announce.ListenFunc {
	return func(ifname string, proto uint16) (c *packet.Conn, err error) {
		err = linktest.RunIn(l.Name(), func() error {
			c, err = announce.ListenHost(ifname, proto)
			return err
		})
		return c, err
	}
}
