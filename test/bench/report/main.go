// Command report turns the parts `make bench` wrote (build/bench/part<N>.json,
// see test/bench/benchres) into one table: printed, written between the
// markers of docs/benchmarks.md with the machine, the engine and the date,
// and drawn as PNG charts with gonum/plot.
//
//	go run ./test/bench/report -in build/bench                   # print the table
//	go run ./test/bench/report -in build/bench -docs docs/benchmarks.md -charts docs/bench
//	go run ./test/bench/report -in build/bench -want 1-8 -check  # the smoke run: every figure produced?
//
// It never judges a time: a missed target is a verdict in the table. With
// -check it exits 1 when a wanted part or a figure is missing (not a finite
// number), which is what the smoke run in `make test` is for.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/test/bench/benchres"
)

const (
	beginMarker = "<!-- bench:table:begin -->"
	endMarker   = "<!-- bench:table:end -->"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := fs.String("in", benchres.Dir(), "folder holding part<N>.json")
	docs := fs.String("docs", "", "markdown file whose bench:table markers get the table (none: print only)")
	charts := fs.String("charts", "", "folder for the PNG charts (none: no charts)")
	want := fs.String("want", "1-8", "parts that must be there, e.g. 1-8 or 1,2,5")
	check := fs.Bool("check", false, "exit 1 when a wanted part or any figure is missing")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	wanted, err := parseParts(*want)
	if err != nil {
		fmt.Fprintf(stderr, "report: -want %q: %v\n", *want, err)
		return 2
	}
	parts, err := benchres.ReadAll(*in)
	if err != nil {
		fmt.Fprintf(stderr, "report: %v\n", err)
		return 1
	}
	if len(parts) == 0 {
		fmt.Fprintf(stderr, "report: no part<N>.json in %s: run `make bench` (or a bench test with MVS_BENCH=smoke|full) first\n", *in)
		return 1
	}
	// The machine and the commit are read before the charts are drawn: a
	// chart written into the tree would make the commit look dirty.
	host := machine()
	var chartFiles []string
	if *charts != "" {
		chartFiles, err = drawCharts(parts, *charts)
		if err != nil {
			fmt.Fprintf(stderr, "report: charts: %v\n", err)
			return 1
		}
	}
	md := render(parts, host, chartLinks(*docs, chartFiles))
	fmt.Fprint(stdout, md)
	if *docs != "" {
		if err := replaceSection(*docs, md); err != nil {
			fmt.Fprintf(stderr, "report: %v\n", err)
			return 1
		}
		fmt.Fprintf(stderr, "report: table written into %s\n", *docs)
	}
	for _, f := range chartFiles {
		fmt.Fprintf(stderr, "report: chart %s\n", f)
	}
	if *check {
		if err := benchres.Check(parts, wanted); err != nil {
			fmt.Fprintf(stderr, "report: the bench did not produce every figure:\n%v\n", err)
			return 1
		}
		fmt.Fprintf(stderr, "report: every part of %s produced all its figures\n", *want)
	}
	return 0
}

// parseParts reads "1-8" or "1,2,5" (or a mix: "1-3,5").
func parseParts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(f, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("%q is not a part number", lo)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return nil, fmt.Errorf("%q is not a part number", hi)
			}
		}
		if a < 1 || b < a {
			return nil, fmt.Errorf("bad range %q", f)
		}
		for n := a; n <= b; n++ {
			out = append(out, n)
		}
	}
	return out, nil
}

// machineInfo is what the table is stamped with.
type machineInfo struct {
	cpu, kernel, memory, goVersion, commit string
	cores                                  int
}

func machine() machineInfo {
	m := machineInfo{cores: runtime.NumCPU(), goVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
				if kb, err := strconv.Atoi(f[1]); err == nil {
					m.memory = fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
				}
			}
		}
	}
	if out, err := exec.Command("git", "describe", "--tags", "--always", "--dirty").Output(); err == nil {
		m.commit = strings.TrimSpace(string(out))
	}
	return m
}

// render is the markdown that goes between the markers (and to stdout).
func render(parts []benchres.Part, m machineInfo, charts []string) string {
	var b strings.Builder
	var engines, modes, commits []string
	var first, last time.Time
	total := 0.0
	for _, p := range parts {
		if p.Engine != "" && !slices.Contains(engines, p.Engine) {
			engines = append(engines, p.Engine)
		}
		if p.Commit != "" && !slices.Contains(commits, p.Commit) {
			commits = append(commits, p.Commit)
		}
		if !slices.Contains(modes, string(p.Mode)) {
			modes = append(modes, string(p.Mode))
		}
		if first.IsZero() || p.When.Before(first) {
			first = p.When
		}
		if p.When.After(last) {
			last = p.When
		}
		total += p.Seconds
	}
	fmt.Fprintf(&b, "Run of %s (%s run", first.UTC().Format("2006-01-02 15:04 MST"), strings.Join(modes, "+"))
	switch {
	case len(commits) > 0:
		fmt.Fprintf(&b, ", commit `%s`", strings.Join(commits, "`, `"))
	case m.commit != "":
		fmt.Fprintf(&b, ", commit `%s`", m.commit)
	}
	fmt.Fprintf(&b, "), %.0f s of measuring in all.\n", total)
	fmt.Fprintf(&b, "Machine: %d × %s, %s, kernel %s, %s.", m.cores, orUnknown(m.cpu), orUnknown(m.memory), orUnknown(m.kernel), m.goVersion)
	if len(engines) > 0 {
		fmt.Fprintf(&b, " Engine: %s.", strings.Join(engines, ", "))
	}
	b.WriteString("\n\n")
	b.WriteString("| part | figure | measured | peer (same run) | ratio | target | verdict |\n")
	b.WriteString("|---|---|---:|---:|---:|---|---|\n")
	met, missed := 0, 0
	paired := false
	for _, p := range parts {
		for i, f := range p.Figures {
			part := ""
			if i == 0 {
				part = fmt.Sprintf("%d. %s", p.N, p.Title)
			}
			measured := valueCell(f.Label, f.Value, f.Unit)
			peer, ratio := "", ""
			if f.Peer != "" {
				peer = valueCell(f.Peer, f.PeerValue, f.Unit)
				ratio = benchres.Ratio(f.Ratio()) + "×"
				if len(f.Paired) > 0 {
					ratio += " †"
					paired = true
				}
			}
			target, verdict := "", f.Verdict()
			if f.Target != nil {
				target = f.Target.String(f.Unit)
			}
			switch verdict {
			case "met":
				met++
			case "missed":
				missed++
				verdict = "**missed**"
			}
			name := f.Name
			if f.Samples > 0 {
				name += fmt.Sprintf(" (n=%d)", f.Samples)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", part, name, measured, peer, ratio, target, verdict)
		}
	}
	b.WriteString("\nMeasured and peer are medians over the runs (n). ")
	if paired {
		b.WriteString("A ratio marked † is the median of the per-round ratios (both sides measured in the same round, moments apart), " +
			"which a background load that drifts between rounds moves less than the ratio of the two medians; the others are measured ÷ peer. ")
	}
	fmt.Fprintf(&b, "Targets met: %d of %d.", met, met+missed)
	var notes []string
	for _, p := range parts {
		for _, n := range p.Notes {
			notes = append(notes, fmt.Sprintf("Part %d: %s", p.N, n))
		}
		for _, f := range p.Figures {
			if f.Note != "" {
				notes = append(notes, fmt.Sprintf("Part %d, %s: %s", p.N, f.Name, f.Note))
			}
		}
	}
	if len(notes) > 0 {
		b.WriteString(" Notes:\n\n")
		for _, n := range notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	} else {
		b.WriteString("\n")
	}
	if len(charts) > 0 {
		b.WriteString("\n")
		for _, c := range charts {
			stem := strings.TrimSuffix(filepath.Base(c), ".png")
			fmt.Fprintf(&b, "![%s](%s)\n", stem, c)
		}
	}
	return b.String()
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func valueCell(label string, v float64, unit string) string {
	s := benchres.Num(v)
	if unit != "" {
		s += " " + unit
	}
	if label != "" {
		s = label + " " + s
	}
	return s
}

// chartLinks makes the chart paths relative to the markdown file.
func chartLinks(docs string, files []string) []string {
	if docs == "" {
		return files
	}
	base := filepath.Dir(docs)
	out := make([]string, 0, len(files))
	for _, f := range files {
		if rel, err := filepath.Rel(base, f); err == nil {
			f = rel
		}
		out = append(out, filepath.ToSlash(f))
	}
	return out
}

// replaceSection puts md between the markers of the file, keeping the rest.
func replaceSection(path, md string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	i := bytes.Index(b, []byte(beginMarker))
	j := bytes.Index(b, []byte(endMarker))
	if i < 0 || j < i {
		return errors.New(path + " has no " + beginMarker + " … " + endMarker + " section to write the table into")
	}
	var out bytes.Buffer
	out.Write(b[:i+len(beginMarker)])
	out.WriteString("\n")
	out.WriteString(md)
	out.Write(b[j:])
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, out.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
