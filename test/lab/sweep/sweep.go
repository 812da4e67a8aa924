// Package sweep removes what an end-to-end lab left on the machine: the
// processes it started, the mounts dockerd made under the lab's directory, the
// lab's network namespaces and empty container cgroups.
//
// The lab (test/e2e/lab) calls Lab as the last step of its own teardown; the
// cleanup command (test/lab/cleanup) calls All to clear the remains of runs
// that were killed before their teardown ran.
//
// Everything here is found through names the lab chose, never by process
// name:
//
//   - a lab lives in /tmp/mvs-lab-<id>, <id> being six hex digits;
//   - its namespaces are /run/netns/mvs-<id>-lan, /run/netns/mvs-<id>-node<K> and
//     (the address check's foreign host) /run/netns/mvs-<id>-foreign;
//   - a process is signalled only if its pid is read from a pidfile inside the
//     lab directory and the process still looks like the one that wrote it
//     (its command line names the lab directory, or, for a container's first
//     process, its cgroup names the container's id).
//
// Other namespaces or directories that merely start with "mvs" belong to
// somebody else and are left alone.
package sweep

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Root is the folder that holds lab directories.
const Root = "/tmp"

// dirPrefix starts the base name of every lab directory.
const dirPrefix = "mvs-lab-"

// NetNSDir is where `ip netns add` keeps named namespaces.
const NetNSDir = "/run/netns"

var (
	dirPattern    = regexp.MustCompile(`^mvs-lab-([0-9a-f]{6})$`)
	netnsPattern  = regexp.MustCompile(`^mvs-([0-9a-f]{6})-(lan|node[0-9]+|foreign)$`)
	containerID   = regexp.MustCompile(`^[0-9a-f]{64}$`)
	ownerFileName = "owner"
)

// Logf receives one line per action taken.
type Logf func(format string, args ...any)

// Dir returns the directory of the lab with this id.
func Dir(id string) string { return filepath.Join(Root, dirPrefix+id) }

// NetNS returns the name of one of the lab's namespaces; role is "lan" or
// "node<K>".
func NetNS(id, role string) string { return "mvs-" + id + "-" + role }

// IDOf returns the lab id of a lab directory, or "" when dir is not one.
func IDOf(dir string) string {
	if filepath.Dir(filepath.Clean(dir)) != Root {
		return ""
	}
	m := dirPattern.FindStringSubmatch(filepath.Base(dir))
	if m == nil {
		return ""
	}
	return m[1]
}

// WriteOwner records the calling process as the owner of dir, so that the
// cleanup command leaves a lab alone while the test that made it still runs.
func WriteOwner(dir string) error {
	pid := os.Getpid()
	start, err := startTime(pid)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ownerFileName), fmt.Appendf(nil, "%d %d\n", pid, start), 0o644)
}

// OwnerAlive reports whether the process that made dir is still running.
func OwnerAlive(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, ownerFileName))
	if err != nil {
		return false
	}
	var pid int
	var start uint64
	if _, err := fmt.Sscanf(string(b), "%d %d", &pid, &start); err != nil {
		return false
	}
	got, err := startTime(pid)
	return err == nil && got == start
}

// startTime is field 22 of /proc/PID/stat: it tells a process from a later
// one that reused its pid.
func startTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after it start
	// behind the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// Options tunes a sweep.
type Options struct {
	// Grace is how long dockerd and the registry get after SIGTERM before
	// SIGKILL. Zero sends SIGKILL straight away.
	Grace time.Duration
	// Keep leaves the lab directory (logs) in place after everything in it
	// was stopped and unmounted.
	Keep bool
	// DryRun only reports what would be done.
	DryRun bool
}

// Lab stops every process a lab's pidfiles still point at, unmounts what
// is mounted under its directory, deletes its namespaces and empty container
// cgroups, then removes the directory.
func Lab(dir string, opt Options, logf Logf) error {
	id := IDOf(dir)
	if id == "" {
		return fmt.Errorf("%q is not a lab directory (want %s/%sXXXXXX)", dir, Root, dirPrefix)
	}
	var errs []error
	killProcesses(dir, opt, logf)
	if err := unmountUnder(dir, opt, logf); err != nil {
		errs = append(errs, err)
	}
	if err := deleteNamespaces(id, opt, logf); err != nil {
		errs = append(errs, err)
	}
	removeCgroups(dir, opt, logf)
	if !opt.Keep {
		if opt.DryRun {
			logf("would remove %s", dir)
		} else if still := mountsUnder(dir); len(still) > 0 {
			// RemoveAll would walk into what is still mounted.
			errs = append(errs, fmt.Errorf("not removing %s: still mounted: %s", dir, strings.Join(still, ", ")))
		} else if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// All sweeps every lab directory whose owner is gone (every one, with
// force) and every lab-shaped namespace that no live lab owns.
func All(force bool, opt Options, logf Logf) error {
	var errs []error
	handled := map[string]bool{} // ids of labs left alone or already swept
	dirs, _ := filepath.Glob(filepath.Join(Root, dirPrefix+"*"))
	for _, dir := range dirs {
		id := IDOf(dir)
		if id == "" {
			continue
		}
		if !force && OwnerAlive(dir) {
			handled[id] = true
			logf("leaving %s: its test process is still running (use -force)", dir)
			continue
		}
		logf("sweeping %s", dir)
		if err := Lab(dir, opt, logf); err != nil {
			errs = append(errs, err)
		}
		handled[id] = true
	}
	entries, _ := os.ReadDir(NetNSDir)
	for _, e := range entries {
		m := netnsPattern.FindStringSubmatch(e.Name())
		if m == nil || handled[m[1]] {
			continue
		}
		if err := deleteNamespace(e.Name(), opt, logf); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// proc is one process found through a pidfile.
type proc struct {
	pid  int
	what string
}

// pidfileProcs are the live processes a lab's pidfiles point at, each
// checked to still be the process that wrote the file.
type pidfileProcs struct {
	daemons, containerds, inits, shims []proc
}

func collect(dir string) pidfileProcs {
	var ps pidfileProcs
	nodes, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, nd := range nodes {
		if p, ok := pidFromFile(filepath.Join(nd, "docker.pid")); ok && cmdlineMentions(p, dir) {
			ps.daemons = append(ps.daemons, proc{p, "dockerd " + filepath.Base(nd)})
		}
		if p, ok := pidFromFile(filepath.Join(nd, "registry.pid")); ok && cmdlineMentions(p, dir) {
			ps.daemons = append(ps.daemons, proc{p, "registry"})
		}
		if p, ok := pidFromFile(filepath.Join(nd, "exec", "containerd", "containerd.pid")); ok && cmdlineMentions(p, dir) {
			ps.containerds = append(ps.containerds, proc{p, "containerd " + filepath.Base(nd)})
		}
		// Task bundles: exec/containerd/daemon/io.containerd.runtime.v2.task/<namespace>/<id>/init.pid
		pidfiles, _ := filepath.Glob(filepath.Join(nd, "exec", "containerd", "daemon", "io.containerd.runtime.v2.task", "*", "*", "init.pid"))
		for _, f := range pidfiles {
			id := filepath.Base(filepath.Dir(f))
			p, ok := pidFromFile(f)
			if !ok || !containerID.MatchString(id) || !cgroupMentions(p, id) {
				continue
			}
			ps.inits = append(ps.inits, proc{p, "container " + id[:12]})
			// The shim is the parent of the container's first process
			// (containerd 1.6 writes no pidfile for it).
			if pp := parentOf(p); pp > 1 && cmdlineMentions(pp, dir) {
				ps.shims = append(ps.shims, proc{pp, "shim of " + id[:12]})
			}
		}
	}
	return ps
}

// killProcesses stops what the lab's pidfiles point at: with opt.Grace,
// dockerd and the registry first get SIGTERM (dockerd then stops its
// containers, plugins and containerd itself); whatever is left gets
// SIGKILL, container first processes before their shims. Pidfiles are read
// again after the grace period, so that no pid is signalled on the strength
// of an old check.
func killProcesses(dir string, opt Options, logf Logf) {
	signal := func(ps []proc, sig syscall.Signal) {
		for _, p := range ps {
			if opt.DryRun {
				logf("would send %s to %s (pid %d)", signame(sig), p.what, p.pid)
				continue
			}
			if err := syscall.Kill(p.pid, sig); err == nil {
				logf("sent %s to %s (pid %d)", signame(sig), p.what, p.pid)
			}
		}
	}
	if ps := collect(dir); opt.Grace > 0 && len(ps.daemons) > 0 {
		signal(ps.daemons, syscall.SIGTERM)
		if !opt.DryRun {
			waitGone(ps.daemons, opt.Grace)
		}
	}
	ps := collect(dir)
	signal(ps.inits, syscall.SIGKILL)
	signal(ps.shims, syscall.SIGKILL)
	signal(ps.daemons, syscall.SIGKILL)
	signal(ps.containerds, syscall.SIGKILL)
	if !opt.DryRun {
		all := append(append(append(append([]proc{}, ps.inits...), ps.shims...), ps.daemons...), ps.containerds...)
		waitGone(all, 5*time.Second)
	}
}

func signame(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGKILL:
		return "SIGKILL"
	}
	return sig.String()
}

func alive(ps []proc) []proc {
	var out []proc
	for _, p := range ps {
		if processAlive(p.pid) {
			out = append(out, p)
		}
	}
	return out
}

func waitGone(ps []proc, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if len(alive(ps)) == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// processAlive is false for a zombie: it is dead, only not yet reaped.
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z'
}

func pidFromFile(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, false
	}
	return pid, processAlive(pid)
}

func cmdlineMentions(pid int, dir string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && bytes.Contains(b, []byte(dir+"/"))
}

func cgroupMentions(pid int, id string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	return err == nil && bytes.Contains(b, []byte(id))
}

func parentOf(pid int) int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "PPid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// mountsUnder lists mount points at or below dir, deepest first.
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	return MountsUnder(b, dir)
}

// MountsUnder parses mountinfo text and returns the mount points at or
// below dir, deepest (and, for stacked mounts, latest) first.
func MountsUnder(mountinfo []byte, dir string) []string {
	dir = filepath.Clean(dir)
	var out []string
	for _, line := range strings.Split(string(mountinfo), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeOctal(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	// Reverse first so that, among equal depths, later mounts come first;
	// the stable sort then puts deeper paths before their parents.
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	sort.SliceStable(out, func(i, j int) bool {
		return strings.Count(out[i], "/") > strings.Count(out[j], "/")
	})
	return out
}

// unescapeOctal undoes mountinfo's \ooo escapes (space, tab, newline, \).
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func unmountUnder(dir string, opt Options, logf Logf) error {
	for range 5 {
		mps := mountsUnder(dir)
		if len(mps) == 0 {
			return nil
		}
		for _, mp := range mps {
			if opt.DryRun {
				logf("would unmount %s", mp)
				continue
			}
			if err := syscall.Unmount(mp, syscall.MNT_DETACH); err == nil {
				logf("unmounted %s", mp)
			}
		}
		if opt.DryRun {
			return nil
		}
	}
	if mps := mountsUnder(dir); len(mps) > 0 {
		return fmt.Errorf("still mounted under %s: %s", dir, strings.Join(mps, ", "))
	}
	return nil
}

func deleteNamespaces(id string, opt Options, logf Logf) error {
	entries, _ := os.ReadDir(NetNSDir)
	var errs []error
	for _, e := range entries {
		m := netnsPattern.FindStringSubmatch(e.Name())
		if m == nil || m[1] != id {
			continue
		}
		if err := deleteNamespace(e.Name(), opt, logf); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// deleteNamespace does what `ip netns delete` does: drop the bind mount
// that keeps the namespace alive and remove its file. Links inside go with
// the namespace once no process holds it.
func deleteNamespace(name string, opt Options, logf Logf) error {
	if !netnsPattern.MatchString(name) {
		return fmt.Errorf("refusing to delete namespace %q: not a lab namespace", name)
	}
	path := filepath.Join(NetNSDir, name)
	if opt.DryRun {
		logf("would delete namespace %s", name)
		return nil
	}
	err := syscall.Unmount(path, syscall.MNT_DETACH)
	if err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("unmount namespace %s: %w", name, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove namespace %s: %w", name, err)
	}
	logf("deleted namespace %s", name)
	return nil
}

// removeCgroups removes the (empty) cgroups of the lab's containers and
// plugins, left behind when their processes were killed rather than
// stopped by the engine. rmdir refuses a cgroup that still has processes.
func removeCgroups(dir string, opt Options, logf Logf) {
	// Containers sit in <hierarchy>/docker/<id>; managed plugins, on the
	// 20.10 engine, in <hierarchy>/<id>.
	for _, kind := range []struct{ glob, parent string }{
		{"*/data/containers/*", "docker/"},
		{"*/data/plugins/*", ""},
	} {
		ms, _ := filepath.Glob(filepath.Join(dir, kind.glob))
		for _, m := range ms {
			id := filepath.Base(m)
			if !containerID.MatchString(id) {
				continue
			}
			v1, _ := filepath.Glob("/sys/fs/cgroup/*/" + kind.parent + id)
			v2, _ := filepath.Glob("/sys/fs/cgroup/" + kind.parent + id)
			removed := 0
			for _, cg := range append(v1, v2...) {
				if opt.DryRun {
					logf("would remove cgroup %s", cg)
					continue
				}
				if err := syscall.Rmdir(cg); err == nil {
					removed++
				}
			}
			if removed > 0 {
				logf("removed %d cgroup(s) of %s", removed, id[:12])
			}
		}
	}
}
