package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/weft-sdn/weft/internal/api"
)

// This file holds the client calls of the controller's other daemons: the
// node agent's registration, heartbeats, hand-over of spare addresses,
// overlay status reports and port sync, typed lists with their revision,
// and the leases of the mesos-manager.

// RegisterNode registers the node n (name and underlay_ip; the controller
// allocates vtep_ip and vtep_mac) through POST /v1/nodes/register and
// returns the node as stored. created is true when the node is new (201)
// and false when it was already registered (200): a node keeps its VTEP
// across registrations.
func (c *Client) RegisterNode(ctx context.Context, n api.Node) (node api.Node, created bool, err error) {
	if n.Kind == "" {
		n.Kind = api.KindNode
	}
	code, err := c.doStatus(ctx, http.MethodPost, "/v1/nodes/register", nil, n, &node)
	if err != nil {
		return api.Node{}, false, err
	}
	return node, code == http.StatusCreated, nil
}

// Heartbeat tells the controller that the agent of node name is alive
// (POST /v1/nodes/{name}/heartbeat) and returns the node as stored. An
// unknown node comes back as an error wrapping ErrNotFound.
func (c *Client) Heartbeat(ctx context.Context, name string) (api.Node, error) {
	var out api.Node
	if name == "" {
		return out, fmt.Errorf("heartbeat: empty node name")
	}
	err := c.do(ctx, http.MethodPost, "/v1/nodes/"+url.PathEscape(name)+"/heartbeat", nil, nil, &out)
	return out, err
}

// Assign hands a reservation over from req.FromOwner to req.Owner through
// POST /v1/ipam/assign and returns the reservation as stored.
func (c *Client) Assign(ctx context.Context, req api.AssignRequest) (api.IPReservation, error) {
	var out api.IPReservation
	err := c.do(ctx, http.MethodPost, "/v1/ipam/assign", nil, req, &out)
	return out, err
}

// ListItems lists the collection /v1/<plural> (filtered by query, nil for
// none), decodes every item into a T, and returns them with the store
// revision the list was read at, from which a watch resumes.
func ListItems[T any](ctx context.Context, c *Client, plural string, query url.Values) ([]T, int64, error) {
	l, err := c.List(ctx, plural, query)
	if err != nil {
		return nil, 0, err
	}
	out := make([]T, 0, len(l.Items))
	for i, raw := range l.Items {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, 0, fmt.Errorf("decode %s item %d: %w", plural, i, err)
		}
		out = append(out, v)
	}
	return out, l.Revision, nil
}

// AcquireLease takes or renews the named lease for holder (PUT
// /v1/leases/{name}). A refusal wraps api.ErrConflict and names the
// holder.
func (c *Client) AcquireLease(ctx context.Context, name string, req api.LeaseRequest) (api.Lease, error) {
	var l api.Lease
	err := c.do(ctx, http.MethodPut, "/v1/leases/"+url.PathEscape(name), nil, req, &l)
	return l, err
}

// GetLease reads the named lease (GET /v1/leases/{name}).
func (c *Client) GetLease(ctx context.Context, name string) (api.Lease, error) {
	var l api.Lease
	err := c.do(ctx, http.MethodGet, "/v1/leases/"+url.PathEscape(name), nil, nil, &l)
	return l, err
}

// ReleaseLease gives the lease up if holder holds it (DELETE
// /v1/leases/{name}?holder=).
func (c *Client) ReleaseLease(ctx context.Context, name, holder string) error {
	return c.do(ctx, http.MethodDelete, "/v1/leases/"+url.PathEscape(name), url.Values{"holder": {holder}}, nil, nil)
}

// ReportOverlayStatus tells the controller the status of the node's
// overlays through POST /v1/nodes/{name}/overlay-status.
func (c *Client) ReportOverlayStatus(ctx context.Context, name string, rep api.OverlayStatusReport) (api.Node, error) {
	var out api.Node
	if name == "" {
		return out, fmt.Errorf("overlay status: empty node name")
	}
	err := c.do(ctx, http.MethodPost, "/v1/nodes/"+url.PathEscape(name)+"/overlay-status", nil, rep, &out)
	return out, err
}

// SyncPorts sends a batch of the node's port work through POST
// /v1/nodes/{name}/port-sync; each item has its own result.
func (c *Client) SyncPorts(ctx context.Context, name string, req api.PortSyncRequest) (api.PortSyncResponse, error) {
	var out api.PortSyncResponse
	if name == "" {
		return out, fmt.Errorf("port sync: empty node name")
	}
	err := c.do(ctx, http.MethodPost, "/v1/nodes/"+url.PathEscape(name)+"/port-sync", nil, req, &out)
	if err == nil && (len(out.Attach) != len(req.Attach) || len(out.Detach) != len(req.Detach)) {
		err = fmt.Errorf("port sync: %d and %d results for %d and %d items", len(out.Attach), len(out.Detach), len(req.Attach), len(req.Detach))
	}
	return out, err
}
