package announce

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

// ConflictError is an address another machine answered for.
type ConflictError struct {
	Addr   netip.Addr
	MAC    net.HardwareAddr // the MAC that answered
	Parent string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("address %s is in use on the LAN of %q by the machine with MAC %s", e.Addr, e.Parent, e.MAC)
}

// Check asks the LAN whether another machine holds t's addresses: an ARP
// probe for the IPv4 address and a duplicate address detection solicitation
// for the IPv6 one, both from t.MAC, each sent twice (at once and half way
// through), then waits until timeout for an answer from another MAC. It
// returns a *ConflictError for the first answer, nil when none came, and
// another error when it could not look.
//
// Answers to a probe go to t.MAC, which the parent does not own yet (the
// container's link is not made yet, or not up): the sockets add t.MAC to
// the parent's unicast filter for as long as they are open (a NIC would drop
// such frames otherwise), and the IPv6 socket joins the all-nodes group,
// where the answer to duplicate address detection goes.
func (a *Announcer) Check(ctx context.Context, t Target, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type job struct {
		proto uint16
		probe []byte
		match func([]byte) net.HardwareAddr
		addr  netip.Addr
	}
	var jobs []job
	if t.IPv4.IsValid() {
		f, err := arpProbe(t.MAC, t.IPv4)
		if err != nil {
			return err
		}
		jobs = append(jobs, job{uint16(ethernet.EtherTypeARP), f, func(b []byte) net.HardwareAddr { return arpAnswer(b, t) }, t.IPv4})
	}
	if t.IPv6.IsValid() {
		f, err := dadSolicitation(t.MAC, t.IPv6)
		if err != nil {
			return err
		}
		jobs = append(jobs, job{uint16(ethernet.EtherTypeIPv6), f, func(b []byte) net.HardwareAddr { return naAnswer(b, t) }, t.IPv6})
	}
	if len(jobs) == 0 {
		return nil
	}
	conns := make([]*packet.Conn, 0, len(jobs))
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for _, j := range jobs {
		c, err := a.listen(t.Parent, j.proto)
		if err != nil {
			return err
		}
		conns = append(conns, c)
		if err := addMembership(c, unix.PACKET_MR_UNICAST, t.MAC); err != nil {
			return fmt.Errorf("listen for answers to %s on %q: %w", t.MAC, t.Parent, err)
		}
		if j.proto == uint16(ethernet.EtherTypeIPv6) {
			if err := c.JoinGroup(multicastMAC(allNodes)); err != nil {
				return fmt.Errorf("join the all-nodes group on %q: %w", t.Parent, err)
			}
		}
	}

	type result struct {
		conflict *ConflictError
		err      error
	}
	results := make(chan result, len(jobs))
	deadline, _ := ctx.Deadline()
	for i, j := range jobs {
		c := conns[i]
		if err := c.SetReadDeadline(deadline); err != nil {
			return err
		}
		go func() {
			buf := make([]byte, 1600)
			for {
				n, _, err := c.ReadFrom(buf)
				if err != nil {
					if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed) {
						err = nil
					}
					results <- result{err: err}
					return
				}
				if mac := j.match(buf[:n]); mac != nil {
					results <- result{conflict: &ConflictError{Addr: j.addr, MAC: mac, Parent: t.Parent}}
					return
				}
			}
		}()
	}
	// Probes at once and half way through, on the sockets that listen:
	// one lost frame must not hide a conflict. An answer ends the wait.
	sendAll := func() error {
		for i, j := range jobs {
			if err := send(conns[i], j.probe); err != nil {
				return fmt.Errorf("send address probe on %q: %w", t.Parent, err)
			}
		}
		return nil
	}
	if err := sendAll(); err != nil {
		return err
	}
	again := time.NewTimer(timeout / 2)
	defer again.Stop()
	var errs []error
	for pending := len(jobs); pending > 0; {
		select {
		case r := <-results:
			pending--
			if r.conflict != nil {
				return r.conflict
			}
			if r.err != nil {
				errs = append(errs, r.err)
			}
		case <-again.C:
			if err := sendAll(); err != nil {
				return err
			}
		case <-ctx.Done():
			// The readers end at the same deadline; a cancelled parent
			// context ends the check early (the deferred Close stops them).
			if err := context.Cause(ctx); !errors.Is(err, context.DeadlineExceeded) {
				return err
			}
			return errors.Join(errs...)
		}
	}
	return errors.Join(errs...)
}

// arpAnswer returns the sender MAC of an ARP frame that claims t.IPv4 from
// another MAC (a reply to the probe, or the holder's own request), else nil.
func arpAnswer(b []byte, t Target) net.HardwareAddr {
	var f ethernet.Frame
	if f.UnmarshalBinary(b) != nil || f.EtherType != ethernet.EtherTypeARP || bytes.Equal(f.Source, t.MAC) {
		return nil
	}
	var p arp.Packet
	if p.UnmarshalBinary(f.Payload) != nil || p.SenderIP != t.IPv4 || bytes.Equal(p.SenderHardwareAddr, t.MAC) {
		return nil
	}
	return p.SenderHardwareAddr
}

// naAnswer returns the MAC of a neighbour advertisement for t.IPv6 from
// another MAC (its target link-layer option, else the frame's source), else
// nil. Only IPv6 headers directly followed by ICMPv6 are read: NDP messages
// carry no extension headers.
func naAnswer(b []byte, t Target) net.HardwareAddr {
	var f ethernet.Frame
	if f.UnmarshalBinary(b) != nil || f.EtherType != ethernet.EtherTypeIPv6 || bytes.Equal(f.Source, t.MAC) {
		return nil
	}
	ip := f.Payload
	if len(ip) < 40 || ip[0]>>4 != 6 || ip[6] != 58 || ip[7] != 255 {
		return nil
	}
	m, err := ndp.ParseMessage(ip[40:])
	if err != nil {
		return nil
	}
	na, ok := m.(*ndp.NeighborAdvertisement)
	if !ok || na.TargetAddress != t.IPv6 {
		return nil
	}
	mac := f.Source
	for _, o := range na.Options {
		if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Target {
			mac = lla.Addr
		}
	}
	if bytes.Equal(mac, t.MAC) {
		return nil
	}
	return mac
}

// addMembership adds a link-layer address to the socket's interface for as
// long as the socket is open (packet(7), PACKET_ADD_MEMBERSHIP).
func addMembership(c *packet.Conn, kind int, mac net.HardwareAddr) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	ifi, err := ifIndex(c)
	if err != nil {
		return err
	}
	mreq := unix.PacketMreq{Ifindex: int32(ifi), Type: uint16(kind), Alen: uint16(len(mac))}
	copy(mreq.Address[:], mac)
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptPacketMreq(int(fd), unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq)
	}); err != nil {
		return err
	}
	return serr
}

// ifIndex is the index of the interface the socket is bound to.
func ifIndex(c *packet.Conn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var idx int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		sa, err := unix.Getsockname(int(fd))
		if err != nil {
			serr = err
			return
		}
		ll, ok := sa.(*unix.SockaddrLinklayer)
		if !ok {
			serr = fmt.Errorf("packet socket bound to %T", sa)
			return
		}
		idx = ll.Ifindex
	}); err != nil {
		return 0, err
	}
	return idx, serr
}
