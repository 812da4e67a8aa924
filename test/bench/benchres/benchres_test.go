package benchres

import (
	"math"
	"strings"
	"testing"
)

func TestVerdict(t *testing.T) {
	for _, c := range []struct {
		f    Figure
		want string
	}{
		{Figure{Value: 90, Peer: "b", PeerValue: 100, Target: &Target{Of: "ratio", Op: "<=", Limit: 0.9}}, "met"},
		{Figure{Value: 91, Peer: "b", PeerValue: 100, Target: &Target{Of: "ratio", Op: "<=", Limit: 0.9}}, "missed"},
		{Figure{Value: 0.96, Peer: "n", PeerValue: 1, Target: &Target{Of: "ratio", Op: ">=", Limit: 0.95}}, "met"},
		{Figure{Value: 2.5, Target: &Target{Of: "value", Op: "<=", Limit: 2}}, "missed"},
		{Figure{Value: 1.5, Target: &Target{Of: "value", Op: "<=", Limit: 2}}, "met"},
		{Figure{Value: 1, Target: &Target{Of: "ratio", Op: "<=", Limit: 2}}, "missed"}, // no peer: no ratio
		{Figure{Value: 1}, ""},
	} {
		if got := c.f.Verdict(); got != c.want {
			t.Errorf("%+v: verdict %q, want %q", c.f, got, c.want)
		}
	}
}

func TestCheckNamesWhatIsMissing(t *testing.T) {
	parts := []Part{
		{N: 1, Title: "start", Figures: []Figure{{Name: "a", Value: 1}, {Name: "b", Value: math.NaN()}}},
		{N: 2, Title: "parallel"},
		{N: 3, Figures: []Figure{{Name: "c", Value: 1, Peer: "o", PeerValue: math.Inf(1)}}},
	}
	err := Check(parts, []int{1, 2, 3, 4})
	if err == nil {
		t.Fatal("no error for a NaN figure, an empty part and a missing part")
	}
	for _, want := range []string{`"b"`, "part 2 (parallel) has no figures", "peer o", "part 4 was not produced"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if err := Check(parts[:1:1][:0], nil); err != nil {
		t.Errorf("nothing wanted, nothing given: %v", err)
	}
}

func TestWriteReadAll(t *testing.T) {
	t.Setenv("MVS_BENCH_OUT", t.TempDir())
	t.Setenv("MVS_BENCH", "smoke")
	for _, n := range []int{3, 1} {
		p := Part{N: n, Title: "t"}
		p.Add(Figure{Name: "x", Value: float64(n)})
		if _, err := Write(p); err != nil {
			t.Fatal(err)
		}
	}
	parts, err := ReadAll(Dir())
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 2 || parts[0].N != 1 || parts[1].N != 3 || parts[0].Mode != Smoke || parts[1].Figures[0].Value != 3 {
		t.Fatalf("read back %+v", parts)
	}
}

func TestRatioKeepsItsZeros(t *testing.T) {
	for in, want := range map[float64]string{1.0048: "1.00", 1: "1.00", 0.8: "0.800", 0.0409: "0.0409", 1.27: "1.27", 26.3: "26.3", 0: "0"} {
		if got := Ratio(in); got != want {
			t.Errorf("Ratio(%v) = %q, want %q", in, got, want)
		}
	}
	if got := Ratio(math.NaN()); got != "–" {
		t.Errorf("Ratio(NaN) = %q, want –", got)
	}
}

func TestQuantileAndNum(t *testing.T) {
	v := []float64{5, 1, 4, 2, 3}
	if Median(v) != 3 || Quantile(v, 0.99) != 5 || Quantile(v, 0) != 1 || !math.IsNaN(Median(nil)) {
		t.Errorf("median %v p99 %v", Median(v), Quantile(v, 0.99))
	}
	for in, want := range map[float64]string{0.9: "0.9", 273.4: "273", 12.34: "12.3", 0.0834: "0.0834", 1.0: "1"} {
		if got := Num(in); got != want {
			t.Errorf("Num(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestMissingValueSurvivesTheFile(t *testing.T) {
	t.Setenv("MVS_BENCH_OUT", t.TempDir())
	p := Part{N: 2}
	p.Add(Figure{Name: "total", Value: math.NaN(), Peer: "built-in", PeerValue: 7})
	p.Add(Figure{Name: "p99", Value: 3, Peer: "built-in", PeerValue: math.Inf(1)})
	if _, err := Write(p); err != nil {
		t.Fatal(err)
	}
	parts, err := ReadAll(Dir())
	if err != nil {
		t.Fatal(err)
	}
	f := parts[0].Figures
	if !math.IsNaN(f[0].Value) || f[0].PeerValue != 7 || f[1].Value != 3 || !math.IsNaN(f[1].PeerValue) {
		t.Fatalf("read back %+v", f)
	}
	if Check(parts, nil) == nil {
		t.Error("Check passed figures without values")
	}
}

func TestPairedRatio(t *testing.T) {
	// Load drifted between rounds: the medians' ratio says 0.9, every round
	// says 0.97 or better.
	f := Figure{Value: 90, Peer: "node", PeerValue: 100,
		Paired: PairedRatios([]float64{50, 90, 130}, []float64{51, 92, 100}),
		Target: &Target{Of: "ratio", Op: ">=", Limit: 0.95}}
	if r := f.Ratio(); math.Abs(r-50.0/51) > 1e-9 {
		t.Errorf("ratio %v, want the median of the rounds' ratios %v", r, 50.0/51)
	}
	if f.Verdict() != "met" {
		t.Errorf("verdict %q", f.Verdict())
	}
	if got := PairedRatios([]float64{1, math.NaN(), 3}, []float64{2, 2, 0}); len(got) != 1 || got[0] != 0.5 {
		t.Errorf("PairedRatios kept %v", got)
	}
	t.Setenv("MVS_BENCH_OUT", t.TempDir())
	p := Part{N: 1}
	p.Add(f)
	if _, err := Write(p); err != nil {
		t.Fatal(err)
	}
	parts, _ := ReadAll(Dir())
	if got := parts[0].Figures[0]; len(got.Paired) != 3 || got.Ratio() != f.Ratio() {
		t.Errorf("read back %+v", got)
	}
}
