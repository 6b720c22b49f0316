package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/store"
)

// Two controller replicas on one etcd, 8 goroutines each, allocate 2,000
// addresses through the HTTP API: no address is handed out twice.
func TestTwoReplicasAllocateWithoutDuplicates(t *testing.T) {
	ctx := context.Background()
	kv1 := etcdKV(t)
	kv2, err := sharedEtcd(t).Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer kv2.Close()
	r1, r2 := newEnv(t, kv1), newEnv(t, kv2)
	if _, err := r1.cli.CreateNetwork(ctx, api.Network{Meta: api.Meta{Name: "big"}, Subnets: []api.Subnet{{CIDR: "10.20.0.0/20"}}}); err != nil {
		t.Fatal(err)
	}
	const perWorker, workers = 125, 8
	var mu sync.Mutex
	got := make(map[string]string)
	var wg sync.WaitGroup
	for r, env := range []*testEnv{r1, r2} {
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perWorker {
					owner := fmt.Sprintf("r%d-w%d-%d", r, w, i)
					res, err := env.cli.Allocate(ctx, api.AllocateRequest{Network: "big", Owner: owner})
					if err != nil {
						t.Errorf("allocate %s: %v", owner, err)
						return
					}
					mu.Lock()
					for _, x := range res.Reservations {
						if prev, dup := got[x.Address]; dup {
							t.Errorf("address %s handed to %s and %s", x.Address, prev, owner)
						}
						got[x.Address] = owner
					}
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	if len(got) != 2*workers*perWorker {
		t.Fatalf("%d distinct addresses, want %d", len(got), 2*workers*perWorker)
	}
	l, err := r2.cli.List(ctx, "ip-reservations", map[string][]string{"network": {"big"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Items) != len(got) {
		t.Fatalf("%d reservations stored, want %d", len(l.Items), len(got))
	}
}

func TestAssignHandsOverReservation(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, store.NewMemory())
	if _, err := e.cli.CreateNetwork(ctx, api.Network{Meta: api.Meta{Name: "blue"}, Subnets: []api.Subnet{{CIDR: "10.0.0.0/24"}}}); err != nil {
		t.Fatal(err)
	}
	res, err := e.cli.Allocate(ctx, api.AllocateRequest{Network: "blue", Owner: "spare:n1"})
	if err != nil {
		t.Fatal(err)
	}
	ip := res.Reservations[0].Address
	req := api.AssignRequest{Network: "blue", IP: ip, FromOwner: "spare:n1", Owner: "c1/eth0", Labels: map[string]string{"app": "web"}}
	assign := func(req api.AssignRequest) (int, api.Error, api.IPReservation) {
		t.Helper()
		b, _ := json.Marshal(req)
		code, ae, body := e.do(t, "POST", "/v1/ipam/assign", string(b))
		var out api.IPReservation
		if code == 200 {
			if err := json.Unmarshal(body, &out); err != nil {
				t.Fatal(err)
			}
		}
		return code, ae, out
	}
	code, ae, out := assign(req)
	if code != 200 {
		t.Fatalf("assign: %d %v", code, ae)
	}
	if out.Owner != "c1/eth0" || out.Labels["app"] != "web" || out.Address != ip {
		t.Fatalf("assigned: %+v", out)
	}
	// Again: a no-op. From a wrong owner: a conflict naming the holder.
	if code, ae, _ := assign(req); code != 200 {
		t.Fatalf("repeat assign: %d %v", code, ae)
	}
	req.Owner = "c2/eth0"
	if code, ae, _ := assign(req); code != 409 || ae.Field != "from_owner" || !strings.Contains(ae.Message, "c1/eth0") {
		t.Fatalf("assign from wrong owner: %d %v", code, ae)
	}
	// Release by the new owner works.
	rel, err := e.cli.Release(ctx, api.ReleaseRequest{Owner: "c1/eth0"})
	if err != nil || len(rel.Released) != 1 || rel.Released[0].Address != ip {
		t.Fatalf("release by new owner: %v %+v", err, rel)
	}
}
