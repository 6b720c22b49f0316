package mesosmanager

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the manager's Prometheus metrics, in a registry of its own.
type metrics struct {
	registry      *prometheus.Registry
	events        *prometheus.CounterVec
	resyncs       *prometheus.CounterVec
	reconnects    prometheus.Counter
	lag           prometheus.Histogram
	lastLag       prometheus.Gauge
	portsUpdated  prometheus.Counter
	portsReleased *prometheus.CounterVec
	controllerErr *prometheus.CounterVec
	leader        prometheus.Gauge
	leaderChanges prometheus.Counter
	problems      prometheus.Gauge
	pending       prometheus.Gauge
	nodesDeleted  prometheus.Counter
	fipsCreated   prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_mesos_manager_events_total", Help: "Marathon events handled, by event type.",
		}, []string{"type"}),
		resyncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_mesos_manager_resyncs_total", Help: "Full resyncs with Marathon, by reason (connected, reconnected, periodic, startup) and result.",
		}, []string{"reason", "result"}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_mesos_manager_stream_reconnects_total", Help: "Marathon event stream disconnects (each is followed by a reconnect).",
		}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "weft_mesos_manager_event_lag_seconds", Help: "Time from a Marathon event's timestamp to its handling.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 18),
		}),
		lastLag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_mesos_manager_last_event_lag_seconds", Help: "Lag of the last Marathon event handled.",
		}),
		portsUpdated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_mesos_manager_ports_updated_total", Help: "Port metadata writes.",
		}),
		portsReleased: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_mesos_manager_ports_released_total", Help: "Ports deleted and their addresses released, by reason (terminal, unreachable, stale, app_terminated, agent_removed).",
		}, []string{"reason"}),
		controllerErr: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_mesos_manager_controller_errors_total", Help: "Failed controller calls, by operation.",
		}, []string{"op"}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_mesos_manager_leader", Help: "1 while this replica leads.",
		}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_mesos_manager_leadership_changes_total", Help: "Times this replica took or lost the lead.",
		}),
		problems: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_mesos_manager_problems", Help: "Open problems (bad labels and the like).",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_mesos_manager_pending_tasks", Help: "Tasks waiting for a retry (port not in the controller yet, failed write).",
		}),
		nodesDeleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_mesos_manager_nodes_deleted_total", Help: "Nodes deleted after their Mesos agent was removed.",
		}),
		fipsCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_mesos_manager_floating_ips_created_total", Help: "Floating IPs created from the floating-ips label.",
		}),
	}
	m.registry.MustRegister(m.events, m.resyncs, m.reconnects, m.lag, m.lastLag, m.portsUpdated, m.portsReleased,
		m.controllerErr, m.leader, m.leaderChanges, m.problems, m.pending, m.nodesDeleted, m.fipsCreated,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
