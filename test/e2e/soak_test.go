//go:build e2e

package e2e

// The churn soak (issue 12, "Nothing outlives its container"): many short
// container life cycles on one network of the driver while the plugin is
// SIGKILLed (some kills landing while containers are being removed),
// disabled and enabled, and dockerd is restarted once. One long-lived
// container stays on the network throughout, so the engine never deletes
// the network. When every churned container is gone, nothing of theirs may
// be left: no macvlan link in the node's namespace, and no endpoint record
// in the plugin (read from its GET /status) other than the long-lived
// container's.
//
//	go test -tags e2e -count=1 -v -run TestChurnSoak ./test/e2e/     # short
//	make soak                                                        # full
//
// Sizes: MVS_SOAK_CYCLES (60), MVS_SOAK_PARALLEL (10), MVS_SOAK_KILLS (5);
// MVS_SOAK_SEED replays the same schedule of events; MVS_SOAK_LOG_LEVEL sets
// the plugin's LOG_LEVEL (default debug: the removal-batch kills are aimed
// with its request lines; its log is in the dockerd log, which a failed run
// prints the end of; MVS_LAB_KEEP=1 keeps it all). docs/reliability.md has
// the figures of the last full run.

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/test/e2e/lab"
)

const (
	soakNet    = "soak"
	soakKeeper = "soak-keeper"
	// soakLabel marks every churned container, for the final sweep.
	soakLabel = "mvs-soak=churn"
	// The subnet: the engine's IPAM hands out .2-.127 (--ip-range), the
	// cycles that ask for an address take one of .128-.254.
	soakSubnet   = "10.97.0.0/24"
	soakGateway  = "10.97.0.1"
	soakIPRange  = "10.97.0.0/25"
	soakStaticLo = 128
	soakStaticHi = 254
	// soakDrainTimeout bounds the wait for leftovers to go: the plugin
	// reclaims orphans on a timer, and engine 20.10 removes a dead
	// sandbox's netns file up to 60 s after its container died.
	soakDrainTimeout = 150 * time.Second
)

// soakConfig is the size of one run, from the environment.
type soakConfig struct {
	cycles   int // container life cycles run by the workers
	parallel int // workers
	kills    int // SIGKILLs of the plugin's daemon
	disables int // docker plugin disable -f + enable
	seed     uint64
}

func envOrDefault(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func soakConfigFromEnv(t *testing.T) soakConfig {
	t.Helper()
	num := func(key string, def, min int) int {
		v := os.Getenv(key)
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < min {
			t.Fatalf("%s=%q: want a whole number, at least %d", key, v, min)
		}
		return n
	}
	c := soakConfig{
		cycles:   num("MVS_SOAK_CYCLES", 60, 1),
		parallel: num("MVS_SOAK_PARALLEL", 10, 1),
		kills:    num("MVS_SOAK_KILLS", 5, 0),
		seed:     uint64(time.Now().UnixNano()),
	}
	c.disables = max(1, c.kills/4)
	if v := os.Getenv("MVS_SOAK_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("MVS_SOAK_SEED=%q: want a whole number", v)
		}
		c.seed = s
	}
	return c
}

// TestChurnSoak runs the soak on a local network (a standalone engine, the
// plugin with SCOPE=local: engine 20.10 refuses global-scope networks
// outside swarm) and then on an attachable swarm network of a one-node
// swarm, each in a lab of its own.
func TestChurnSoak(t *testing.T) {
	pluginDir := lab.PluginDir(t)
	cfg := soakConfigFromEnv(t)
	t.Logf("soak: %d cycles, %d in parallel, %d kills, %d disable/enable, 1 dockerd restart; MVS_SOAK_SEED=%d",
		cfg.cycles, cfg.parallel, cfg.kills, cfg.disables, cfg.seed)
	t.Run("local", func(t *testing.T) { soakRun(t, pluginDir, cfg, false) })
	t.Run("swarm", func(t *testing.T) { soakRun(t, pluginDir, cfg, true) })
}

// soak is one run: the node, its network and what happened.
type soak struct {
	cfg   soakConfig
	n     *lab.Node
	img   string
	swarm bool
	netID string
	// pluginID names the plugin in the dockerd log (plugin=<id>); it
	// does not change across restarts, disable and enable.
	pluginID string
	// noRequestLog: the first removal batch found no DeleteEndpoint line
	// of the plugin in the dockerd log; later batches kill on a timer.
	noRequestLog bool

	ips       chan string // free addresses for --ip cycles
	completed atomic.Int64
	removing  atomic.Int64 // docker rm -f commands running right now
	paused    atomic.Bool  // no new cycle starts (dockerd is restarting)

	mu        sync.Mutex
	fig       soakFigures
	startErrs map[string]int // failed starts: message → count
	rmErrs    map[string]int // failed removals: message → count
}

// soakFigures are the numbers a run reports.
type soakFigures struct {
	cycles, batchContainers         int
	startsFailed, rmFailed          int
	kills, killsInRemoval           int
	batchKills, batchKillsInRemoval int
	batchKillsAimed                 int
	disables, restarts              int
	engineGaveUp                    int // the engine marked the plugin disabled after a kill
	stragglers                      int
	leakedLinks, leakedRecords      int
	records                         string // what is known of the records
	drain                           time.Duration
	drained                         bool
	quarantinedIPs                  int
	pools                           []string // the address manager's, at the end (swarm run)
}

func soakRun(t *testing.T, pluginDir string, cfg soakConfig, swarm bool) {
	step := lab.Steps(t)
	l := lab.New(t, lab.Options{Nodes: 1})
	n := l.Node(1)
	s := &soak{cfg: cfg, n: n, img: lab.BusyboxImage(t, n), swarm: swarm,
		startErrs: map[string]int{}, rmErrs: map[string]int{}}
	// At debug level the plugin logs each request, which aims the kills
	// of the removal batches.
	settings := []string{"LOG_LEVEL=" + envOrDefault("MVS_SOAK_LOG_LEVEL", "debug")}
	if swarm {
		// Installed before the swarm forms: its first node description
		// then lists the plugin.
		n.InstallPluginFromDir(t, lcPlugin, pluginDir, settings...)
		lab.SingleNodeSwarm(t, n)
		lab.WaitPluginListed(t, n, lcPlugin, n)
	} else {
		n.InstallPluginFromDir(t, lcPlugin, pluginDir, append(settings, "SCOPE=local")...)
	}
	args := []string{"network", "create", "-d", lcPlugin, "--subnet", soakSubnet, "--gateway", soakGateway,
		"--ip-range", soakIPRange, "-o", "parent=" + n.LANLink}
	if swarm {
		// The swarm network as docs/swarm.md recommends it: addresses from
		// the plugin's own address manager, so its requests are cut by
		// the kills too.
		args = append(args, "--attachable", "--ipam-driver", lcPlugin)
	}
	s.netID = n.Docker(t, append(args, soakNet)...)
	s.pluginID = n.Docker(t, "plugin", "inspect", "-f", "{{.Id}}", lcPlugin)
	// The long-lived container: it brings itself back after the dockerd
	// restart, so the network always has a container.
	n.Docker(t, append([]string{"run", "-d", "--name", soakKeeper, "--restart", "always", "--network", soakNet, s.img}, lab.Sleeper...)...)
	s.ips = make(chan string, soakStaticHi-soakStaticLo+1)
	for i := soakStaticLo; i <= soakStaticHi; i++ {
		s.ips <- fmt.Sprintf("10.97.0.%d", i)
	}
	step("lab, plugin, network, long-lived container")

	logMark := lcLogMark(t, n)
	s.churn(t)
	step("churn")
	s.sweep(t)
	step("churned containers removed")
	s.drainCheck(t)
	step("leftovers checked")
	s.report(t, logMark)
}

// ---------------------------------------------------------------------------
// Churn

// soakEvent is one disturbance, fired once `at` cycles have completed.
type soakEvent struct {
	kind string // "kill", "kill-during-removals", "disable", "restart"
	at   int64
}

// schedule spreads the events over the run at random points between 5%
// and 90% of the cycles; half the kills (rounded up) are aimed at
// removals.
func (s *soak) schedule(rng *rand.Rand) []soakEvent {
	var kinds []string
	for i := range s.cfg.kills {
		if i%2 == 0 {
			kinds = append(kinds, "kill-during-removals")
		} else {
			kinds = append(kinds, "kill")
		}
	}
	for range s.cfg.disables {
		kinds = append(kinds, "disable")
	}
	kinds = append(kinds, "restart")
	evs := make([]soakEvent, len(kinds))
	lo, hi := float64(s.cfg.cycles)*0.05, float64(s.cfg.cycles)*0.9
	for i, k := range kinds {
		evs[i] = soakEvent{kind: k, at: int64(lo + rng.Float64()*(hi-lo))}
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].at < evs[j].at })
	return evs
}

// churn runs the workers and, in the test's goroutine, fires the events as
// the cycles progress. Events left when the cycles are done fire then.
func (s *soak) churn(t *testing.T) {
	rng := rand.New(rand.NewPCG(s.cfg.seed, 0))
	events := s.schedule(rng)
	next := make(chan int)
	var workers sync.WaitGroup
	for w := range s.cfg.parallel {
		workers.Add(1)
		go func() {
			defer workers.Done()
			wrng := rand.New(rand.NewPCG(s.cfg.seed, uint64(w)+1))
			for i := range next {
				s.cycle(i, wrng)
			}
		}()
	}
	// The feeder holds cycle i back while an event due at i-parallel or
	// earlier has not started: events run one at a time and take seconds,
	// and without this the churn would be over before the last of them.
	var fired atomic.Int64
	feedDone := make(chan struct{})
	go func() {
		defer close(feedDone)
		for i := range s.cfg.cycles {
			for {
				k := int(fired.Load())
				behind := k < len(events) && events[k].at <= int64(i-s.cfg.parallel)
				if !behind && !s.paused.Load() {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			next <- i
		}
		close(next)
	}()
	for k, ev := range events {
		for s.completed.Load() < ev.at {
			select {
			case <-feedDone:
			default:
				time.Sleep(20 * time.Millisecond)
				continue
			}
			break
		}
		began := time.Now()
		fired.Store(int64(k + 1))
		switch ev.kind {
		case "kill":
			s.kill(t, false)
		case "kill-during-removals":
			s.killDuringRemovals(t, rng)
		case "disable":
			s.disableEnable(t, rng)
		case "restart":
			s.restart(t)
		}
		t.Logf("event %s after %d/%d cycles, done in %v", ev.kind, s.completed.Load(), s.cfg.cycles, time.Since(began).Round(time.Millisecond))
	}
	<-feedDone
	workers.Wait()
	s.fig.cycles = int(s.completed.Load())
	s.pluginPid(t)
}

// cycle is one container life: even cycles `docker run -d` a sleeper and
// `docker rm -f` it after a moment, odd ones `docker run --rm … true`; one
// in three asks for its address with --ip. Failures are counted, never
// fatal: a start that meets a killed plugin is expected to fail.
func (s *soak) cycle(i int, rng *rand.Rand) {
	defer s.completed.Add(1)
	name := fmt.Sprintf("soak-%d", i)
	args := []string{"run", "--name", name, "--label", soakLabel, "--network", soakNet}
	var ip string
	if i%3 == 0 {
		// Every address held back (127 failed removals) would stall
		// the cycle: it then runs without --ip.
		select {
		case ip = <-s.ips:
			args = append(args, "--ip", ip)
		case <-time.After(10 * time.Second):
		}
	}
	detached := i%2 == 0
	if detached {
		args = append(append(args, "-d", s.img), lab.Sleeper...)
	} else {
		args = append(args, "--rm", s.img, "true")
	}
	_, errOut, err := s.n.DockerErr(args...)
	if err != nil {
		s.failed(&s.fig.startsFailed, s.startErrs, errOut, err)
	} else if detached {
		time.Sleep(time.Duration(rng.IntN(500)) * time.Millisecond)
	}
	gone := true
	if detached || err != nil {
		gone = s.remove(name)
	}
	if ip != "" {
		if gone {
			s.ips <- ip
		} else {
			// Held by a container that outlived its cycle: not handed
			// out again, so that no later start fails for our sake.
			s.mu.Lock()
			s.fig.quarantinedIPs++
			s.mu.Unlock()
		}
	}
}

// remove runs docker rm -f and reports whether the container is gone.
func (s *soak) remove(name string) bool {
	s.removing.Add(1)
	_, errOut, err := s.n.DockerErr("rm", "-f", name)
	s.removing.Add(-1)
	if err == nil || strings.Contains(errOut, "No such container") {
		return true
	}
	s.failed(&s.fig.rmFailed, s.rmErrs, errOut, err)
	return false
}

func (s *soak) failed(count *int, msgs map[string]int, errOut string, err error) {
	msg := soakMessage(errOut, err)
	s.mu.Lock()
	defer s.mu.Unlock()
	*count++
	msgs[msg]++
}

// pluginPid returns the running daemon of the plugin, waiting for the
// engine to bring it back if it is not running right now.
func (s *soak) pluginPid(t *testing.T) (pid int, id string) {
	t.Helper()
	pid, id = lcPluginPid(t, s.n, lcPlugin)
	if pid == 0 {
		s.waitBack(t, -1, int64(lcLogMark(t, s.n)), "a moment without a daemon")
		pid, id = lcPluginPid(t, s.n, lcPlugin)
	}
	return pid, id
}

// kill SIGKILLs the plugin's daemon and waits for the engine to start it
// again. It reports whether a docker rm -f was running at that moment.
func (s *soak) kill(t *testing.T, batch bool) bool {
	t.Helper()
	pid, id := s.pluginPid(t)
	var st syscall.Stat_t
	if err := syscall.Stat(s.n.NetNSPath(), &st); err != nil {
		t.Fatalf("stat %s: %v", s.n.NetNSPath(), err)
	}
	if !lcIsPluginProcess(pid, id, fmt.Sprintf("net:[%d]", st.Ino)) {
		// Restarted between the lookup and now: take the new one.
		pid, _ = s.pluginPid(t)
	}
	mark := int64(lcLogMark(t, s.n))
	inRemoval := s.removing.Load() > 0
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", pid, err)
	}
	s.mu.Lock()
	s.fig.kills++
	if inRemoval {
		s.fig.killsInRemoval++
	}
	if batch {
		s.fig.batchKills++
		if inRemoval {
			s.fig.batchKillsInRemoval++
		}
	}
	s.mu.Unlock()
	s.waitBack(t, pid, mark, "its daemon was SIGKILLed")
	return inRemoval
}

// waitBack waits until the engine has the plugin running again in a
// process other than oldPid, and has registered it. Engine 20.10 starts a
// plugin, waits 0.5 s, dials its socket (4 tries, 3 s apart) and only then
// registers the driver, which sends GetCapabilities; the next event waits
// for the GetCapabilities of the new process (the plugin logs it at debug
// level), or 3 s if none shows.
//
// Seen here: after a SIGKILL the engine started a new daemon that
// listened, yet its own dials were refused for 12 s; it then stopped the
// plugin and marked it disabled for good ("Sending SIGTERM to plugin
// failed"). That is the engine's doing, not the driver's: the soak counts
// it, enables the plugin again as a user would, and goes on.
func (s *soak) waitBack(t *testing.T, oldPid int, mark int64, after string) {
	t.Helper()
	var disabledSince time.Time
	lab.Eventually(t, 60*time.Second, 100*time.Millisecond, "plugin back after "+after, func() error {
		out, errOut, err := s.n.DockerErr("plugin", "inspect", "-f", "{{.Enabled}}", lcPlugin)
		if err != nil {
			return fmt.Errorf("plugin inspect: %v: %s", err, errOut)
		}
		if out != "true" {
			if disabledSince.IsZero() {
				disabledSince = time.Now()
			}
			if time.Since(disabledSince) < 2*time.Second {
				return errors.New("the engine has marked the plugin disabled")
			}
			t.Logf("after %s the engine gave up on the plugin and marked it disabled: enabling it again", after)
			s.mu.Lock()
			s.fig.engineGaveUp++
			s.mu.Unlock()
			disabledSince = time.Time{}
			if _, errOut, err := s.n.DockerErr("plugin", "enable", lcPlugin); err != nil {
				return fmt.Errorf("the engine marked the plugin disabled, and docker plugin enable failed: %v: %s", err, errOut)
			}
		}
		if pid, _ := lcPluginPid(t, s.n, lcPlugin); pid == 0 || pid == oldPid {
			return fmt.Errorf("daemon pid %d (before: %d)", pid, oldPid)
		}
		return nil
	})
	soakWaitLog(s.n.LogPath(), mark, 3*time.Second, "plugin="+s.pluginID, "GetCapabilities")
}

// killDuringRemovals starts a batch of sleepers, launches `docker rm -f`
// for all of them at once, and SIGKILLs the plugin as soon as the dockerd
// log shows the plugin handling a DeleteEndpoint (the plugin logs its
// requests at debug level, MVS_SOAK_LOG_LEVEL): the batch's other
// DeleteEndpoints are then on their way or waiting for the driver's lock.
// A plugin that logs no such line is killed 20-250 ms after the removals
// start instead (one removal takes 150-200 ms on a quiet machine here).
func (s *soak) killDuringRemovals(t *testing.T, rng *rand.Rand) {
	t.Helper()
	b := max(2, s.cfg.parallel/2)
	base := s.fig.batchContainers
	names := make([]string, b)
	var wg sync.WaitGroup
	for j := range b {
		names[j] = fmt.Sprintf("soak-b%d", base+j)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errOut, err := s.n.DockerErr(append([]string{"run", "-d", "--name", names[j], "--label", soakLabel, "--network", soakNet, s.img}, lab.Sleeper...)...)
			if err != nil {
				s.failed(&s.fig.startsFailed, s.startErrs, errOut, err)
			}
		}()
	}
	wg.Wait()
	s.mu.Lock()
	s.fig.batchContainers += b
	s.mu.Unlock()
	mark := int64(lcLogMark(t, s.n))
	// Removed in any case: a failed start may leave a container.
	for _, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.remove(name)
		}()
	}
	aimed := false
	if !s.noRequestLog {
		aimed = soakWaitLog(s.n.LogPath(), mark, 5*time.Second, "plugin="+s.pluginID, "DeleteEndpoint")
		s.noRequestLog = !aimed && s.fig.batchKills == 0
	} else {
		time.Sleep(time.Duration(20+rng.IntN(230)) * time.Millisecond)
	}
	s.kill(t, true)
	if aimed {
		s.fig.batchKillsAimed++
	}
	wg.Wait()
}

// soakWaitLog waits until a line written to the log at path after offset
// mark contains every one of words, and reports whether one did within
// timeout.
func soakWaitLog(path string, mark int64, timeout time.Duration, words ...string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	deadline := time.Now().Add(timeout)
	var pending []byte
	chunk := make([]byte, 1<<16)
	for off := mark; time.Now().Before(deadline); {
		n, _ := f.ReadAt(chunk, off)
		if n == 0 {
			time.Sleep(2 * time.Millisecond)
			continue
		}
		off += int64(n)
		pending = append(pending, chunk[:n]...)
		for {
			i := bytes.IndexByte(pending, '\n')
			if i < 0 {
				break
			}
			line := string(pending[:i])
			pending = pending[i+1:]
			all := true
			for _, w := range words {
				all = all && strings.Contains(line, w)
			}
			if all {
				return true
			}
		}
	}
	return false
}

// disableEnable runs docker plugin disable -f, waits up to a second and
// enables the plugin again.
func (s *soak) disableEnable(t *testing.T, rng *rand.Rand) {
	t.Helper()
	pid, _ := s.pluginPid(t)
	mark := int64(lcLogMark(t, s.n))
	if _, errOut, err := s.n.DockerErr("plugin", "disable", "-f", lcPlugin); err != nil {
		t.Errorf("docker plugin disable -f: %v: %s", err, errOut)
	}
	time.Sleep(time.Duration(rng.IntN(1000)) * time.Millisecond)
	if _, errOut, err := s.n.DockerErr("plugin", "enable", lcPlugin); err != nil {
		t.Fatalf("docker plugin enable after disable -f: %v: %s", err, errOut)
	}
	s.waitBack(t, pid, mark, "disable -f and enable")
	s.mu.Lock()
	s.fig.disables++
	s.mu.Unlock()
}

// restart restarts dockerd (SIGTERM: it stops every container) while the
// cycles already running go on; no new cycle starts until the engine
// answers again and the long-lived container is back.
func (s *soak) restart(t *testing.T) {
	t.Helper()
	s.paused.Store(true)
	defer s.paused.Store(false)
	pid, _ := s.pluginPid(t)
	mark := int64(lcLogMark(t, s.n))
	t.Logf("dockerd restart at %s", time.Now().UTC().Format("15:04:05"))
	s.n.Restart(t)
	if s.swarm {
		lab.WaitNodesReady(t, s.n, s.n)
	}
	s.waitBack(t, pid, mark, "the dockerd restart")
	lab.Eventually(t, 60*time.Second, 250*time.Millisecond, soakKeeper+" running again (restart always)", func() error {
		out, errOut, err := s.n.DockerErr("inspect", "-f", "{{.State.Status}} {{.State.Error}}", soakKeeper)
		if err != nil || !strings.HasPrefix(out, "running") {
			return fmt.Errorf("%s %s %v", out, errOut, err)
		}
		return nil
	})
	s.mu.Lock()
	s.fig.restarts++
	s.mu.Unlock()
}

// sweep removes the churned containers that outlived their cycle (a
// removal failed, or a start failed half-way), so that the check sees only
// the long-lived container.
func (s *soak) sweep(t *testing.T) {
	t.Helper()
	first := true
	lab.Eventually(t, 90*time.Second, time.Second, "every churned container removed", func() error {
		out, errOut, err := s.n.DockerErr("ps", "-aq", "--filter", "label="+soakLabel)
		if err != nil {
			return fmt.Errorf("docker ps: %v: %s", err, errOut)
		}
		ids := strings.Fields(out)
		if first {
			s.fig.stragglers = len(ids)
			first = false
		}
		if len(ids) == 0 {
			return nil
		}
		_, errOut, _ = s.n.DockerErr(append([]string{"rm", "-f"}, ids...)...)
		return fmt.Errorf("%d left: %s", len(ids), errOut)
	})
}

// ---------------------------------------------------------------------------
// The check

// drainCheck waits up to soakDrainTimeout until the node's namespace holds
// no macvlan link and the plugin's records are exactly the long-lived
// container's endpoint, then asserts both.
func (s *soak) drainCheck(t *testing.T) {
	t.Helper()
	n := s.n
	if out := n.Docker(t, "network", "inspect", "-f", "{{.Id}}", soakNet); out != s.netID {
		t.Fatalf("network %s is %q now, was %s: the engine replaced or removed it", soakNet, out, s.netID)
	}
	running := strings.Fields(n.Docker(t, "ps", "-q", "--no-trunc", "--filter", "network="+soakNet))
	keeperID := n.Docker(t, "inspect", "-f", "{{.Id}}", soakKeeper)
	if len(running) != 1 || running[0] != keeperID {
		t.Fatalf("running containers on %s: %v, want only %s (%s)", soakNet, running, soakKeeper, keeperID[:12])
	}
	keeperEP := n.Docker(t, "inspect", "-f", fmt.Sprintf(`{{(index .NetworkSettings.Networks %q).EndpointID}}`, soakNet), soakKeeper)
	// The long-lived container holds its link inside its own namespace.
	sandbox := n.Docker(t, "inspect", "-f", "{{.NetworkSettings.SandboxKey}}", soakKeeper)
	if got := soakMacvlans(t, sandbox); len(got) != 1 {
		t.Errorf("%s's namespace holds macvlan links %v, want exactly one", soakKeeper, got)
	}
	var links []string
	var stale []string
	var statusErr error
	keeperSeen := false
	began := time.Now()
	for {
		links = soakMacvlans(t, n.NetNSPath())
		st, err := n.StatusErr(t, lcPlugin)
		statusErr = err
		stale, keeperSeen = nil, false
		if err == nil {
			s.fig.pools = nil
			for _, p := range st.IPAM.Pools {
				// The keeper's address and the gateway are in use; more
				// are releases lost to a kill (docs/design.md, "A lost
				// release").
				s.fig.pools = append(s.fig.pools, fmt.Sprintf("%s (role %q, made %s): %d in use", p.ID, p.Role, p.Created.Format("15:04:05"), p.InUse))
			}
			for _, e := range st.Endpoints {
				if e.ID == keeperEP {
					keeperSeen = true
				} else {
					stale = append(stale, fmt.Sprintf("endpoint %s network %s link %s", e.ID, e.Network, e.Link))
				}
			}
		}
		if len(links) == 0 && err == nil && keeperSeen && len(stale) == 0 {
			s.fig.drained = true
			break
		}
		if time.Since(began) > soakDrainTimeout {
			break
		}
		time.Sleep(2 * time.Second)
	}
	s.fig.drain = time.Since(began)
	s.fig.leakedLinks = len(links)
	if len(links) > 0 {
		t.Errorf("after %v, %d macvlan link(s) left in the node's namespace (want 0: the only running container, %s, holds its link in its own namespace):\n%s",
			soakDrainTimeout, len(links), soakKeeper, strings.Join(links, "\n"))
	}
	switch {
	case statusErr != nil:
		s.fig.records = "unknown: " + statusErr.Error()
		t.Errorf("the plugin's endpoint records cannot be checked: %v", statusErr)
	default:
		s.fig.leakedRecords = len(stale)
		s.fig.records = fmt.Sprintf("%d stale, long-lived container's record present: %v", len(stale), keeperSeen)
		if !keeperSeen {
			t.Errorf("the plugin has no record of %s's endpoint %s", soakKeeper, keeperEP[:12])
		}
		if len(stale) > 0 {
			t.Errorf("after %v the plugin still records %d endpoint(s) of dead containers (want only %s's %s):\n%s",
				soakDrainTimeout, len(stale), soakKeeper, keeperEP[:12], strings.Join(stale, "\n"))
		}
	}
}

// soakMacvlans lists the macvlan links of a network namespace (by the path
// of its bind mount) as `ip -o link show type macvlan` prints them.
func soakMacvlans(t *testing.T, nsPath string) []string {
	t.Helper()
	out, err := exec.Command("nsenter", "--net="+nsPath, "--", "ip", "-o", "link", "show", "type", "macvlan").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link show in %s: %v: %s", nsPath, err, out)
	}
	var links []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			links = append(links, l)
		}
	}
	return links
}

// ---------------------------------------------------------------------------
// Report

var (
	soakHexRE  = regexp.MustCompile(`\b[0-9a-f]{12,64}\b`)
	soakB36RE  = regexp.MustCompile(`\b[0-9a-z]{25}\b`)
	soakNameRE = regexp.MustCompile(`soak-b?\d+`)
	soakIPRE   = regexp.MustCompile(`\b\d+\.\d+\.\d+\.\d+\b`)
	soakMsgRE  = regexp.MustCompile(`msg="((?:[^"\\]|\\.)*)"`)
	// The engine's plugin client repeats the URL of the call it retries.
	soakPostRE  = regexp.MustCompile(`Post \\?"http://[^"\\]*\\?": `)
	soakRetryRE = regexp.MustCompile(`retrying in [0-9.]+m?s`)
	soakCutRE   = regexp.MustCompile(`((?:NetworkDriver|IpamDriver)\.\w+)\\?": (?:EOF|read unix .*connection reset|write unix .*broken pipe)`)
	soakSockRE  = regexp.MustCompile(`(@->)?/run/docker/plugins/\S*?\.sock`)
	soakLabRE   = regexp.MustCompile(`/tmp/mvs-lab-[0-9a-f]+`)
)

// soakNormalize makes messages that differ only by ids, names or
// addresses count as one.
func soakNormalize(s string) string {
	s = soakHexRE.ReplaceAllString(s, "<id>")
	s = soakB36RE.ReplaceAllString(s, "<id>")
	s = soakNameRE.ReplaceAllString(s, "<name>")
	s = soakIPRE.ReplaceAllString(s, "<ip>")
	s = soakSockRE.ReplaceAllString(s, "<plugin socket>")
	s = soakLabRE.ReplaceAllString(s, "<lab>")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// soakMessage is the gist of a failed docker command: its first stderr
// line that says something, normalized.
func soakMessage(errOut string, err error) string {
	for _, line := range strings.Split(errOut, "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "docker: "))
		if line != "" && !strings.HasPrefix(line, "See '") {
			return soakNormalize(line)
		}
	}
	return soakNormalize(err.Error())
}

// soakCounts formats message → count, most frequent first.
func soakCounts(m map[string]int) string {
	if len(m) == 0 {
		return "    (none)"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "    %4d × %s\n", m[k], k)
	}
	return strings.TrimRight(b.String(), "\n")
}

// engineTrouble collects, from the dockerd log since mark, the engine's
// warnings and errors about the plugin and endpoints: what the engine did
// when a call met a dead plugin.
//
// cut counts, by method, the calls the plugin's death cut after the engine
// had sent them (EOF or a reset instead of an answer). The engine retries
// those with an empty body: the request was read from a buffer the first
// attempt drained (seen here: DeleteEndpoint and Join arriving with
// NetworkID and EndpointID empty).
func (s *soak) engineTrouble(t *testing.T, mark int) (m, cut map[string]int) {
	t.Helper()
	m, cut = map[string]int{}, map[string]int{}
	for _, line := range strings.Split(lcLogSince(t, s.n, mark), "\n") {
		if !strings.Contains(line, "level=warning") && !strings.Contains(line, "level=error") {
			continue
		}
		if !strings.Contains(line, "NetworkDriver") && !strings.Contains(line, "remote:") &&
			!strings.Contains(line, "ndpoint") && !strings.Contains(line, "Unable to connect to plugin") {
			continue
		}
		msg := line
		if sm := soakMsgRE.FindStringSubmatch(line); sm != nil {
			msg = sm[1]
		}
		if sm := soakCutRE.FindStringSubmatch(msg); sm != nil {
			cut[sm[1]]++
		}
		msg = soakPostRE.ReplaceAllString(msg, "")
		msg = soakRetryRE.ReplaceAllString(msg, "retrying in <t>")
		m[soakNormalize(msg)]++
	}
	return m, cut
}

func (s *soak) report(t *testing.T, mark int) {
	t.Helper()
	f := s.fig
	kind := "local network (SCOPE=local, standalone engine)"
	if s.swarm {
		kind = "attachable swarm network (one-node swarm)"
	}
	records := f.records
	trouble, cut := s.engineTrouble(t, mark)
	cutTotal := 0
	for _, c := range cut {
		cutTotal += c
	}
	t.Logf(`soak figures, %s:
  cycles run                 %d (+ %d containers in removal batches)
  parallelism                %d
  plugin SIGKILLs            %d (%d while a docker rm -f was running)
    of them at removal batches %d (%d right after the plugin logged a DeleteEndpoint, %d while the batch's rm -f ran)
  calls cut mid-request      %d %v (the engine retried them with an empty body)
  disable -f + enable        %d
  dockerd restarts           %d
  engine gave up on plugin   %d (marked it disabled after a kill; the soak enabled it again)
  failed starts              %d
  failed removals            %d
  containers outliving cycle %d (removed by the final sweep); --ip addresses held back: %d
  leaked links (node netns)  %d
  leaked records             %s
  time for leftovers to drain %v (drained: %v)
  address manager pools      %s
failed starts by message:
%s
failed removals by message:
%s
engine warnings and errors about the plugin or endpoints during the soak:
%s`,
		kind, f.cycles, f.batchContainers, s.cfg.parallel,
		f.kills, f.killsInRemoval, f.batchKills, f.batchKillsAimed, f.batchKillsInRemoval,
		cutTotal, cut, f.disables, f.restarts, f.engineGaveUp, f.startsFailed, f.rmFailed, f.stragglers, f.quarantinedIPs,
		f.leakedLinks, records, f.drain.Round(time.Second), f.drained, soakPools(f.pools),
		soakCounts(s.startErrs), soakCounts(s.rmErrs), soakCounts(trouble))
}

func soakPools(pools []string) string {
	if len(pools) == 0 {
		return "none (the built-in address manager)"
	}
	return strings.Join(pools, "; ")
}
