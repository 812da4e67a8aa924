// Package telemetry is what the daemon tells about itself besides its log:
// Prometheus metrics (served only when METRICS_ADDR is set) and the last
// errors it sent the engine (shown by GET /status). It is fed by the
// protocol handler's observer, the driver's reaper callback and the driver's
// counters, read at scrape time; the driver knows nothing of Prometheus.
package telemetry

import (
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/macvlan-swarm/macvlan-swarm/internal/driver"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol"
)

// namespace prefixes every metric name.
const namespace = "macvlan_swarm"

// KeepErrors is how many of the last errors Errors returns.
const KeepErrors = 20

// ErrorEntry is one error the plugin answered the engine with.
type ErrorEntry struct {
	Time     time.Time `json:"time"`
	Method   string    `json:"method"`
	Network  string    `json:"network,omitempty"`
	Endpoint string    `json:"endpoint,omitempty"`
	Err      string    `json:"error"`
}

// Recorder gathers the metrics and the last errors. Its methods are safe for
// concurrent use.
type Recorder struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	failures *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	reaps    prometheus.Histogram

	mu     sync.Mutex
	errors []ErrorEntry // ring of the last KeepErrors, oldest first
}

// New builds a Recorder for the given version. counters, if not nil, is
// read at each scrape for the driver's gauges and totals.
func New(version string, counters func() driver.Counters) *Recorder {
	r := &Recorder{reg: prometheus.NewRegistry()}
	r.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "requests_total",
		Help: "Protocol requests answered, by method."}, []string{"method"})
	r.failures = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "request_errors_total",
		Help: "Protocol requests answered with an error, by method."}, []string{"method"})
	// From 50 µs (an in-memory answer) to 10 s (the engine's patience).
	r.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "request_duration_seconds",
		Help:    "Time from a protocol request's arrival to its answer, by method.",
		Buckets: prometheus.ExponentialBucketsRange(50e-6, 10, 16)}, []string{"method"})
	r.reaps = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "reaper_batch_duration_seconds",
		Help:    "Time the kernel took to delete one reaper batch of host links; the count is the number of batches.",
		Buckets: prometheus.ExponentialBucketsRange(100e-6, 5, 14)})
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "build_info",
		Help: "Always 1; the labels say which build is running."}, []string{"version", "goversion"})
	build.WithLabelValues(version, runtime.Version()).Set(1)
	r.reg.MustRegister(r.requests, r.failures, r.latency, r.reaps, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if counters != nil {
		r.reg.MustRegister(driverCollector{counters})
	}
	return r
}

// Observe records one answered protocol request; it is the handler's
// observer (protocol.WithObserver).
func (r *Recorder) Observe(s protocol.Served) {
	r.requests.WithLabelValues(s.Method).Inc()
	r.latency.WithLabelValues(s.Method).Observe(s.Took.Seconds())
	if s.Err == "" {
		return
	}
	r.failures.WithLabelValues(s.Method).Inc()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errors) == KeepErrors {
		r.errors = append(r.errors[:0], r.errors[1:]...)
	}
	r.errors = append(r.errors, ErrorEntry{Time: s.Start.UTC(), Method: s.Method, Network: s.NetworkID, Endpoint: s.EndpointID, Err: s.Err})
}

// Reaped records one reaper batch (driver.Config.OnReap).
func (r *Recorder) Reaped(_ int, took time.Duration) {
	r.reaps.Observe(took.Seconds())
}

// Errors returns the last errors, newest first.
func (r *Recorder) Errors() []ErrorEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]ErrorEntry, len(r.errors))
	for i, e := range r.errors {
		out[len(out)-1-i] = e
	}
	return out
}

// Handler serves the metrics in Prometheus' exposition format.
func (r *Recorder) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{Registry: r.reg})
}

// driverCollector turns the driver's counters into metrics at scrape time.
type driverCollector struct{ read func() driver.Counters }

var (
	descNetworks = prometheus.NewDesc(namespace+"_networks", "Networks the plugin holds on this node.", nil, nil)
	descEndpoint = prometheus.NewDesc(namespace+"_endpoints", "Endpoints the plugin holds on this node.", nil, nil)
	descCreated  = prometheus.NewDesc(namespace+"_host_links_created_total", "Container host links given to an endpoint: created, or a retired link re-armed for it.", nil, nil)
	descDeleted  = prometheus.NewDesc(namespace+"_host_links_deleted_total", "Container host links done with: deleted (by the reaper and directly), or re-armed for another endpoint.", nil, nil)
	descPending  = prometheus.NewDesc(namespace+"_host_links_pending", "Host links queued for the reaper's next batch.", nil, nil)
	descRestore  = prometheus.NewDesc(namespace+"_restore_duration_seconds", "Time the start-up restore of saved state took.", nil, nil)
)

func (c driverCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descNetworks, descEndpoint, descCreated, descDeleted, descPending, descRestore} {
		ch <- d
	}
}

func (c driverCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.read()
	ch <- prometheus.MustNewConstMetric(descNetworks, prometheus.GaugeValue, float64(n.Networks))
	ch <- prometheus.MustNewConstMetric(descEndpoint, prometheus.GaugeValue, float64(n.Endpoints))
	ch <- prometheus.MustNewConstMetric(descCreated, prometheus.CounterValue, float64(n.LinksCreated))
	ch <- prometheus.MustNewConstMetric(descDeleted, prometheus.CounterValue, float64(n.LinksDeleted))
	ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(n.LinksPending))
	ch <- prometheus.MustNewConstMetric(descRestore, prometheus.GaugeValue, n.RestoreTook.Seconds())
}
