package registry

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the registry's chorus_model_* metrics. The counters are updated as things
// happen; the live variant and lease gauges are read from the registry at scrape time, so
// they never disagree with it. chorus_model_info (model, variant) is the server's, read
// through Models.List; chorus_model_live_info adds the version and is the registry's.
type metrics struct {
	loads          *prometheus.CounterVec   // model, result
	loadSeconds    *prometheus.HistogramVec // step
	reloads        *prometheus.CounterVec   // trigger, result
	doubleReleases prometheus.Counter
}

var (
	liveInfoDesc = prometheus.NewDesc("chorus_model_live_info",
		"Always 1: the variant and version each served model currently runs on.",
		[]string{"model", "variant", "version"}, nil)
	leasesDesc = prometheus.NewDesc("chorus_model_active_leases",
		"Streams and requests pinned to a variant, live or draining.",
		[]string{"model", "variant", "version", "state"}, nil)
	variantsDesc = prometheus.NewDesc("chorus_model_variants",
		"Variants the registry holds, by state.", []string{"state"}, nil)
)

func newMetrics(r *Registry, reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		loads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_model_loads_total",
			Help: "Variant loads, by served model and result (success, failure).",
		}, []string{"model", "result"}),
		loadSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "chorus_model_load_duration_seconds",
			Help: "Time spent loading a variant, by step (verify, open, validate, warm) and in total.",
			// From a checksum of a small folder to a large model read, verified and warmed on CPU.
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"step"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_model_reloads_total",
			Help: "Registry reloads, by trigger (startup, sighup, fsnotify, rpc_load, rpc_promote, rpc_unload) and result.",
		}, []string{"trigger", "result"}),
		doubleReleases: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_model_lease_double_releases_total",
			Help: "Leases released more than once (a caller bug; the extra releases are ignored).",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.loads, m.loadSeconds, m.reloads, m.doubleReleases, stateCollector{r}} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("registry metrics: %w", err)
			}
		}
	}
	return m, nil
}

// stateCollector reads the registry's state at scrape time.
type stateCollector struct{ r *Registry }

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- liveInfoDesc
	ch <- leasesDesc
	ch <- variantsDesc
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	vs := c.r.Variants() // copies under the lock; nothing is sent while holding it
	byState := map[State]int{}
	for _, v := range vs {
		byState[v.State]++
		if v.State == Live {
			ch <- constMetric(liveInfoDesc, 1, v.Model, v.Variant, v.Version)
		}
		if v.State == Live || v.State == Standby || v.State == Draining {
			ch <- constMetric(leasesDesc, float64(v.Active), v.Model, v.Variant, v.Version, v.State.String())
		}
	}
	for s := Loading; s <= Failed; s++ {
		if s != Unloaded {
			ch <- constMetric(variantsDesc, float64(byState[s]), s.String())
		}
	}
}

// constMetric reports a label value that is not valid UTF-8 as a failed metric rather than
// panicking the scrape.
func constMetric(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	m, err := prometheus.NewConstMetric(d, prometheus.GaugeValue, v, labels...)
	if err != nil {
		return prometheus.NewInvalidMetric(d, err)
	}
	return m
}
