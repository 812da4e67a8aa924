// Command matrix runs the end-to-end suites once per Docker engine and prints
// a table of suite × engine at the end: what `make test` runs after the unit
// tests (docs/engines.md).
//
//	go run ./test/lab/matrix [-engines 20.10,26.1,28.5] [-jobs 2] [-logs build/e2e] [-- go test flags]
//
// Each engine is one `go test -json -tags e2e ./test/e2e/...` with
// MVS_ENGINE set: 20.10 runs every e2e test (the suites of the matrix and
// the rest: lab, soak, operator views, …), 26.1 and 28.5 only the suites the
// matrix gives them. Up to -jobs engines run at once. Each engine's output is
// written, as `go test -v` would print it, to <logs>/<engine>.log (the JSON
// stream beside it); the terminal gets one line per finished test, the whole
// output of every failed test, and the table. The exit status is 1 when a
// test failed or a `go test` did not finish cleanly.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// suite is a row of the matrix: top-level tests and the engines they run on.
type suite struct {
	name    string
	tests   []string
	engines []string
}

var (
	allEngines = []string{"20.10", "26.1", "28.5"}
	suites     = []suite{
		{"functional", []string{"TestNetworkBench", "TestNetworkLocalScope"}, allEngines},
		{"life cycle", []string{"TestLifecyclePlugin", "TestLifecyclePackaging"}, allEngines},
		{"packaging", []string{"TestPackaging"}, allEngines},
		{"demo", []string{"TestDemo"}, allEngines},
		{"swarm", []string{"TestSwarmBench"}, []string{"20.10", "28.5"}},
		{"mixed: 28.5 manager, 20.10 worker upgraded to 28.5", []string{"TestMixedSwarmUpgrade"}, []string{"28.5"}},
		{"address manager: one engine", []string{"TestIPAMEngine"}, allEngines},
		{"address manager: swarm pools", []string{"TestIPAMSwarmPools"}, []string{"20.10", "28.5"}},
		{"address manager: leader cut off", []string{"TestLeaderChangeFreesAddressesOfCutTasks"}, []string{"20.10", "28.5"}},
		{"LAN: host access, parentless, announce, addr check", []string{"TestHostAccessEngine", "TestHostAccessSwarm", "TestParentlessNetwork", "TestAnnounceMovedTask", "TestAddressCheck"}, allEngines},
	}
	// otherRow collects the e2e tests outside the suites (20.10 only).
	otherRow = "other e2e tests (20.10 only)"
)

// event is one line of `go test -json` (test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

// result is one top-level test's outcome on one engine.
type result struct {
	action  string // pass, fail, skip
	elapsed float64
	output  []string
	skipped []string            // subtests that skipped
	subOut  map[string][]string // each subtest's own output
}

// stream is one engine's go test run.
type stream struct {
	engine  string
	results map[string]*result
	err     error
	wall    time.Duration
}

func main() {
	engines := flag.String("engines", strings.Join(allEngines, ","), "engines to run, comma-separated")
	jobs := flag.Int("jobs", 2, "engines run at once")
	logs := flag.String("logs", "build/e2e", "folder for each engine's log")
	pkgs := flag.String("pkgs", "./test/e2e/...", "packages to test")
	flag.Parse()
	extra := flag.Args()

	if err := os.MkdirAll(*logs, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "matrix:", err)
		os.Exit(2)
	}
	var names []string
	for _, e := range strings.Split(*engines, ",") {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		if !slices.Contains(allEngines, e) {
			fmt.Fprintf(os.Stderr, "matrix: unknown engine %q (%s)\n", e, strings.Join(allEngines, ", "))
			os.Exit(2)
		}
		names = append(names, e)
	}

	began := time.Now()
	var out sync.Mutex
	say := func(format string, args ...any) {
		out.Lock()
		defer out.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	streams := make([]*stream, len(names))
	sem := make(chan struct{}, max(*jobs, 1))
	var wg sync.WaitGroup
	// The longest stream first: 20.10 runs everything.
	order := slices.Clone(names)
	slices.SortStableFunc(order, func(a, b string) int {
		if a == "20.10" {
			return -1
		}
		if b == "20.10" {
			return 1
		}
		return strings.Compare(b, a)
	})
	for _, e := range order {
		i := slices.Index(names, e)
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			streams[i] = run(e, *pkgs, *logs, extra, say)
		}()
	}
	wg.Wait()

	failed := report(streams, say)
	say("e2e matrix: %v wall in all", time.Since(began).Round(time.Second))
	if failed {
		os.Exit(1)
	}
}

// args are the go test arguments of an engine's stream.
func args(engine, pkgs string, extra []string) []string {
	a := []string{"test", "-json", "-tags", "e2e", "-count=1", "-timeout", "40m"}
	var mine, others []string
	for _, s := range suites {
		if slices.Contains(s.engines, engine) {
			mine = append(mine, s.tests...)
		} else {
			others = append(others, s.tests...)
		}
	}
	if engine == "20.10" {
		// Everything but what the matrix does not give 20.10.
		if len(others) > 0 {
			a = append(a, "-skip", "^("+strings.Join(others, "|")+")$")
		}
	} else {
		a = append(a, "-run", "^("+strings.Join(mine, "|")+")$")
	}
	return append(append(a, extra...), pkgs)
}

// run runs one engine's go test, writing its log, and reports each
// top-level test as it ends.
func run(engine, pkgs, logs string, extra []string, say func(string, ...any)) *stream {
	s := &stream{engine: engine, results: map[string]*result{}}
	began := time.Now()
	defer func() { s.wall = time.Since(began) }()
	argv := args(engine, pkgs, extra)
	say("[%s] go %s", engine, strings.Join(argv, " "))
	textLog, err := os.Create(filepath.Join(logs, engine+".log"))
	if err != nil {
		s.err = err
		return s
	}
	defer textLog.Close()
	jsonLog, err := os.Create(filepath.Join(logs, engine+".json"))
	if err != nil {
		s.err = err
		return s
	}
	defer jsonLog.Close()

	cmd := exec.Command("go", argv...)
	cmd.Env = append(os.Environ(), "MVS_ENGINE="+engine)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		s.err = err
		return s
	}
	cmd.Stderr = textLog
	if err := cmd.Start(); err != nil {
		s.err = err
		return s
	}
	sc := bufio.NewScanner(io.TeeReader(stdout, jsonLog))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev event
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			fmt.Fprintln(textLog, sc.Text())
			continue
		}
		fmt.Fprint(textLog, ev.Output)
		if ev.Test == "" {
			continue
		}
		top, _, sub := strings.Cut(ev.Test, "/")
		r := s.results[top]
		if r == nil {
			r = &result{}
			s.results[top] = r
		}
		if ev.Output != "" {
			r.output = append(r.output, ev.Output)
			if sub {
				if r.subOut == nil {
					r.subOut = map[string][]string{}
				}
				r.subOut[ev.Test] = append(r.subOut[ev.Test], ev.Output)
			}
		}
		if sub && ev.Action == "skip" {
			r.skipped = append(r.skipped, ev.Test)
		}
		if !sub {
			switch ev.Action {
			case "pass", "fail", "skip":
				r.action, r.elapsed = ev.Action, ev.Elapsed
				say("[%s] %s %s (%.1fs)", engine, strings.ToUpper(ev.Action), top, ev.Elapsed)
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		s.err = fmt.Errorf("go test: %w", err)
	}
	return s
}

// report prints the failed tests' output, the skips' reasons and the
// table; it reports whether anything failed.
func report(streams []*stream, say func(string, ...any)) bool {
	failed := false
	var notes []string
	for _, s := range streams {
		for _, name := range sortedKeys(s.results) {
			r := s.results[name]
			switch r.action {
			case "fail":
				failed = true
				say("\n===== engine %s: %s FAILED; its output (whole log: %s.log) =====\n%s", s.engine, name, s.engine, strings.Join(r.output, ""))
				notes = append(notes, fmt.Sprintf("FAIL on engine %s: %s", s.engine, failedSubtests(name, r)))
			case "skip":
				notes = append(notes, fmt.Sprintf("skip on engine %s: %s: %s", s.engine, name, skipReason(r.output)))
			case "":
				failed = true
				notes = append(notes, fmt.Sprintf("FAIL on engine %s: %s did not finish (timeout or crash of the test binary)", s.engine, name))
			}
			for _, sub := range r.skipped {
				notes = append(notes, fmt.Sprintf("skip on engine %s: %s: %s", s.engine, sub, skipReason(r.subOut[sub])))
			}
		}
		if s.err != nil {
			failed = true
			notes = append(notes, fmt.Sprintf("FAIL on engine %s: %v (see %s.log)", s.engine, s.err, s.engine))
		}
	}

	const w0, w = 52, 16
	var b strings.Builder
	fmt.Fprintf(&b, "\ne2e matrix: suite × engine (result, test seconds)\n%-*s", w0, "suite")
	for _, s := range streams {
		fmt.Fprintf(&b, "%-*s", w, s.engine)
	}
	b.WriteString("\n")
	row := func(name string, cell func(*stream) string) {
		fmt.Fprintf(&b, "%-*s", w0, name)
		for _, s := range streams {
			fmt.Fprintf(&b, "%-*s", w, cell(s))
		}
		b.WriteString("\n")
	}
	inSuite := map[string]bool{}
	for _, su := range suites {
		for _, t := range su.tests {
			inSuite[t] = true
		}
		row(su.name, func(s *stream) string {
			if !slices.Contains(su.engines, s.engine) {
				return "–"
			}
			return cell(s, su.tests)
		})
	}
	row(otherRow, func(s *stream) string {
		var tests []string
		for name := range s.results {
			if !inSuite[name] {
				tests = append(tests, name)
			}
		}
		if len(tests) == 0 {
			return "–"
		}
		return cell(s, tests)
	})
	row("wall time of the engine's go test", func(s *stream) string { return fmt.Sprintf("%.0fs", s.wall.Seconds()) })
	for _, n := range notes {
		b.WriteString(n + "\n")
	}
	say("%s", b.String())
	return failed
}

// cell sums a suite's tests on one engine: fail if any failed or did not
// finish, skip if all skipped, "not run" if none started (a -run of
// E2E_FLAGS), pass otherwise; seconds added up.
func cell(s *stream, tests []string) string {
	var secs float64
	pass, skip, fail := 0, 0, 0
	for _, t := range tests {
		r := s.results[t]
		if r == nil {
			continue
		}
		if r.action == "" || r.action == "fail" {
			fail++
			secs += r.elapsed
			continue
		}
		secs += r.elapsed
		if r.action == "skip" {
			skip++
		} else {
			pass++
		}
	}
	switch {
	case fail > 0:
		return fmt.Sprintf("FAIL %.0fs", secs)
	case pass+skip == 0:
		return "not run"
	case pass == 0:
		return "skip"
	default:
		return fmt.Sprintf("pass %.0fs", secs)
	}
}

var failLine = regexp.MustCompile(`--- FAIL: (\S+)`)

// failedSubtests names the deepest failed tests of a failed top-level test.
func failedSubtests(name string, r *result) string {
	var names []string
	for _, line := range r.output {
		if m := failLine.FindStringSubmatch(line); m != nil {
			names = append(names, m[1])
		}
	}
	var leaves []string
	for _, n := range names {
		leaf := true
		for _, o := range names {
			if strings.HasPrefix(o, n+"/") {
				leaf = false
			}
		}
		if leaf {
			leaves = append(leaves, n)
		}
	}
	if len(leaves) == 0 {
		return name
	}
	return strings.Join(leaves, ", ")
}

// skipReason is the last line a skipped test logged before its SKIP line.
func skipReason(output []string) string {
	reason := "(no reason logged)"
	for _, line := range output {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "=== ") || strings.HasPrefix(line, "--- ") {
			continue
		}
		reason = line
	}
	return reason
}

func sortedKeys(m map[string]*result) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
