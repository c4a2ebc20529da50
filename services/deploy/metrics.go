package deploy

import (
	"github.com/prometheus/client_golang/prometheus"

	deployv1 "github.com/pyleeai/pylee/gen/go/pylee/deploy/v1"
)

// metrics are the deploy service's Prometheus metrics. Labels name
// registries, servers and versions, never a value.
type metrics struct {
	exits *prometheus.CounterVec
	calls *prometheus.CounterVec
	c     *Controller

	instances *prometheus.Desc
	phase     *prometheus.Desc
	weight    *prometheus.Desc
}

func newMetrics(c *Controller) *metrics {
	return &metrics{c: c,
		exits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pylee_deploy_instance_exits_total",
			Help: "Instance exits, by kind: exited (restarted after backoff) or crash_loop."}, []string{"kind"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pylee_deploy_calls_total",
			Help: "Call outcomes the gateway reported, by registry, server, version and outcome."},
			[]string{"registry", "server", "version", "outcome"}),
		instances: prometheus.NewDesc("pylee_deploy_instances", "Instances by state.", []string{"state"}, nil),
		phase: prometheus.NewDesc("pylee_deploy_deployment_phase", "1 for each deployment's current phase.",
			[]string{"registry", "server", "phase"}, nil),
		weight: prometheus.NewDesc("pylee_deploy_version_weight_percent", "Share of new sessions per version.",
			[]string{"registry", "server", "version", "role"}, nil),
	}
}

// Register adds the metrics to reg.
func (m *metrics) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.exits, m.calls, m} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.instances
	ch <- m.phase
	ch <- m.weight
}

// Collect implements prometheus.Collector: the current state of every
// deployment.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.c.mu.Lock()
	deps := make([]*deployment, 0, len(m.c.deps))
	for _, d := range m.c.deps {
		deps = append(deps, d)
	}
	m.c.mu.Unlock()
	states := map[string]float64{}
	for _, d := range deps {
		p := d.toProto()
		reg, srv := d.rec.Registry, serverID(p.GetServer())
		ch <- prometheus.MustNewConstMetric(m.phase, prometheus.GaugeValue, 1, reg, srv, p.GetPhase().String())
		for _, a := range p.GetArms() {
			ch <- prometheus.MustNewConstMetric(m.weight, prometheus.GaugeValue, float64(a.GetWeightPercent()), reg, srv, a.GetVersion(), a.GetRole().String())
		}
		for _, in := range p.GetInstances() {
			states[in.GetState().String()]++
		}
	}
	for _, s := range deployv1.Instance_State_name {
		ch <- prometheus.MustNewConstMetric(m.instances, prometheus.GaugeValue, states[s], s)
	}
}

func serverID(server string) string {
	for i := len(server) - 1; i >= 0; i-- {
		if server[i] == '/' {
			return server[i+1:]
		}
	}
	return server
}
