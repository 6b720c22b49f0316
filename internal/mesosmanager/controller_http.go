package mesosmanager

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/api/client"
)

// httpController is the Controller over the controller's /v1 API.
type httpController struct {
	c *client.Client
}

// NewHTTPController returns the Controller of the controller at server:
// an http(s) URL or unix:///path of its socket. A nil hc uses an
// http.Client with client.DefaultTimeout.
func NewHTTPController(server string, hc *http.Client) (Controller, error) {
	if path, ok := strings.CutPrefix(strings.TrimSpace(server), "unix://"); ok && path == "" {
		return nil, errors.New("controller: empty unix socket path")
	}
	return &httpController{c: client.New(server, hc)}, nil
}

func (h *httpController) ListPorts(ctx context.Context, node string) ([]api.Port, error) {
	var q url.Values
	if node != "" {
		q = url.Values{"node": {node}}
	}
	ports, _, err := client.ListItems[api.Port](ctx, h.c, api.KindPort.Plural(), q)
	if err != nil {
		return nil, fmt.Errorf("list ports: %w", err)
	}
	return ports, nil
}

func (h *httpController) GetPort(ctx context.Context, uuid string) (api.Port, error) {
	var p api.Port
	err := h.c.Get(ctx, api.KindPort.Plural(), uuid, &p)
	return p, err
}

func (h *httpController) UpdatePort(ctx context.Context, p api.Port) (api.Port, error) {
	var out api.Port
	p.Kind = api.KindPort
	err := h.c.Update(ctx, api.KindPort.Plural(), p.UUID, p, &out)
	return out, err
}

func (h *httpController) DeletePort(ctx context.Context, uuid string) error {
	err := h.c.Delete(ctx, api.KindPort.Plural(), uuid)
	if errors.Is(err, api.ErrNotFound) {
		return nil
	}
	return err
}

func (h *httpController) Release(ctx context.Context, req api.ReleaseRequest) error {
	_, err := h.c.Release(ctx, req)
	return err
}

func (h *httpController) ListNodes(ctx context.Context) ([]api.Node, error) {
	nodes, _, err := client.ListItems[api.Node](ctx, h.c, api.KindNode.Plural(), nil)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return nodes, nil
}

func (h *httpController) DeleteNode(ctx context.Context, uuid string) error {
	err := h.c.Delete(ctx, api.KindNode.Plural(), uuid)
	if errors.Is(err, api.ErrNotFound) {
		return nil
	}
	return err
}

func (h *httpController) Exists(ctx context.Context, kind api.Kind, fqName string) (bool, error) {
	err := h.c.GetByFQName(ctx, kind.Plural(), fqName, nil)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, api.ErrNotFound):
		return false, nil
	}
	return false, err
}

func (h *httpController) ListFloatingIPs(ctx context.Context) ([]api.FloatingIP, error) {
	fips, _, err := client.ListItems[api.FloatingIP](ctx, h.c, api.KindFloatingIP.Plural(), nil)
	if err != nil {
		return nil, fmt.Errorf("list floating ips: %w", err)
	}
	return fips, nil
}

func (h *httpController) CreateFloatingIP(ctx context.Context, f api.FloatingIP) error {
	f.Kind = api.KindFloatingIP
	return h.c.Create(ctx, api.KindFloatingIP.Plural(), f, nil)
}

func (h *httpController) DeleteFloatingIP(ctx context.Context, uuid string) error {
	err := h.c.Delete(ctx, api.KindFloatingIP.Plural(), uuid)
	if errors.Is(err, api.ErrNotFound) {
		return nil
	}
	return err
}

func (h *httpController) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (api.Lease, error) {
	l, err := h.c.AcquireLease(ctx, name, api.LeaseRequest{Holder: holder, TTLSeconds: int(math.Ceil(ttl.Seconds()))})
	if errors.Is(err, api.ErrConflict) {
		// The refusal names the holder only in its message; read the lease
		// for the introspection page.
		if cur, gerr := h.c.GetLease(ctx, name); gerr == nil {
			return cur, err
		}
		return api.Lease{}, err
	}
	return l, err
}

func (h *httpController) ReleaseLease(ctx context.Context, name, holder string) error {
	if err := h.c.ReleaseLease(ctx, name, holder); err != nil {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}
