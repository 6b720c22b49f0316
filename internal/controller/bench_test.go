package controller

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/api/client"
	"github.com/weft-sdn/weft/internal/store"
)

// The benchmarks measure the controller API over HTTP with the embedded
// etcd. BenchmarkEtcdTxn is the baseline of the same run: one raw etcd
// create-if-absent transaction, the least any durable allocation costs.
// docs/performance.md reports the API figures as ratios against it.

var (
	benchOnce sync.Once
	benchSrv  *store.Embedded
	benchErr  error
)

// benchKV is an in-process client of an embedded etcd that, unlike the
// tests' one, syncs to disk as in production. It is stopped by TestMain.
func benchKV(b *testing.B) store.KV {
	b.Helper()
	benchOnce.Do(func() {
		dir, err := os.MkdirTemp("", "weft-bench-etcd-")
		if err != nil {
			benchErr = err
			return
		}
		cleanups = append(cleanups, func() { _ = os.RemoveAll(dir) })
		benchSrv, benchErr = store.StartEmbedded(context.Background(), store.EmbedConfig{DataDir: dir, ClientURL: "http://127.0.0.1:0"})
		if benchErr == nil {
			cleanups = append(cleanups, benchSrv.Close)
		}
	})
	if benchErr != nil {
		b.Fatalf("start embedded etcd: %v", benchErr)
	}
	// In process, as the controller reaches its embedded etcd.
	kv := benchSrv.LocalClient()
	b.Cleanup(func() { _ = kv.Close() })
	return kv
}

func BenchmarkEtcdTxn(b *testing.B) {
	ctx := context.Background()
	kv := benchKV(b)
	b.ResetTimer()
	for i := range b.N {
		key := fmt.Sprintf("/weft/v1/bench/%d/%d", b.N, i)
		if _, err := kv.Txn(ctx, []store.Cmp{store.Absent(key)}, []store.Op{store.Put(key, []byte("x"))}); err != nil {
			b.Fatal(err)
		}
	}
}

func benchEnv(b *testing.B, subnet string, blockPrefix int) *testEnv {
	b.Helper()
	kv := benchKV(b)
	c, err := NewWithStore(context.Background(), testConfig(), kv, discardLog())
	if err != nil {
		b.Fatal(err)
	}
	e := &testEnv{c: c, kv: kv}
	e.ts = newHTTPTestServer(b, c)
	e.cli = client.New(e.ts.URL, nil)
	name := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	e.net = name
	if _, err := e.cli.CreateNetwork(context.Background(), api.Network{Meta: api.Meta{Name: name}, Subnets: []api.Subnet{{CIDR: subnet, BlockPrefix: blockPrefix}}}); err != nil {
		b.Fatal(err)
	}
	return e
}

func BenchmarkAPIAllocate(b *testing.B) {
	ctx := context.Background()
	e := benchEnv(b, "10.0.0.0/8", 0)
	b.ResetTimer()
	for i := range b.N {
		if _, err := e.cli.Allocate(ctx, api.AllocateRequest{Network: e.net, Owner: fmt.Sprintf("o%d", i)}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAPIAllocateParallel(b *testing.B) {
	ctx := context.Background()
	e := benchEnv(b, "10.0.0.0/8", 0)
	b.SetParallelism(4) // 8 concurrent clients on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if _, err := e.cli.Allocate(ctx, api.AllocateRequest{Network: e.net, Owner: fmt.Sprintf("p%p-%d", pb, i)}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkAPILeaseBlock(b *testing.B) {
	ctx := context.Background()
	e := benchEnv(b, "fd00::/64", 120)
	if _, _, err := e.c.Registry.RegisterNode(ctx, &api.Node{Meta: api.Meta{Kind: api.KindNode, Name: "n1", FQName: "n1"}, UnderlayIP: "198.18.0.1"}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := e.cli.LeaseBlock(ctx, api.BlockRequest{Network: e.net, Node: "n1", Family: "ipv6"}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEtcdGet is the second baseline: one linearizable read.
func BenchmarkEtcdGet(b *testing.B) {
	ctx := context.Background()
	kv := benchKV(b)
	if _, err := kv.Txn(ctx, nil, []store.Op{store.Put("/weft/v1/bench/get", []byte("x"))}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := kv.Get(ctx, "/weft/v1/bench/get"); err != nil {
			b.Fatal(err)
		}
	}
}
