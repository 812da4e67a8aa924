// Package telemetrytest reads the plugin's metrics back for tests.
package telemetrytest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link/linktest"
)

// Scrape reads GET /metrics at addr from inside the network namespace
// nsName (a name under /run/netns), where the plugin under test listens,
// and flattens it.
func Scrape(nsName, addr string) (map[string]float64, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) {
		return linktest.DialIn(nsName, "tcp", addr, 2*time.Second)
	}}}
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("scrape %s in %s: %w", addr, nsName, err)
	}
	defer resp.Body.Close()
	return Flatten(resp.Body)
}

// Flatten parses a Prometheus text exposition into one number per series:
// the key is the metric name, with "/<method>" for series labelled by
// method, and "#count" and "#sum" appended for a histogram's sample count
// and sum.
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
				out[key+"#sum"] = m.Histogram.GetSampleSum()
			}
		}
	}
	return out, nil
}
