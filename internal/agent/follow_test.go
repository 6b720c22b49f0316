package agent

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/weft-sdn/weft/internal/api"
)

// TestFollowResumesAndRelists breaks the agent's watch stream while the
// controller changes: the agent resumes from its last revision, and lists
// again when that revision has been compacted away.
func TestFollowResumesAndRelists(t *testing.T) {
	h := newHarness(t)
	r := h.startAgent(agentOpts{})
	ctx := context.Background()
	create := func(name string) {
		t.Helper()
		n := &api.Network{Meta: api.Meta{Kind: api.KindNetwork, Name: name}, Subnets: []api.Subnet{{CIDR: "10.200.0.0/24"}}}
		if err := api.Validate(n); err != nil {
			t.Fatal(err)
		}
		if _, err := h.ctrl.Registry.Create(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	known := func(name string) func() (bool, string) {
		return func() (bool, string) {
			return r.a.cache.Network("default-domain:default-project:"+name) != nil, "network " + name + " not in the cache"
		}
	}
	create("w1")
	eventually(t, 5*time.Second, known("w1"))

	tests := []struct {
		name    string
		compact bool
		reason  string
	}{
		{"resume", false, "resume"},
		{"relist after compaction", true, "relist"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := counterValue(r.a.metrics.watchRestarts.WithLabelValues(tc.reason))
			h.proxy.down.Store(true)
			h.srv.CloseClientConnections()
			name := []string{"w2", "w3"}[i]
			create(name)
			if tc.compact {
				// Compact past the first change the agent missed.
				create(name + "-more")
				rev, err := h.kv.Revision(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if err := h.kv.Compact(ctx, rev); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(50 * time.Millisecond)
			h.proxy.down.Store(false)
			eventually(t, 5*time.Second, known(name))
			if after := counterValue(r.a.metrics.watchRestarts.WithLabelValues(tc.reason)); after <= before {
				t.Fatalf("%s restarts: %v -> %v", tc.reason, before, after)
			}
		})
	}
	// Changes keep flowing after the relist.
	create("w4")
	eventually(t, 5*time.Second, known("w4"))
}

func TestCacheSkipsListedEvents(t *testing.T) {
	c := newCache()
	n := api.Network{Meta: api.Meta{UUID: "u1", FQName: "d:p:a", ResourceVersion: 5}, VNI: 1}
	from := c.replace(listed{networks: []api.Network{n}, revs: map[api.Kind]int64{
		api.KindNetwork: 10, api.KindNode: 7, api.KindBlock: 8, api.KindIPReservation: 9,
	}})
	if from != 7 {
		t.Fatalf("watch from %d, want the lowest list revision 7", from)
	}
	tests := []struct {
		name    string
		ev      api.WatchEvent
		changed bool
		vni     int
		present bool
	}{
		{"older than the list", api.WatchEvent{Kind: api.KindNetwork, Type: api.EventDeleted, Revision: 9, Object: []byte(`{"uuid":"u1","fq_name":"d:p:a"}`)}, false, 1, true},
		{"other kind", api.WatchEvent{Kind: api.KindPort, Type: api.EventAdded, Revision: 11, Object: []byte(`{}`)}, false, 1, true},
		{"newer", api.WatchEvent{Kind: api.KindNetwork, Type: api.EventModified, Revision: 11, Object: []byte(`{"uuid":"u1","fq_name":"d:p:a","vni":2}`)}, true, 2, true},
		{"delete", api.WatchEvent{Kind: api.KindNetwork, Type: api.EventDeleted, Revision: 12, Object: []byte(`{"uuid":"u1","fq_name":"d:p:a"}`)}, true, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap := c.Snapshot()
			changed, err := c.apply(tc.ev)
			if err != nil || changed != tc.changed {
				t.Fatalf("apply: changed=%v err=%v", changed, err)
			}
			got := c.Network("d:p:a")
			if (got != nil) != tc.present || (got != nil && got.VNI != tc.vni) {
				t.Fatalf("network after event: %+v", got)
			}
			if changed && c.Snapshot() == snap {
				t.Fatalf("snapshot not renewed after a change")
			}
		})
	}
	if _, err := c.apply(api.WatchEvent{Kind: api.KindNode, Type: api.EventAdded, Revision: 20, Object: []byte(`[]`)}); err == nil {
		t.Fatal("undecodable event accepted")
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
