// Package link is the project's only door to the kernel's link layer: it
// creates, inspects and deletes the macvlan (and VLAN) links the driver hands
// to the engine. Nothing else in the project imports vishvananda/netlink, so
// netlink's types and error shapes stop here; callers see Info, MacvlanSpec
// and the sentinel errors below.
//
// A Handle is bound to one network namespace when it is opened and never
// switches the calling thread's namespace afterwards, so the daemon can use
// it from any goroutine. A Handle is safe for concurrent use.
package link

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ErrNotFound is wrapped by errors about a named link that does not exist.
var ErrNotFound = errors.New("link not found")

// ErrUnsupported is wrapped when the running kernel lacks a link type, for
// example 802.1q VLANs on a kernel built without them.
var ErrUnsupported = errors.New("link type not supported by this kernel")

// socketTimeout bounds how long a netlink reply is awaited, so a kernel that
// never answers turns into an error instead of a daemon hung forever.
const socketTimeout = 10 * time.Second

// dumpRetries is how many times a link dump is retried when the kernel
// reports that the link table changed while it was being read.
const dumpRetries = 5

// Info describes one link as the kernel reports it.
type Info struct {
	Name        string
	Index       int
	Kind        string // netlink's Type(): "macvlan", "vlan", "veth", "bridge", "device", ...
	MTU         int
	ParentIndex int  // lower device index for macvlan and vlan links, 0 otherwise
	Up          bool // administratively up (IFF_UP)
	Group       uint32
	MAC         net.HardwareAddr
	VlanID      int  // for Kind == "vlan"
	MacvlanMode Mode // for Kind == "macvlan"; "source" too, which the driver never makes
	// Alias is the kernel alias (IFLA_IFALIAS): macvlan-swarm's ownership
	// mark on the links it creates (see Ours in vocab.go).
	Alias string
}

// Handle talks netlink to one network namespace.
type Handle struct {
	nl *netlink.Handle
	// route is a second NETLINK_ROUTE socket in the same namespace for the
	// few requests netlink.Handle cannot build (see DeleteGroup): its own
	// sockets are unexported.
	route *nl.SocketHandle
}

// Open returns a Handle on the network namespace of the calling thread,
// which for the daemon is the host namespace.
func Open() (*Handle, error) {
	return openAt(netns.None())
}

// OpenNamespace returns a Handle on the network namespace at path, such as
// /run/netns/NAME or /proc/PID/ns/net. The sockets are created inside that
// namespace (netlink locks the OS thread and switches only for the socket
// call), so later requests need no namespace switching at all.
func OpenNamespace(path string) (*Handle, error) {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("open network namespace %q: %w", path, err)
	}
	// The sockets keep the namespace alive; the fd is not needed after.
	defer ns.Close()
	h, err := openAt(ns)
	if err != nil {
		return nil, fmt.Errorf("network namespace %q: %w", path, err)
	}
	return h, nil
}

func openAt(ns netns.NsHandle) (*Handle, error) {
	nlh, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink handle: %w", err)
	}
	if err := nlh.SetSocketTimeout(socketTimeout); err != nil {
		nlh.Close()
		return nil, fmt.Errorf("set netlink socket timeout: %w", err)
	}
	s, err := nl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		nlh.Close()
		return nil, fmt.Errorf("open netlink socket: %w", err)
	}
	tv := unix.NsecToTimeval(socketTimeout.Nanoseconds())
	// Both setters only store the value; they cannot fail.
	_ = s.SetSendTimeout(&tv)
	_ = s.SetReceiveTimeout(&tv)
	return &Handle{nl: nlh, route: &nl.SocketHandle{Socket: s}}, nil
}

// Close releases the handle's sockets. The handle must not be used after.
func (h *Handle) Close() {
	if h.nl != nil {
		h.nl.Close()
		h.nl = nil
	}
	if h.route != nil {
		h.route.Close()
		h.route = nil
	}
}

// Get returns the link called name, or an error wrapping ErrNotFound.
func (h *Handle) Get(name string) (Info, error) {
	l, err := h.byName(name)
	if err != nil {
		return Info{}, err
	}
	return infoOf(l), nil
}

// List returns every link in the namespace.
func (h *Handle) List() ([]Info, error) {
	links, err := h.list()
	if err != nil {
		return nil, err
	}
	infos := make([]Info, len(links))
	for i, l := range links {
		infos[i] = infoOf(l)
	}
	return infos, nil
}

// list dumps the link table. The kernel flags a dump that raced with a
// change (NLM_F_DUMP_INTR); such a result may miss or duplicate links, so it
// is thrown away and the dump repeated.
func (h *Handle) list() ([]netlink.Link, error) {
	var err error
	for range dumpRetries {
		var links []netlink.Link
		links, err = h.nl.LinkList()
		if err == nil {
			return links, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return nil, fmt.Errorf("list links: %w", err)
		}
	}
	return nil, fmt.Errorf("list links: still inconsistent after %d attempts: %w", dumpRetries, err)
}

// byName looks a link up, mapping netlink's "not found" to ErrNotFound.
func (h *Handle) byName(name string) (netlink.Link, error) {
	l, err := h.nl.LinkByName(name)
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("link %q: %w", name, ErrNotFound)
		}
		return nil, fmt.Errorf("look up link %q: %w", name, err)
	}
	return l, nil
}

// parent looks up the lower link of a link about to be created. Looking it up
// first turns a missing parent into ErrNotFound; the kernel would only say
// "no such device", which could be about either name.
func (h *Handle) parent(name string) (netlink.Link, error) {
	p, err := h.nl.LinkByName(name)
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("parent %w", ErrNotFound)
		}
		return nil, fmt.Errorf("look up parent: %w", err)
	}
	return p, nil
}

// isNotFound reports whether err is netlink's way of saying a link does not
// exist: a typed error from lookups, a bare ENODEV from requests by index.
func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

// isUnsupported reports whether the kernel refused a link kind it does not
// know: rtnetlink answers EOPNOTSUPP when no driver registers that kind.
func isUnsupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP)
}

func infoOf(l netlink.Link) Info {
	a := l.Attrs()
	info := Info{
		Name:  a.Name,
		Index: a.Index,
		Kind:  l.Type(),
		MTU:   a.MTU,
		Up:    a.Flags&net.FlagUp != 0,
		Group: a.Group,
		MAC:   a.HardwareAddr,
		Alias: a.Alias,
	}
	// netlink also fills ParentIndex from IFLA_LINK for other kinds (a veth
	// reports its peer there), which is not a lower device.
	switch l := l.(type) {
	case *netlink.Macvlan:
		info.ParentIndex = a.ParentIndex
		info.MacvlanMode = modeName(l.Mode)
	case *netlink.Vlan:
		info.ParentIndex = a.ParentIndex
		info.VlanID = l.VlanId
	}
	return info
}
