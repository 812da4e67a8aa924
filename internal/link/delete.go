package link

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Why retire-then-group-delete exists
//
// Unregistering a network device makes the kernel wait for an RCU grace
// period (and for every reference to drain) before the request returns.
// Deleting links one RTM_DELLINK at a time pays that wait per link: ~15 ms
// each on this project's machines, 1.7 s for 100 links, which makes deletes,
// not creates, the bulk of an endpoint's life cycle. An RTM_DELLINK that
// names a link group instead of a link unregisters every member in one batch
// and pays the wait once: the same 100 links go in ~24 ms.
//
// So the driver does not delete a released endpoint's link on the spot: it
// Retires it (down, so it carries no traffic, and into a "graveyard" group),
// and later removes the whole graveyard with one DeleteGroup call.

// Delete removes the link called name. A link that does not exist is not an
// error, so a retried or repeated delete succeeds.
func (h *Handle) Delete(name string) error {
	l, err := h.nl.LinkByName(name)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("delete link %q: look up: %w", name, err)
	}
	// Vanishing between the lookup and the delete is just as fine.
	if err := h.nl.LinkDel(l); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete link %q: %w", name, err)
	}
	return nil
}

// Retire sets the link called name down and moves it into link group group,
// for a later DeleteGroup. Both steps are cheap; the expensive unregister is
// deferred. A missing link gives an error wrapping ErrNotFound.
func (h *Handle) Retire(name string, group uint32) error {
	if group == 0 {
		// Group 0 is where every link starts; it can never be batch-deleted.
		return fmt.Errorf("retire link %q: group 0 is the default group, use another", name)
	}
	l, err := h.byName(name)
	if err != nil {
		return fmt.Errorf("retire: %w", err)
	}
	if err := h.nl.LinkSetDown(l); err != nil {
		if isNotFound(err) {
			return fmt.Errorf("retire link %q: %w", name, ErrNotFound)
		}
		return fmt.Errorf("retire link %q: set down: %w", name, err)
	}
	if err := h.nl.LinkSetGroup(l, int(group)); err != nil {
		if isNotFound(err) {
			return fmt.Errorf("retire link %q: %w", name, ErrNotFound)
		}
		return fmt.Errorf("retire link %q: set group %d: %w", name, group, err)
	}
	return nil
}

// DeleteGroup deletes, in one kernel request, every link of this namespace
// that is in link group group (see the note at the top of this file). An
// empty group is not an error. The kernel first checks that every member can
// be deleted and otherwise deletes none of them.
func (h *Handle) DeleteGroup(group uint32) error {
	if group == 0 {
		// The kernel refuses this too (EPERM): it would mean every
		// ordinary link, the host's own interfaces included.
		return errors.New("delete link group 0: refused, it is the default group of every link")
	}
	// netlink.Handle has no group delete and keeps its sockets private,
	// hence the request is built here and sent on the handle's own socket.
	req := nl.NewNetlinkRequest(unix.RTM_DELLINK, unix.NLM_F_ACK)
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: h.route}
	// Index 0 and no name: the group attribute alone selects the links.
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_GROUP, nl.Uint32Attr(group)))
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	switch {
	case err == nil, errors.Is(err, unix.ENODEV): // ENODEV: no link is in the group
		return nil
	case errors.Is(err, unix.EOPNOTSUPP):
		return fmt.Errorf("delete link group %d: it holds a link that cannot be deleted (such as a physical interface); nothing was deleted: %w", group, err)
	default:
		return fmt.Errorf("delete link group %d: %w", group, err)
	}
}
