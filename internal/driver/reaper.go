package driver

import (
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
)

// RetireGroup is the kernel link group ("ip link show group N") that holds
// this driver's host links waiting to be deleted.
//
// Why: deleting a link costs ~15 ms in the kernel (an RCU grace period per
// unregister), thirty times the cost of creating one, so deleting in
// DeleteEndpoint would dominate a container's network life cycle. Instead
// DeleteEndpoint sets the link down and moves it into this group (two cheap
// calls), and the reaper deletes the whole group with one request a moment
// later, paying the grace period once per batch. A down macvlan holds no MAC
// on its parent, so a new endpoint with the same address is not blocked.
const RetireGroup uint32 = 0x6d767377 // "mvsw"

// reaper deletes retired links in batches, outside the driver's lock.
type reaper struct {
	links LinkLayer
	log   *slog.Logger
	delay time.Duration

	kick chan struct{}
	quit chan struct{}
	done chan struct{}
	once sync.Once
}

func newReaper(links LinkLayer, log *slog.Logger, delay time.Duration) *reaper {
	r := &reaper{
		links: links,
		log:   log,
		delay: delay,
		kick:  make(chan struct{}, 1),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	go r.loop()
	return r
}

// retire moves a link into RetireGroup and wakes the reaper. A link that is
// gone already (it went with its container's namespace) needs nothing; one
// that cannot be retired is deleted at once.
func (r *reaper) retire(name string) {
	err := r.links.Retire(name, RetireGroup)
	switch {
	case err == nil:
	case errors.Is(err, link.ErrNotFound):
		return
	default:
		r.log.Warn("could not retire host link; deleting it now", "link", name, "err", err)
		if err := r.links.Delete(name); err != nil {
			r.log.Warn("could not delete host link", "link", name, "err", err)
		}
		return
	}
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *reaper) loop() {
	defer close(r.done)
	for {
		select {
		case <-r.quit:
			r.reap()
			return
		case <-r.kick:
		}
		select {
		case <-r.quit:
		case <-time.After(r.delay):
		}
		r.reap()
	}
}

// reap deletes every link in RetireGroup. It checks the group first: if a
// link that is not one of this driver's sits there (someone else chose the
// same group number), it deletes its own links one by one and leaves the
// other alone.
func (r *reaper) reap() {
	infos, err := r.links.List()
	if err != nil {
		r.log.Warn("could not list links to delete retired ones; will retry on the next delete", "err", err)
		return
	}
	var ours []string
	foreign := false
	for _, i := range infos {
		if i.Group != RetireGroup {
			continue
		}
		if isOurLink(i) {
			ours = append(ours, i.Name)
		} else {
			foreign = true
		}
	}
	if len(ours) == 0 {
		return
	}
	start := time.Now()
	if foreign {
		r.log.Warn("a link that is not macvlan-swarm's is in its link group; deleting ours one by one", "group", RetireGroup)
	} else {
		err := r.links.DeleteGroup(RetireGroup)
		if err == nil {
			r.log.Info("deleted retired host links", "count", len(ours), "took", time.Since(start).Round(time.Microsecond))
			return
		}
		r.log.Warn("group delete failed; deleting links one by one", "err", err)
	}
	for _, name := range ours {
		if err := r.links.Delete(name); err != nil {
			r.log.Warn("could not delete host link", "link", name, "err", err)
		}
	}
	r.log.Info("deleted retired host links", "count", len(ours), "took", time.Since(start).Round(time.Microsecond))
}

// stop deletes what is pending and ends the loop.
func (r *reaper) stop() {
	r.once.Do(func() { close(r.quit) })
	<-r.done
}

// isOurLink reports whether a link has the shape of a container link this
// driver makes: a macvlan named linkPrefix and 12 lower-case hex characters,
// as linkName always makes them (a user's "mvsuplink-lan-1" is not ours).
func isOurLink(i link.Info) bool {
	return i.Kind == "macvlan" && strings.HasPrefix(i.Name, linkPrefix) && len(i.Name) == len(linkPrefix)+12 && isHex(i.Name[len(linkPrefix):])
}
