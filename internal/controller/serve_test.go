package controller

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/weft-sdn/weft/internal/api/client"
)

// The full controller (embedded etcd, listener) serves, reports ready, and
// on cancellation ends open watch streams and returns promptly.
func TestServeShutsDownGracefully(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.EtcdListen = "http://127.0.0.1:0"
	cfg.ListenUnix = filepath.Join(t.TempDir(), "controller.sock")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := New(ctx, cfg, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	served := make(chan error, 1)
	go func() { served <- c.Serve(ctx) }()
	base := "http://" + c.Addr()
	var resp *http.Response
	for range 50 {
		resp, err = http.Get(base + "/readyz")
		if err == nil && resp.StatusCode == http.StatusOK {
			resp.Body.Close()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("readyz: %v", err)
	}
	// The unix socket serves the same API.
	if v, err := client.New("unix://"+cfg.ListenUnix, nil).Version(context.Background()); err != nil || v.Version == "" {
		t.Fatalf("version over the unix socket: %+v %v", v, err)
	}
	watch, err := http.Get(base + "/v1/watch")
	if err != nil || watch.StatusCode != http.StatusOK {
		t.Fatalf("watch: %v", err)
	}
	streamEnded := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, watch.Body); close(streamEnded) }()

	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not return within 5 s of cancellation")
	}
	select {
	case <-streamEnded:
	case <-time.After(2 * time.Second):
		t.Fatal("the open watch stream was not ended by the shutdown")
	}
}
