package driver

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
	"github.com/macvlan-swarm/macvlan-swarm/internal/model"
)

// Reclaiming the endpoints of dead containers.
//
// The engine is supposed to send Leave and DeleteEndpoint for every endpoint,
// but when the plugin dies mid-request the engine's retry arrives with an
// empty body, and the endpoint is forgotten by the engine while the driver
// still holds its record and, sometimes, its host link. A sweep finds such
// endpoints by signals that cannot fire for a live container:
//
//  1. The sandbox is gone. Join carries the engine's SandboxKey, a file in
//     the engine's exec root (<exec-root>/netns/<id>) on which the engine
//     bind-mounts the container's network namespace; the engine removes the
//     file when it destroys the sandbox (engine 20.10 batches removals every
//     60 s). The plugin sees that directory through a read-only, non-recursive
//     bind mount (config.json mount "engine-run"): it sees the files, never
//     the namespaces mounted on them, so it holds no namespace alive. At Join
//     the driver records the file's device and inode; an endpoint whose file
//     later has gone, or was replaced by another file, belongs to a destroyed
//     sandbox. When the file is not visible at Join (the mount does not cover
//     the engine's exec root), the endpoint is never judged by this signal.
//  2. The link came back. A running container holds its link in its own
//     namespace; the engine moves it back to the host namespace only on
//     Leave (a dying namespace deletes it instead). So an endpoint that got a
//     Leave, or whose marked link sits in the host namespace (outside the
//     retire group) on two sweeps Grace apart, has left its container; only
//     its DeleteEndpoint was lost. The Grace covers the moment between Join's
//     answer and the engine moving the link.
//  3. Never joined. The engine sends Join right after CreateEndpoint, in the
//     same call chain; an endpoint not joined UnjoinedTTL after its creation
//     was abandoned by a failed start.
//
// A reclaimed endpoint loses its record (all in one transaction) and its
// link goes to the reaper. The sweep runs at start-up and every Interval; the
// request path pays one stat() in Join and nothing else.

// ReclaimConfig tunes the sweep; zero fields take the defaults.
type ReclaimConfig struct {
	// SandboxRoot is where the plugin sees the engine's exec root. Empty:
	// SandboxKeys are read as the paths they are (a daemon run on the host).
	SandboxRoot string
	// Interval between sweeps (default 15 s).
	Interval time.Duration
	// Grace is how long an endpoint may stay detached from its container
	// before it is reclaimed (default 30 s).
	Grace time.Duration
	// UnjoinedTTL is how long an endpoint may wait for its Join (default
	// 2 min).
	UnjoinedTTL time.Duration
}

// Defaults of ReclaimConfig.
const (
	DefaultReclaimInterval = 15 * time.Second
	DefaultReclaimGrace    = 30 * time.Second
	DefaultUnjoinedTTL     = 2 * time.Minute
)

type detached struct {
	since   time.Time
	byLeave bool
}

type reclaimer struct {
	cfg ReclaimConfig

	mu       sync.Mutex
	detached map[string]detached

	quit chan struct{}
	done chan struct{}
	once sync.Once
}

func newReclaimer(cfg ReclaimConfig) *reclaimer {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultReclaimInterval
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultReclaimGrace
	}
	if cfg.UnjoinedTTL <= 0 {
		cfg.UnjoinedTTL = DefaultUnjoinedTTL
	}
	return &reclaimer{cfg: cfg, detached: map[string]detached{}, quit: make(chan struct{}), done: make(chan struct{})}
}

// sandboxPath maps an engine SandboxKey to where the plugin sees it, or ""
// when it cannot: only keys of the engine's shape <exec-root>/netns/<name>
// are mapped.
func (r *reclaimer) sandboxPath(key string) string {
	if key == "" || !filepath.IsAbs(key) {
		return ""
	}
	if r.cfg.SandboxRoot == "" {
		return key
	}
	dir, name := filepath.Split(filepath.Clean(key))
	if filepath.Base(dir) != "netns" || name == "" {
		return ""
	}
	return filepath.Join(r.cfg.SandboxRoot, "netns", name)
}

// sandboxFile is the identity of the sandbox file, zero when it is not
// visible.
func (r *reclaimer) sandboxFile(key string) model.FileID {
	id, _ := r.stat(key)
	return id
}

// stat reports the sandbox file's identity; gone is true only when the file
// is missing from a directory that is visible, so that a mount that went
// away never makes every sandbox look gone.
func (r *reclaimer) stat(key string) (id model.FileID, gone bool) {
	p := r.sandboxPath(key)
	if p == "" {
		return model.FileID{}, false
	}
	fi, err := os.Stat(p)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return model.FileID{}, false
		}
		_, derr := os.Stat(filepath.Dir(p))
		return model.FileID{}, derr == nil
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return model.FileID{}, false
	}
	return model.FileID{Dev: uint64(st.Dev), Ino: st.Ino}, false
}

// goneNow reports whether the signals already show e's container gone: its
// sandbox file has gone or been replaced, or a Leave for it was noted. It is
// the sweep's verdict without the waiting, for a record that stands in a new
// endpoint's way.
func (r *reclaimer) goneNow(e *model.Endpoint) bool {
	if r.sandboxGone(e) {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.detached[e.ID].byLeave
}

// sandboxGone reports whether the sandbox file e saw at Join has gone or
// been replaced by another. An endpoint whose file was not visible at Join
// is never judged by it.
func (r *reclaimer) sandboxGone(e *model.Endpoint) bool {
	if e.Sandbox.File.IsZero() {
		return false
	}
	cur, gone := r.stat(e.Sandbox.Key)
	return gone || (!cur.IsZero() && cur != e.Sandbox.File)
}

// left notes a Leave.
func (r *reclaimer) left(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.detached[id] = detached{since: time.Now(), byLeave: true}
}

// forget drops what the reclaimer noted about an endpoint (deleted, or
// joined again).
func (r *reclaimer) forget(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.detached, id)
}

// start sweeps once with the links restore listed, then on a timer.
func (r *reclaimer) start(d *Driver, infos []link.Info) {
	d.sweepWith(time.Now(), infos)
	go func() {
		defer close(r.done)
		t := time.NewTicker(r.cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-r.quit:
				return
			case now := <-t.C:
				d.sweep(now)
			}
		}
	}()
}

// stop ends the timer and waits for a sweep in progress, so that nothing
// writes the store after Close returns.
func (r *reclaimer) stop() {
	r.once.Do(func() { close(r.quit) })
	<-r.done
}

// verdict is why an endpoint is reclaimed.
type verdict struct {
	e   *model.Endpoint
	why string
}

// sweep reclaims the endpoints of containers that are gone and returns how
// many it reclaimed. The kernel dump and the stat calls run outside the state
// lock; under it, an endpoint is reclaimed only if its record is still the
// one judged (records are replaced on every change, never edited).
func (d *Driver) sweep(now time.Time) int { return d.sweepWith(now, nil) }

// sweepWith is sweep with the host's links already listed (nil: list them).
func (d *Driver) sweepWith(now time.Time, infos []link.Info) int {
	r := d.reclaim
	d.st.mu.Lock()
	eps := make([]*model.Endpoint, 0, len(d.st.endpoints))
	for _, e := range d.st.endpoints {
		eps = append(eps, e)
	}
	d.st.mu.Unlock()
	if len(eps) == 0 {
		r.mu.Lock()
		clear(r.detached)
		r.mu.Unlock()
		return 0
	}

	inHost := map[string]bool{} // endpoint id → its marked link is in the host namespace, not retired
	var err error
	if infos == nil {
		if infos, err = d.links.List(); err != nil {
			d.log.Warn("reclaim: could not list host links; sweeping by sandbox only", "err", err)
		}
	}
	for _, i := range infos {
		if id := i.EndpointOf(); id != "" && i.Group != link.RetireGroup {
			inHost[id] = true
		}
	}

	// The sandbox files are read before r.mu is taken: Leave and Join wait
	// on it.
	sandboxGone := map[string]bool{}
	for _, e := range eps {
		if r.sandboxGone(e) {
			sandboxGone[e.ID] = true
		}
	}

	var doomed []verdict
	r.mu.Lock()
	known := make(map[string]bool, len(eps))
	for _, e := range eps {
		known[e.ID] = true
	}
	for id := range r.detached {
		if !known[id] {
			delete(r.detached, id) // a Leave for an endpoint the driver does not hold
		}
	}
	for _, e := range eps {
		switch {
		case e.Sandbox.Key == "":
			if now.Sub(e.Created) > r.cfg.UnjoinedTTL {
				doomed = append(doomed, verdict{e, "never joined"})
			}
			continue
		case sandboxGone[e.ID]:
			doomed = append(doomed, verdict{e, "its sandbox is gone"})
			continue
		}
		det, seen := r.detached[e.ID]
		switch {
		case inHost[e.ID] && !seen:
			r.detached[e.ID] = detached{since: now}
		case seen && !det.byLeave && !inHost[e.ID]:
			delete(r.detached, e.ID) // the engine had not moved it yet
		case seen && now.Sub(det.since) >= r.cfg.Grace:
			doomed = append(doomed, verdict{e, "it left its container and its DeleteEndpoint never came"})
		}
	}
	r.mu.Unlock()
	if len(doomed) == 0 {
		return 0
	}

	d.st.mu.Lock()
	var drop []*model.Endpoint
	var nets []*model.Network
	var why []string
	for _, v := range doomed {
		if d.st.endpoints[v.e.ID] == v.e {
			drop = append(drop, v.e)
			nets = append(nets, d.st.networks[v.e.NetworkID])
			why = append(why, v.why)
		}
	}
	err = d.st.dropEndpoints(drop)
	d.st.mu.Unlock()
	if err != nil {
		d.log.Warn("reclaim: could not drop endpoints of dead containers; will retry", "count", len(drop), "err", err)
		return 0
	}
	for i, e := range drop {
		r.forget(e.ID)
		d.retireLink(e, nets[i])
		d.log.Info("reclaimed endpoint of a container that is gone", "net", e.NetworkID, "ep", e.ID, "link", e.Link, "why", why[i])
	}
	return len(drop)
}
