// Package announce puts a container's addresses on the LAN from the host
// namespace, with raw Ethernet frames on the network's parent interface:
//
//   - announcements after Join (Announcer.Start): gratuitous ARP for IPv4 and
//     unsolicited neighbour advertisements (override flag) for IPv6, sent
//     from the container's MAC, so that switches learn the port the MAC is
//     behind now and neighbours update their caches. A swarm task that gets
//     its address back on another node keeps its MAC (02:42:<ipv4>); without
//     this, switches keep sending that MAC to the old node's port until their
//     tables age out, as long as the new task stays silent.
//   - an address check before Join answers (Check): an ARP probe (sender
//     0.0.0.0, RFC 5227) and duplicate address detection (RFC 4862), to find
//     a machine Docker does not know that already holds the address.
//
// Why from the host and not from inside the container: the daemon never
// enters a container's namespace (no CAP_SYS_ADMIN, no thread switching), and
// the frames only have to leave through the parent with the container's
// source MAC for switches to learn it. A raw packet socket bound to the
// parent does that and needs CAP_NET_RAW only.
//
// Only this package opens packet sockets. It knows nothing of the driver:
// the caller says which parent, MAC and addresses, and when the link has
// left the host (Target.Moved).
package announce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/mdlayher/packet"
)

// Defaults and ranges of the announcements, the same as engine 28's (moby
// libnetwork/osl: 0 to 3 messages, 100 ms to 2 s apart, 3 and 1 s by
// default), under the same option names, so one setting governs both.
const (
	MinMessages     = 0
	MaxMessages     = 3
	DefaultMessages = 3
	MinInterval     = 100 * time.Millisecond
	MaxInterval     = 2 * time.Second
	DefaultInterval = time.Second
)

// Bounds of the address check's wait. The check runs inside Join, so the
// wait is added to every container start on a network that asks for it.
const (
	MinCheckTimeout     = 20 * time.Millisecond
	MaxCheckTimeout     = time.Second
	DefaultCheckTimeout = 200 * time.Millisecond
)

// Moving the link: the first announcement waits until the engine has moved
// the link out of the host namespace (checked every movePoll), at most
// moveWait; after that it is sent anyway (a switch learns the MAC from the
// frame, whatever state the container's link is in).
const (
	movePoll = 20 * time.Millisecond
	moveWait = 2 * time.Second
)

// Target is one container interface on one parent.
type Target struct {
	Parent string           // the host interface the frames leave by
	MAC    net.HardwareAddr // the container's MAC, the frames' source
	IPv4   netip.Addr       // invalid: none
	IPv6   netip.Addr       // invalid: none
	// Moved, if not nil, reports whether the container's link has left the
	// host namespace (the engine moved it into the container).
	Moved func() bool
}

func (t Target) String() string {
	s := t.MAC.String() + " on " + t.Parent
	if t.IPv4.IsValid() {
		s += " " + t.IPv4.String()
	}
	if t.IPv6.IsValid() {
		s += " " + t.IPv6.String()
	}
	return s
}

// ListenFunc opens a raw packet socket (whole Ethernet frames) on the
// interface called ifname, receiving frames of EtherType proto (0: none).
type ListenFunc func(ifname string, proto uint16) (*packet.Conn, error)

// ListenHost opens the socket in the calling thread's network namespace:
// the daemon's, the host's.
func ListenHost(ifname string, proto uint16) (*packet.Conn, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("interface %q: %w", ifname, err)
	}
	c, err := packet.Listen(ifi, packet.Raw, int(proto), nil)
	if err != nil {
		return nil, fmt.Errorf("packet socket on %q: %w", ifname, err)
	}
	return c, nil
}

// Announcer sends announcements in the background and checks addresses.
// Close stops what is still being sent.
type Announcer struct {
	listen ListenFunc
	log    *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex // orders Start's wg.Add before Close's wg.Wait
	closed bool
	wg     sync.WaitGroup
}

// New builds an Announcer; listen nil means ListenHost, log nil discards.
func New(listen ListenFunc, log *slog.Logger) *Announcer {
	if listen == nil {
		listen = ListenHost
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Announcer{listen: listen, log: log, ctx: ctx, cancel: cancel}
}

// Close stops sending and waits for the senders to return.
func (a *Announcer) Close() {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	a.cancel()
	a.wg.Wait()
}

// Start announces t's addresses count times, interval apart, in the
// background, and returns at once. It first waits for t.Moved (see
// moveWait). Failures are logged, never returned: an announcement only
// speeds up what the LAN learns anyway once the container speaks.
func (a *Announcer) Start(t Target, count int, interval time.Duration) {
	if count <= 0 || (!t.IPv4.IsValid() && !t.IPv6.IsValid()) {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		a.log.Debug("announcements not sent: shutting down", "target", t.String())
		return
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		sent, err := a.announce(a.ctx, t, count, interval)
		switch {
		case err == nil:
			a.log.Debug("addresses announced", "target", t.String(), "messages", sent)
		case errors.Is(err, context.Canceled):
			a.log.Debug("announcements stopped by shutdown", "target", t.String(), "messages", sent)
		default:
			a.log.Warn("announcing a container's addresses failed; the LAN learns them when the container first sends", "target", t.String(), "messages", sent, "err", err)
		}
	}()
}

// announce sends the frames; it returns how many rounds it sent.
func (a *Announcer) announce(ctx context.Context, t Target, count int, interval time.Duration) (int, error) {
	var frames [][]byte
	if t.IPv4.IsValid() {
		f, err := gratuitousARP(t.MAC, t.IPv4)
		if err != nil {
			return 0, err
		}
		frames = append(frames, f)
	}
	if t.IPv6.IsValid() {
		f, err := unsolicitedNA(t.MAC, t.IPv6)
		if err != nil {
			return 0, err
		}
		frames = append(frames, f)
	}
	if t.Moved != nil {
		deadline := time.Now().Add(moveWait)
		for !t.Moved() && time.Now().Before(deadline) {
			if err := sleep(ctx, movePoll); err != nil {
				return 0, err
			}
		}
	}
	c, err := a.listen(t.Parent, 0)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	for i := range count {
		if i > 0 {
			if err := sleep(ctx, interval); err != nil {
				return i, err
			}
		}
		for _, f := range frames {
			if err := send(c, f); err != nil {
				return i, err
			}
		}
	}
	return count, nil
}

// send writes one whole frame; the link-layer address given is the frame's
// destination, which a raw socket takes from the frame itself.
func send(c *packet.Conn, frame []byte) error {
	dst := net.HardwareAddr(frame[0:6])
	_, err := c.WriteTo(frame, &packet.Addr{HardwareAddr: dst})
	return err
}

func sleep(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}
