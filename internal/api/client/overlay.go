package client

import (
	"context"
	"encoding/json"
	"net/http"
)

// OverlayState fetches the overlay master's state in DC/OS's shape
// (GET /overlay-master/state), undecoded.
func (c *Client) OverlayState(ctx context.Context) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.do(ctx, http.MethodGet, "/overlay-master/state", nil, nil, &out)
	return out, err
}

// DeleteOverlayAgents deletes the nodes with these underlay addresses and
// frees their VTEPs and subnets (POST /overlay-master/agents/delete); it
// returns the new state, undecoded.
func (c *Client) DeleteOverlayAgents(ctx context.Context, ips []string) (json.RawMessage, error) {
	var out json.RawMessage
	if ips == nil {
		ips = []string{}
	}
	err := c.do(ctx, http.MethodPost, "/overlay-master/agents/delete", nil, map[string][]string{"agents": ips}, &out)
	return out, err
}

// OverlayUsage fetches every overlay's fill level (GET /v1/overlays),
// undecoded.
func (c *Client) OverlayUsage(ctx context.Context) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.do(ctx, http.MethodGet, "/v1/overlays", nil, nil, &out)
	return out, err
}
