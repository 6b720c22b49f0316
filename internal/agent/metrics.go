package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the agent's Prometheus metrics, in a registry of its own.
type metrics struct {
	registry      *prometheus.Registry
	attaches      *prometheus.CounterVec
	detaches      *prometheus.CounterVec
	attachLatency prometheus.Histogram
	spares        *prometheus.GaugeVec
	syncs         *prometheus.CounterVec
	syncAllocs    prometheus.Counter
	controllerOps *prometheus.CounterVec
	watchRestarts *prometheus.CounterVec
}

func newMetrics(journalSize func() float64) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		attaches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_agent_attaches_total", Help: "CNI ADD requests by result (ok, idempotent, error).",
		}, []string{"result"}),
		detaches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_agent_detaches_total", Help: "CNI DEL requests by result (ok, unknown, error).",
		}, []string{"result"}),
		attachLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "weft_agent_attach_duration_seconds", Help: "Time to answer a CNI ADD.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		spares: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weft_agent_spare_addresses", Help: "Addresses reserved ahead of need, by network and family.",
		}, []string{"network", "family"}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_agent_dataplane_syncs_total", Help: "Data-plane syncs by result (ok, error).",
		}, []string{"result"}),
		syncAllocs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_agent_attach_controller_allocations_total", Help: "Addresses an attach had to ask the controller for while the plugin waited.",
		}),
		controllerOps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_agent_controller_operations_total", Help: "Background controller calls (port_sync, assign, reserve, port, port_delete, release, spare, spare_release) by result.",
		}, []string{"op", "result"}),
		watchRestarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_agent_watch_restarts_total", Help: "Watch stream restarts by reason (resume, relist).",
		}, []string{"reason"}),
	}
	m.registry.MustRegister(m.attaches, m.detaches, m.attachLatency, m.spares, m.syncs, m.syncAllocs,
		m.controllerOps, m.watchRestarts,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "weft_agent_journal_entries", Help: "Attachments in the local journal.",
		}, journalSize),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) op(op string, err error) {
	res := "ok"
	if err != nil {
		res = "error"
	}
	m.controllerOps.WithLabelValues(op, res).Inc()
}
