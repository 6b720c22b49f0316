// Package client is the HTTP client of the controller's /v1 API (and the
// calls the node agent makes). It lives apart from package api, whose
// types and errors the CNI plugin links, so that the plugin does not link
// net/http.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/weft-sdn/weft/internal/api"
)

// clientPluralNetworks is the URL collection of networks. The collections are
// domains, projects, networks, ports, ip-reservations, nodes,
// floating-ip-pools, floating-ips, security-groups, network-policies,
// services and blocks.
const clientPluralNetworks = "networks"

// DefaultTimeout bounds every call of a Client made with a nil
// http.Client, except Watch, whose stream lives as long as its context.
const DefaultTimeout = 30 * time.Second

// Limits on what the client reads from the controller.
const (
	clientMaxErrorBody = 64 << 10 // error bodies
	clientMaxWatchLine = 16 << 20 // one watch event
)

// Client is an HTTP client of the controller's /v1 API. It is safe for
// concurrent use. Every answer outside 2xx comes back as an *api.Error
// built with api.ErrorFromStatus, so callers can test it with errors.Is
// against api.ErrInvalid, api.ErrNotFound, api.ErrConflict and
// api.ErrGone, and read its Field and Code with errors.As.
type Client struct {
	base  string       // scheme://host[:port][/prefix], no trailing slash
	hc    *http.Client // ordinary calls
	watch *http.Client // Watch: same transport, no overall timeout
}

// New returns a client of the controller at server, e.g.
// "http://127.0.0.1:8082" (a bare host:port gets "http://"), or
// "unix:///run/weft/controller.sock" for a controller's unix socket (which
// reaches across network namespaces). A nil hc uses an http.Client with
// DefaultTimeout. Watch uses hc's transport,
// redirect policy and cookie jar but never its Timeout, which would cut the
// stream; bound a watch with its context instead.
func New(server string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: DefaultTimeout}
	}
	server = strings.TrimSpace(server)
	if path, ok := strings.CutPrefix(server, "unix://"); ok {
		hc = unixClient(hc, path)
		server = "http://controller"
	}
	if server != "" && !strings.Contains(server, "://") {
		server = "http://" + server
	}
	return &Client{
		base: strings.TrimRight(server, "/"),
		hc:   hc,
		watch: &http.Client{
			Transport:     hc.Transport,
			CheckRedirect: hc.CheckRedirect,
			Jar:           hc.Jar,
		},
	}
}

// unixClient copies hc with a transport that dials the unix socket path
// whatever the request's host.
func unixClient(hc *http.Client, path string) *http.Client {
	c := *hc
	c.Transport = &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConnsPerHost: 16,
	}
	return &c
}

// Server returns the base URL the client talks to.
func (c *Client) Server() string { return c.base }

// Create posts obj to /v1/<plural> and decodes the created object into out
// (when out is not nil).
func (c *Client) Create(ctx context.Context, plural string, obj any, out any) error {
	return c.do(ctx, http.MethodPost, c.collectionPath(plural), nil, obj, out)
}

// Get reads /v1/<plural>/<uuid> into out.
func (c *Client) Get(ctx context.Context, plural, uuid string, out any) error {
	if uuid == "" {
		return errors.New("get " + plural + ": empty uuid")
	}
	return c.do(ctx, http.MethodGet, c.objectPath(plural, uuid), nil, nil, out)
}

// GetByFQName reads the one object of plural whose fq_name is fq into out,
// through GET /v1/<plural>?fq_name=<fq>. The controller answers with the
// object (it completes a short name with the kind's default parent) or an
// error wrapping ErrNotFound. Should it answer with a List instead, the
// client keeps the items whose fq_name is fq, of which there must be one.
func (c *Client) GetByFQName(ctx context.Context, plural, fq string, out any) error {
	if fq == "" {
		return errors.New("get " + plural + ": empty fq_name")
	}
	var raw json.RawMessage
	q := url.Values{"fq_name": {fq}}
	if err := c.do(ctx, http.MethodGet, c.collectionPath(plural), q, nil, &raw); err != nil {
		return err
	}
	var probe struct {
		Items *[]json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return fmt.Errorf("decode %s %s: %w", plural, fq, err)
	}
	if probe.Items != nil {
		var match []json.RawMessage
		for _, item := range *probe.Items {
			var m struct {
				FQName string `json:"fq_name"`
			}
			if json.Unmarshal(item, &m) == nil && m.FQName == fq {
				match = append(match, item)
			}
		}
		switch len(match) {
		case 0:
			return api.NotFound("%s %s not found", plural, fq)
		case 1:
			raw = match[0]
		default:
			return fmt.Errorf("get %s by fq_name %s: %d objects match, want 1", plural, fq, len(match))
		}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode %s %s: %w", plural, fq, err)
	}
	return nil
}

// List reads the collection /v1/<plural>, filtered by query (for example
// network=<fq_name or uuid>; nil for none). Items are the raw objects.
func (c *Client) List(ctx context.Context, plural string, query url.Values) (api.List, error) {
	var l api.List
	err := c.do(ctx, http.MethodGet, c.collectionPath(plural), query, nil, &l)
	return l, err
}

// Update replaces /v1/<plural>/<uuid> with obj (PUT) and decodes the stored
// object into out (when out is not nil). An obj whose resource_version is
// set is written only if the object is still at that version.
func (c *Client) Update(ctx context.Context, plural, uuid string, obj any, out any) error {
	if uuid == "" {
		return errors.New("update " + plural + ": empty uuid")
	}
	return c.do(ctx, http.MethodPut, c.objectPath(plural, uuid), nil, obj, out)
}

// Delete removes /v1/<plural>/<uuid>.
func (c *Client) Delete(ctx context.Context, plural, uuid string) error {
	if uuid == "" {
		return errors.New("delete " + plural + ": empty uuid")
	}
	return c.do(ctx, http.MethodDelete, c.objectPath(plural, uuid), nil, nil, nil)
}

// CreateNetwork creates n and returns the network as stored.
func (c *Client) CreateNetwork(ctx context.Context, n api.Network) (api.Network, error) {
	if n.Kind == "" {
		n.Kind = api.KindNetwork
	}
	var out api.Network
	err := c.Create(ctx, clientPluralNetworks, n, &out)
	return out, err
}

// GetNetwork reads a network by ref: a uuid, or else a fq_name.
func (c *Client) GetNetwork(ctx context.Context, ref string) (api.Network, error) {
	var out api.Network
	var err error
	if api.IsUUID(ref) {
		err = c.Get(ctx, clientPluralNetworks, ref, &out)
	} else {
		err = c.GetByFQName(ctx, clientPluralNetworks, ref, &out)
	}
	return out, err
}

// ListNetworks lists every network.
func (c *Client) ListNetworks(ctx context.Context) ([]api.Network, error) {
	out, _, err := ListItems[api.Network](ctx, c, clientPluralNetworks, nil)
	return out, err
}

// DeleteNetwork deletes the network named by ref: a uuid, or else a
// fq_name (resolved to its uuid first).
func (c *Client) DeleteNetwork(ctx context.Context, ref string) error {
	uuid := ref
	if !api.IsUUID(ref) {
		n, err := c.GetNetwork(ctx, ref)
		if err != nil {
			return err
		}
		uuid = n.UUID
	}
	return c.Delete(ctx, clientPluralNetworks, uuid)
}

// Allocate reserves addresses through POST /v1/ipam/allocate.
func (c *Client) Allocate(ctx context.Context, req api.AllocateRequest) (api.AllocateResponse, error) {
	var out api.AllocateResponse
	err := c.do(ctx, http.MethodPost, "/v1/ipam/allocate", nil, req, &out)
	return out, err
}

// Release returns addresses through POST /v1/ipam/release.
func (c *Client) Release(ctx context.Context, req api.ReleaseRequest) (api.ReleaseResponse, error) {
	var out api.ReleaseResponse
	err := c.do(ctx, http.MethodPost, "/v1/ipam/release", nil, req, &out)
	return out, err
}

// LeaseBlock leases an address block of a network to a node through
// POST /v1/ipam/blocks.
func (c *Client) LeaseBlock(ctx context.Context, req api.BlockRequest) (api.Block, error) {
	var out api.Block
	err := c.do(ctx, http.MethodPost, "/v1/ipam/blocks", nil, req, &out)
	return out, err
}

// ReleaseBlock gives a node's block back through POST
// /v1/ipam/blocks/release.
func (c *Client) ReleaseBlock(ctx context.Context, req api.BlockRequest) error {
	return c.do(ctx, http.MethodPost, "/v1/ipam/blocks/release", nil, req, nil)
}

// Version reads the controller's version from GET /v1/version.
func (c *Client) Version(ctx context.Context) (api.Version, error) {
	var out api.Version
	err := c.do(ctx, http.MethodGet, "/v1/version", nil, nil, &out)
	return out, err
}

// Watch streams the changes after revision since from GET
// /v1/watch?since=<since> and calls fn for each event, in order, from the
// calling goroutine. The stream is newline-delimited JSON, one WatchEvent a
// line; blank lines are skipped.
//
// Watch always returns a non-nil error: ctx.Err() once ctx ends; fn's
// error, unwrapped, when fn fails; an *Error wrapping ErrGone when the
// server has compacted since away (HTTP 410: start over with a fresh
// List); an error wrapping io.EOF when the server closed the stream between
// events; any other error when the stream broke. The caller resumes from
// the last revision it saw.
func (c *Client) Watch(ctx context.Context, since int64, fn func(api.WatchEvent) error) error {
	return c.WatchKinds(ctx, since, nil, fn)
}

// WatchKinds is Watch limited to the given kinds (GET
// /v1/watch?since=<since>&kind=<k>,...); no kinds means every kind. It
// returns under the same rules as Watch.
func (c *Client) WatchKinds(ctx context.Context, since int64, kinds []api.Kind, fn func(api.WatchEvent) error) error {
	q := url.Values{"since": {strconv.FormatInt(since, 10)}}
	if len(kinds) > 0 {
		names := make([]string, len(kinds))
		for i, k := range kinds {
			names[i] = string(k)
		}
		q.Set("kind", strings.Join(names, ","))
	}
	req, err := c.newRequest(ctx, http.MethodGet, "/v1/watch", q, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/x-ndjson, application/json")
	resp, err := c.watch.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return clientResponseError(resp)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), clientMaxWatchLine)
	last := since
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		ev, err := clientParseWatchEvent(line)
		if err != nil {
			return fmt.Errorf("watch after revision %d: %w", last, err)
		}
		if err := fn(ev); err != nil {
			return err
		}
		if ev.Revision > last {
			last = ev.Revision
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("watch after revision %d: read stream: %w", last, err)
	}
	return fmt.Errorf("watch after revision %d: stream closed by server: %w", last, io.EOF)
}

// clientParseWatchEvent decodes one line of the watch stream. The line must
// be one JSON object with a type; anything after it is an error.
func clientParseWatchEvent(line []byte) (api.WatchEvent, error) {
	var ev api.WatchEvent
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(&ev); err != nil {
		return api.WatchEvent{}, fmt.Errorf("decode watch event: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return api.WatchEvent{}, errors.New("decode watch event: trailing data after the event")
	}
	if ev.Type == "" {
		return api.WatchEvent{}, errors.New("decode watch event: no type")
	}
	return ev, nil
}

func (c *Client) collectionPath(plural string) string {
	return "/v1/" + url.PathEscape(plural)
}

func (c *Client) objectPath(plural, uuid string) string {
	return "/v1/" + url.PathEscape(plural) + "/" + url.PathEscape(uuid)
}

func (c *Client) newRequest(ctx context.Context, method, path string, query url.Values, in any) (*http.Request, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("%s %s: encode request: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	return req, nil
}

// do makes one call: in (when not nil) is sent as JSON, a 2xx body is
// decoded into out (when not nil), anything else becomes an *Error.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	_, err := c.doStatus(ctx, method, path, query, in, out)
	return err
}

// doStatus is do that also returns the 2xx status of the answer.
func (c *Client) doStatus(ctx context.Context, method, path string, query url.Values, in, out any) (int, error) {
	req, err := c.newRequest(ctx, method, path, query, in)
	if err != nil {
		return 0, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, err // *url.Error: names method and URL
	}
	defer func() {
		// Drain a little so that the connection can be reused.
		_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
		resp.Body.Close()
	}()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return 0, clientResponseError(resp)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return resp.StatusCode, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return 0, fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	return resp.StatusCode, nil
}

// clientResponseError turns an answer outside 2xx into an *Error. A body
// that is not the JSON error shape still gives the status and the start
// of the body.
func clientResponseError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, clientMaxErrorBody))
	var body struct {
		Error string `json:"error"`
		Field string `json:"field"`
	}
	if err := json.Unmarshal(b, &body); err == nil && body.Error != "" {
		return api.ErrorFromStatus(resp.StatusCode, body.Error, body.Field)
	}
	status := resp.Status
	if status == "" {
		status = strconv.Itoa(resp.StatusCode) + " " + http.StatusText(resp.StatusCode)
	}
	msg := "HTTP " + status
	if text := strings.Join(strings.Fields(string(b)), " "); text != "" {
		const limit = 200
		if len(text) > limit {
			text = text[:limit] + "..."
		}
		msg += ": " + text
	}
	return api.ErrorFromStatus(resp.StatusCode, msg, "")
}
