package server

import (
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus metrics. Each Server has its own registry, so that
// several servers (tests, or an admin listener later) never collide on the global one.
type metrics struct {
	reg *prometheus.Registry

	requests *prometheus.CounterVec   // endpoint, code
	duration *prometheus.HistogramVec // endpoint
	audio    *prometheus.CounterVec   // model
	rtf      *prometheus.HistogramVec // model

	streams      *prometheus.GaugeVec     // model, variant: open streams
	streamsTotal *prometheus.CounterVec   // model, variant
	streamAudioS *prometheus.CounterVec   // model, variant
	streamRTF    *prometheus.HistogramVec // model, variant
	firstInt     *prometheus.HistogramVec // model, variant
	finalLat     *prometheus.HistogramVec // model, variant

	routing *routingMetrics // per-router figures of streams on MoE variants (routing.go)
}

// latencyBuckets span what a listener notices: 50 ms to several seconds.
var latencyBuckets = []float64{.025, .05, .1, .15, .2, .3, .4, .5, .75, 1, 1.5, 2, 3, 5, 10}

// newMetrics registers the server's metrics; the model info and the in-flight count are read
// from models and the admission gate at scrape time, so they have a single owner.
func newMetrics(models Models, g *gate, reg *prometheus.Registry) *metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_requests_total",
			Help: "HTTP requests answered, by endpoint and status code.",
		}, []string{"endpoint", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "chorus_request_duration_seconds",
			Help: "Time to answer an HTTP request, upload and transcription included.",
			// From probes (milliseconds) to long uploads transcribed on CPU (minutes).
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
		}, []string{"endpoint"}),
		audio: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_audio_seconds_total",
			Help: "Seconds of audio transcribed, by model.",
		}, []string{"model"}),
		rtf: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "chorus_real_time_factor",
			Help:    "Transcription compute time divided by audio duration, by model; below 1 is faster than real time.",
			Buckets: []float64{.01, .02, .05, .1, .2, .3, .5, .75, 1, 1.5, 2, 3, 5, 10},
		}, []string{"model"}),
	}
	m.routing = newRoutingMetrics(reg)
	mv := []string{"model", "variant"}
	m.streams = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "chorus_active_streams", Help: "Streaming recognitions open, by model and variant.",
	}, mv)
	m.streamsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chorus_streams_total", Help: "Streaming recognitions opened, by model and variant.",
	}, mv)
	m.streamAudioS = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chorus_stream_audio_seconds_total", Help: "Seconds of audio received on streams, by model and variant.",
	}, mv)
	m.streamRTF = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "chorus_stream_real_time_factor",
		Help:    "Per stream, recognition compute time divided by the audio's duration.",
		Buckets: []float64{.01, .02, .05, .1, .2, .3, .5, .75, 1, 1.5, 2},
	}, mv)
	m.firstInt = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "chorus_first_interim_latency_seconds",
		Help:    "From the arrival of an utterance's first audio to its first interim result.",
		Buckets: latencyBuckets,
	}, mv)
	m.finalLat = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "chorus_final_latency_seconds",
		Help:    "From the arrival of the end of an utterance's speech to its final result.",
		Buckets: latencyBuckets,
	}, mv)
	inflight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "chorus_inflight_requests",
		Help: "Transcription requests admitted and not yet answered.",
	}, func() float64 { return float64(g.inflight()) })
	m.reg.MustRegister(
		m.requests, m.duration, m.audio, m.rtf, inflight,
		m.streams, m.streamsTotal, m.streamAudioS, m.streamRTF, m.firstInt, m.finalLat,
		modelInfoCollector{models},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

func (m *metrics) streamOpened(mi ModelInfo) {
	m.streams.WithLabelValues(mi.Name, mi.Variant).Inc()
	m.streamsTotal.WithLabelValues(mi.Name, mi.Variant).Inc()
}

func (m *metrics) streamClosed(mi ModelInfo) { m.streams.WithLabelValues(mi.Name, mi.Variant).Dec() }

func (m *metrics) streamAudio(mi ModelInfo, seconds, rtf float64) {
	m.streamAudioS.WithLabelValues(mi.Name, mi.Variant).Add(seconds)
	m.streamRTF.WithLabelValues(mi.Name, mi.Variant).Observe(rtf)
}

func (m *metrics) firstInterim(mi ModelInfo, s float64) {
	m.firstInt.WithLabelValues(mi.Name, mi.Variant).Observe(s)
}

func (m *metrics) finalLatency(mi ModelInfo, s float64) {
	m.finalLat.WithLabelValues(mi.Name, mi.Variant).Observe(s)
}

// observeTranscription records a whole-file transcription (HTTP or gRPC Recognize).
func (m *metrics) observeTranscription(model string, seconds, rtf float64) {
	m.audio.WithLabelValues(model).Add(seconds)
	m.rtf.WithLabelValues(model).Observe(rtf)
}

// instrument counts and times h's requests under endpoint, a fixed route name, so that the
// label's cardinality does not grow with whatever paths clients send.
func (m *metrics) instrument(endpoint string, h http.Handler) http.Handler {
	l := prometheus.Labels{"endpoint": endpoint}
	return promhttp.InstrumentHandlerDuration(m.duration.MustCurryWith(l),
		promhttp.InstrumentHandlerCounter(m.requests.MustCurryWith(l), h))
}

// handler serves the registry in the Prometheus exposition formats. A collector that fails
// is logged and left out rather than failing the whole scrape.
func (m *metrics) handler(log *slog.Logger) http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		Registry:      m.reg,
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	})
}

// modelInfoDesc is chorus_model_info.
var modelInfoDesc = prometheus.NewDesc("chorus_model_info",
	"Always 1: the variant each served model name currently runs on.", []string{"model", "variant"}, nil)

// modelInfoCollector reads Models at scrape time, so chorus_model_info follows a hot swap
// without the registry having to know about metrics.
type modelInfoCollector struct{ models Models }

func (c modelInfoCollector) Describe(ch chan<- *prometheus.Desc) { ch <- modelInfoDesc }

func (c modelInfoCollector) Collect(ch chan<- prometheus.Metric) {
	for _, mi := range c.models.List() {
		m, err := prometheus.NewConstMetric(modelInfoDesc, prometheus.GaugeValue, 1, mi.Name, mi.Variant)
		if err != nil { // a name that is not valid UTF-8: report it, don't panic the scrape
			m = prometheus.NewInvalidMetric(modelInfoDesc, err)
		}
		ch <- m
	}
}
