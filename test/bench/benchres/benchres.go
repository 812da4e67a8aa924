// Package benchres is the one format every part of `make bench` writes its
// figures in, and the report (test/bench/report) reads back: one JSON file per
// part, build/bench/part<N>.json by default.
//
// A part is one of the eight measurements of issue 11 (container start,
// parallel starts, swarm, data path, protocol cost, growth, teardown,
// footprint). Each part is a list of figures, a figure being one value next
// to its peer from the same run when it has one, and optionally a target.
// Series hold raw samples for the charts (latency distributions, bars).
//
// Benchmarks print figures and never fail on a time: a missed target is a
// verdict in the table, not a test failure. What does fail, in the smoke run,
// is a figure that was not produced at all (Check).
package benchres

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Mode is how much a run measures, from $MVS_BENCH.
type Mode string

const (
	// Off: the bench tests skip.
	Off Mode = ""
	// Smoke: one round of each, only to prove every figure is produced
	// (part of `make test`).
	Smoke Mode = "smoke"
	// Full: the rounds `make bench` reports.
	Full Mode = "full"
)

// EnvInt reads a bench size from the environment: def when name is unset,
// else a whole number of at least min, or fatalf names the setting.
func EnvInt(fatalf func(format string, args ...any), name string, def, min int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min {
		fatalf("%s=%q: want a whole number, at least %d", name, v, min)
	}
	return n
}

// CurrentMode reads $MVS_BENCH. "1" is Full, for the older bench targets.
func CurrentMode() Mode {
	switch v := os.Getenv("MVS_BENCH"); v {
	case "":
		return Off
	case "smoke":
		return Smoke
	default:
		return Full
	}
}

// Rounds is full in a full run and 1 in a smoke run.
func (m Mode) Rounds(full int) int {
	if m == Smoke {
		return 1
	}
	return full
}

// Pick is full in a full run and smoke otherwise.
func (m Mode) Pick(full, smoke int) int {
	if m == Smoke {
		return smoke
	}
	return full
}

// Target is the rule a figure is held to. Of says what is compared: the
// value itself, or the ratio value ÷ peer value. Op is "<=" or ">=".
type Target struct {
	Of    string  `json:"of"` // "value" or "ratio"
	Op    string  `json:"op"` // "<=" or ">="
	Limit float64 `json:"limit"`
}

// String is how the table shows the target: "≤ 0.9×" or "≤ 2 ms".
func (t Target) String(unit string) string {
	op := map[string]string{"<=": "≤", ">=": "≥"}[t.Op]
	if t.Of == "ratio" {
		return fmt.Sprintf("%s %s×", op, fmtNum(t.Limit))
	}
	return fmt.Sprintf("%s %s %s", op, fmtNum(t.Limit), unit)
}

// Figure is one measured value, with its peer from the same run.
type Figure struct {
	Name  string  `json:"name"`  // what was measured, e.g. "networking cost (start − none start)"
	Label string  `json:"label"` // the measured side, e.g. "plugin"
	Value float64 `json:"value"`
	Unit  string  `json:"unit"` // "ms", "s", "Gbit/s", "MiB", "µs", "ops"
	// Peer is the baseline's label and value; empty when there is none.
	Peer      string  `json:"peer,omitempty"`
	PeerValue float64 `json:"peer_value,omitempty"`
	Target    *Target `json:"target,omitempty"`
	// Samples is how many runs the median was taken over.
	Samples int    `json:"samples,omitempty"`
	Note    string `json:"note,omitempty"`
	// Paired holds, when the two sides ran in the same rounds, one ratio
	// per round (this side ÷ its peer, measured moments apart under the
	// same background load). Ratio is then their median, which a load that
	// drifts between rounds moves less than the ratio of the two medians.
	Paired []float64 `json:"paired,omitempty"`
}

// Ratio is the median of the per-round ratios when the figure has them,
// otherwise Value ÷ PeerValue; NaN without a peer.
func (f Figure) Ratio() float64 {
	if f.Peer == "" {
		return math.NaN()
	}
	if len(f.Paired) > 0 {
		return Median(f.Paired)
	}
	if f.PeerValue == 0 {
		return math.NaN()
	}
	return f.Value / f.PeerValue
}

// PairedRatios divides a by b round by round (a[i] ÷ b[i]), for
// Figure.Paired; rounds where either side is missing or b is 0 are left out.
func PairedRatios(a, b []float64) []float64 {
	var out []float64
	for i := range min(len(a), len(b)) {
		if b[i] != 0 && finite(a[i]) && finite(b[i]) {
			out = append(out, a[i]/b[i])
		}
	}
	return out
}

// Verdict is "met", "missed" or "" when the figure has no target.
func (f Figure) Verdict() string {
	if f.Target == nil {
		return ""
	}
	v := f.Value
	if f.Target.Of == "ratio" {
		v = f.Ratio()
	}
	if math.IsNaN(v) {
		return "missed"
	}
	ok := v <= f.Target.Limit
	if f.Target.Op == ">=" {
		ok = v >= f.Target.Limit
	}
	if ok {
		return "met"
	}
	return "missed"
}

// Series is raw samples for a chart. Kind "dist" draws a latency
// distribution (one box per label), "bar" draws Values[0] as one bar per
// label; series with the same Chart share a picture.
type Series struct {
	Chart string    `json:"chart"` // file stem, e.g. "starts"
	Title string    `json:"title"`
	Kind  string    `json:"kind"` // "dist" or "bar"
	Label string    `json:"label"`
	Unit  string    `json:"unit"`
	Value []float64 `json:"values"`
}

// Part is what one of the eight measurements produced.
type Part struct {
	N       int       `json:"part"`
	Title   string    `json:"title"`
	Mode    Mode      `json:"mode"`
	Engine  string    `json:"engine,omitempty"` // the engine's version, for parts that use one
	Commit  string    `json:"commit,omitempty"` // git describe of the tree measured, set by Write
	When    time.Time `json:"when"`
	Seconds float64   `json:"seconds"` // how long the part took
	Figures []Figure  `json:"figures"`
	Series  []Series  `json:"series,omitempty"`
	Notes   []string  `json:"notes,omitempty"`
}

// Add appends a figure and returns it for chaining targets.
func (p *Part) Add(f Figure) *Figure {
	p.Figures = append(p.Figures, f)
	return &p.Figures[len(p.Figures)-1]
}

// AddSeries appends raw samples for a chart.
func (p *Part) AddSeries(s Series) { p.Series = append(p.Series, s) }

// Dir is where parts are written: $MVS_BENCH_OUT, or build/bench under the
// module root found from the working directory.
func Dir() string {
	if d := os.Getenv("MVS_BENCH_OUT"); d != "" {
		return d
	}
	wd, err := os.Getwd()
	if err != nil {
		return filepath.Join("build", "bench")
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, "build", "bench")
		}
		if filepath.Dir(d) == d {
			return filepath.Join(wd, "build", "bench")
		}
	}
}

// Write saves the part as part<N>.json in Dir, stamped with the mode and the
// time, and returns the path.
func Write(p Part) (string, error) {
	if p.N < 1 {
		return "", fmt.Errorf("benchres: part number %d", p.N)
	}
	if p.Mode == "" {
		p.Mode = CurrentMode()
	}
	if p.When.IsZero() {
		p.When = time.Now().UTC()
	}
	if p.Commit == "" {
		p.Commit = describe()
	}
	dir := Dir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, fmt.Sprintf("part%d.json", p.N))
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return "", err
	}
	return path, os.Rename(tmp, path)
}

// describe is `git describe --tags --always --dirty` of the working
// directory's tree, or "" outside one.
func describe() string {
	out, err := exec.Command("git", "describe", "--tags", "--always", "--dirty").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// ReadAll reads every part<N>.json in dir, in part order.
func ReadAll(dir string) ([]Part, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "part*.json"))
	if err != nil {
		return nil, err
	}
	var parts []Part
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		var p Part
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		parts = append(parts, p)
	}
	slices.SortFunc(parts, func(a, b Part) int { return a.N - b.N })
	return parts, nil
}

// Check reports what a run failed to produce: a missing part among want, a
// part without figures, a figure whose value (or peer value) is not a
// finite number. It says nothing of times: a slow figure is still a figure.
func Check(parts []Part, want []int) error {
	var errs []error
	have := map[int]bool{}
	for _, p := range parts {
		have[p.N] = true
		if len(p.Figures) == 0 {
			errs = append(errs, fmt.Errorf("part %d (%s) has no figures", p.N, p.Title))
		}
		for _, f := range p.Figures {
			if !finite(f.Value) {
				errs = append(errs, fmt.Errorf("part %d: %q (%s) has no value (%v)", p.N, f.Name, f.Label, f.Value))
			}
			if f.Peer != "" && !finite(f.PeerValue) {
				errs = append(errs, fmt.Errorf("part %d: %q has no value for its peer %s", p.N, f.Name, f.Peer))
			}
		}
	}
	for _, n := range want {
		if !have[n] {
			errs = append(errs, fmt.Errorf("part %d was not produced", n))
		}
	}
	return errors.Join(errs...)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Median of the values, NaN for none.
func Median(v []float64) float64 { return Quantile(v, 0.5) }

// Quantile by the nearest-rank method, NaN for none.
func Quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// Ms turns durations into milliseconds.
func Ms(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d) / float64(time.Millisecond)
	}
	return out
}

// fmtNum prints a figure with three significant digits, no exponent,
// trailing zeros dropped.
func fmtNum(v float64) string {
	s := threeDigits(v)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// threeDigits prints v with three significant digits (more for values of
// 100 and up, which print whole), no exponent, zeros kept.
func threeDigits(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "–"
	case v == 0:
		return "0"
	}
	prec := 0
	switch a := math.Abs(v); {
	case a < 0.01:
		prec = 5
	case a < 0.1:
		prec = 4
	case a < 1:
		prec = 3
	case a < 10:
		prec = 2
	case a < 100:
		prec = 1
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

// Num is fmtNum for the report.
func Num(v float64) string { return fmtNum(v) }

// Ratio prints a ratio with three significant digits, zeros kept: 1.00 and
// 1.004 both print "1.00", never "1", so that a ratio a hair above a limit
// of 1 does not read as the limit itself.
func Ratio(v float64) string { return threeDigits(v) }

// figureJSON is Figure on disk: a value that is not a finite number (a
// figure the run could not produce) is written as null and read back as NaN,
// since JSON has no NaN.
type figureJSON struct {
	Name      string    `json:"name"`
	Label     string    `json:"label"`
	Value     *float64  `json:"value"`
	Unit      string    `json:"unit"`
	Peer      string    `json:"peer,omitempty"`
	PeerValue *float64  `json:"peer_value,omitempty"`
	Target    *Target   `json:"target,omitempty"`
	Samples   int       `json:"samples,omitempty"`
	Note      string    `json:"note,omitempty"`
	Paired    []float64 `json:"paired,omitempty"`
}

func toJSONNum(v float64) *float64 {
	if !finite(v) {
		return nil
	}
	return &v
}

func fromJSONNum(v *float64) float64 {
	if v == nil {
		return math.NaN()
	}
	return *v
}

// MarshalJSON writes a missing value as null.
func (f Figure) MarshalJSON() ([]byte, error) {
	j := figureJSON{Name: f.Name, Label: f.Label, Value: toJSONNum(f.Value), Unit: f.Unit, Peer: f.Peer,
		Target: f.Target, Samples: f.Samples, Note: f.Note, Paired: Finite(f.Paired)}
	if f.Peer != "" {
		j.PeerValue = toJSONNum(f.PeerValue)
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads null back as NaN.
func (f *Figure) UnmarshalJSON(b []byte) error {
	var j figureJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*f = Figure{Name: j.Name, Label: j.Label, Value: fromJSONNum(j.Value), Unit: j.Unit, Peer: j.Peer,
		Target: j.Target, Samples: j.Samples, Note: j.Note, Paired: j.Paired}
	if j.Peer != "" {
		f.PeerValue = fromJSONNum(j.PeerValue)
	}
	return nil
}

// Finite drops the values that are not finite numbers (NaN, ±Inf): what JSON
// cannot hold, and what a chart cannot draw.
func Finite(v []float64) []float64 {
	var out []float64
	for _, x := range v {
		if finite(x) {
			out = append(out, x)
		}
	}
	return out
}
