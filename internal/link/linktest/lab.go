// Package linktest gives tests a private network namespace to create real
// links in, so they can exercise netlink without touching the host's
// interfaces and without tests seeing each other's links.
//
// Namespaces and OS threads: a Go goroutine may run on any OS thread, and a
// network namespace belongs to a thread. New therefore switches namespaces
// only on a goroutine of its own that holds its thread locked, and switches
// back before unlocking it. If switching back fails, the goroutine exits
// still locked, which makes the runtime retire that thread instead of
// handing a thread in the wrong namespace to other goroutines. Everything
// else here uses handles whose sockets were opened inside the lab, and never
// switches at all.
package linktest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
)

// nsDir is where iproute2 looks for named namespaces, so `ip -n NAME`
// works on a lab while a test is paused.
const nsDir = "/run/netns"

var labSeq atomic.Uint64

// Lab is a fresh network namespace for one test. It and every link in it
// are removed when the test ends.
type Lab struct {
	name string
	h    *link.Handle
	nlh  *netlink.Handle // for what link.Handle deliberately cannot do: veths, moves
}

// New creates a Lab, or skips the test when it cannot (not root, or no
// namespace support).
func New(t testing.TB) *Lab {
	t.Helper()
	if euid := os.Geteuid(); euid != 0 {
		t.Skipf("linktest: creating network namespaces needs root (euid is %d)", euid)
	}
	name := fmt.Sprintf("linktest-%d-%d", os.Getpid(), labSeq.Add(1))
	if err := newNamedNS(name); err != nil {
		t.Skipf("linktest: cannot create network namespace %s: %v", name, err)
	}
	l := &Lab{name: name}
	t.Cleanup(func() { l.Destroy(t) })

	var err error
	if l.h, err = link.OpenNamespace(l.Path()); err != nil {
		t.Fatalf("linktest: %v", err)
	}
	ns, err := netns.GetFromPath(l.Path())
	if err != nil {
		t.Fatalf("linktest: open %s: %v", l.Path(), err)
	}
	defer ns.Close()
	if l.nlh, err = netlink.NewHandleAt(ns, unix.NETLINK_ROUTE); err != nil {
		t.Fatalf("linktest: netlink handle in %s: %v", l.Path(), err)
	}
	return l
}

// Destroy removes the lab's namespace now, as a container's death does: the
// kernel deletes the virtual links in it (a macvlan is not moved back). The
// test's cleanup calls it too; a second call does nothing.
func (l *Lab) Destroy(t testing.TB) {
	t.Helper()
	if l.h == nil {
		return
	}
	l.h.Close()
	l.nlh.Close()
	l.h, l.nlh = nil, nil
	// Unmounting drops the last reference (once the handles are closed);
	// the kernel then destroys the namespace and its links.
	if err := netns.DeleteNamed(l.name); err != nil {
		t.Errorf("linktest: remove network namespace %s: %v", l.name, err)
	}
}

// newNamedNS creates a namespace bind-mounted at nsDir/name while leaving
// the calling goroutine's thread, and every other one, where it was.
func newNamedNS(name string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		ns, createErr := netns.NewNamed(name)
		if createErr == nil {
			ns.Close()
		}
		// NewNamed may fail after it has switched, so always switch back.
		if err := netns.Set(orig); err != nil {
			// Keep the thread locked: it dies with this goroutine.
			errc <- errors.Join(createErr, fmt.Errorf("return to original namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- createErr
	}()
	return <-errc
}

// Path is the lab's namespace file, usable with link.OpenNamespace or
// `nsenter --net=PATH`.
func (l *Lab) Path() string { return filepath.Join(nsDir, l.name) }

// Name is the lab's namespace name, for `ip -n NAME`.
func (l *Lab) Name() string { return l.name }

// Handle is a link.Handle bound to the lab, closed when the test ends.
func (l *Lab) Handle() *link.Handle { return l.h }

// PeerName is the name Veth gives the other end of a veth called name.
func PeerName(name string) string {
	const maxLen = 15
	if len(name) > maxLen-1 {
		name = name[:maxLen-1]
	}
	return name + "p"
}

// Veth creates the veth pair name / PeerName(name) in the lab, both ends up.
// mtu 0 keeps the kernel's default.
func (l *Lab) Veth(t testing.TB, name string, mtu int) {
	t.Helper()
	peer := PeerName(name)
	if peer == name {
		t.Fatalf("linktest: veth name %q leaves no room for a distinct peer name", name)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	attrs.MTU = mtu // the peer inherits it
	attrs.Flags = net.FlagUp
	if err := l.nlh.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: peer}); err != nil {
		t.Fatalf("linktest: create veth %q/%q: %v", name, peer, err)
	}
	p, err := l.nlh.LinkByName(peer)
	if err != nil {
		t.Fatalf("linktest: find veth peer %q: %v", peer, err)
	}
	if err := l.nlh.LinkSetUp(p); err != nil {
		t.Fatalf("linktest: bring up veth peer %q: %v", peer, err)
	}
}

// SetUp brings the link called name up, as the engine does once it has
// moved an endpoint's link into a container.
func (l *Lab) SetUp(t testing.TB, name string) {
	t.Helper()
	lk, err := l.nlh.LinkByName(name)
	if err != nil {
		t.Fatalf("linktest: find %q in %s: %v", name, l.name, err)
	}
	if err := l.nlh.LinkSetUp(lk); err != nil {
		t.Fatalf("linktest: bring up %q in %s: %v", name, l.name, err)
	}
}

// NewPeerNamespace returns another fresh Lab, standing in for a container.
func (l *Lab) NewPeerNamespace(t testing.TB) *Lab {
	t.Helper()
	return New(t)
}

// MoveTo moves the link called linkName from l into to, as the engine does
// when it puts an endpoint's link into a container.
func (l *Lab) MoveTo(t testing.TB, linkName string, to *Lab) {
	t.Helper()
	lk, err := l.nlh.LinkByName(linkName)
	if err != nil {
		t.Fatalf("linktest: find %q in %s: %v", linkName, l.name, err)
	}
	ns, err := netns.GetFromPath(to.Path())
	if err != nil {
		t.Fatalf("linktest: open %s: %v", to.Path(), err)
	}
	defer ns.Close()
	if err := l.nlh.LinkSetNsFd(lk, int(ns)); err != nil {
		t.Fatalf("linktest: move %q from %s to %s: %v", linkName, l.name, to.name, err)
	}
}

// MoveBack moves the link called name from from back into l, as the engine
// does when a container releases an endpoint.
func (l *Lab) MoveBack(t testing.TB, from *Lab, name string) {
	t.Helper()
	from.MoveTo(t, name, l)
}

// SkipUnlessKind skips the test when the kernel cannot create links of the
// given kind ("vlan", "dummy", "ipvlan", ...).
func SkipUnlessKind(t testing.TB, l *Lab, kind string) {
	t.Helper()
	if ok, why := KindSupported(t, l, kind); !ok {
		t.Skipf("kernel lacks %s links: %v", kind, why)
	}
}

// kindCache remembers probe results: the set of link kinds is a property of
// the running kernel, the same in every namespace and for the whole run.
var kindCache sync.Map // kind -> error (nil when supported)

// KindSupported reports whether the kernel can create links of the given
// kind and, when it cannot, the kernel's answer. It decides by creating a
// throwaway link in l and fails the test on any error other than the
// kernel's "unknown link kind" (EOPNOTSUPP).
func KindSupported(t testing.TB, l *Lab, kind string) (ok bool, why error) {
	t.Helper()
	if v, done := kindCache.Load(kind); done {
		why, _ := v.(error)
		return why == nil, why
	}
	// A veth gives kinds stacked on a lower device their parent; deleting
	// it afterwards takes the stacked link (and the peer) with it.
	const parent, probe = "ltprobe", "ltprobek"
	l.Veth(t, parent, 0)
	defer func() {
		if err := l.h.Delete(parent); err != nil {
			t.Errorf("linktest: remove probe links: %v", err)
		}
		_ = l.h.Delete(probe) // only exists for kinds without a parent
	}()
	lower, err := l.nlh.LinkByName(parent)
	if err != nil {
		t.Fatalf("linktest: %v", err)
	}

	attrs := netlink.NewLinkAttrs()
	attrs.Name = probe
	stacked := attrs
	stacked.ParentIndex = lower.Attrs().Index
	var lk netlink.Link
	switch kind {
	case "veth":
		lk = &netlink.Veth{LinkAttrs: attrs, PeerName: probe + "p"}
	case "bridge":
		lk = &netlink.Bridge{LinkAttrs: attrs}
	case "dummy":
		lk = &netlink.Dummy{LinkAttrs: attrs}
	case "vxlan":
		lk = &netlink.Vxlan{LinkAttrs: attrs, VxlanId: 42}
	case "vlan":
		lk = &netlink.Vlan{LinkAttrs: stacked, VlanId: 42}
	case "macvlan":
		lk = &netlink.Macvlan{LinkAttrs: stacked, Mode: netlink.MACVLAN_MODE_BRIDGE}
	case "ipvlan":
		lk = &netlink.IPVlan{LinkAttrs: stacked, Mode: netlink.IPVLAN_MODE_L2}
	default:
		t.Fatalf("linktest: no probe for link kind %q", kind)
	}
	err = l.nlh.LinkAdd(lk)
	switch {
	case err == nil:
	case errors.Is(err, unix.EOPNOTSUPP):
		why = err
	default:
		t.Fatalf("linktest: probe %s links: %v", kind, err)
	}
	kindCache.Store(kind, why)
	return why == nil, why
}
