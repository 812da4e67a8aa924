// Package telemetrytest reads the plugin's metrics back for tests.
package telemetrytest

import (
	"io"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Flatten parses a Prometheus text exposition into one number per series:
// the key is the metric name, with "/<method>" for series labelled by
// method, and "#count" appended for a histogram's sample count.
func Flatten(r io.Reader) (map[string]float64, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.Metric {
			key := name
			for _, l := range m.Label {
				if l.GetName() == "method" {
					key += "/" + l.GetValue()
				}
			}
			switch {
			case m.Counter != nil:
				out[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[key] = m.Gauge.GetValue()
			case m.Histogram != nil:
				out[key+"#count"] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return out, nil
}
