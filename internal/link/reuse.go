package link

import (
	"cmp"
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Why a retired link may be re-armed instead of deleted
//
// Deleting a link is the expensive kernel work of an endpoint's life (the
// note in delete.go), and a group delete holds the kernel's RTNL lock while
// it unregisters its batch: every request that needs RTNL meanwhile (a
// Join's link creation) waits for it. Under churn (a rolling update, a
// service scaled down and up) a link is retired while the next container's
// Join is already on its way, and that Join needs a link of the same kind on
// the same parent. Rearm gives it the retired one: one RTM_SETLINK renames
// it and sets its MAC, MTU, group and mark, so no link is unregistered and
// none is registered. The reaper offers a retired link for reuse only
// briefly (ReuseGrace); one nobody takes is deleted as before.

// ErrNotReusable says a retired link could not be re-armed for a new
// endpoint as it is (not ours any more, up, of another kind, mode or parent);
// it was left as it was.
var ErrNotReusable = errors.New("not reusable")

// Rearm turns the retired macvlan link called name, which must still carry
// mark, into the link spec describes: the same parent and mode, spec's name,
// MAC, MTU (the parent's when spec.MTU is 0) and mark, in the default group,
// down, not promiscuous. A link that is gone gives an error wrapping ErrNotFound, one that
// does not fit (mark, kind, mode, parent, up) ErrNotReusable; both leave it
// alone. If the kernel refuses the change itself, a link it left under its
// old name and mark gives ErrNotReusable too; one it had renamed already
// (ours under either mark, since the mark is changed last) is deleted, so
// that no half re-armed link is left.
func (h *Handle) Rearm(name, mark string, spec MacvlanSpec) error {
	wrap := func(err error) error {
		return fmt.Errorf("reuse link %q as %q on %q: %w", name, spec.Name, spec.Parent, err)
	}
	km, err := spec.check()
	switch {
	case err != nil:
		return wrap(err)
	case spec.MAC == nil:
		return wrap(errors.New("no MAC: a re-armed link keeps its old one otherwise"))
	case mark == "":
		return wrap(errors.New("no ownership mark to check on the retired link"))
	}
	l, err := h.byName(name)
	if err != nil {
		return wrap(err)
	}
	a := l.Attrs()
	mv, isMacvlan := l.(*netlink.Macvlan)
	switch {
	case a.Alias != mark:
		return wrap(fmt.Errorf("%w: it carries %q, not its mark", ErrNotReusable, a.Alias))
	case !isMacvlan || mv.Mode != km:
		return wrap(fmt.Errorf("%w: a %s link, not a %s macvlan", ErrNotReusable, l.Type(), cmp.Or(spec.Mode, ModeBridge)))
	case a.Flags&net.FlagUp != 0:
		return wrap(fmt.Errorf("%w: it is up", ErrNotReusable))
	}
	parent, err := h.parent(spec.Parent)
	if err != nil {
		return wrap(err)
	}
	if a.ParentIndex != parent.Attrs().Index {
		return wrap(fmt.Errorf("%w: it is on another parent (index %d)", ErrNotReusable, a.ParentIndex))
	}
	mtu := spec.MTU
	if mtu == 0 {
		mtu = parent.Attrs().MTU
	}
	// One request, so one RTNL hold. The kernel applies the address, the
	// MTU, the group, the name and then the alias (do_setlink), each only
	// if the one before succeeded.
	req := nl.NewNetlinkRequest(unix.RTM_SETLINK, unix.NLM_F_ACK)
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: h.route}
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(a.Index)
	// Down, and without the promiscuous and all-multicast modes a
	// container may have set (the kernel applies these flags last).
	msg.Change = unix.IFF_UP | unix.IFF_PROMISC | unix.IFF_ALLMULTI
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_ADDRESS, []byte(spec.MAC)))
	req.AddData(nl.NewRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(mtu))))
	req.AddData(nl.NewRtAttr(unix.IFLA_GROUP, nl.Uint32Attr(0)))
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(spec.Name)))
	req.AddData(nl.NewRtAttr(unix.IFLA_IFALIAS, []byte(spec.Mark)))
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil {
		if isNotFound(err) {
			return wrap(fmt.Errorf("%w (%w)", ErrNotFound, err))
		}
		// Refused before the rename (a taken name or MAC): the link is still
		// called name and carries mark, and goes back to the reaper as it is.
		// Refused later: it carries one of our marks under a new name, so it
		// is deleted here rather than left half re-armed.
		cur, gerr := h.nl.LinkByIndex(a.Index)
		switch {
		case gerr != nil && isNotFound(gerr):
			return wrap(fmt.Errorf("%w (%w)", ErrNotFound, err))
		case gerr == nil && cur.Attrs().Name == name && cur.Attrs().Alias == mark:
			return wrap(fmt.Errorf("%w: %w", ErrNotReusable, err))
		}
		if derr := h.nl.LinkDel(l); derr != nil && !isNotFound(derr) {
			return wrap(errors.Join(err, fmt.Errorf("delete it: %w", derr)))
		}
		return wrap(err)
	}
	return nil
}
