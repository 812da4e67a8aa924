package main

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/macvlan-swarm/macvlan-swarm/test/bench/benchres"
)

// palette gives the plugin's boxes and bars one colour and the peers another.
var (
	pluginColour = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	peerColour   = color.RGBA{R: 0xa0, G: 0xa0, B: 0xa0, A: 0xff}
)

// drawCharts draws one PNG per chart name found in the parts' series, into
// dir, and returns the files in part order.
func drawCharts(parts []benchres.Part, dir string) ([]string, error) {
	type chart struct {
		name   string
		series []benchres.Series
	}
	var charts []*chart
	byName := map[string]*chart{}
	for _, p := range parts {
		for _, s := range p.Series {
			c := byName[s.Chart]
			if c == nil {
				c = &chart{name: s.Chart}
				byName[s.Chart] = c
				charts = append(charts, c)
			}
			c.series = append(c.series, s)
		}
	}
	if len(charts) == 0 {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var files []string
	for _, c := range charts {
		p, err := drawChart(c.series)
		if err != nil {
			return nil, fmt.Errorf("chart %s: %w", c.name, err)
		}
		file := filepath.Join(dir, c.name+".png")
		// Wider with more series, so that their labels do not run together.
		width := vg.Length(max(7, 1.3*float64(len(c.series)))) * vg.Inch
		if err := p.Save(width, 4*vg.Inch, file); err != nil {
			return nil, fmt.Errorf("chart %s: %w", c.name, err)
		}
		files = append(files, file)
	}
	return files, nil
}

// drawChart draws series of one kind: "dist" as one box per label (median,
// quartiles, whiskers, outliers), "bar" as one bar per label at the median of
// its values.
func drawChart(series []benchres.Series) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = series[0].Title
	p.Y.Label.Text = series[0].Unit
	p.Y.Min = 0
	var names []string
	width := vg.Points(30)
	for i, s := range series {
		vals := benchres.Finite(s.Value)
		if len(vals) == 0 {
			return nil, fmt.Errorf("series %q has no values", s.Label)
		}
		colour := peerColour
		if isPlugin(s.Label) {
			colour = pluginColour
		}
		switch s.Kind {
		case "dist":
			b, err := plotter.NewBoxPlot(width, float64(i), plotter.Values(vals))
			if err != nil {
				return nil, err
			}
			b.FillColor = colour
			p.Add(b)
		case "bar":
			bar, err := plotter.NewBarChart(plotter.Values{benchres.Median(vals)}, width)
			if err != nil {
				return nil, err
			}
			bar.XMin = float64(i)
			bar.Color = colour
			p.Add(bar)
		default:
			return nil, fmt.Errorf("series %q: kind %q is neither dist nor bar", s.Label, s.Kind)
		}
		names = append(names, s.Label)
	}
	p.NominalX(names...)
	p.Add(plotter.NewGrid())
	return p, nil
}

// isPlugin tells the plugin's series from its peers' by their label.
func isPlugin(label string) bool { return strings.HasPrefix(label, "plugin") }
