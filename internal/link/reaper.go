package link

import (
	"errors"
	"log/slog"
	"sync"
	"time"
)

// RetireGroup is the kernel link group ("ip link show group N") that holds
// macvlan-swarm's links waiting to be deleted. A retired link is down, so it
// carries no traffic and holds no MAC on its parent: a new endpoint with the
// same address is not blocked by it. See the note at the top of delete.go
// for why deletion is batched.
const RetireGroup uint32 = 0x6d767377 // "mvsw"

// ReapOps is the part of the kernel the Reaper uses; *Handle implements it,
// and the driver's unit tests pass a fake.
type ReapOps interface {
	List() ([]Info, error)
	Retire(name string, group uint32) error
	Delete(name string) error
	DeleteGroup(group uint32) error
}

// Reaper deletes retired links in batches, in its own goroutine, so that
// the ~15 ms the kernel spends per unregister is paid once per batch and
// never by a request.
type Reaper struct {
	ops   ReapOps
	log   *slog.Logger
	delay time.Duration

	kick chan struct{}
	quit chan struct{}
	done chan struct{}
	once sync.Once
}

// NewReaper starts a reaper that gathers retired links for delay before one
// group delete.
func NewReaper(ops ReapOps, log *slog.Logger, delay time.Duration) *Reaper {
	r := &Reaper{
		ops:   ops,
		log:   log,
		delay: delay,
		kick:  make(chan struct{}, 1),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	go r.loop()
	return r
}

// Retire moves a link into RetireGroup and wakes the reaper. A link that is
// gone already (it went with its container's namespace) needs nothing; one
// that cannot be retired is deleted at once. The caller has decided the link
// is its own.
func (r *Reaper) Retire(name string) {
	err := r.ops.Retire(name, RetireGroup)
	switch {
	case err == nil:
	case errors.Is(err, ErrNotFound):
		return
	default:
		r.log.Warn("could not retire host link; deleting it now", "link", name, "err", err)
		if err := r.ops.Delete(name); err != nil {
			r.log.Warn("could not delete host link", "link", name, "err", err)
		}
		return
	}
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *Reaper) loop() {
	defer close(r.done)
	for {
		select {
		case <-r.quit:
			r.Reap()
			return
		case <-r.kick:
		}
		select {
		case <-r.quit:
		case <-time.After(r.delay):
		}
		r.Reap()
	}
}

// Reap deletes every marked link in RetireGroup now. If a link without
// macvlan-swarm's mark sits in the group (someone else chose the same group
// number), it deletes its own links one by one and leaves the other alone.
func (r *Reaper) Reap() {
	infos, err := r.ops.List()
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
		if i.Ours() {
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
		r.log.Warn("a link without macvlan-swarm's mark is in its link group; deleting ours one by one", "group", RetireGroup)
	} else {
		err := r.ops.DeleteGroup(RetireGroup)
		if err == nil {
			r.log.Info("deleted retired host links", "count", len(ours), "took", time.Since(start).Round(time.Microsecond))
			return
		}
		r.log.Warn("group delete failed; deleting links one by one", "err", err)
	}
	for _, name := range ours {
		if err := r.ops.Delete(name); err != nil {
			r.log.Warn("could not delete host link", "link", name, "err", err)
		}
	}
	r.log.Info("deleted retired host links", "count", len(ours), "took", time.Since(start).Round(time.Microsecond))
}

// Stop deletes what is pending and ends the loop.
func (r *Reaper) Stop() {
	r.once.Do(func() { close(r.quit) })
	<-r.done
}
